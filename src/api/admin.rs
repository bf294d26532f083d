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
use crate::domain::tally::{day_start_us, shanghai_day};
use crate::domain::{RegionCode, RegionPrefix, Violation, mask_name};
use crate::proto::{self, admin_server::Admin};
use crate::store::{BacklogQuery, OfficeRow, Side, Store, from_us, to_us};

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

fn row(
    region: &str,
    name: Option<&str>,
    debtor: &SideStats,
    creditor: &SideStats,
) -> proto::BacklogRow {
    proto::BacklogRow {
        region: region.to_string(),
        name: name
            .map(str::to_string)
            .or_else(|| name_of_prefix(region))
            .unwrap_or_default(),
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
    pub(crate) async fn backlog_of(
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
        let asked_start = time(req.window_start, "window_start")?;
        if asked_start.is_some_and(|start| start >= window_end) {
            return Err(ApiError::invalid_field(
                "window_start",
                "INVALID_RANGE",
                "must be before window_end",
            ));
        }
        // The window is whole days in Shanghai, as the tallies keep them:
        // from the midnight before its start to the midnight after its end.
        let last_day = shanghai_day(to_us(window_end) - 1);
        let first_day = match asked_start {
            Some(start) => shanghai_day(to_us(start)),
            None => last_day - days + 1,
        };
        let window_start = from_us(day_start_us(first_day))?;
        let window_end = from_us(day_start_us(last_day + 1))?;
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
        // The directory's names win over the official ones.
        let named: std::collections::HashMap<String, String> = self
            .store
            .offices(region.as_str(), "", 10_000)
            .await?
            .into_iter()
            .map(|o| (o.code, o.name))
            .collect();
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
            children.push(row(g, named.get(g).map(String::as_str), debtor, creditor));
        }
        Ok(proto::BacklogResponse {
            total: Some(row(
                region.as_str(),
                named.get(region.as_str()).map(String::as_str),
                &total.0,
                &total.1,
            )),
            children,
            window_start: Some(encode::timestamp(window_start)),
            window_end: Some(encode::timestamp(window_end)),
        })
    }

    pub(crate) async fn overdue(
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

fn office(o: &OfficeRow) -> proto::Office {
    proto::Office {
        code: o.code.clone(),
        name: o.name.clone(),
        contact: o.contact.clone(),
        active: o.active,
        official_name: name_of_prefix(&o.code).unwrap_or_default(),
        updated_at: Some(encode::timestamp(o.updated_at)),
    }
}

/// Free text of a directory entry: trimmed, within `max` characters, no
/// control characters.
fn directory_text(raw: &str, field: &str, min: usize, max: usize) -> Result<String, Violation> {
    let text = raw.trim();
    let n = text.chars().count();
    if n < min || n > max {
        Err(Violation::new(
            field,
            "LENGTH",
            format!("must be {min} to {max} characters"),
        ))
    } else if text.chars().any(char::is_control) {
        Err(Violation::new(
            field,
            "CONTROL_CHARACTERS",
            "must not contain control characters",
        ))
    } else {
        Ok(text.to_string())
    }
}

impl AdminService {
    async fn upsert(
        &self,
        request: Request<proto::UpsertOfficeRequest>,
    ) -> Result<proto::UpsertOfficeResponse, ApiError> {
        let own = region(&request, "")?;
        let wire = request.into_inner().office.unwrap_or_default();
        let code = RegionCode::parse_format(&wire.code).map_err(|e| {
            ApiError::invalid_field("office.code", "INVALID_REGION_CODE", e.to_string())
        })?;
        if !code.as_str().starts_with(own.as_str()) {
            return Err(ApiError::PermissionDenied(format!(
                "office {code} is outside your region {own}"
            )));
        }
        let (name, contact) = (
            directory_text(&wire.name, "office.name", 1, 100),
            directory_text(&wire.contact, "office.contact", 0, 200),
        );
        let (name, contact) = match (name, contact) {
            (Ok(n), Ok(c)) => (n, c),
            (n, c) => {
                return Err(ApiError::invalid(
                    [n.err(), c.err()].into_iter().flatten().collect(),
                ));
            }
        };
        let row = OfficeRow {
            code: code.to_string(),
            name,
            contact,
            active: wire.active,
            updated_at: self.clock.now(),
        };
        self.store.upsert_office(&row).await?;
        Ok(proto::UpsertOfficeResponse {
            office: Some(office(&row)),
        })
    }

    async fn directory(
        &self,
        request: Request<proto::ListOfficesRequest>,
    ) -> Result<proto::ListOfficesResponse, ApiError> {
        let region = region(&request, &request.get_ref().region)?;
        let req = request.into_inner();
        let size = cursor::page_size(req.page_size, "page_size")?;
        let after = cursor::parse_offices_page(&req.page_token, "page_token")?;
        let mut rows = self
            .store
            .offices(region.as_str(), &after, size + 1)
            .await?;
        let more = rows.len() > size as usize;
        rows.truncate(size as usize);
        Ok(proto::ListOfficesResponse {
            next_page_token: match rows.last() {
                Some(last) if more => cursor::offices_page(&last.code),
                _ => String::new(),
            },
            offices: rows.iter().map(office).collect(),
        })
    }
}

/// At most this many points per trend.
const MAX_BUCKETS: i64 = 400;

impl AdminService {
    pub(crate) async fn trend_of(
        &self,
        request: Request<proto::TrendRequest>,
    ) -> Result<proto::TrendResponse, ApiError> {
        let region = region(&request, &request.get_ref().region)?;
        let req = request.into_inner();
        let (step, default_count) = match proto::TrendBucket::try_from(req.bucket) {
            Ok(proto::TrendBucket::Week) => (time::Duration::weeks(1), 26),
            Ok(_) => (time::Duration::days(1), 30),
            Err(_) => {
                return Err(ApiError::invalid_field(
                    "bucket",
                    "INVALID_ENUM",
                    "not a TrendBucket",
                ));
            }
        };
        let now = self.clock.now();
        // Buckets begin at midnight in Shanghai (weeks on Monday), the last
        // one containing `end`.
        let end = time(req.end, "end")?.unwrap_or(now);
        let mut last = crate::domain::policy::midnight_after(
            crate::domain::today(end)
                .previous_day()
                .unwrap_or(crate::domain::today(end)),
        );
        if step == time::Duration::weeks(1) {
            let back = last
                .to_offset(crate::domain::SHANGHAI)
                .weekday()
                .number_days_from_monday();
            last -= time::Duration::days(i64::from(back));
        }
        let start = time(req.start, "start")?.unwrap_or(last - step * (default_count - 1));
        let count = ((last - start).whole_seconds() / step.whole_seconds()).max(0) + 1;
        if count > MAX_BUCKETS {
            return Err(ApiError::invalid_field(
                "start",
                "TOO_MANY_BUCKETS",
                format!("at most {MAX_BUCKETS} days or weeks per trend"),
            ));
        }
        let buckets: Vec<(time::OffsetDateTime, time::OffsetDateTime)> = (0..count)
            .map(|i| {
                let b = last - step * (count - 1 - i) as i32;
                (b, b + step)
            })
            .collect();
        // Whole Shanghai days, as the tallies keep them.
        let days: Vec<(i64, i64)> = buckets
            .iter()
            .map(|(a, b)| (shanghai_day(to_us(*a)), shanghai_day(to_us(*b)) - 1))
            .collect();
        let first_day = days[0].0;
        let debtor = self
            .store
            .region_days(region.as_str(), Side::Debtor, first_day, now)
            .await?;
        let creditor = self
            .store
            .region_days(region.as_str(), Side::Creditor, first_day, now)
            .await?;
        let debtor = crate::domain::tally::trend(&debtor, &days);
        let creditor = crate::domain::tally::trend(&creditor, &days);
        Ok(proto::TrendResponse {
            points: buckets
                .iter()
                .zip(debtor.iter().zip(&creditor))
                .map(|((a, b), (d, c))| proto::TrendPoint {
                    start: Some(encode::timestamp(*a)),
                    end: Some(encode::timestamp(*b)),
                    as_debtor: Some(kpis(d.kpis())),
                    as_creditor: Some(kpis(c.kpis())),
                })
                .collect(),
        })
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn upsert_office(
        &self,
        request: Request<proto::UpsertOfficeRequest>,
    ) -> Result<Response<proto::UpsertOfficeResponse>, Status> {
        Ok(Response::new(self.upsert(request).await?))
    }

    async fn list_offices(
        &self,
        request: Request<proto::ListOfficesRequest>,
    ) -> Result<Response<proto::ListOfficesResponse>, Status> {
        Ok(Response::new(self.directory(request).await?))
    }

    async fn trend(
        &self,
        request: Request<proto::TrendRequest>,
    ) -> Result<Response<proto::TrendResponse>, Status> {
        Ok(Response::new(self.trend_of(request).await?))
    }

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
