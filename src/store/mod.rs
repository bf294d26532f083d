//! Storage: one [`Store`] trait, a SQLite and a PostgreSQL implementation,
//! picked by the database URL's scheme. Both run the same SQL (sqlx runtime
//! queries with `$n` placeholders), written once in `sql.rs`.
//!
//! Times are stored as UTC microseconds since the Unix epoch (`*_us`
//! columns), which sort and compare the same way on both backends.

mod intake;
mod postgres;
mod recent;
mod rows;
mod sql;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::domain::case::{CaseState, CaseStatus, Standing};
use crate::domain::kpi::SideStats;
use crate::domain::reconcile::{Findings, ObligationKind, ObligationState};
use crate::domain::{Message, Policy, RegionCode, Violation};

/// Batches of at least this many messages are worth splitting to write
/// side by side (the intake splits large groups into such batches): below
/// it, a transaction's fixed cost (round trips, a commit) outweighs it.
pub(crate) const SIDE_BY_SIDE: usize = 100;

/// The sender of what the exchange itself sends (reminders).
pub const SYSTEM_SENDER: &str = "twoplace";

pub use intake::Intake;
pub use postgres::PgStore;
pub use rows::{PushRows, Rows};
pub use sql::{
    REGION_DAYS_SQL, TALLIES_DAILY_SQL, TALLIES_NOW_SQL, list_obligations_sql,
    overdue_in_region_sql, unflagged_sql,
};
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// Another transaction wrote what this one was about to (one message
    /// id sent for two cases at once), or PostgreSQL broke a deadlock:
    /// written again, it succeeds.
    #[error("a concurrent write got there first")]
    Contended(#[source] Option<sqlx::Error>),
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    #[error("unsupported database URL (use sqlite:PATH or postgres://…): {0}")]
    UnsupportedUrl(String),
    #[error("cannot prepare the database location")]
    Io(#[from] std::io::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e),
            // Deadlock detected; serialization failure.
            sqlx::Error::Database(ref d)
                if d.code().is_some_and(|c| c == "40P01" || c == "40001") =>
            {
                StoreError::Contended(Some(e))
            }
            e => StoreError::Database(e),
        }
    }
}

/// A message that passed validation, ready to be applied and stored.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub message: Message,
    /// The envelope as delivered to recipients (protobuf), with the sender
    /// filled in.
    pub envelope: Vec<u8>,
    /// SHA-256 of `envelope`: same id with another hash is a conflict.
    pub content_hash: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Stored, and delivered to `recipients` (whose live subscribers the
    /// caller wakes).
    Accepted {
        at: OffsetDateTime,
        recipients: Vec<RegionCode>,
    },
    Duplicate {
        at: OffsetDateTime,
    },
    Rejected(Vec<Violation>),
}

/// One message in a recipient's feed.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub seq: i64,
    pub sender: String,
    pub accepted_at: OffsetDateTime,
    pub envelope: Vec<u8>,
    pub received_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone)]
pub struct StoredCase {
    pub id: i64,
    pub state: CaseState,
    pub findings: Findings,
}

/// An obligation as stored, with the case it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct ObligationRow {
    pub id: i64,
    pub case_id: i64,
    pub resident_id: String,
    pub origin: String,
    /// The case's current destination.
    pub destination: Option<String>,
    pub key: String,
    pub kind: ObligationKind,
    pub debtor: String,
    pub creditor: String,
    pub state: ObligationState,
    pub opened_at: OffsetDateTime,
    pub due_at: OffsetDateTime,
    pub escalates_at: OffsetDateTime,
    pub closed_at: Option<OffsetDateTime>,
    pub closed_by: Option<String>,
    pub detail: String,
}

#[derive(Debug, Clone)]
pub struct ObligationQuery {
    pub office: RegionCode,
    /// As debtor (what the office owes) or as creditor (what it is owed).
    pub as_debtor: bool,
    pub kind: Option<ObligationKind>,
    pub state: Option<ObligationState>,
    /// Open and past due at this instant.
    pub overdue_at: Option<OffsetDateTime>,
    pub counterpart: Option<RegionCode>,
    pub due_after: Option<OffsetDateTime>,
    pub due_before: Option<OffsetDateTime>,
    /// Keyset paging: after this (due, id).
    pub after: Option<(i64, i64)>,
    pub limit: u32,
}

/// A reminder the sweeper is about to deliver.
#[derive(Debug, Clone)]
pub struct ReminderDue {
    /// Stable per obligation and threshold: the idempotency key.
    pub message_id: String,
    pub resident_id: String,
    pub origin: String,
    pub debtor: String,
    pub kind: ObligationKind,
    pub detail: String,
    pub due_at: OffsetDateTime,
    pub escalated: bool,
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub cases_reconciled: u64,
    pub overdue_reminders: u64,
    pub escalation_reminders: u64,
}

/// An office as the directory lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfficeRow {
    pub code: String,
    pub name: String,
    pub contact: String,
    pub active: bool,
    pub updated_at: OffsetDateTime,
}

pub use crate::domain::kpi::Side;

/// A backlog over the region with a code prefix, grouped by child region
/// (the first `child_len` characters of the office code).
#[derive(Debug, Clone)]
pub struct BacklogQuery {
    pub prefix: String,
    pub child_len: usize,
    pub window_start: OffsetDateTime,
    pub window_end: OffsetDateTime,
    pub now: OffsetDateTime,
}

/// Builds the envelope (wire bytes) of a reminder.
pub type ReminderEnvelope = dyn Fn(&ReminderDue) -> Vec<u8> + Send + Sync;

#[derive(Debug, Clone)]
pub struct HistoryRow {
    pub message_id: String,
    pub sender: String,
    pub recipient: String,
    pub kind: String,
    pub accepted_at: OffsetDateTime,
    pub standing: Standing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Origin,
    Destination,
}

#[derive(Debug, Clone)]
pub struct CaseQuery {
    pub office: RegionCode,
    pub role: Role,
    pub status: Option<CaseStatus>,
    pub counterpart: Option<RegionCode>,
    /// Cases with a larger id than this (paging).
    pub after_id: i64,
    pub limit: u32,
}

/// A reference to a delivered message by its sender's id.
#[derive(Debug, Clone)]
pub struct MessageRef {
    pub sender: String,
    pub message_id: String,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies and stores a batch in one transaction, one outcome per
    /// candidate in order. Returns only after commit. Written again if a
    /// concurrent transaction got there first.
    async fn publish(
        &self,
        batch: &[Candidate],
        policy: &Policy,
        now: OffsetDateTime,
    ) -> Result<Vec<Outcome>, StoreError>;

    /// Deliveries to `recipient` after `after_seq`, oldest first.
    async fn inbox(
        &self,
        recipient: &RegionCode,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<DeliveryRow>, StoreError>;

    /// Marks deliveries to `recipient` received, up to a sequence number
    /// and/or by message; returns how many were newly marked.
    async fn acknowledge(
        &self,
        recipient: &RegionCode,
        up_to_seq: Option<i64>,
        messages: &[MessageRef],
        now: OffsetDateTime,
    ) -> Result<u64, StoreError>;

    /// Every case of the person, whatever the origin.
    async fn cases_of(&self, resident_id: &str) -> Result<Vec<StoredCase>, StoreError>;

    async fn history(&self, case_id: i64) -> Result<Vec<HistoryRow>, StoreError>;

    /// Audits one read of a case.
    async fn record_read(
        &self,
        reader: &str,
        case_id: i64,
        purpose: &str,
        access: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    async fn list_cases(&self, query: &CaseQuery) -> Result<Vec<StoredCase>, StoreError>;

    /// A case's obligations, receipts included, by due time.
    async fn case_obligations(&self, case_id: i64) -> Result<Vec<ObligationRow>, StoreError>;

    async fn list_obligations(
        &self,
        query: &ObligationQuery,
    ) -> Result<Vec<ObligationRow>, StoreError>;

    /// The counts behind the backlog KPIs, per child region and side.
    async fn backlog(
        &self,
        query: &BacklogQuery,
    ) -> Result<std::collections::BTreeMap<(String, Side), SideStats>, StoreError>;

    /// A region's own tallies on one side from `first_day` on, for trends.
    async fn region_days(
        &self,
        prefix: &str,
        side: Side,
        first_day: i64,
        now: OffsetDateTime,
    ) -> Result<crate::domain::tally::RegionDays, StoreError>;

    /// Open obligations past due owed in the region with a code prefix,
    /// oldest due first, each with the person's name as the origin gave it.
    async fn overdue_in_region(
        &self,
        prefix: &str,
        now: OffsetDateTime,
        after: Option<(i64, i64)>,
        limit: u32,
    ) -> Result<Vec<(ObligationRow, Option<String>)>, StoreError>;

    /// Reconciles the cases whose time has come (a feedback period began)
    /// and delivers each due reminder exactly once, at most `limit` of each.
    async fn sweep(
        &self,
        policy: &Policy,
        now: OffsetDateTime,
        limit: u32,
        envelope: &ReminderEnvelope,
    ) -> Result<SweepReport, StoreError>;

    /// Whether the database answers (readiness).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Adds or replaces an office in the directory.
    async fn upsert_office(&self, office: &OfficeRow) -> Result<(), StoreError>;

    /// Directory entries with a code prefix, after `after_code`, by code.
    async fn offices(
        &self,
        prefix: &str,
        after_code: &str,
        limit: u32,
    ) -> Result<Vec<OfficeRow>, StoreError>;

    /// Open obligations, and those of them past due at `now`.
    async fn open_obligations(&self, now: OffsetDateTime) -> Result<(i64, i64), StoreError>;

    /// Connections open and idle, in all of the store's pools.
    fn pool_use(&self) -> (u32, u32);

    /// How many publishing transactions are worth running at once.
    fn writers(&self) -> usize;

    /// Fills the backlog tallies from the stored rows if they have never
    /// been (a database from before tallies existed); the number of
    /// obligations counted, or None when they were already built.
    async fn build_tallies(&self) -> Result<Option<u64>, StoreError>;

    /// Adds the recorded changes of committed transactions to the stored
    /// tallies (readers count them until then); how many it added.
    async fn fold_tallies(&self) -> Result<u64, StoreError>;

    /// Counts the tallies afresh and compares them with the stored ones:
    /// None when they agree, else what differs.
    async fn check_tallies(&self) -> Result<Option<String>, StoreError>;

    /// Refreshes the planner's statistics of the tables publishes write
    /// that have grown past what they were last measured at; how many it
    /// refreshed.
    async fn analyze_grown_tables(&self) -> Result<u64, StoreError>;
}

/// Connects to the database the URL names (`sqlite:…` or `postgres://…`),
/// creating it if needed, applies the migrations and prepares it
/// ([`prepare`]): ready for use, for tools and tests. The server opens
/// ([`open`]) and prepares while it already listens.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    let store = open(url).await?;
    prepare(store.as_ref()).await?;
    Ok(store)
}

/// Connects to the database the URL names (`sqlite:…` or `postgres://…`),
/// creating it if needed, and applies the migrations; [`prepare`] must
/// follow before anything reads or writes the backlog.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    Ok(if url.starts_with("sqlite:") {
        Arc::new(SqliteStore::connect(url).await?)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Arc::new(PgStore::connect(url).await?)
    } else {
        return Err(StoreError::UnsupportedUrl(redact_url(url)));
    })
}

/// Builds the backlog tallies of a database that has never had them,
/// which counts every stored obligation (minutes at millions of them;
/// once per database). Other writers wait meanwhile.
pub async fn prepare(store: &dyn Store) -> Result<(), StoreError> {
    let started = std::time::Instant::now();
    if let Some(n @ 1..) = store.build_tallies().await? {
        tracing::info!(
            obligations = n,
            seconds = started.elapsed().as_secs(),
            "built the backlog tallies from the stored rows"
        );
    }
    Ok(())
}

/// The URL without its password, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

pub(crate) fn to_us(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1000) as i64
}

pub(crate) fn from_us(us: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .map_err(|e| StoreError::Corrupt(format!("timestamp {us}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://app:secret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1/x"),
            "postgres://postgres@127.0.0.1/x"
        );
        assert_eq!(redact_url("sqlite:data/x.db"), "sqlite:data/x.db");
    }

    #[test]
    fn microseconds_round_trip() {
        let t = time::macros::datetime!(2009-01-01 12:34:56.789012 UTC);
        assert_eq!(from_us(to_us(t)).unwrap(), t);
    }
}
