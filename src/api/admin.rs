//! The `Admin` service: a region's backlog and overdue items, for
//! administrators of that region only. Persons are always masked.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::cursor;
use super::encode;
use super::error::ApiError;
use super::identity::Caller;
use crate::clock::Clock;
use crate::domain::kpi::{Kpis, SideStats};
use crate::domain::region::name_of_prefix;
use crate::domain::{RegionPrefix, mask_name};
use crate::proto::{self, admin_server::Admin};
use crate::store::{BacklogQuery, Side, Store, to_us};

/// The default window of rates and reply times.
const WINDOW_DAYS: i64 = 90;

#[derive(Clone)]
pub struct AdminService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

impl AdminService {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }
}

/// The region asked about, which must lie within the administrator's.
fn region<T>(request: &Request<T>, raw: &str) -> Result<RegionPrefix, ApiError> {
    let own = match Caller::of(request)? {
        Caller::Admin(prefix) => prefix,
        Caller::Office(_) => {
            return Err(ApiError::PermissionDenied(
                "the Admin service is for administrators (urn:twoplace:admin:<region>)".into(),
            ));
        }
    };
    if raw.is_empty() {
        return Ok(own);
    }
    let asked = RegionPrefix::parse(raw)
        .map_err(|e| ApiError::invalid_field("region", "INVALID_REGION", format!("{raw:?} {e}")))?;
    if own.contains(&asked) {
        Ok(asked)
    } else {
        Err(ApiError::PermissionDenied(format!(
            "region {asked} is outside your region {own}"
        )))
    }
}

fn kpis(k: Kpis) -> proto::Kpis {
    proto::Kpis {
        open: k.open,
        overdue: k.overdue,
        escalated: k.escalated,
        orphans: k.orphans,
        open_discrepancies: k.open_discrepancies,
        receipt_rate: k.receipt_rate,
        feedback_rate: k.feedback_rate,
        on_time_rate: k.on_time_rate,
        median_reply_seconds: k.median_reply_seconds,
        p90_reply_seconds: k.p90_reply_seconds,
    }
}

fn row(region: &str, debtor: &SideStats, creditor: &SideStats) -> proto::BacklogRow {
    proto::BacklogRow {
        region: region.to_string(),
        name: name_of_prefix(region).unwrap_or_default(),
        as_debtor: Some(kpis(debtor.kpis())),
        as_creditor: Some(kpis(creditor.kpis())),
    }
}

fn time(
    t: Option<prost_types::Timestamp>,
    field: &str,
) -> Result<Option<time::OffsetDateTime>, ApiError> {
    t.map(|t| {
        time::OffsetDateTime::from_unix_timestamp(t.seconds)
            .map_err(|_| ApiError::invalid_field(field, "OUT_OF_RANGE", "not a usable time"))
    })
    .transpose()
}

impl AdminService {
    async fn backlog_of(
        &self,
        request: Request<proto::BacklogRequest>,
    ) -> Result<proto::BacklogResponse, ApiError> {
        let region = region(&request, &request.get_ref().region)?;
        let req = request.into_inner();
        let now = self.clock.now();
        let window_end = time(req.window_end, "window_end")?.unwrap_or(now);
        let days = match req.window_days {
            0 => WINDOW_DAYS,
            d if d > 0 => i64::from(d),
            _ => {
                return Err(ApiError::invalid_field(
                    "window_days",
                    "NEGATIVE",
                    "must not be negative",
                ));
            }
        };
        let window_start = time(req.window_start, "window_start")?
            .unwrap_or(window_end - time::Duration::days(days));
        if window_start >= window_end {
            return Err(ApiError::invalid_field(
                "window_start",
                "INVALID_RANGE",
                "must be before window_end",
            ));
        }
        // Province → cities → counties → offices.
        let child_len = match region.as_str().len() {
            2 => 4,
            4 => 6,
            _ => 9,
        };
        let stats = self
            .store
            .backlog(&BacklogQuery {
                prefix: region.as_str().to_string(),
                child_len,
                window_start,
                window_end,
                now,
            })
            .await?;
        let empty = SideStats::default();
        let mut total = (SideStats::default(), SideStats::default());
        let mut groups: Vec<&String> = stats.keys().map(|(g, _)| g).collect();
        groups.dedup();
        let mut children = Vec::new();
        for g in groups {
            let debtor = stats.get(&(g.clone(), Side::Debtor)).unwrap_or(&empty);
            let creditor = stats.get(&(g.clone(), Side::Creditor)).unwrap_or(&empty);
            total.0.merge(debtor);
            total.1.merge(creditor);
            children.push(row(g, debtor, creditor));
        }
        Ok(proto::BacklogResponse {
            total: Some(row(region.as_str(), &total.0, &total.1)),
            children,
            window_start: Some(encode::timestamp(window_start)),
            window_end: Some(encode::timestamp(window_end)),
        })
    }

    async fn overdue(
        &self,
        request: Request<proto::ListOverdueRequest>,
    ) -> Result<proto::ListOverdueResponse, ApiError> {
        let region = region(&request, &request.get_ref().region)?;
        let req = request.into_inner();
        let size = cursor::page_size(req.page_size, "page_size")?;
        let after = cursor::parse_obligations_page(&req.page_token, "page_token")?;
        let now = self.clock.now();
        let mut rows = self
            .store
            .overdue_in_region(region.as_str(), now, after, size + 1)
            .await?;
        let more = rows.len() > size as usize;
        rows.truncate(size as usize);
        Ok(proto::ListOverdueResponse {
            next_page_token: match rows.last() {
                Some((last, _)) if more => cursor::obligations_page(to_us(last.due_at), last.id),
                _ => String::new(),
            },
            masked_names: rows
                .iter()
                .map(|(_, name)| name.as_deref().map(mask_name).unwrap_or_default())
                .collect(),
            obligations: rows
                .iter()
                .map(|(o, _)| encode::obligation(o, false, now))
                .collect(),
        })
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn backlog(
        &self,
        request: Request<proto::BacklogRequest>,
    ) -> Result<Response<proto::BacklogResponse>, Status> {
        Ok(Response::new(self.backlog_of(request).await?))
    }

    async fn list_overdue(
        &self,
        request: Request<proto::ListOverdueRequest>,
    ) -> Result<Response<proto::ListOverdueResponse>, Status> {
        Ok(Response::new(self.overdue(request).await?))
    }
}
