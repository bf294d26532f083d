//! The `Exchange` service: publish, inbox, subscribe, acknowledge, cases.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::cursor;
use super::decode;
use super::encode;
use super::error::ApiError;
use super::identity::Caller;
use crate::clock::Clock;
use crate::domain::case::Access;
use crate::domain::reconcile::{ObligationKind, ObligationState};
use crate::domain::{CaseStatus, Policy, RegionCode, ResidentId, Violation};
use crate::proto::{self, exchange_server::Exchange};
use crate::store::{
    Candidate, CaseQuery, DeliveryRow, MessageRef, ObligationQuery, Outcome, ReminderDue, Role,
    SYSTEM_SENDER, Store, StoreError,
};

/// At most this many messages per publish batch.
pub const MAX_BATCH: usize = 1000;
/// At most this many bytes per encoded message.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// How often a subscriber looks for deliveries committed by another server
/// on the same database; commits of this server wake it at once.
const FOREIGN_COMMIT_POLL: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct ExchangeService {
    store: Arc<dyn Store>,
    /// Publishes, written in groups (group commit).
    intake: crate::store::Intake,
    clock: Arc<dyn Clock>,
    policy: Arc<Policy>,
    /// Wakes the live subscribers of the offices a commit delivered to.
    feed: Arc<super::Feed>,
    heartbeat: Duration,
    /// Turns true when the server begins to shut down: live feeds end.
    stopping: watch::Receiver<bool>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl ExchangeService {
    /// `feed` is told by whoever commits deliveries (publishes here, the
    /// sweeper's reminders) to wake live subscribers.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        policy: Arc<Policy>,
        feed: Arc<super::Feed>,
        heartbeat: Duration,
        stopping: watch::Receiver<bool>,
    ) -> Self {
        Self {
            intake: crate::store::Intake::start(store.clone(), policy.clone()),
            store,
            clock,
            policy,
            feed,
            heartbeat,
            stopping,
            metrics: None,
        }
    }

    /// Counts publish outcomes by kind in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    async fn publish_batch(
        &self,
        request: Request<proto::PublishRequest>,
    ) -> Result<proto::PublishResponse, ApiError> {
        let office = Caller::office(&request)?;
        let messages = request.into_inner().messages;
        if messages.is_empty() || messages.len() > MAX_BATCH {
            return Err(ApiError::invalid_field(
                "messages",
                "BATCH_SIZE",
                format!(
                    "send 1 to {MAX_BATCH} messages per batch, not {}",
                    messages.len()
                ),
            ));
        }
        let now = self.clock.now();
        let kinds: Vec<&'static str> = messages.iter().map(wire_kind).collect();
        let mut outcomes = vec![proto::PublishOutcome::default(); messages.len()];
        let mut candidates = Vec::new();
        let mut positions = Vec::new();
        for (i, mut env) in messages.into_iter().enumerate() {
            outcomes[i].message_id = env.message_id.clone();
            let violations = if env.encoded_len() > MAX_MESSAGE_BYTES {
                vec![Violation::new(
                    "",
                    "TOO_LARGE",
                    format!("a message must be at most {MAX_MESSAGE_BYTES} bytes"),
                )]
            } else {
                match decode::envelope(&env, &office) {
                    Ok(message) => {
                        let violations = message.check(&self.policy, now);
                        if violations.is_empty() {
                            env.sender_office = office.to_string();
                            candidates.push(Candidate {
                                message,
                                content_hash: content_hash(&env),
                                envelope: env.encode_to_vec(),
                            });
                            positions.push(i);
                            continue;
                        }
                        violations
                    }
                    Err(violations) => violations,
                }
            };
            outcomes[i].status = proto::PublishStatus::Rejected as i32;
            outcomes[i].violations = wire_violations(i, violations);
        }
        let stored = if candidates.is_empty() {
            Vec::new()
        } else {
            self.intake.publish(candidates, now).await?
        };
        // Committed: the recipients' live subscribers may read it now.
        self.feed.delivered(stored.iter().flat_map(|o| match o {
            Outcome::Accepted { recipients, .. } => &recipients[..],
            _ => &[],
        }));
        let mut accepted = 0;
        for (i, outcome) in positions.into_iter().zip(stored) {
            let out = &mut outcomes[i];
            match outcome {
                Outcome::Accepted { at, .. } => {
                    accepted += 1;
                    out.status = proto::PublishStatus::Accepted as i32;
                    out.accepted_at = Some(encode::timestamp(at));
                }
                Outcome::Duplicate { at } => {
                    out.status = proto::PublishStatus::Duplicate as i32;
                    out.accepted_at = Some(encode::timestamp(at));
                }
                Outcome::Rejected(violations) => {
                    out.status = proto::PublishStatus::Rejected as i32;
                    out.violations = wire_violations(i, violations);
                }
            }
        }
        if let Some(metrics) = &self.metrics {
            for (kind, o) in kinds.iter().zip(&outcomes) {
                let outcome = match proto::PublishStatus::try_from(o.status) {
                    Ok(proto::PublishStatus::Accepted) => "ACCEPTED",
                    Ok(proto::PublishStatus::Duplicate) => "DUPLICATE",
                    _ => "REJECTED",
                };
                metrics.published(kind, outcome);
            }
        }
        let rejected = outcomes
            .iter()
            .filter(|o| o.status == proto::PublishStatus::Rejected as i32)
            .count();
        // Field paths and reason codes only: values may be personal data.
        for o in outcomes.iter().filter(|o| !o.violations.is_empty()) {
            let fields: Vec<_> = o
                .violations
                .iter()
                .map(|v| format!("{}:{}", v.field, v.reason))
                .collect();
            tracing::debug!(message_id = %o.message_id, violations = ?fields, "rejected");
        }
        tracing::info!(
            batch = outcomes.len(),
            accepted,
            duplicates = outcomes.len() - accepted - rejected,
            rejected,
            "published"
        );
        Ok(proto::PublishResponse { outcomes })
    }

    async fn inbox_page(
        &self,
        request: Request<proto::InboxRequest>,
    ) -> Result<proto::InboxResponse, ApiError> {
        let office = Caller::office(&request)?;
        let req = request.into_inner();
        let after = cursor::parse_feed_cursor(&req.after_cursor, "after_cursor")?;
        let size = cursor::page_size(req.page_size, "page_size")?;
        let rows = self.store.inbox(&office, after, size).await?;
        let next = rows.last().map_or(after, |r| r.seq);
        Ok(proto::InboxResponse {
            deliveries: rows.into_iter().map(delivery).collect::<Result<_, _>>()?,
            next_cursor: cursor::feed_cursor(next),
        })
    }

    fn subscribe_feed(
        &self,
        request: Request<proto::SubscribeRequest>,
    ) -> Result<ReceiverStream<Result<proto::InboxEvent, Status>>, ApiError> {
        let office = Caller::office(&request)?;
        let mut after = cursor::parse_feed_cursor(&request.get_ref().after_cursor, "after_cursor")?;
        let (tx, rx) = mpsc::channel(256);
        let store = self.store.clone();
        let clock = self.clock.clone();
        let mut feed = self.feed.subscribe(&office);
        let mut stopping = self.stopping.clone();
        let mut heartbeat = tokio::time::interval(self.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tracing::info!(office = %office, "subscribed");
        tokio::spawn(async move {
            loop {
                // Marked seen before reading, so a commit after the read
                // wakes us below.
                feed.borrow_and_update();
                loop {
                    let rows = match store.inbox(&office, after, 500).await {
                        Ok(rows) => rows,
                        Err(e) => {
                            let _ = tx.send(Err(ApiError::from(e).into())).await;
                            return;
                        }
                    };
                    if rows.is_empty() {
                        break;
                    }
                    for row in rows {
                        after = row.seq;
                        let event = delivery(row).map(|d| proto::InboxEvent {
                            event: Some(proto::inbox_event::Event::Delivery(d)),
                        });
                        if tx.send(event.map_err(|e| e.into())).await.is_err() {
                            return;
                        }
                    }
                }
                tokio::select! {
                    changed = feed.changed() => if changed.is_err() { return },
                    _ = heartbeat.tick() => {
                        let beat = proto::InboxEvent {
                            event: Some(proto::inbox_event::Event::Heartbeat(proto::Heartbeat {
                                cursor: cursor::feed_cursor(after),
                                at: Some(encode::timestamp(clock.now())),
                            })),
                        };
                        if tx.send(Ok(beat)).await.is_err() {
                            return;
                        }
                    }
                    _ = tokio::time::sleep(FOREIGN_COMMIT_POLL) => {}
                    _ = stopped(&mut stopping) => return,
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(ReceiverStream::new(rx))
    }

    async fn acknowledge_deliveries(
        &self,
        request: Request<proto::AcknowledgeRequest>,
    ) -> Result<proto::AcknowledgeResponse, ApiError> {
        let office = Caller::office(&request)?;
        let req = request.into_inner();
        let up_to = if req.up_to_cursor.is_empty() {
            None
        } else {
            Some(cursor::parse_feed_cursor(
                &req.up_to_cursor,
                "up_to_cursor",
            )?)
        };
        if up_to.is_none() && req.messages.is_empty() {
            return Err(ApiError::invalid_field(
                "up_to_cursor",
                "REQUIRED",
                "give up_to_cursor, messages, or both",
            ));
        }
        if req.messages.len() > MAX_BATCH {
            return Err(ApiError::invalid_field(
                "messages",
                "TOO_MANY",
                format!("at most {MAX_BATCH} messages per call"),
            ));
        }
        let mut violations = Vec::new();
        for (i, m) in req.messages.iter().enumerate() {
            if RegionCode::parse_format(&m.sender_office).is_err() {
                violations.push(Violation::new(
                    format!("messages[{i}].sender_office"),
                    "INVALID_REGION_CODE",
                    "must be the 6- or 9-digit code of the sending office",
                ));
            }
            if crate::domain::MessageId::parse(&m.message_id).is_err() {
                violations.push(Violation::new(
                    format!("messages[{i}].message_id"),
                    "INVALID_MESSAGE_ID",
                    "is not a message id",
                ));
            }
        }
        if !violations.is_empty() {
            return Err(ApiError::invalid(violations));
        }
        let refs: Vec<MessageRef> = req
            .messages
            .into_iter()
            .map(|m| MessageRef {
                sender: m.sender_office,
                message_id: m.message_id,
            })
            .collect();
        let now = self.clock.now();
        let acknowledged = self.store.acknowledge(&office, up_to, &refs, now).await?;
        tracing::info!(acknowledged, "acknowledged");
        Ok(proto::AcknowledgeResponse {
            acknowledged: u32::try_from(acknowledged).unwrap_or(u32::MAX),
            received_at: Some(encode::timestamp(now)),
        })
    }

    async fn read_case(
        &self,
        request: Request<proto::GetCaseRequest>,
    ) -> Result<proto::Case, ApiError> {
        let office = Caller::office(&request)?;
        let req = request.into_inner();
        let resident = ResidentId::parse(&req.resident_id).map_err(|e| {
            ApiError::invalid_field("resident_id", "INVALID_RESIDENT_ID", e.to_string())
        })?;
        let origin = optional_office(&req.origin_office, "origin_office")?;
        let purpose = req.purpose.trim();
        if purpose.chars().count() > 200 {
            return Err(ApiError::invalid_field(
                "purpose",
                "TOO_LONG",
                "must be at most 200 characters",
            ));
        }
        let mut visible: Vec<_> = self
            .store
            .cases_of(resident.as_str())
            .await?
            .into_iter()
            .filter(|c| origin.as_ref().is_none_or(|o| &c.state.origin == o))
            .map(|c| {
                let access = c.state.access_of(&office);
                (c, access)
            })
            .filter(|(_, access)| *access != Access::None)
            .collect();
        // Not found rather than denied: whether a stranger's case exists is
        // itself personal data.
        let (case, access) = match visible.len() {
            0 => {
                return Err(ApiError::NotFound(format!(
                    "no case of {} is visible to office {office}",
                    resident.masked()
                )));
            }
            1 => visible.remove(0),
            n => {
                return Err(ApiError::invalid_field(
                    "origin_office",
                    "AMBIGUOUS",
                    format!("{n} cases of this person are visible to you; name the origin office"),
                ));
            }
        };
        let history = self.store.history(case.id).await?;
        let obligations = self.store.case_obligations(case.id).await?;
        let access_label = match access {
            Access::Full => "full",
            _ => "masked",
        };
        self.store
            .record_read(
                &Caller::Office(office.clone()).to_string(),
                case.id,
                purpose,
                access_label,
                self.clock.now(),
            )
            .await?;
        tracing::info!(case = %resident.masked(), access = access_label, "case read");
        let seen = encode::CaseFindings {
            history: &history,
            obligations: &obligations,
            findings: &case.findings,
            now: self.clock.now(),
        };
        Ok(encode::case(&case.state, seen, &office, access))
    }

    async fn list(
        &self,
        request: Request<proto::ListCasesRequest>,
    ) -> Result<proto::ListCasesResponse, ApiError> {
        let office = Caller::office(&request)?;
        let req = request.into_inner();
        let role = match proto::CaseRole::try_from(req.role) {
            Ok(proto::CaseRole::Origin) => Role::Origin,
            Ok(proto::CaseRole::Destination) => Role::Destination,
            _ => {
                return Err(ApiError::invalid_field(
                    "role",
                    "REQUIRED",
                    "list as CASE_ROLE_ORIGIN or CASE_ROLE_DESTINATION",
                ));
            }
        };
        let status = enum_filter(req.status, "status", &CaseStatus::ALL, encode::case_status)?;
        let counterpart = optional_office(&req.counterpart_office, "counterpart_office")?;
        let size = cursor::page_size(req.page_size, "page_size")?;
        let after_id = cursor::parse_cases_page(&req.page_token, "page_token")?;
        let mut rows = self
            .store
            .list_cases(&CaseQuery {
                office,
                role,
                status,
                counterpart,
                after_id,
                limit: size + 1,
            })
            .await?;
        let more = rows.len() > size as usize;
        rows.truncate(size as usize);
        Ok(proto::ListCasesResponse {
            next_page_token: match rows.last() {
                Some(last) if more => cursor::cases_page(last.id),
                _ => String::new(),
            },
            cases: rows
                .iter()
                .map(|c| encode::case_summary(&c.state, &c.findings))
                .collect(),
        })
    }
}

impl ExchangeService {
    async fn obligations(
        &self,
        request: Request<proto::ListObligationsRequest>,
    ) -> Result<proto::ListObligationsResponse, ApiError> {
        let office = Caller::office(&request)?;
        let req = request.into_inner();
        let as_debtor = match proto::ObligationRole::try_from(req.role) {
            Ok(proto::ObligationRole::Debtor) => true,
            Ok(proto::ObligationRole::Creditor) => false,
            _ => {
                return Err(ApiError::invalid_field(
                    "role",
                    "REQUIRED",
                    "list as OBLIGATION_ROLE_DEBTOR (what you owe) or OBLIGATION_ROLE_CREDITOR (what you are owed)",
                ));
            }
        };
        let kind = enum_filter(
            req.kind,
            "kind",
            &ObligationKind::ALL,
            encode::obligation_kind,
        )?;
        let state = enum_filter(
            req.state,
            "state",
            &ObligationState::ALL,
            encode::obligation_state,
        )?;
        let counterpart = optional_office(&req.counterpart_office, "counterpart_office")?;
        let time = |field: &str, t: Option<prost_types::Timestamp>| {
            t.map(|t| {
                time::OffsetDateTime::from_unix_timestamp(t.seconds).map_err(|_| {
                    ApiError::invalid_field(field, "OUT_OF_RANGE", "not a usable time")
                })
            })
            .transpose()
        };
        let due_after = time("due_after", req.due_after)?;
        let due_before = time("due_before", req.due_before)?;
        let size = cursor::page_size(req.page_size, "page_size")?;
        let after = cursor::parse_obligations_page(&req.page_token, "page_token")?;
        let now = self.clock.now();
        let mut rows = self
            .store
            .list_obligations(&ObligationQuery {
                office: office.clone(),
                as_debtor,
                kind,
                state,
                overdue_at: req.overdue_only.then_some(now),
                counterpart,
                due_after,
                due_before,
                after,
                limit: size + 1,
            })
            .await?;
        let more = rows.len() > size as usize;
        rows.truncate(size as usize);
        Ok(proto::ListObligationsResponse {
            next_page_token: match rows.last() {
                Some(last) if more => {
                    cursor::obligations_page(crate::store::to_us(last.due_at), last.id)
                }
                _ => String::new(),
            },
            obligations: rows
                .iter()
                .map(|o| encode::obligation(o, encode::sees_in_full(o, &office), now))
                .collect(),
        })
    }

    fn policy(&self) -> proto::Policy {
        let deadlines = self
            .policy
            .deadlines
            .named()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        proto::Policy {
            toml: self.policy.source.clone(),
            period: format!("{:?}", self.policy.period).to_lowercase(),
            feedback_due_day: i32::from(self.policy.feedback_due_day),
            escalation_factor: self.policy.escalation_factor,
            deadlines,
            accept_bad_check_digits: self.policy.accept_bad_check_digits,
            accept_unknown_regions: self.policy.accept_unknown_regions,
        }
    }
}

/// The kind of an envelope's body, from the fixed set of kinds.
pub fn wire_kind(env: &proto::Envelope) -> &'static str {
    use proto::envelope::Body as B;
    match &env.body {
        Some(B::Registration(_)) => "REGISTRATION",
        Some(B::RegistrationConfirmation(_)) => "REGISTRATION_CONFIRMATION",
        Some(B::CertificateIssued(_)) => "CERTIFICATE_ISSUED",
        Some(B::CertificateVerification(_)) => "CERTIFICATE_VERIFICATION",
        Some(B::PregnancyCheckFeedback(_)) => "PREGNANCY_CHECK_FEEDBACK",
        Some(B::VerificationRequest(_)) => "VERIFICATION_REQUEST",
        Some(B::VerificationReply(_)) => "VERIFICATION_REPLY",
        Some(B::Transfer(_)) => "TRANSFER",
        Some(B::Closure(_)) => "CLOSURE",
        Some(B::Reminder(_)) => "REMINDER",
        Some(B::Void(_)) => "VOID",
        Some(B::Correction(_)) => "CORRECTION",
        None => "NONE",
    }
}

/// An enum used as a filter: UNSPECIFIED (0) means none; a number that is
/// none of the enum's values is an error.
fn enum_filter<D: Copy, W: Into<i32>>(
    raw: i32,
    field: &str,
    all: &[D],
    wire: impl Fn(D) -> W,
) -> Result<Option<D>, ApiError> {
    if raw == 0 {
        return Ok(None);
    }
    all.iter()
        .copied()
        .find(|d| wire(*d).into() == raw)
        .map(Some)
        .ok_or_else(|| {
            ApiError::invalid_field(field, "INVALID_ENUM", "not one of the enum's values")
        })
}

/// An office code a request may leave empty.
fn optional_office(raw: &str, field: &str) -> Result<Option<RegionCode>, ApiError> {
    if raw.is_empty() {
        return Ok(None);
    }
    RegionCode::parse_format(raw)
        .map(Some)
        .map_err(|e| ApiError::invalid_field(field, "INVALID_REGION_CODE", e.to_string()))
}

/// The envelope of a reminder the exchange itself sends to a debtor.
pub fn reminder_envelope(due: &ReminderDue) -> Vec<u8> {
    let threshold = if due.escalated {
        "escalated: open past twice its window"
    } else {
        "overdue"
    };
    let detail = if due.detail.is_empty() {
        String::new()
    } else {
        format!(" ({})", due.detail)
    };
    proto::Envelope {
        message_id: due.message_id.clone(),
        sender_office: SYSTEM_SENDER.to_string(),
        recipient_office: due.debtor.clone(),
        case_ref: Some(proto::CaseRef {
            resident_id: due.resident_id.clone(),
            origin_office: due.origin.clone(),
        }),
        sent_at: None,
        body: Some(proto::envelope::Body::Reminder(proto::Reminder {
            about_message_id: String::new(),
            note: format!(
                "{}{detail} was due {}; {threshold}",
                due.kind.as_str(),
                crate::domain::today(due.due_at),
            ),
        })),
    }
    .encode_to_vec()
}

/// Resolves once the server is shutting down (or gone).
async fn stopped(stopping: &mut watch::Receiver<bool>) {
    let _ = stopping.wait_for(|s| *s).await;
}

/// The idempotency fingerprint: the envelope as stored, minus the sender's
/// own send time, so a retry stamped anew is still a duplicate.
fn content_hash(env: &proto::Envelope) -> Vec<u8> {
    let mut normalized = env.clone();
    normalized.sent_at = None;
    ring::digest::digest(&ring::digest::SHA256, &normalized.encode_to_vec())
        .as_ref()
        .to_vec()
}

fn wire_violations(index: usize, violations: Vec<Violation>) -> Vec<proto::FieldViolation> {
    let prefix = format!("messages[{index}]");
    violations
        .into_iter()
        .map(|v| {
            let v = v.under(&prefix);
            proto::FieldViolation {
                field: v.field,
                description: v.description,
                reason: v.reason.to_string(),
            }
        })
        .collect()
}

fn delivery(row: DeliveryRow) -> Result<proto::Delivery, ApiError> {
    let envelope = proto::Envelope::decode(row.envelope.as_slice())
        .map_err(|e| StoreError::Corrupt(format!("delivery {}: {e}", row.seq)))?;
    Ok(proto::Delivery {
        cursor: cursor::feed_cursor(row.seq),
        sender_office: row.sender,
        accepted_at: Some(encode::timestamp(row.accepted_at)),
        envelope: Some(envelope),
        received_at: row.received_at.map(encode::timestamp),
    })
}

type EventStream = Pin<Box<dyn Stream<Item = Result<proto::InboxEvent, Status>> + Send>>;

#[tonic::async_trait]
impl Exchange for ExchangeService {
    async fn publish(
        &self,
        request: Request<proto::PublishRequest>,
    ) -> Result<Response<proto::PublishResponse>, Status> {
        Ok(Response::new(self.publish_batch(request).await?))
    }

    async fn inbox(
        &self,
        request: Request<proto::InboxRequest>,
    ) -> Result<Response<proto::InboxResponse>, Status> {
        Ok(Response::new(self.inbox_page(request).await?))
    }

    type SubscribeStream = EventStream;

    async fn subscribe(
        &self,
        request: Request<proto::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        Ok(Response::new(Box::pin(self.subscribe_feed(request)?)))
    }

    async fn acknowledge(
        &self,
        request: Request<proto::AcknowledgeRequest>,
    ) -> Result<Response<proto::AcknowledgeResponse>, Status> {
        Ok(Response::new(self.acknowledge_deliveries(request).await?))
    }

    async fn get_case(
        &self,
        request: Request<proto::GetCaseRequest>,
    ) -> Result<Response<proto::Case>, Status> {
        Ok(Response::new(self.read_case(request).await?))
    }

    async fn list_cases(
        &self,
        request: Request<proto::ListCasesRequest>,
    ) -> Result<Response<proto::ListCasesResponse>, Status> {
        Ok(Response::new(self.list(request).await?))
    }

    async fn list_obligations(
        &self,
        request: Request<proto::ListObligationsRequest>,
    ) -> Result<Response<proto::ListObligationsResponse>, Status> {
        Ok(Response::new(self.obligations(request).await?))
    }

    async fn get_policy(
        &self,
        request: Request<proto::GetPolicyRequest>,
    ) -> Result<Response<proto::Policy>, Status> {
        // Any authenticated caller, administrators included, may read it.
        Caller::of(&request)?;
        Ok(Response::new(self.policy()))
    }
}
