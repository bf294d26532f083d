//! The SQL both backends run, written once. `sql_store!` implements
//! [`Store`](super::Store) for a backend type that provides `pool`,
//! `begin_write`, `begin_publish` (with the cases' locks), `begin_acknowledge`, `begin_fold`,
//! `publishing_pool`, `take_feed_turn`, `IN_FEED_TURN`, `LOCK_SKIPPING`, `BEGIN_SNAPSHOT`, `WRITES_TOGETHER`,
//! `NEXT_CASE_ID` and `WRITERS` (how that backend orders writers and reads,
//! and what it sends together).
//!
//! Publishing transactions may run side by side (on PostgreSQL): each locks
//! the cases it touches before loading them, so two never reconcile the
//! same case at once, and takes the feed's turn only to
//! deliver and commit. Deliveries thus get their sequence numbers in commit
//! order: a reader that has seen delivery N has seen every delivery before
//! N, and a feed cursor can never skip a row that commits late. Every
//! writer records its changes to the tallies as a row of its own; the
//! tally folder adds them to the stored tallies, one fold at a time, and
//! readers add what it has not yet (in one snapshot). The sweeper reconciles
//! cases a new period has reached as a publisher would, and flags what it
//! reminds of, under the locks of those cases: each reminder happens once,
//! whichever server's sweeper gets there first. Acknowledgements close
//! RECEIPTs and mark deliveries, rows no publisher reads or changes, one at
//! a time per recipient. Only counting and checking the tallies excludes
//! every other writer.

use std::collections::HashMap;

use super::{ObligationRow, StoreError, from_us, to_us};
use crate::domain::reconcile::{Obligation, ObligationKind, ObligationState, Reconciled, Recorded};
use crate::domain::tally::{Class, ObligationFacts};

/// What a case's rows hold that reconciling it needs: what loading the
/// case gives, and what committing its changes leaves (kept between
/// publishes by `RecentCases`). The system's reminders are not among its
/// messages, nor the RECEIPTs among its obligations.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct CaseRows {
    /// Its messages, in the order stored.
    pub messages: Vec<Recorded>,
    /// Derived obligations as stored, by key.
    pub obligations: HashMap<String, ObligationColumns>,
    /// Which of them the sweeper has flagged: key → (overdue, escalated).
    pub flags: HashMap<String, (bool, bool)>,
    /// The stored standing of its messages by (sender, message id).
    pub standings: HashMap<(String, String), String>,
    /// Its messages by (sender, message id): (content hash, accepted_us),
    /// what a publish of the same id again is answered by.
    pub taken: HashMap<(String, String), (Vec<u8>, i64)>,
    /// Its tallied destination, orphans and open discrepancies as stored.
    pub counted: (Option<String>, i64, i64),
}

impl CaseRows {
    /// Which of their parts differ, by name only: they hold personal data.
    pub fn differences(&self, other: &Self) -> Vec<&'static str> {
        [
            ("messages", self.messages == other.messages),
            ("obligations", self.obligations == other.obligations),
            ("flags", self.flags == other.flags),
            ("standings", self.standings == other.standings),
            ("taken", self.taken == other.taken),
            ("counted", self.counted == other.counted),
        ]
        .into_iter()
        .filter_map(|(name, same)| (!same).then_some(name))
        .collect()
    }
}

/// A case being worked on within one write transaction.
pub(crate) struct CaseWork {
    pub id: Option<i64>,
    /// Its row's `version` as loaded: every write to what `rows` hold
    /// adds one.
    pub version: i64,
    /// The case's origin.
    pub origin: String,
    /// As stored; once `changes` has listed the writes, as they leave it.
    pub rows: CaseRows,
    pub reconciled: Option<Reconciled>,
    pub dirty: bool,
    /// Its row was inserted in this transaction, already as reconciled.
    pub inserted: bool,
}

impl CaseWork {
    /// A case not loaded yet, or not seen before.
    pub fn new(origin: &str) -> Self {
        CaseWork {
            id: None,
            version: 0,
            origin: origin.to_string(),
            rows: CaseRows::default(),
            reconciled: None,
            dirty: false,
            inserted: false,
        }
    }

    /// Its row's version once this transaction commits, if it has a row:
    /// a new row starts at 0, a written one moves on, one only read (its
    /// messages all duplicates or rejected) stays.
    pub fn committed_version(&self) -> Option<i64> {
        match (self.id, self.inserted, self.dirty) {
            (None, ..) => None,
            (Some(_), true, _) => Some(0),
            (Some(_), false, true) => Some(self.version + 1),
            (Some(_), false, false) => Some(self.version),
        }
    }

    /// The columns of its `cases` row that reconciliation sets.
    pub fn columns(&self) -> Result<Option<CaseColumns>, StoreError> {
        let Some(r) = self.reconciled.as_ref() else {
            return Ok(None);
        };
        let findings = crate::domain::reconcile::Findings {
            discrepancies: r.discrepancies.clone(),
            orphans: r.orphans.clone(),
        };
        Ok(Some(CaseColumns {
            destination: r
                .state
                .current_destination()
                .map(|d| d.as_str().to_string()),
            status: r.state.status.as_str(),
            state: serde_json::to_string(&r.state).map_err(corrupt)?,
            open_discrepancies: findings.open_discrepancies() as i64,
            orphans: findings.orphans.len() as i64,
            findings: serde_json::to_string(&findings).map_err(corrupt)?,
            next_change_us: r.next_change.map(to_us),
        }))
    }
}

/// What reconciling cases changed, written together at the end of a
/// transaction (`change_writes`, `write_standings`).
#[derive(Default)]
pub(crate) struct CaseChanges {
    /// Case rows to update: (id, columns).
    pub cases: Vec<(i64, CaseColumns)>,
    /// Obligations to update: (case id, key, columns, rescheduled —
    /// reminders reset).
    pub obligations: Vec<(i64, String, ObligationColumns, bool)>,
    /// Message standings to set: (sender, message id, standing).
    pub standings: Vec<(String, String, &'static str)>,
    pub new_obligations: Vec<NewObligation>,
}

impl CaseWork {
    /// What writing this case's reconciliation changes: its row (unless just
    /// inserted as reconciled), its obligations (new, updated, or cancelled
    /// when no longer owed — never deleted) and the standing of its
    /// messages; and what that adds to the tallies. Its `rows` become what
    /// the writes leave.
    pub fn changes(
        &mut self,
        now_us: i64,
        tallies: &mut crate::domain::tally::Tallies,
        out: &mut CaseChanges,
    ) -> Result<(), StoreError> {
        let columns = self.columns()?;
        let (Some(case_id), Some(r), Some(columns)) = (self.id, self.reconciled.as_ref(), columns)
        else {
            return Ok(());
        };
        let rows = &mut self.rows;
        let (old_destination, old_orphans, old_discrepancies) = &rows.counted;
        tallies.case(
            &self.origin,
            old_destination.as_deref(),
            *old_orphans,
            *old_discrepancies,
            -1,
        );
        tallies.case(
            &self.origin,
            columns.destination.as_deref(),
            columns.orphans,
            columns.open_discrepancies,
            1,
        );
        rows.counted = (
            columns.destination.clone(),
            columns.orphans,
            columns.open_discrepancies,
        );
        if !self.inserted {
            out.cases.push((case_id, columns));
        }
        let mut stored = HashMap::with_capacity(r.obligations.len());
        for o in &r.obligations {
            let new = ObligationColumns::of(o);
            let flags = rows.flags.entry(o.key.clone()).or_default();
            match rows.obligations.remove(&o.key) {
                Some(old) if old == new => {}
                Some(old) => {
                    tallies.obligation(&old.facts(*flags), -1);
                    let rescheduled = old.reschedules(&new);
                    if rescheduled {
                        *flags = (false, false);
                    }
                    tallies.obligation(&new.facts(*flags), 1);
                    out.obligations
                        .push((case_id, o.key.clone(), new.clone(), rescheduled));
                }
                None => {
                    *flags = (false, false);
                    tallies.obligation(&new.facts(*flags), 1);
                    out.new_obligations.push(NewObligation {
                        case_id,
                        key: o.key.clone(),
                        columns: new.clone(),
                    });
                }
            }
            stored.insert(o.key.clone(), new);
        }
        // What reconciliation no longer derives is no longer owed.
        for (key, old) in std::mem::replace(&mut rows.obligations, stored) {
            let kept = if old.state == "OPEN" {
                let flags = rows.flags.get(&key).copied().unwrap_or_default();
                tallies.obligation(&old.facts(flags), -1);
                // Cancelled, it still counts as once open.
                let cancelled = ObligationColumns {
                    state: "CANCELLED".into(),
                    closed_us: Some(now_us),
                    closed_by: Some("no longer owed".into()),
                    ..old
                };
                tallies.obligation(&cancelled.facts(flags), 1);
                out.obligations
                    .push((case_id, key.clone(), cancelled.clone(), false));
                cancelled
            } else {
                old
            };
            rows.obligations.insert(key, kept);
        }
        for ((sender, id), standing) in &r.standings {
            // Only what changed: most of a case's messages keep theirs.
            let key = (sender.as_str().to_string(), id.as_str().to_string());
            let stored = rows.standings.entry(key).or_insert_with(|| "ACTIVE".into());
            if stored != standing.as_str() {
                *stored = standing.as_str().to_string();
                out.standings.push((
                    sender.as_str().to_string(),
                    id.as_str().to_string(),
                    standing.as_str(),
                ));
            }
        }
        Ok(())
    }
}

/// What reconciliation writes to a `cases` row.
pub(crate) struct CaseColumns {
    pub destination: Option<String>,
    pub status: &'static str,
    pub state: String,
    pub findings: String,
    pub open_discrepancies: i64,
    pub orphans: i64,
    pub next_change_us: Option<i64>,
}

/// A message accepted in this transaction, written with the others of its
/// batch in one statement per table.
pub(crate) struct NewMessage {
    pub case_id: i64,
    pub sender: String,
    pub message_id: String,
    pub content_hash: Vec<u8>,
    pub kind: &'static str,
    /// Each recipient, with the (due, escalates) of the RECEIPT it owes.
    pub recipients: Vec<(String, Option<(i64, i64)>)>,
    pub envelope: Vec<u8>,
    pub body: String,
}

/// An obligation row to insert: derived by reconciliation, or the RECEIPT
/// a recipient owes for a message.
pub(crate) struct NewObligation {
    pub case_id: i64,
    pub key: String,
    pub columns: ObligationColumns,
}

impl NewMessage {
    /// The RECEIPTs this message's recipients owe for it, counted in
    /// `tallies`. Keyed by recipient and message, not by delivery: they are
    /// written with the case's other obligations, before the feed's turn
    /// numbers the deliveries.
    pub fn receipts(
        &self,
        now_us: i64,
        tallies: &mut crate::domain::tally::Tallies,
    ) -> Vec<NewObligation> {
        let mut receipts = Vec::new();
        for (recipient, receipt) in &self.recipients {
            let Some((due_us, escalates_us)) = *receipt else {
                continue;
            };
            let columns = ObligationColumns {
                kind: "RECEIPT".into(),
                debtor: recipient.clone(),
                creditor: self.sender.clone(),
                state: "OPEN".into(),
                opened_us: now_us,
                due_us,
                escalates_us,
                closed_us: None,
                closed_by: None,
                detail: self.message_id.clone(),
            };
            tallies.obligation(&columns.facts((false, false)), 1);
            receipts.push(NewObligation {
                case_id: self.case_id,
                key: receipt_key(recipient, &self.sender, &self.message_id),
                columns,
            });
        }
        receipts
    }
}

/// A RECEIPT's key within its case: `RECEIPT:<recipient>:<sender>:<message
/// id>`, as the other keys name the offices and message they are about.
pub(crate) fn receipt_key(recipient: &str, sender: &str, message_id: &str) -> String {
    format!("RECEIPT:{recipient}:{sender}:{message_id}")
}

/// The same key in SQL, of a delivery `d` and its message `m`.
pub(crate) const RECEIPT_KEY_SQL: &str =
    "'RECEIPT:' || d.recipient || ':' || m.sender || ':' || m.message_id";

impl ObligationColumns {
    /// What tallies count of this row.
    pub fn facts(&self, (overdue, escalated): (bool, bool)) -> ObligationFacts {
        ObligationFacts {
            class: Class::of_kind(&self.kind),
            debtor: self.debtor.clone(),
            creditor: self.creditor.clone(),
            state: self.state.clone(),
            opened_us: self.opened_us,
            due_us: self.due_us,
            escalates_us: self.escalates_us,
            closed_us: self.closed_us,
            flagged_overdue: overdue,
            flagged_escalated: escalated,
        }
    }
}

/// Reads a `tallies_daily` row.
pub(crate) fn daily<R>(row: &R) -> Result<crate::domain::tally::Daily, StoreError>
where
    R: sqlx::Row,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<Vec<u8>>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
{
    let replies: Option<Vec<u8>> = row.try_get("replies")?;
    Ok(crate::domain::tally::Daily {
        receipts_answered: row.try_get("receipts_answered")?,
        receipts_on_time: row.try_get("receipts_on_time")?,
        receipts_flagged: row.try_get("receipts_flagged")?,
        feedback_answered: row.try_get("feedback_answered")?,
        feedback_flagged: row.try_get("feedback_flagged")?,
        answers_answered: row.try_get("answers_answered")?,
        answers_on_time: row.try_get("answers_on_time")?,
        answers_flagged: row.try_get("answers_flagged")?,
        replies: replies_of(replies.as_deref())?,
        moves: moves(row)?,
    })
}

/// Reads the moves of a `tallies_daily` row (or of their sums).
pub(crate) fn moves<R>(row: &R) -> Result<crate::domain::tally::Moves, StoreError>
where
    R: sqlx::Row,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
{
    Ok(crate::domain::tally::Moves {
        open_in: row.try_get("open_in")?,
        open_out: row.try_get("open_out")?,
        overdue_in: row.try_get("overdue_in")?,
        overdue_out: row.try_get("overdue_out")?,
        escalated_in: row.try_get("escalated_in")?,
        escalated_out: row.try_get("escalated_out")?,
    })
}

/// A stored reply histogram, NULL for none yet.
pub(crate) fn replies_of(bytes: Option<&[u8]>) -> Result<crate::domain::kpi::Replies, StoreError> {
    match bytes {
        None => Ok(Default::default()),
        Some(bytes) => crate::domain::kpi::Replies::from_bytes(bytes).map_err(corrupt),
    }
}

/// How often a long count says how far it is.
pub(crate) const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// How far `at` is from `first` to `last`, in whole percent.
pub(crate) fn percent(first: i64, at: i64, last: i64) -> u8 {
    let (done, all) = (
        i128::from(at) - i128::from(first),
        i128::from(last) - i128::from(first),
    );
    if all <= 0 {
        return 100;
    }
    (done.clamp(0, all) * 100 / all) as u8
}

/// The columns tallies read, for [`obligation_facts`].
pub(crate) const FACT_COLUMNS: &str = "kind, debtor, creditor, state, opened_us, due_us, \
     escalates_us, closed_us, reminded_overdue_us, reminded_escalated_us";

/// Reads the [`FACT_COLUMNS`] of an obligation row.
pub(crate) fn obligation_facts<R>(row: &R) -> Result<ObligationFacts, StoreError>
where
    R: sqlx::Row,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
{
    let kind: String = row.try_get("kind")?;
    let (flagged_overdue, flagged_escalated) = reminded(row)?;
    Ok(ObligationFacts {
        class: Class::of_kind(&kind),
        debtor: row.try_get("debtor")?,
        creditor: row.try_get("creditor")?,
        state: row.try_get("state")?,
        opened_us: row.try_get("opened_us")?,
        due_us: row.try_get("due_us")?,
        escalates_us: row.try_get("escalates_us")?,
        closed_us: row.try_get("closed_us")?,
        flagged_overdue,
        flagged_escalated,
    })
}

/// Whether an obligation row was reminded of being overdue and of being
/// escalated (its `reminded_*_us` columns are set).
pub(crate) fn reminded<R>(row: &R) -> Result<(bool, bool), StoreError>
where
    R: sqlx::Row,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
{
    Ok((
        row.try_get::<Option<i64>, _>("reminded_overdue_us")?
            .is_some(),
        row.try_get::<Option<i64>, _>("reminded_escalated_us")?
            .is_some(),
    ))
}

/// The columns reconciliation owns in `obligations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ObligationColumns {
    pub kind: String,
    pub debtor: String,
    pub creditor: String,
    pub state: String,
    pub opened_us: i64,
    pub due_us: i64,
    pub escalates_us: i64,
    pub closed_us: Option<i64>,
    pub closed_by: Option<String>,
    pub detail: String,
}

impl ObligationColumns {
    pub fn of(o: &Obligation) -> Self {
        Self {
            kind: o.kind.as_str().to_string(),
            debtor: o.debtor.to_string(),
            creditor: o.creditor.to_string(),
            state: o.state.as_str().to_string(),
            opened_us: to_us(o.opened_at),
            due_us: to_us(o.due_at),
            escalates_us: to_us(o.escalates_at),
            closed_us: o.closed_at.map(to_us),
            closed_by: o.closed_by.clone(),
            detail: o.detail.clone(),
        }
    }

    /// A new debtor or due time starts the reminders afresh.
    pub fn reschedules(&self, other: &Self) -> bool {
        self.debtor != other.debtor || self.due_us != other.due_us
    }
}

pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

/// The key of a stored case, from its `resident_id` and `origin` columns.
pub(crate) fn case_key(resident: &str, origin: &str) -> Result<crate::domain::CaseKey, StoreError> {
    Ok(crate::domain::CaseKey {
        resident: crate::domain::ResidentId::parse(resident).map_err(corrupt)?,
        origin: crate::domain::RegionCode::parse_format(origin).map_err(corrupt)?,
    })
}

/// Reads an obligation row joined with its case.
pub(crate) fn obligation_row<R>(row: &R) -> Result<ObligationRow, StoreError>
where
    R: sqlx::Row,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
{
    let kind: String = row.try_get("kind")?;
    let state: String = row.try_get("state")?;
    Ok(ObligationRow {
        id: row.try_get("id")?,
        case_id: row.try_get("case_id")?,
        resident_id: row.try_get("resident_id")?,
        origin: row.try_get("origin")?,
        destination: row.try_get("destination")?,
        key: row.try_get("key")?,
        kind: ObligationKind::parse(&kind).ok_or_else(|| corrupt(format!("kind {kind}")))?,
        debtor: row.try_get("debtor")?,
        creditor: row.try_get("creditor")?,
        state: ObligationState::parse(&state).ok_or_else(|| corrupt(format!("state {state}")))?,
        opened_at: from_us(row.try_get("opened_us")?)?,
        due_at: from_us(row.try_get("due_us")?)?,
        escalates_at: from_us(row.try_get("escalates_us")?)?,
        closed_at: row
            .try_get::<Option<i64>, _>("closed_us")?
            .map(from_us)
            .transpose()?,
        closed_by: row.try_get("closed_by")?,
        detail: row.try_get("detail")?,
    })
}

/// Reads an `id, state, findings` row of `cases`, on either backend.
pub(crate) fn stored_case<R>(row: &R) -> Result<super::StoredCase, StoreError>
where
    R: sqlx::Row,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
{
    let id: i64 = row.try_get("id")?;
    let state: String = row.try_get("state")?;
    let findings: String = row.try_get("findings")?;
    Ok(super::StoredCase {
        id,
        state: serde_json::from_str(&state).map_err(|e| corrupt(format!("case {id}: {e}")))?,
        findings: serde_json::from_str(&findings)
            .map_err(|e| corrupt(format!("case {id} findings: {e}")))?,
    })
}

pub(crate) const OBLIGATION_COLUMNS: &str = "o.id, o.case_id, c.resident_id, c.origin, \
     c.destination, o.key, o.kind, o.debtor, o.creditor, o.state, o.opened_us, o.due_us, \
     o.escalates_us, o.closed_us, o.closed_by, o.detail";

/// The statement behind ListObligations: fixed per side and per overdue
/// filter (never built from input); every other filter is a bound value with
/// a neutral default, so one plan serves all. Overdue-only uses literal
/// conditions so the partial index of open obligations by debtor applies.
///
/// Binds: $1 office, $2 kind, $3 state, $4 overdue instant (µs), $5
/// counterpart, $6/$7 due range, $8/$9 keyset (due, id), $10 limit.
pub fn list_obligations_sql(as_debtor: bool, overdue_only: bool) -> String {
    let (own, other) = if as_debtor {
        ("o.debtor", "o.creditor")
    } else {
        ("o.creditor", "o.debtor")
    };
    let overdue = if overdue_only {
        "o.state = 'OPEN' AND o.due_us < $4"
    } else {
        "$4 = 0"
    };
    format!(
        "SELECT {OBLIGATION_COLUMNS} FROM obligations o JOIN cases c ON c.id = o.case_id \
         WHERE {own} = $1 AND ($2 = '' OR o.kind = $2) AND ($3 = '' OR o.state = $3) \
         AND {overdue} AND ($5 = '' OR {other} = $5) AND o.due_us >= $6 AND o.due_us < $7 \
         AND (o.due_us > $8 OR (o.due_us = $8 AND o.id > $9)) \
         ORDER BY o.due_us, o.id LIMIT $10"
    )
}

/// The backlog's tallies of now for a region's children. Binds: $1/$2 the
/// prefix range, $3 the children's code length.
pub const TALLIES_NOW_SQL: &str = "SELECT prefix, side, open, flagged_overdue, \
     flagged_escalated, orphans, discrepancies FROM tallies_now \
     WHERE prefix >= $1 AND prefix < $2 AND length(prefix) = $3";

/// The backlog's daily tallies for a region's children: one index range.
/// Binds: $1 their parent, $2/$3 the first and last day, $4/$5 the prefix
/// range (a county's row among its city's).
pub const TALLIES_DAILY_SQL: &str = "SELECT * FROM tallies_daily WHERE parent = $1 \
     AND day >= $2 AND day <= $3 AND prefix >= $4 AND prefix < $5";

/// A region's own daily tallies on one side from a day on, for a trend.
/// Binds: $1 its parent, $2 the first day, $3 the region, $4 the side.
pub const REGION_DAYS_SQL: &str = "SELECT * FROM tallies_daily \
     WHERE parent = $1 AND day >= $2 AND prefix = $3 AND side = $4";

/// Open obligations past due (or past escalation) the sweeper has not
/// flagged yet, on one side: through the sweeper's partial indexes. Binds:
/// $1 the children's code length, $2 now, $3/$4 the prefix range.
pub fn unflagged_sql(own: &str, escalated: bool) -> String {
    let (flag, time, extra) = if escalated {
        ("reminded_escalated_us", "escalates_us", "")
    } else {
        ("reminded_overdue_us", "due_us", ", kind, due_us")
    };
    // `|| ''` keeps the office indexes out of it: the partial index of
    // what is not yet flagged is the small one.
    format!(
        "SELECT substr({own}, 1, CAST($1 AS INTEGER)) AS g{extra} FROM obligations \
         WHERE state = 'OPEN' AND {flag} IS NULL AND {time} < $2 \
         AND {own} || '' >= $3 AND {own} || '' < $4"
    )
}

/// A region's overdue obligations, oldest first, keyset-paged. Binds: $1/$2
/// the prefix range, $3 now, $4/$5 the keyset, $6 the limit. An office's
/// code (a county's own office, a township) is an equality and the keyset a
/// row value, so the office's index delivers rows in due order and the LIMIT
/// stops the scan; a range with an OR keyset made PostgreSQL sort every
/// overdue obligation of the county first (BENCHMARKS.md). A county is its
/// own office plus its townships' (`341502001`…), merged.
pub fn overdue_in_region_sql(prefix_len: usize) -> String {
    let branch = |office: &str| {
        format!(
            "SELECT {OBLIGATION_COLUMNS}, c.state AS case_state \
             FROM obligations o JOIN cases c ON c.id = o.case_id \
             WHERE o.state = 'OPEN' AND {office} AND o.due_us < $3 \
             AND (o.due_us, o.id) > ($4, $5) \
             ORDER BY o.due_us, o.id LIMIT $6"
        )
    };
    // `< $2` is always true beside the equality; it keeps every bind used.
    let office = "o.debtor = $1 AND o.debtor < $2";
    match prefix_len {
        9 => branch(office),
        6 => format!(
            "SELECT * FROM (SELECT * FROM ({}) AS own UNION ALL SELECT * FROM ({}) AS townships) \
             AS county ORDER BY due_us, id LIMIT $6",
            branch(office),
            branch("o.debtor > $1 AND o.debtor < $2"),
        ),
        _ => branch("o.debtor >= $1 AND o.debtor < $2"),
    }
}

/// Adds what reconciliation writes to a case (destination … next_change_us,
/// seven columns) to `rows`.
pub(crate) fn case_rows<'a>(
    rows: super::rows::Rows<'a>,
    columns: impl Iterator<Item = &'a CaseColumns> + Clone,
) -> super::rows::Rows<'a> {
    let c = || columns.clone();
    rows.opt_text(c().map(|c| c.destination.as_deref()))
        .text(c().map(|c| c.status))
        .text(c().map(|c| c.state.as_str()))
        .text(c().map(|c| c.findings.as_str()))
        .int(c().map(|c| c.open_discrepancies))
        .int(c().map(|c| c.orphans))
        .opt_int(c().map(|c| c.next_change_us))
}

/// Adds an obligation's columns (kind … detail, ten of them) to `rows`.
pub(crate) fn obligation_rows<'a>(
    rows: super::rows::Rows<'a>,
    columns: impl Iterator<Item = &'a ObligationColumns> + Clone,
) -> super::rows::Rows<'a> {
    let c = || columns.clone();
    rows.text(c().map(|c| c.kind.as_str()))
        .text(c().map(|c| c.debtor.as_str()))
        .text(c().map(|c| c.creditor.as_str()))
        .text(c().map(|c| c.state.as_str()))
        .int(c().map(|c| c.opened_us))
        .int(c().map(|c| c.due_us))
        .int(c().map(|c| c.escalates_us))
        .opt_int(c().map(|c| c.closed_us))
        .opt_text(c().map(|c| c.closed_by.as_deref()))
        .text(c().map(|c| c.detail.as_str()))
}

/// The threshold a reminder is about, as named in its message id.
pub(crate) fn threshold(escalated: bool) -> &'static str {
    if escalated { "escalated" } else { "overdue" }
}

/// A statement that returns nothing, pushed into a builder when it runs:
/// alone, or on PostgreSQL as a WITH item of the next statement (one round
/// trip for all of them).
pub(crate) type Write<'a, DB> = Box<dyn FnOnce(&mut sqlx::QueryBuilder<DB>) + Send + 'a>;

macro_rules! sql_store {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Loads the cases a batch touches, by (resident, origin), with
            /// everything reconciliation needs: two statements for all of
            /// them, or one where `recent` holds every case found as
            /// stored. A case not seen before gets an empty work item, and
            /// with `spare` (where the backend has `NEXT_CASE_ID`) an id
            /// for its row there, taken in the same statement.
            async fn load_cases(
                tx: &mut sqlx::Transaction<'static, $db>,
                keys: &[&$crate::domain::CaseKey],
                policy: &$crate::domain::Policy,
                now: time::OffsetDateTime,
                mut spare: Option<&mut Vec<i64>>,
                recent: Option<&$crate::store::recent::RecentCases>,
            ) -> Result<
                std::collections::HashMap<(String, String), $crate::store::sql::CaseWork>,
                $crate::store::StoreError,
            > {
                use sqlx::Row as _;
                use std::collections::HashMap;
                use $crate::domain::reconcile::reconcile;
                use $crate::store::sql::{CaseWork, corrupt};
                use $crate::store::rows::{PushRows, Rows};

                let mut works: HashMap<(String, String), CaseWork> = HashMap::new();
                let mut domain_keys = HashMap::new();
                for key in keys {
                    let k = (key.resident.as_str().to_string(), key.origin.to_string());
                    works
                        .entry(k.clone())
                        .or_insert_with(|| CaseWork::new(key.origin.as_str()));
                    domain_keys.insert(k, *key);
                }
                let wanted: Vec<(String, String)> = works.keys().cloned().collect();
                // Cases to read the rows of, and those `recent` holds.
                let mut by_id: HashMap<i64, (String, String)> = HashMap::new();
                let mut kept = Vec::new();
                let next_id = Self::NEXT_CASE_ID.filter(|_| spare.is_some());
                for chunk in wanted.chunks(<$db as PushRows>::rows_per_statement(2)) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(if next_id.is_some() {
                        "WITH found AS ("
                    } else {
                        ""
                    });
                    q.push(
                        "SELECT id, version, resident_id, origin, destination, orphans, open_discrepancies \
                         FROM cases WHERE (resident_id, origin) IN (SELECT column1, column2 FROM ",
                    );
                    <$db as PushRows>::push_rows(
                        &mut q,
                        Rows::new(chunk.len())
                            .text(chunk.iter().map(|(resident, _)| resident.as_str()))
                            .text(chunk.iter().map(|(_, origin)| origin.as_str())),
                    );
                    q.push(")");
                    if let Some(next_id) = next_id {
                        // The cases found, then an id for each not found
                        // (a row without a key).
                        q.push(
                            ") SELECT id, version, resident_id, origin, destination, orphans, \
                             open_discrepancies FROM found UNION ALL SELECT ",
                        );
                        q.push(next_id);
                        q.push(", 0, NULL, NULL, NULL, 0, 0 FROM generate_series(1, CAST(");
                        q.push_bind(chunk.len() as i64);
                        q.push(" AS BIGINT) - (SELECT count(*) FROM found))");
                    }
                    for row in q.build().fetch_all(&mut **tx).await? {
                        let id: i64 = row.try_get("id")?;
                        let Some(resident) = row.try_get::<Option<String>, _>("resident_id")? else {
                            if let Some(spare) = spare.as_deref_mut() {
                                spare.push(id);
                            }
                            continue;
                        };
                        let key: (String, String) = (resident, row.try_get("origin")?);
                        let work = works
                            .get_mut(&key)
                            .ok_or_else(|| corrupt("a case not asked for"))?;
                        work.id = Some(id);
                        work.version = row.try_get("version")?;
                        work.rows.counted = (
                            row.try_get("destination")?,
                            row.try_get("orphans")?,
                            row.try_get("open_discrepancies")?,
                        );
                        match recent.and_then(|r| r.take(id, work.version)) {
                            // Checked against the rows in tests (debug
                            // builds): what is kept must be what is stored.
                            Some(rows) if !cfg!(debug_assertions) => work.rows = rows,
                            Some(rows) => {
                                kept.push((key.clone(), rows));
                                by_id.insert(id, key);
                            }
                            None => {
                                by_id.insert(id, key);
                            }
                        }
                    }
                }
                Self::load_case_rows(tx, &by_id, &mut works).await?;
                for (key, rows) in kept {
                    let work = &works[&key];
                    let differ = rows.differences(&work.rows);
                    if !differ.is_empty() {
                        return Err(corrupt(format!(
                            "case {:?} as kept differs from its rows in {differ:?}",
                            work.id
                        )));
                    }
                }
                for (k, work) in works.iter_mut() {
                    if work.id.is_some() {
                        work.reconciled = Some(reconcile(domain_keys[k], &work.rows.messages, policy, now));
                    }
                }
                Ok(works)
            }

            /// Reads the derived obligations and the messages of the cases
            /// `by_id` names into their work items: one statement.
            async fn load_case_rows(
                tx: &mut sqlx::Transaction<'static, $db>,
                by_id: &std::collections::HashMap<i64, (String, String)>,
                works: &mut std::collections::HashMap<(String, String), $crate::store::sql::CaseWork>,
            ) -> Result<(), $crate::store::StoreError> {
                use sqlx::Row as _;
                use $crate::domain::reconcile::Recorded;
                use $crate::domain::{MessageId, RegionCode};
                use $crate::store::sql::{ObligationColumns, corrupt};
                use $crate::store::rows::PushRows;
                use $crate::store::{SYSTEM_SENDER, from_us};

                let ids: Vec<i64> = by_id.keys().copied().collect();
                // The cases' derived obligations and their messages (in
                // order) in one statement: a round trip and a statement's
                // overhead fewer for each group of publishes. Obligation
                // rows come first (`is_message` 0) and name the columns; a
                // message's fields share the columns of the same type.
                for chunk in ids.chunks(<$db as PushRows>::rows_per_statement(2)) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "SELECT CAST(0 AS BIGINT) AS is_message, case_id, key, kind, debtor, \
                         creditor, state, opened_us, due_us, escalates_us, closed_us, closed_by, detail, \
                         reminded_overdue_us, reminded_escalated_us, NULL AS content_hash, id \
                         FROM obligations WHERE kind <> 'RECEIPT' AND case_id",
                    );
                    <$db as PushRows>::push_in_ids(&mut q, chunk);
                    q.push(
                        " UNION ALL SELECT 1, case_id, message_id, NULL, sender, recipient, standing, \
                         accepted_us, NULL, NULL, NULL, NULL, body, NULL, NULL, content_hash, id \
                         FROM messages WHERE sender <> ",
                    );
                    q.push_bind(SYSTEM_SENDER);
                    q.push(" AND case_id");
                    <$db as PushRows>::push_in_ids(&mut q, chunk);
                    q.push(" ORDER BY is_message, case_id, id");
                    for row in q.build().fetch_all(&mut **tx).await? {
                        let case_id: i64 = row.try_get("case_id")?;
                        let rows = &mut by_id
                            .get(&case_id)
                            .and_then(|k| works.get_mut(k))
                            .ok_or_else(|| corrupt("a row of a case not asked for"))?
                            .rows;
                        if row.try_get::<i64, _>("is_message")? == 1 {
                            let message_id: String = row.try_get("key")?;
                            let sender: String = row.try_get("debtor")?;
                            let recipient: String = row.try_get("creditor")?;
                            let body: String = row.try_get("detail")?;
                            let accepted_us: i64 = row.try_get("opened_us")?;
                            rows.standings.insert(
                                (sender.clone(), message_id.clone()),
                                row.try_get("state")?,
                            );
                            rows.taken.insert(
                                (sender.clone(), message_id.clone()),
                                (row.try_get("content_hash")?, accepted_us),
                            );
                            rows.messages.push(Recorded {
                                id: MessageId::parse(&message_id).map_err(corrupt)?,
                                sender: RegionCode::parse_format(&sender).map_err(corrupt)?,
                                recipient: RegionCode::parse_format(&recipient).map_err(corrupt)?,
                                accepted_at: from_us(accepted_us)?,
                                body: serde_json::from_str(&body)
                                    .map_err(|e| corrupt(format!("message {message_id}: {e}")))?,
                            });
                            continue;
                        }
                        rows.flags.insert(row.try_get("key")?, $crate::store::sql::reminded(&row)?);
                        rows.obligations.insert(
                            row.try_get("key")?,
                            ObligationColumns {
                                kind: row.try_get("kind")?,
                                debtor: row.try_get("debtor")?,
                                creditor: row.try_get("creditor")?,
                                state: row.try_get("state")?,
                                opened_us: row.try_get("opened_us")?,
                                due_us: row.try_get("due_us")?,
                                escalates_us: row.try_get("escalates_us")?,
                                closed_us: row.try_get("closed_us")?,
                                closed_by: row.try_get("closed_by")?,
                                detail: row.try_get("detail")?,
                            },
                        );
                    }
                }
                Ok(())
            }

            /// What cases' reconciliations changed, as statements that
            /// return nothing (`sql::Write`s): one multi-row statement per kind
            /// of change and few hundred rows. Message standings are not
            /// among them (`write_standings`): they may change a message
            /// inserted with them.
            fn change_writes<'a>(
                changes: &'a $crate::store::sql::CaseChanges,
                now_us: i64,
            ) -> Vec<$crate::store::sql::Write<'a, $db>> {
                use $crate::store::rows::{PushRows, Rows};
                let mut writes: Vec<$crate::store::sql::Write<'a, $db>> = Vec::new();
                for chunk in changes.cases.chunks(<$db as PushRows>::rows_per_statement(9)) {
                    writes.push(Box::new(move |q| {
                        q.push(
                            "UPDATE cases SET destination = v.column2, status = v.column3, \
                             state = v.column4, findings = v.column5, open_discrepancies = v.column6, \
                             orphans = v.column7, next_change_us = v.column8, updated_us = v.column9, \
                             version = cases.version + 1 FROM ",
                        );
                        <$db as PushRows>::push_rows(
                            q,
                            $crate::store::sql::case_rows(
                                Rows::new(chunk.len()).int(chunk.iter().map(|(id, _)| *id)),
                                chunk.iter().map(|(_, c)| c),
                            )
                            .int(chunk.iter().map(|_| now_us)),
                        );
                        q.push(" WHERE cases.id = v.column1");
                    }));
                }
                // By (case, key): an obligation inserted by an earlier
                // publish is known by these alone (`RecentCases`).
                for chunk in changes.obligations.chunks(<$db as PushRows>::rows_per_statement(13)) {
                    writes.push(Box::new(move |q| {
                        q.push(
                            "UPDATE obligations SET kind = v.column3, debtor = v.column4, \
                             creditor = v.column5, state = v.column6, opened_us = v.column7, \
                             due_us = v.column8, escalates_us = v.column9, closed_us = v.column10, \
                             closed_by = v.column11, detail = v.column12, \
                             reminded_overdue_us = CASE WHEN v.column13 = 1 THEN NULL \
                             ELSE obligations.reminded_overdue_us END, \
                             reminded_escalated_us = CASE WHEN v.column13 = 1 THEN NULL \
                             ELSE obligations.reminded_escalated_us END FROM ",
                        );
                        let columns = chunk.iter().map(|(_, _, c, _)| c);
                        let keys = Rows::new(chunk.len())
                            .int(chunk.iter().map(|(case_id, ..)| *case_id))
                            .text(chunk.iter().map(|(_, key, ..)| key.as_str()));
                        <$db as PushRows>::push_rows(
                            q,
                            $crate::store::sql::obligation_rows(keys, columns)
                                .int(chunk.iter().map(|(.., rescheduled)| i64::from(*rescheduled))),
                        );
                        q.push(" WHERE obligations.case_id = v.column1 AND obligations.key = v.column2");
                    }));
                }
                for chunk in changes.new_obligations.chunks(<$db as PushRows>::rows_per_statement(13)) {
                    writes.push(Box::new(move |q| {
                        q.push(
                            "INSERT INTO obligations (case_id, key, kind, debtor, creditor, state, \
                             opened_us, due_us, escalates_us, closed_us, closed_by, detail) \
                             SELECT * FROM ",
                        );
                        let rows = Rows::new(chunk.len())
                            .int(chunk.iter().map(|o| o.case_id))
                            .text(chunk.iter().map(|o| o.key.as_str()));
                        <$db as PushRows>::push_rows(
                            q,
                            $crate::store::sql::obligation_rows(rows, chunk.iter().map(|o| &o.columns)),
                        );
                    }));
                }
                writes
            }

            /// Runs statements that return nothing, in one round trip where
            /// the backend has them (`WRITES_TOGETHER`).
            async fn run_writes(
                tx: &mut sqlx::Transaction<'static, $db>,
                writes: Vec<$crate::store::sql::Write<'_, $db>>,
            ) -> Result<(), $crate::store::StoreError> {
                if writes.is_empty() {
                    return Ok(());
                }
                let mut q = Self::after_writes(tx, writes).await?;
                if Self::WRITES_TOGETHER {
                    q.push("SELECT 1");
                    q.build().execute(&mut **tx).await?;
                }
                Ok(())
            }

            /// The beginning of a statement that comes after `writes`: on
            /// PostgreSQL they are its WITH items, sent with it in one round
            /// trip (they see one snapshot, so none may touch a row another
            /// writes); on SQLite, in process, each has run on its own.
            async fn after_writes(
                tx: &mut sqlx::Transaction<'static, $db>,
                writes: Vec<$crate::store::sql::Write<'_, $db>>,
            ) -> Result<sqlx::QueryBuilder<$db>, $crate::store::StoreError> {
                let mut q = sqlx::QueryBuilder::<$db>::new("");
                if Self::WRITES_TOGETHER {
                    Self::push_writes(&mut q, writes, true);
                } else {
                    for write in writes {
                        let mut q = sqlx::QueryBuilder::<$db>::new("");
                        write(&mut q);
                        q.build().execute(&mut **tx).await?;
                    }
                }
                Ok(q)
            }

            /// Appends `writes` as WITH items `w0`, `w1`, … (`first`: they
            /// begin the WITH).
            fn push_writes(
                q: &mut sqlx::QueryBuilder<$db>,
                writes: Vec<$crate::store::sql::Write<'_, $db>>,
                first: bool,
            ) {
                for (i, write) in writes.into_iter().enumerate() {
                    q.push(if i == 0 && first { "WITH " } else { ", " });
                    q.push(format_args!("w{i} AS ("));
                    write(q);
                    q.push(") ");
                }
            }

            /// Writes the messages' standings that reconciliations changed.
            async fn write_standings(
                tx: &mut sqlx::Transaction<'static, $db>,
                changes: &$crate::store::sql::CaseChanges,
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::rows::{PushRows, Rows};
                for chunk in changes.standings.chunks(<$db as PushRows>::rows_per_statement(3)) {
                    let mut q = sqlx::QueryBuilder::<$db>::new("UPDATE messages SET standing = v.column3 FROM ");
                    <$db as PushRows>::push_rows(
                        &mut q,
                        Rows::new(chunk.len())
                            .text(chunk.iter().map(|(sender, _, _)| sender.as_str()))
                            .text(chunk.iter().map(|(_, id, _)| id.as_str()))
                            .text(chunk.iter().map(|(_, _, standing)| *standing)),
                    );
                    q.push(
                        " WHERE messages.sender = v.column1 AND messages.message_id = v.column2 \
                         AND messages.standing <> v.column3",
                    );
                    q.build().execute(&mut **tx).await?;
                }
                Ok(())
            }

            /// Records a transaction's changes to the tallies, as one row
            /// of `tally_changes` that readers add to the stored tallies
            /// until the tally folder has. A plain insert that waits for
            /// nobody: the stored tallies' rows (every publish touches its
            /// province's) are written only by the folder, so publishers
            /// neither queue for them nor hold the feed's turn while
            /// writing them (BENCHMARKS.md, seventh round).
            async fn record_tally_changes(
                tx: &mut sqlx::Transaction<'static, $db>,
                tallies: $crate::domain::tally::Tallies,
            ) -> Result<(), $crate::store::StoreError> {
                Self::run_writes(tx, Self::tally_writes(tallies).into_iter().collect()).await
            }

            /// `record_tally_changes` as a statement, if there are any.
            fn tally_writes(
                tallies: $crate::domain::tally::Tallies,
            ) -> Option<$crate::store::sql::Write<'static, $db>> {
                let tallies = tallies.settled();
                if tallies.is_empty() {
                    return None;
                }
                let bytes = tallies.to_bytes();
                Some(Box::new(move |q| {
                    q.push("INSERT INTO tally_changes (changes) VALUES (");
                    q.push_bind(bytes);
                    q.push(")");
                }))
            }

            /// The recorded changes not yet added to the stored tallies,
            /// added up.
            async fn pending_tallies(
                conn: &mut <$db as sqlx::Database>::Connection,
            ) -> Result<$crate::domain::tally::Tallies, $crate::store::StoreError> {
                let (pending, _) = Self::read_tally_changes(conn, "SELECT changes FROM tally_changes").await?;
                Ok(pending)
            }

            /// The recorded changes a statement returns (`changes`), added
            /// up, and how many there were.
            async fn read_tally_changes(
                conn: &mut <$db as sqlx::Database>::Connection,
                sql: &'static str,
            ) -> Result<($crate::domain::tally::Tallies, u64), $crate::store::StoreError> {
                use sqlx::Row as _;
                let mut sum = $crate::domain::tally::Tallies::default();
                let rows = sqlx::query(sql).fetch_all(&mut *conn).await?;
                for row in &rows {
                    let bytes: &[u8] = row.try_get("changes")?;
                    sum.add_bytes(bytes).map_err($crate::store::sql::corrupt)?;
                }
                Ok((sum, rows.len() as u64))
            }

            /// Adds changes to the stored tallies: one statement per table
            /// and thousand rows, in key order. Reply histograms merge in
            /// Rust: only the tally folder, a rebuild and a check write
            /// them, one at a time (`begin_fold`), so reading then writing
            /// is safe.
            async fn add_to_tallies(
                tx: &mut sqlx::Transaction<'static, $db>,
                tallies: $crate::domain::tally::Tallies,
            ) -> Result<(), $crate::store::StoreError> {
                use sqlx::Row as _;
                use $crate::domain::kpi::Replies;
                use $crate::store::rows::{PushRows, Rows};
                let tallies = tallies.settled();
                let current: Vec<_> = tallies.current.iter().collect();
                for chunk in current.chunks(<$db as PushRows>::rows_per_statement(7)) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO tallies_now (prefix, side, open, flagged_overdue, \
                         flagged_escalated, orphans, discrepancies) SELECT * FROM ",
                    );
                    <$db as PushRows>::push_rows(
                        &mut q,
                        Rows::new(chunk.len())
                            .text(chunk.iter().map(|((prefix, _), _)| prefix.as_str()))
                            .text(chunk.iter().map(|((_, side), _)| side.as_str()))
                            .int(chunk.iter().map(|(_, c)| c.open))
                            .int(chunk.iter().map(|(_, c)| c.flagged_overdue))
                            .int(chunk.iter().map(|(_, c)| c.flagged_escalated))
                            .int(chunk.iter().map(|(_, c)| c.orphans))
                            .int(chunk.iter().map(|(_, c)| c.discrepancies)),
                    );
                    // WHERE true: SQLite reads ON CONFLICT after a bare
                    // SELECT as part of a join.
                    q.push(
                        " WHERE true ON CONFLICT (prefix, side) DO UPDATE SET \
                         open = tallies_now.open + excluded.open, \
                         flagged_overdue = tallies_now.flagged_overdue + excluded.flagged_overdue, \
                         flagged_escalated = tallies_now.flagged_escalated + excluded.flagged_escalated, \
                         orphans = tallies_now.orphans + excluded.orphans, \
                         discrepancies = tallies_now.discrepancies + excluded.discrepancies",
                    );
                    q.build().execute(&mut **tx).await?;
                }
                let parent = |prefix: &str| $crate::domain::tally::parent(prefix).to_string();
                let daily: Vec<_> = tallies.daily.iter().collect();
                for chunk in daily.chunks(<$db as PushRows>::rows_per_statement(19)) {
                    // The stored histograms of the days that gain replies.
                    let with_replies: Vec<_> =
                        chunk.iter().filter(|(_, d)| !d.replies.is_empty()).collect();
                    let mut stored = std::collections::HashMap::new();
                    if !with_replies.is_empty() {
                        let mut q = sqlx::QueryBuilder::<$db>::new(
                            "SELECT parent, day, prefix, side, replies FROM tallies_daily \
                             WHERE (parent, day, prefix, side) IN \
                             (SELECT column1, column2, column3, column4 FROM ",
                        );
                        let keys = || with_replies.iter().map(|((prefix, side, day), _)| (prefix, side, *day));
                        <$db as PushRows>::push_rows(
                            &mut q,
                            Rows::new(with_replies.len())
                                .text(keys().map(|(prefix, _, _)| parent(prefix.as_str())))
                                .int(keys().map(|(_, _, day)| day))
                                .text(keys().map(|(prefix, _, _)| prefix.as_str()))
                                .text(keys().map(|(_, side, _)| side.as_str())),
                        );
                        q.push(")");
                        for row in q.build().fetch_all(&mut **tx).await? {
                            let key: (String, String, i64) =
                                (row.try_get("prefix")?, row.try_get("side")?, row.try_get("day")?);
                            let replies: Replies = $crate::store::sql::replies_of(
                                row.try_get::<Option<Vec<u8>>, _>("replies")?.as_deref(),
                            )?;
                            stored.insert(key, replies);
                        }
                    }
                    // The whole histogram for days that gain replies; None
                    // keeps what is stored.
                    let mut merged = Vec::with_capacity(chunk.len());
                    for ((prefix, side, day), d) in chunk {
                        merged.push(if d.replies.is_empty() {
                            None
                        } else {
                            let mut r = stored
                                .remove(&(prefix.to_string(), side.as_str().to_string(), *day))
                                .unwrap_or_default();
                            r.merge(&d.replies);
                            Some(r.to_bytes())
                        });
                    }
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO tallies_daily (parent, prefix, side, day, receipts_answered, \
                         receipts_on_time, receipts_flagged, feedback_answered, feedback_flagged, \
                         answers_answered, answers_on_time, answers_flagged, open_in, open_out, \
                         overdue_in, overdue_out, escalated_in, escalated_out, replies) SELECT * FROM ",
                    );
                    let d = || chunk.iter().map(|(_, d)| d);
                    <$db as PushRows>::push_rows(
                        &mut q,
                        Rows::new(chunk.len())
                            .text(chunk.iter().map(|((prefix, _, _), _)| parent(prefix.as_str())))
                            .text(chunk.iter().map(|((prefix, _, _), _)| prefix.as_str()))
                            .text(chunk.iter().map(|((_, side, _), _)| side.as_str()))
                            .int(chunk.iter().map(|((_, _, day), _)| *day))
                            .int(d().map(|d| d.receipts_answered))
                            .int(d().map(|d| d.receipts_on_time))
                            .int(d().map(|d| d.receipts_flagged))
                            .int(d().map(|d| d.feedback_answered))
                            .int(d().map(|d| d.feedback_flagged))
                            .int(d().map(|d| d.answers_answered))
                            .int(d().map(|d| d.answers_on_time))
                            .int(d().map(|d| d.answers_flagged))
                            .int(d().map(|d| d.moves.open_in))
                            .int(d().map(|d| d.moves.open_out))
                            .int(d().map(|d| d.moves.overdue_in))
                            .int(d().map(|d| d.moves.overdue_out))
                            .int(d().map(|d| d.moves.escalated_in))
                            .int(d().map(|d| d.moves.escalated_out))
                            // NULL: a new row has no replies yet, an
                            // existing one keeps its histogram.
                            .opt_bytes(merged),
                    );
                    q.push(
                        " WHERE true ON CONFLICT (parent, day, prefix, side) DO UPDATE SET \
                         receipts_answered = tallies_daily.receipts_answered + excluded.receipts_answered, \
                         receipts_on_time = tallies_daily.receipts_on_time + excluded.receipts_on_time, \
                         receipts_flagged = tallies_daily.receipts_flagged + excluded.receipts_flagged, \
                         feedback_answered = tallies_daily.feedback_answered + excluded.feedback_answered, \
                         feedback_flagged = tallies_daily.feedback_flagged + excluded.feedback_flagged, \
                         answers_answered = tallies_daily.answers_answered + excluded.answers_answered, \
                         answers_on_time = tallies_daily.answers_on_time + excluded.answers_on_time, \
                         answers_flagged = tallies_daily.answers_flagged + excluded.answers_flagged, \
                         open_in = tallies_daily.open_in + excluded.open_in, \
                         open_out = tallies_daily.open_out + excluded.open_out, \
                         overdue_in = tallies_daily.overdue_in + excluded.overdue_in, \
                         overdue_out = tallies_daily.overdue_out + excluded.overdue_out, \
                         escalated_in = tallies_daily.escalated_in + excluded.escalated_in, \
                         escalated_out = tallies_daily.escalated_out + excluded.escalated_out, \
                         replies = COALESCE(excluded.replies, tallies_daily.replies)",
                    );
                    q.build().execute(&mut **tx).await?;
                }
                Ok(())
            }

            /// The tallies of everything stored, counted from scratch, reading
            /// the obligations a batch at a time. With `write`, they are added
            /// to the stored tallies every 200,000 obligations (nothing is
            /// returned), so memory stays that of 200,000 obligations' offices
            /// and days however many there are; without, they are returned
            /// whole (to compare). Also says how many obligations it read.
            async fn count_tallies(
                tx: &mut sqlx::Transaction<'static, $db>,
                write: bool,
            ) -> Result<($crate::domain::tally::Tallies, u64), $crate::store::StoreError> {
                use sqlx::Row as _;
                use $crate::store::sql::{FACT_COLUMNS, obligation_facts};
                const BATCH: i64 = 50_000;
                const WRITE_EVERY: usize = 200_000;
                let (mut counted, mut read) = (0, 0u64);
                let mut tallies = $crate::domain::tally::Tallies::default();
                let sql = format!(
                    "SELECT id, {FACT_COLUMNS} FROM obligations WHERE id > $1 ORDER BY id LIMIT {BATCH}"
                );
                // The count at start takes minutes at millions of
                // obligations: the log says how far it is, by the ids read
                // (they only grow) against the range there is. A new
                // database has nothing to count: nothing to say.
                let mut progress = if write {
                    let (first, last): (Option<i64>, Option<i64>) =
                        sqlx::query_as("SELECT MIN(id), MAX(id) FROM obligations")
                            .fetch_one(&mut **tx)
                            .await?;
                    first.zip(last).map(|range| (range, std::time::Instant::now()))
                } else {
                    None
                };
                if progress.is_some() {
                    tracing::info!(
                        "counting the backlog tallies from the stored rows: once per database, \
                         minutes on a large one"
                    );
                }
                let mut after = i64::MIN;
                loop {
                    let rows = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                        .bind(after)
                        .fetch_all(&mut **tx)
                        .await?;
                    let Some(last) = rows.last() else {
                        break;
                    };
                    after = last.try_get("id")?;
                    for row in &rows {
                        tallies.obligation(&obligation_facts(row)?, 1);
                    }
                    counted += rows.len();
                    read += rows.len() as u64;
                    if write && counted >= WRITE_EVERY {
                        Self::add_to_tallies(tx, std::mem::take(&mut tallies)).await?;
                        counted = 0;
                    }
                    if let Some(((first, last), reported)) = &mut progress
                        && reported.elapsed() >= $crate::store::sql::PROGRESS_EVERY
                    {
                        tracing::info!(
                            obligations = read,
                            percent = $crate::store::sql::percent(*first, after, *last),
                            "counting the backlog tallies"
                        );
                        *reported = std::time::Instant::now();
                    }
                }
                let rows = sqlx::query(
                    "SELECT origin, destination, orphans, open_discrepancies FROM cases \
                     WHERE orphans <> 0 OR open_discrepancies <> 0",
                )
                .fetch_all(&mut **tx)
                .await?;
                for row in rows {
                    let destination: Option<String> = row.try_get("destination")?;
                    tallies.case(
                        &row.try_get::<String, _>("origin")?,
                        destination.as_deref(),
                        row.try_get("orphans")?,
                        row.try_get("open_discrepancies")?,
                        1,
                    );
                }
                if write {
                    Self::add_to_tallies(tx, tallies).await?;
                    return Ok((Default::default(), read));
                }
                Ok((tallies.settled(), read))
            }

            /// The tallies as stored.
            async fn stored_tallies(
                tx: &mut sqlx::Transaction<'static, $db>,
            ) -> Result<$crate::domain::tally::Tallies, $crate::store::StoreError> {
                use sqlx::Row as _;
                use $crate::domain::kpi::Side;
                use $crate::domain::tally::{Current, Prefix, Tallies};
                use $crate::store::sql::corrupt;
                let side = |raw: String| Side::parse(&raw).ok_or_else(|| corrupt(format!("side {raw}")));
                let prefix = |raw: String| Prefix::new(&raw).ok_or_else(|| corrupt(format!("prefix {raw}")));
                let mut tallies = Tallies::default();
                for row in sqlx::query("SELECT * FROM tallies_now").fetch_all(&mut **tx).await? {
                    tallies.current.insert(
                        (prefix(row.try_get("prefix")?)?, side(row.try_get("side")?)?),
                        Current {
                            open: row.try_get("open")?,
                            flagged_overdue: row.try_get("flagged_overdue")?,
                            flagged_escalated: row.try_get("flagged_escalated")?,
                            orphans: row.try_get("orphans")?,
                            discrepancies: row.try_get("discrepancies")?,
                        },
                    );
                }
                for row in sqlx::query("SELECT * FROM tallies_daily").fetch_all(&mut **tx).await? {
                    tallies.daily.insert(
                        (prefix(row.try_get("prefix")?)?, side(row.try_get("side")?)?, row.try_get("day")?),
                        $crate::store::sql::daily(&row)?,
                    );
                }
                tallies.add(&Self::pending_tallies(&mut **tx).await?);
                Ok(tallies.settled())
            }

            /// Inserts messages after `writes` and delivers them, numbered
            /// in the order of `messages`, in the feed's turn (the deliveries
            /// wait for it, and hold it to commit). Returns each
            /// message's id, or None where its id was taken. On PostgreSQL
            /// it is one statement: the messages, their deliveries and the
            /// writes as its WITH items, the deliveries waiting for the
            /// turn once every other part is done (the part of a publish
            /// that runs one transaction at a time).
            async fn insert_messages_after(
                tx: &mut sqlx::Transaction<'static, $db>,
                messages: &[$crate::store::sql::NewMessage],
                now_us: i64,
                mut writes: Vec<$crate::store::sql::Write<'_, $db>>,
            ) -> Result<Vec<Option<i64>>, $crate::store::StoreError> {
                use sqlx::Row as _;
                use std::collections::HashMap;
                use $crate::store::rows::{PushRows, Rows};

                let mut take_turn = true;
                let mut rows: HashMap<(String, String), i64> = HashMap::with_capacity(messages.len());
                for chunk in messages.chunks(<$db as PushRows>::rows_per_statement(10)) {
                    // (recipient, sender, message id) in delivery order,
                    // where they go in this statement.
                    let deliveries: Vec<(&str, &str, &str)> = if Self::WRITES_TOGETHER {
                        chunk
                            .iter()
                            .flat_map(|m| {
                                m.recipients
                                    .iter()
                                    .map(move |(r, _)| (r.as_str(), m.sender.as_str(), m.message_id.as_str()))
                            })
                            .collect()
                    } else {
                        Vec::new()
                    };
                    let mut q = if deliveries.is_empty() {
                        Self::after_writes(tx, std::mem::take(&mut writes)).await?
                    } else {
                        sqlx::QueryBuilder::<$db>::new("WITH m AS (")
                    };
                    q.push(
                        "INSERT INTO messages (sender, message_id, content_hash, kind, case_id, \
                         recipient, envelope, body, standing, accepted_us) SELECT * FROM ",
                    );
                    <$db as PushRows>::push_rows(
                        &mut q,
                        Rows::new(chunk.len())
                            .text(chunk.iter().map(|m| m.sender.as_str()))
                            .text(chunk.iter().map(|m| m.message_id.as_str()))
                            .bytes(chunk.iter().map(|m| m.content_hash.as_slice()))
                            .text(chunk.iter().map(|m| m.kind))
                            .int(chunk.iter().map(|m| m.case_id))
                            .text(chunk.iter().map(|m| {
                                m.recipients.first().map(|(r, _)| r.as_str()).unwrap_or_default()
                            }))
                            .bytes(chunk.iter().map(|m| m.envelope.as_slice()))
                            .text(chunk.iter().map(|m| m.body.as_str()))
                            .text(chunk.iter().map(|_| "ACTIVE"))
                            .int(chunk.iter().map(|_| now_us)),
                    );
                    q.push(
                        " WHERE true ON CONFLICT (sender, message_id) DO NOTHING \
                         RETURNING id, sender, message_id",
                    );
                    if !deliveries.is_empty() {
                        // Only the messages inserted; numbered in the order
                        // given (`column4`), after the turn (evaluated
                        // once, before the first row).
                        q.push(
                            "), d AS (INSERT INTO deliveries (recipient, message) \
                             SELECT v.column1, m.id FROM ",
                        );
                        <$db as PushRows>::push_rows(
                            &mut q,
                            Rows::new(deliveries.len())
                                .text(deliveries.iter().map(|(r, _, _)| *r))
                                .text(deliveries.iter().map(|(_, s, _)| *s))
                                .text(deliveries.iter().map(|(_, _, id)| *id))
                                .int((0..deliveries.len()).map(|i| i as i64)),
                        );
                        q.push(" JOIN m ON m.sender = v.column2 AND m.message_id = v.column3");
                        if std::mem::take(&mut take_turn) {
                            q.push(" WHERE ");
                            q.push(Self::IN_FEED_TURN);
                        }
                        q.push(" ORDER BY v.column4)");
                        // PostgreSQL runs the WITH items nothing reads in
                        // the reverse of their order: the writes after the
                        // deliveries, so that the turn is taken last.
                        Self::push_writes(&mut q, std::mem::take(&mut writes), false);
                        q.push(" SELECT id, sender, message_id FROM m");
                    }
                    for row in q.build().fetch_all(&mut **tx).await? {
                        rows.insert((row.try_get("sender")?, row.try_get("message_id")?), row.try_get("id")?);
                    }
                }
                Self::run_writes(tx, writes).await?;
                let ids: Vec<Option<i64>> = messages
                    .iter()
                    .map(|m| rows.get(&(m.sender.clone(), m.message_id.clone())).copied())
                    .collect();
                if !Self::WRITES_TOGETHER {
                    Self::deliver(tx, messages, &ids).await?;
                } else if take_turn {
                    // Nothing was delivered, so nothing waited for the turn.
                    Self::take_feed_turn(tx).await?;
                }
                Ok(ids)
            }

            /// Delivers stored messages (`ids` as `insert_messages_after`
            /// found them), numbered in the order of `messages`, in the
            /// feed's turn: the first statement waits for it (no round trip
            /// of its own).
            async fn deliver(
                tx: &mut sqlx::Transaction<'static, $db>,
                messages: &[$crate::store::sql::NewMessage],
                ids: &[Option<i64>],
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::rows::{PushRows, Rows};
                let mut take_turn = true;
                let deliveries: Vec<(i64, &str)> = messages
                    .iter()
                    .zip(ids)
                    .filter_map(|(m, id)| id.map(|id| (id, m)))
                    .flat_map(|(id, m)| m.recipients.iter().map(move |(r, _)| (id, r.as_str())))
                    .collect();
                if deliveries.is_empty() {
                    Self::take_feed_turn(tx).await?;
                }
                for chunk in deliveries.chunks(<$db as PushRows>::rows_per_statement(2)) {
                    let mut q =
                        sqlx::QueryBuilder::<$db>::new("INSERT INTO deliveries (recipient, message) SELECT * FROM ");
                    <$db as PushRows>::push_rows(
                        &mut q,
                        Rows::new(chunk.len())
                            .text(chunk.iter().map(|(_, recipient)| *recipient))
                            .int(chunk.iter().map(|(id, _)| *id)),
                    );
                    if std::mem::take(&mut take_turn) {
                        // Evaluated once, before the first row is numbered.
                        q.push(" WHERE ");
                        q.push(Self::IN_FEED_TURN);
                    }
                    q.build().execute(&mut **tx).await?;
                }
                Ok(())
            }

            /// Inserts the rows of the cases first seen in this batch, as
            /// reconciled, and gives each work item its id. Where the
            /// backend has `NEXT_CASE_ID`, the ids are the `spare` ones the
            /// load took and the rows are returned as writes to go with the
            /// others; else they are inserted here. A case inserted
            /// meanwhile by another transaction (the case locks leave none)
            /// makes this one `Contended`: written again, it loads the case.
            async fn insert_cases<'w>(
                tx: &mut sqlx::Transaction<'static, $db>,
                cases: &mut std::collections::HashMap<(String, String), $crate::store::sql::CaseWork>,
                now_us: i64,
                mut spare: Vec<i64>,
            ) -> Result<Vec<$crate::store::sql::Write<'w, $db>>, $crate::store::StoreError> {
                use sqlx::Row as _;
                use $crate::store::rows::{PushRows, Rows};
                let mut new = Vec::new();
                for (key, work) in cases.iter() {
                    if work.id.is_none() && work.dirty {
                        if let Some(columns) = work.columns()? {
                            new.push((key.clone(), columns));
                        }
                    }
                }
                // A chunk's rows after `ids` (their own ids, or none):
                // key, reconciled columns, created and updated.
                type New = ((String, String), $crate::store::sql::CaseColumns);
                fn rows_of<'r>(ids: Rows<'r>, chunk: &'r [New], now_us: i64) -> Rows<'r> {
                    let keys = ids
                        .text(chunk.iter().map(|((resident, _), _)| resident.as_str()))
                        .text(chunk.iter().map(|((_, origin), _)| origin.as_str()));
                    $crate::store::sql::case_rows(keys, chunk.iter().map(|(_, c)| c))
                        .int(chunk.iter().map(|_| now_us))
                        .int(chunk.iter().map(|_| now_us))
                }
                if Self::NEXT_CASE_ID.is_some() {
                    let mut writes: Vec<$crate::store::sql::Write<'w, $db>> = Vec::new();
                    // Each write owns its chunk: its rows borrow from it.
                    let mut rest = new;
                    while !rest.is_empty() {
                        let after = rest.split_off(rest.len().min(<$db as PushRows>::rows_per_statement(12)));
                        let chunk = std::mem::replace(&mut rest, after);
                        let mut ids = Vec::with_capacity(chunk.len());
                        for (key, _) in &chunk {
                            let id = spare
                                .pop()
                                .ok_or_else(|| $crate::store::sql::corrupt("a new case without an id"))?;
                            let work = cases
                                .get_mut(key)
                                .ok_or_else(|| $crate::store::sql::corrupt("a case not loaded"))?;
                            work.id = Some(id);
                            work.inserted = true;
                            ids.push(id);
                        }
                        writes.push(Box::new(move |q| {
                            q.push(
                                "INSERT INTO cases (id, resident_id, origin, destination, status, state, \
                                 findings, open_discrepancies, orphans, next_change_us, created_us, \
                                 updated_us) OVERRIDING SYSTEM VALUE SELECT * FROM ",
                            );
                            let rows = rows_of(Rows::new(chunk.len()).int(ids), &chunk, now_us);
                            <$db as PushRows>::push_rows(q, rows);
                        }));
                    }
                    return Ok(writes);
                }
                let mut inserted = 0;
                for chunk in new.chunks(<$db as PushRows>::rows_per_statement(11)) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO cases (resident_id, origin, destination, status, state, findings, \
                         open_discrepancies, orphans, next_change_us, created_us, updated_us) \
                         SELECT * FROM ",
                    );
                    <$db as PushRows>::push_rows(&mut q, rows_of(Rows::new(chunk.len()), chunk, now_us));
                    q.push(
                        " WHERE true ON CONFLICT (resident_id, origin) DO NOTHING \
                         RETURNING id, resident_id, origin",
                    );
                    for row in q.build().fetch_all(&mut **tx).await? {
                        inserted += 1;
                        let key: (String, String) = (row.try_get("resident_id")?, row.try_get("origin")?);
                        let work = cases
                            .get_mut(&key)
                            .ok_or_else(|| $crate::store::sql::corrupt("a case not inserted"))?;
                        work.id = Some(row.try_get("id")?);
                        work.inserted = true;
                    }
                }
                if inserted < new.len() {
                    return Err($crate::store::StoreError::Contended(None));
                }
                Ok(Vec::new())
            }

            /// A new case's row inserted meanwhile by another transaction
            /// (which the case locks leave none to do) is `Contended`, as
            /// `insert_cases` makes it where it inserts the rows itself.
            fn case_taken(e: $crate::store::StoreError) -> $crate::store::StoreError {
                match e {
                    $crate::store::StoreError::Database(sqlx::Error::Database(d))
                        if d.constraint() == Some("cases_resident_id_origin_key") =>
                    {
                        $crate::store::StoreError::Contended(Some(sqlx::Error::Database(d)))
                    }
                    e => e,
                }
            }

            /// One attempt at `Store::publish`.
            async fn publish_once(
                &self,
                batch: &[$crate::store::Candidate],
                policy: &$crate::domain::Policy,
                now: time::OffsetDateTime,
                any_case: bool,
            ) -> Result<Vec<$crate::store::Outcome>, $crate::store::StoreError> {
                use sqlx::Row as _;
                use $crate::domain::case::{self, Earlier, Standing};
                use $crate::domain::policy::DeadlineKind;
                use $crate::domain::reconcile::{Recorded, reconcile};
                use $crate::domain::{Body, Kind, RegionCode, Violation};
                use $crate::store::rows::{PushRows, Rows};
                use $crate::store::sql::corrupt;
                use $crate::store::{Outcome, StoreError, from_us, to_us};

                let mut tallies = $crate::domain::tally::Tallies::default();
                let now_us = to_us(now);
                // What is stored, to the microsecond: a duplicate later
                // answers exactly this.
                let at = from_us(now_us)?;
                type Key = (String, String);
                let id_key = |m: &$crate::domain::Message| -> Key {
                    (m.sender.as_str().to_string(), m.id.as_str().to_string())
                };

                // Every case the batch touches, locked and then loaded at
                // once: a message id is taken (or not) for good once its
                // case is ours.
                let keys: Vec<&$crate::domain::CaseKey> = batch.iter().map(|c| &c.message.case).collect();
                let (_guard, mut tx) = self.begin_publish(&keys).await?;
                let mut spare = Vec::new();
                let mut cases =
                    Self::load_cases(&mut tx, &keys, policy, at, Some(&mut spare), Some(&self.recent)).await?;

                // The batch's ids already taken: (hash, accepted_us). Sent
                // again, a message is usually sent for the same case: its
                // loaded messages hold the id. An id taken by another case
                // makes the insert below find it taken (`Contended`), and
                // the next try (`any_case`) looks for every id.
                let mut taken: std::collections::HashMap<Key, (Vec<u8>, i64)> = cases
                    .values()
                    .flat_map(|w| w.rows.taken.iter().map(|(k, v)| (k.clone(), v.clone())))
                    .collect();
                let asked = if any_case { batch } else { &[][..] };
                for chunk in asked.chunks(<$db as PushRows>::rows_per_statement(2)) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "SELECT sender, message_id, content_hash, accepted_us FROM messages \
                         WHERE (sender, message_id) IN (SELECT column1, column2 FROM ",
                    );
                    <$db as PushRows>::push_rows(
                        &mut q,
                        Rows::new(chunk.len())
                            .text(chunk.iter().map(|c| c.message.sender.as_str()))
                            .text(chunk.iter().map(|c| c.message.id.as_str())),
                    );
                    q.push(")");
                    for row in q.build().fetch_all(&mut *tx).await? {
                        taken.insert(
                            (row.try_get("sender")?, row.try_get("message_id")?),
                            (row.try_get("content_hash")?, row.try_get("accepted_us")?),
                        );
                    }
                }

                // Accepted in this batch: (sender, id) → its place in `new`
                // and its kind.
                let mut fresh: std::collections::HashMap<Key, (usize, Kind)> =
                    std::collections::HashMap::new();
                let mut new: Vec<(Key, $crate::store::sql::NewMessage)> = Vec::new();
                let mut outcomes = Vec::with_capacity(batch.len());
                for c in batch {
                    let msg = &c.message;
                    let key = id_key(msg);
                    let first = match (taken.get(&key), fresh.get(&key)) {
                        (Some((hash, accepted_us)), _) => Some((hash.as_slice(), from_us(*accepted_us)?)),
                        (None, Some(&(i, _))) => Some((new[i].1.content_hash.as_slice(), at)),
                        (None, None) => None,
                    };
                    if let Some((hash, first)) = first {
                        outcomes.push(if hash == c.content_hash.as_slice() {
                            Outcome::Duplicate { at: first }
                        } else {
                            Outcome::Rejected(vec![Violation::new(
                                "message_id",
                                "CONFLICT",
                                "this message id was already used for a message with other \
                                 content; choose a new id, or send CORRECTION to change it",
                            )])
                        });
                        continue;
                    }
                    let case_key: Key = (
                        msg.case.resident.as_str().to_string(),
                        msg.case.origin.to_string(),
                    );

                    let earlier = match &msg.body {
                        Body::Void { target } | Body::Correction { target, .. } => {
                            let target_key: Key =
                                (msg.sender.as_str().to_string(), target.as_str().to_string());
                            match fresh.get(&target_key) {
                                // Sent earlier in this batch: its case's
                                // reconciliation knows its standing.
                                Some(&(i, kind)) => {
                                    let target_case = &new[i].0;
                                    Some(Earlier {
                                        sender: msg.sender.clone(),
                                        kind,
                                        standing: cases
                                            .get(target_case)
                                            .and_then(|w| w.reconciled.as_ref())
                                            .map_or(Standing::Active, |r| r.standing(&msg.sender, target)),
                                        same_case: *target_case == case_key,
                                    })
                                }
                                None => {
                                    let work = cases
                                        .get(&case_key)
                                        .ok_or_else(|| corrupt("a case not loaded"))?;
                                    sqlx::query(
                                        "SELECT kind, standing, case_id FROM messages \
                                         WHERE sender = $1 AND message_id = $2",
                                    )
                                    .bind(msg.sender.as_str())
                                    .bind(target.as_str())
                                    .fetch_optional(&mut *tx)
                                    .await?
                                    .map(|row| -> Result<Earlier, StoreError> {
                                        let kind: String = row.try_get("kind")?;
                                        let standing: String = row.try_get("standing")?;
                                        let target_case: i64 = row.try_get("case_id")?;
                                        let same_case = work.id == Some(target_case);
                                        // Within this batch the stored standing
                                        // may be stale: the case's
                                        // reconciliation knows.
                                        let standing = match work.reconciled.as_ref() {
                                            Some(r) if same_case => r.standing(&msg.sender, target),
                                            _ => Standing::parse(&standing)
                                                .ok_or_else(|| corrupt(format!("standing {standing}")))?,
                                        };
                                        Ok(Earlier {
                                            sender: msg.sender.clone(),
                                            kind: Kind::parse(&kind)
                                                .ok_or_else(|| corrupt(format!("kind {kind}")))?,
                                            standing,
                                            same_case,
                                        })
                                    })
                                    .transpose()?
                                }
                            }
                        }
                        _ => None,
                    };

                    let work = cases
                        .get_mut(&case_key)
                        .ok_or_else(|| corrupt("a case not loaded"))?;
                    let state = work.reconciled.as_ref().map(|r| r.state.clone());
                    let applied = match case::apply(state, msg, earlier.as_ref(), at) {
                        Ok(applied) => applied,
                        Err(violations) => {
                            outcomes.push(Outcome::Rejected(violations));
                            continue;
                        }
                    };
                    let recipients: Vec<(String, Option<(i64, i64)>)> = applied
                        .recipients
                        .iter()
                        .map(|r: &RegionCode| {
                            let due = policy.due(DeadlineKind::Receipt, r, at);
                            let escalates = policy.escalates_at(at, due);
                            (r.to_string(), Some((to_us(due), to_us(escalates))))
                        })
                        .collect();
                    let body = serde_json::to_string(&msg.body).map_err(corrupt)?;
                    work.rows.messages.push(Recorded::new(msg, at));
                    work.rows.taken.insert(key.clone(), (c.content_hash.clone(), now_us));
                    work.rows.standings.insert(key.clone(), "ACTIVE".into());
                    work.reconciled = Some(reconcile(&msg.case, &work.rows.messages, policy, at));
                    work.dirty = true;
                    let kind = msg.body.kind();
                    fresh.insert(key, (new.len(), kind));
                    new.push((
                        case_key,
                        $crate::store::sql::NewMessage {
                            case_id: 0,
                            sender: msg.sender.as_str().to_string(),
                            message_id: msg.id.as_str().to_string(),
                            content_hash: c.content_hash.clone(),
                            kind: kind.as_str(),
                            recipients,
                            envelope: c.envelope.clone(),
                            body,
                        },
                    ));
                    outcomes.push(Outcome::Accepted { at, recipients: applied.recipients });
                }

                // Rows: new cases (their messages refer to them), each
                // case's reconciliation, receipts and the tallies' changes,
                // messages; then, in the feed's turn, deliveries.
                let new_cases = Self::insert_cases(&mut tx, &mut cases, now_us, spare).await?;
                let mut messages = Vec::with_capacity(new.len());
                for (case_key, mut m) in new {
                    m.case_id = cases
                        .get(&case_key)
                        .and_then(|w| w.id)
                        .ok_or_else(|| corrupt("a message of a case without a row"))?;
                    messages.push(m);
                }
                let mut changes = $crate::store::sql::CaseChanges::default();
                for work in cases.values_mut().filter(|w| w.dirty) {
                    work.changes(now_us, &mut tallies, &mut changes)?;
                }
                for m in &messages {
                    changes.new_obligations.extend(m.receipts(now_us, &mut tallies));
                }
                // Cases' and obligations' changes and the tallies' go with
                // the messages and their deliveries: one round trip on
                // PostgreSQL.
                let mut writes = new_cases;
                writes.extend(Self::change_writes(&changes, now_us));
                writes.extend(Self::tally_writes(tallies));
                let ids = Self::insert_messages_after(&mut tx, &messages, now_us, writes)
                    .await
                    .map_err(Self::case_taken)?;
                if ids.iter().any(Option::is_none) {
                    // Taken by another case: found by the next try, or
                    // taken meanwhile by a publisher of another case.
                    return Err(StoreError::Contended(None));
                }
                Self::write_standings(&mut tx, &changes).await?;
                tx.commit().await?;
                for work in cases.into_values() {
                    if let (Some(id), Some(version)) = (work.id, work.committed_version()) {
                        self.recent.keep(id, version, work.rows);
                    }
                }
                Ok(outcomes)
            }

            /// Reconciles the cases a new feedback period has reached (at
            /// most `limit`), as a publish would: holding only their locks,
            /// beside publishers, loading them in a statement or two. Every
            /// case reaches a new period on the same day; a pass of 500
            /// loaded one by one, excluding every publisher, took a quarter
            /// of a second on PostgreSQL (BENCHMARKS.md). Returns how many
            /// it reconciled: a case another server's sweep or a publish
            /// reconciled meanwhile is read again under its lock and
            /// changes nothing.
            async fn reconcile_due_cases(
                &self,
                policy: &$crate::domain::Policy,
                now: time::OffsetDateTime,
                limit: u32,
            ) -> Result<u64, $crate::store::StoreError> {
                use sqlx::Row as _;
                use $crate::domain::CaseKey;
                use $crate::store::sql::case_key;
                use $crate::store::{StoreError, to_us};

                let now_us = to_us(now);
                let due = sqlx::query(
                    "SELECT resident_id, origin FROM cases \
                     WHERE next_change_us IS NOT NULL AND next_change_us <= $1 \
                     ORDER BY next_change_us LIMIT $2",
                )
                .bind(now_us)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                if due.is_empty() {
                    return Ok(0);
                }
                let keys = due
                    .iter()
                    .map(|row| -> Result<CaseKey, StoreError> {
                        let resident: String = row.try_get("resident_id")?;
                        let origin: String = row.try_get("origin")?;
                        case_key(&resident, &origin)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let keys: Vec<&CaseKey> = keys.iter().collect();
                let (_guard, mut tx) = self.begin_publish(&keys).await?;
                let mut cases = Self::load_cases(&mut tx, &keys, policy, now, None, Some(&self.recent)).await?;
                let mut tallies = $crate::domain::tally::Tallies::default();
                let mut changes = $crate::store::sql::CaseChanges::default();
                let mut reconciled = 0;
                for work in cases.values_mut().filter(|w| w.id.is_some()) {
                    work.changes(now_us, &mut tallies, &mut changes)?;
                    work.dirty = true;
                    reconciled += 1;
                }
                let mut writes = Self::change_writes(&changes, now_us);
                writes.extend(Self::tally_writes(tallies));
                Self::run_writes(&mut tx, writes).await?;
                Self::write_standings(&mut tx, &changes).await?;
                tx.commit().await?;
                for work in cases.into_values() {
                    if let (Some(id), Some(version)) = (work.id, work.committed_version()) {
                        self.recent.keep(id, version, work.rows);
                    }
                }
                Ok(reconciled)
            }

            /// Delivers a reminder for each obligation past a threshold (due,
            /// escalates) and not yet reminded of it, at most `limit` of
            /// each, and flags it: beside publishers, holding the locks of
            /// the obligations' cases (a publish reads its case's flags), in
            /// a few statements. Once per obligation and threshold: the
            /// statement that flags an obligation finds it unflagged in one
            /// sweeper only, which then sends its reminder; the reminder's
            /// message id is the second guard. It skips an obligation an
            /// acknowledgement is closing meanwhile (`LOCK_SKIPPING`): the
            /// next pass finds it if it is still open. Returns (overdue,
            /// escalation) reminders sent.
            async fn send_reminders(
                &self,
                now: time::OffsetDateTime,
                limit: u32,
                envelope: &$crate::store::ReminderEnvelope,
            ) -> Result<(u64, u64), $crate::store::StoreError> {
                use sqlx::Row as _;
                use std::collections::HashMap;
                use $crate::domain::reconcile::ObligationKind;
                use $crate::domain::CaseKey;
                use $crate::store::rows::{PushRows, Rows};
                use $crate::store::sql::{FACT_COLUMNS, case_key, corrupt, obligation_facts, threshold};
                use $crate::store::{ReminderDue, SYSTEM_SENDER, from_us, to_us};

                let now_us = to_us(now);
                // The threshold's time and the column that records its
                // reminder, for (overdue, escalated): names from this list
                // only.
                let thresholds = [(false, "due_us", "reminded_overdue_us"), (true, "escalates_us", "reminded_escalated_us")];
                // Each threshold's candidates, and their cases: (resident, origin) by id.
                let mut candidates: [Vec<i64>; 2] = Default::default();
                let mut cases: HashMap<i64, (String, String)> = HashMap::new();
                for (i, (_, past, column)) in thresholds.iter().enumerate() {
                    let sql = format!(
                        "SELECT o.id, o.case_id, c.resident_id, c.origin FROM \
                         (SELECT id, case_id, {past} FROM obligations \
                          WHERE state = 'OPEN' AND {past} < $1 AND {column} IS NULL \
                          ORDER BY {past} LIMIT $2) o \
                         JOIN cases c ON c.id = o.case_id ORDER BY o.{past}, o.id"
                    );
                    for row in sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(now_us)
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await?
                    {
                        candidates[i].push(row.try_get("id")?);
                        cases.insert(row.try_get("case_id")?, (row.try_get("resident_id")?, row.try_get("origin")?));
                    }
                }
                if cases.is_empty() {
                    return Ok((0, 0));
                }
                let keys = cases
                    .values()
                    .map(|(resident, origin)| case_key(resident, origin))
                    .collect::<Result<Vec<_>, _>>()?;
                let keys: Vec<&CaseKey> = keys.iter().collect();
                let (_guard, mut tx) = self.begin_publish(&keys).await?;
                let mut tallies = $crate::domain::tally::Tallies::default();
                // Both thresholds' reminders, overdue first, and their cases.
                let mut reminders = Vec::new();
                let mut overdue = 0;
                let mut flagged_cases = Vec::new();
                for (i, (escalated, past, column)) in thresholds.into_iter().enumerate() {
                    let mut flagged_rows = Vec::new();
                    for chunk in candidates[i].chunks(<$db as PushRows>::rows_per_statement(1)) {
                        // Those still open and unflagged, locked, found
                        // once (MATERIALIZED): as the UPDATE's subquery,
                        // PostgreSQL ran it again for every row it
                        // scanned where the table's statistics were stale,
                        // 60 s for 500 reminders.
                        let mut q = sqlx::QueryBuilder::<$db>::new(
                            "WITH flagged AS MATERIALIZED (SELECT id FROM obligations WHERE id IN (SELECT column1 FROM ",
                        );
                        <$db as PushRows>::push_rows(&mut q, Rows::new(chunk.len()).int(chunk.iter().copied()));
                        q.push(format_args!(") AND state = 'OPEN' AND {column} IS NULL AND {past} < "));
                        q.push_bind(now_us);
                        q.push(Self::LOCK_SKIPPING);
                        q.push(format_args!(") UPDATE obligations SET {column} = "));
                        q.push_bind(now_us);
                        q.push(format_args!(
                            " WHERE id IN (SELECT id FROM flagged) RETURNING id, case_id, detail, {FACT_COLUMNS}"
                        ));
                        flagged_rows.extend(q.build().fetch_all(&mut *tx).await?);
                    }
                    // Delivered in the order the thresholds were passed,
                    // as the candidates were found (RETURNING has none).
                    let found: HashMap<i64, usize> = candidates[i].iter().enumerate().map(|(n, id)| (*id, n)).collect();
                    flagged_rows.sort_by_key(|row| row.try_get::<i64, _>("id").ok().and_then(|id| found.get(&id).copied()));
                    for row in flagged_rows {
                        let id: i64 = row.try_get("id")?;
                        let case_id: i64 = row.try_get("case_id")?;
                        let kind: String = row.try_get("kind")?;
                        let (resident_id, origin) = cases
                            .get(&case_id)
                            .ok_or_else(|| corrupt("a reminder of a case not asked for"))?
                            .clone();
                        let due = ReminderDue {
                            message_id: format!("reminder-{id}-{}", threshold(escalated)),
                            resident_id,
                            origin,
                            debtor: row.try_get("debtor")?,
                            kind: ObligationKind::parse(&kind)
                                .ok_or_else(|| corrupt(format!("kind {kind}")))?,
                            detail: row.try_get("detail")?,
                            due_at: from_us(row.try_get("due_us")?)?,
                            escalated,
                        };
                        // The row as flagged, and as it was just before.
                        let after = obligation_facts(&row)?;
                        let mut before = after.clone();
                        if escalated {
                            before.flagged_escalated = false;
                        } else {
                            before.flagged_overdue = false;
                        }
                        tallies.obligation(&before, -1);
                        tallies.obligation(&after, 1);
                        let bytes = envelope(&due);
                        let hash = ring::digest::digest(&ring::digest::SHA256, &bytes);
                        reminders.push($crate::store::sql::NewMessage {
                            case_id,
                            sender: SYSTEM_SENDER.to_string(),
                            message_id: due.message_id,
                            content_hash: hash.as_ref().to_vec(),
                            kind: "REMINDER",
                            // Reminders are owed no receipt.
                            recipients: vec![(due.debtor, None)],
                            envelope: bytes,
                            body: "{\"Reminder\":{\"about\":null}}".into(),
                        });
                        flagged_cases.push(case_id);
                    }
                    if !escalated {
                        overdue = reminders.len();
                    }
                }
                // A flag is part of what its case's publishes read: the
                // case's version moves with it (`RecentCases`). With the
                // tallies' changes, written with the reminders.
                let mut writes: Vec<$crate::store::sql::Write<'_, $db>> = Vec::new();
                for chunk in flagged_cases.chunks(<$db as PushRows>::rows_per_statement(1)) {
                    writes.push(Box::new(move |q| {
                        q.push("UPDATE cases SET version = version + 1 WHERE id IN (SELECT column1 FROM ");
                        <$db as PushRows>::push_rows(q, Rows::new(chunk.len()).int(chunk.iter().copied()));
                        q.push(")");
                    }));
                }
                writes.extend(Self::tally_writes(tallies));
                let ids = if reminders.is_empty() {
                    Vec::new()
                } else {
                    Self::insert_messages_after(&mut tx, &reminders, now_us, writes).await?
                };
                let sent = |ids: &[Option<i64>]| ids.iter().filter(|id| id.is_some()).count() as u64;
                tx.commit().await?;
                Ok((sent(&ids[..overdue]), sent(&ids[overdue..])))
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            #[tracing::instrument(skip_all, fields(batch = batch.len()))]
            async fn publish(
                &self,
                batch: &[$crate::store::Candidate],
                policy: &$crate::domain::Policy,
                now: time::OffsetDateTime,
            ) -> Result<Vec<$crate::store::Outcome>, $crate::store::StoreError> {
                // Rarely more than once: the case locks keep publishers of
                // the same case apart, so only a message id taken by another
                // case (the first try looks among the batch's cases only),
                // or a deadlock PostgreSQL broke, lands here.
                let mut tries = 1;
                loop {
                    match self.publish_once(batch, policy, now, tries > 1).await {
                        Err($crate::store::StoreError::Contended(e)) if tries < 5 => {
                            // The database's message only: the detail of a
                            // unique violation names the key, a resident's
                            // full ID number among them.
                            let error = e.as_ref().map_or_else(|| "an id taken".to_string(), ToString::to_string);
                            tracing::debug!(tries, error, "publish contended, writing it again");
                            tries += 1;
                        }
                        done => return done,
                    }
                }
            }

            #[tracing::instrument(skip_all)]
            async fn sweep(
                &self,
                policy: &$crate::domain::Policy,
                now: time::OffsetDateTime,
                limit: u32,
                envelope: &$crate::store::ReminderEnvelope,
            ) -> Result<$crate::store::SweepReport, $crate::store::StoreError> {
                // Both beside publishers, under the locks of the cases they
                // write.
                let cases_reconciled = self.reconcile_due_cases(policy, now, limit).await?;
                let (overdue_reminders, escalation_reminders) =
                    self.send_reminders(now, limit, envelope).await?;
                Ok($crate::store::SweepReport {
                    cases_reconciled,
                    overdue_reminders,
                    escalation_reminders,
                })
            }

            #[tracing::instrument(skip_all)]
            async fn inbox(
                &self,
                recipient: &$crate::domain::RegionCode,
                after_seq: i64,
                limit: u32,
            ) -> Result<Vec<$crate::store::DeliveryRow>, $crate::store::StoreError> {
                use sqlx::Row as _;
                use $crate::store::{DeliveryRow, from_us};
                let rows = sqlx::query(
                    "SELECT d.seq, m.sender, m.accepted_us, m.envelope, d.received_us \
                     FROM deliveries d JOIN messages m ON m.id = d.message \
                     WHERE d.recipient = $1 AND d.seq > $2 ORDER BY d.seq LIMIT $3",
                )
                .bind(recipient.as_str())
                .bind(after_seq)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|row| {
                        Ok(DeliveryRow {
                            seq: row.try_get("seq")?,
                            sender: row.try_get("sender")?,
                            accepted_at: from_us(row.try_get("accepted_us")?)?,
                            envelope: row.try_get("envelope")?,
                            received_at: row
                                .try_get::<Option<i64>, _>("received_us")?
                                .map(from_us)
                                .transpose()?,
                        })
                    })
                    .collect()
            }

            #[tracing::instrument(skip_all)]
            async fn acknowledge(
                &self,
                recipient: &$crate::domain::RegionCode,
                up_to_seq: Option<i64>,
                messages: &[$crate::store::MessageRef],
                now: time::OffsetDateTime,
            ) -> Result<u64, $crate::store::StoreError> {
                use $crate::store::sql::{FACT_COLUMNS, obligation_facts};
                let now_us = $crate::store::to_us(now);
                // The tallies' changes come from the rows as each statement
                // leaves them (RETURNING), so it runs beside other writers.
                let (_guard, mut tx) = self.begin_acknowledge(recipient).await?;
                let mut tallies = $crate::domain::tally::Tallies::default();
                let mut fulfilled = Vec::new();
                let mut marked = 0;
                // Receipt obligations first, while the deliveries still show
                // which are newly received: each delivery's by its key.
                use $crate::store::sql::RECEIPT_KEY_SQL;
                let fulfil = |deliveries: &str| {
                    format!(
                        "UPDATE obligations SET \
                         state = CASE WHEN due_us >= $1 THEN 'FULFILLED_ON_TIME' ELSE 'FULFILLED_LATE' END, \
                         closed_us = $1, closed_by = 'acknowledged' \
                         WHERE state = 'OPEN' AND (case_id, key) IN \
                         (SELECT m.case_id, {RECEIPT_KEY_SQL} {deliveries}) RETURNING {FACT_COLUMNS}"
                    )
                };
                if let Some(seq) = up_to_seq {
                    const UP_TO: &str = "FROM deliveries d JOIN messages m ON m.id = d.message \
                         WHERE d.recipient = $2 AND d.seq <= $3 AND d.received_us IS NULL";
                    fulfilled.extend(
                        sqlx::query(sqlx::AssertSqlSafe(fulfil(UP_TO)))
                            .bind(now_us)
                            .bind(recipient.as_str())
                            .bind(seq)
                            .fetch_all(&mut *tx)
                            .await?,
                    );
                    marked += sqlx::query(
                        "UPDATE deliveries SET received_us = $1 \
                         WHERE recipient = $2 AND seq <= $3 AND received_us IS NULL",
                    )
                    .bind(now_us)
                    .bind(recipient.as_str())
                    .bind(seq)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                }
                for m in messages {
                    const THESE: &str = "FROM deliveries d JOIN messages m ON m.id = d.message \
                         WHERE d.recipient = $2 AND d.received_us IS NULL \
                         AND m.sender = $3 AND m.message_id = $4";
                    fulfilled.extend(
                        sqlx::query(sqlx::AssertSqlSafe(fulfil(THESE)))
                            .bind(now_us)
                            .bind(recipient.as_str())
                            .bind(&m.sender)
                            .bind(&m.message_id)
                            .fetch_all(&mut *tx)
                            .await?,
                    );
                    marked += sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE deliveries SET received_us = $1 WHERE seq IN (SELECT d.seq {THESE})"
                    )))
                        .bind(now_us)
                        .bind(recipient.as_str())
                        .bind(&m.sender)
                        .bind(&m.message_id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
                for row in &fulfilled {
                    let after = obligation_facts(row)?;
                    let before = $crate::domain::tally::ObligationFacts {
                        state: "OPEN".into(),
                        closed_us: None,
                        ..after.clone()
                    };
                    tallies.obligation(&before, -1);
                    tallies.obligation(&after, 1);
                }
                Self::record_tally_changes(&mut tx, tallies).await?;
                tx.commit().await?;
                Ok(marked)
            }

            #[tracing::instrument(skip_all)]
            async fn cases_of(
                &self,
                resident_id: &str,
            ) -> Result<Vec<$crate::store::StoredCase>, $crate::store::StoreError> {
                let rows = sqlx::query(
                    "SELECT id, state, findings FROM cases WHERE resident_id = $1 ORDER BY id",
                )
                .bind(resident_id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map($crate::store::sql::stored_case).collect()
            }

            #[tracing::instrument(skip_all)]
            async fn history(
                &self,
                case_id: i64,
            ) -> Result<Vec<$crate::store::HistoryRow>, $crate::store::StoreError> {
                use sqlx::Row as _;
                use $crate::domain::case::Standing;
                use $crate::store::{HistoryRow, from_us};
                use $crate::store::sql::corrupt;
                let rows = sqlx::query(
                    "SELECT message_id, sender, recipient, kind, accepted_us, standing \
                     FROM messages WHERE case_id = $1 ORDER BY id",
                )
                .bind(case_id)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|row| {
                        let standing: String = row.try_get("standing")?;
                        Ok(HistoryRow {
                            message_id: row.try_get("message_id")?,
                            sender: row.try_get("sender")?,
                            recipient: row.try_get("recipient")?,
                            kind: row.try_get("kind")?,
                            accepted_at: from_us(row.try_get("accepted_us")?)?,
                            standing: Standing::parse(&standing)
                                .ok_or_else(|| corrupt(format!("standing {standing}")))?,
                        })
                    })
                    .collect()
            }

            #[tracing::instrument(skip_all)]
            async fn record_read(
                &self,
                reader: &str,
                case_id: i64,
                purpose: &str,
                access: &str,
                now: time::OffsetDateTime,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO case_reads (reader, case_id, purpose, access, read_us) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(reader)
                .bind(case_id)
                .bind(purpose)
                .bind(access)
                .bind($crate::store::to_us(now))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            #[tracing::instrument(skip_all)]
            async fn list_cases(
                &self,
                q: &$crate::store::CaseQuery,
            ) -> Result<Vec<$crate::store::StoredCase>, $crate::store::StoreError> {
                use $crate::store::Role;
                // Two fixed statements, one per role: the column names are
                // never built from input.
                let sql = match q.role {
                    Role::Origin => {
                        "SELECT id, state, findings FROM cases WHERE origin = $1 \
                         AND ($2 = '' OR status = $2) AND ($3 = '' OR destination = $3) \
                         AND id > $4 ORDER BY id LIMIT $5"
                    }
                    Role::Destination => {
                        "SELECT id, state, findings FROM cases WHERE destination = $1 \
                         AND ($2 = '' OR status = $2) AND ($3 = '' OR origin = $3) \
                         AND id > $4 ORDER BY id LIMIT $5"
                    }
                };
                let rows = sqlx::query(sql)
                    .bind(q.office.as_str())
                    .bind(q.status.map(|s| s.as_str()).unwrap_or(""))
                    .bind(q.counterpart.as_ref().map(|c| c.as_str()).unwrap_or(""))
                    .bind(q.after_id)
                    .bind(i64::from(q.limit))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map($crate::store::sql::stored_case).collect()
            }

            #[tracing::instrument(skip_all)]
            async fn case_obligations(
                &self,
                case_id: i64,
            ) -> Result<Vec<$crate::store::ObligationRow>, $crate::store::StoreError> {
                use $crate::store::sql::OBLIGATION_COLUMNS;
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {OBLIGATION_COLUMNS} FROM obligations o JOIN cases c ON c.id = o.case_id \
                     WHERE o.case_id = $1 ORDER BY o.due_us, o.id"
                )))
                .bind(case_id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map($crate::store::sql::obligation_row).collect()
            }

            #[tracing::instrument(skip_all)]
            async fn list_obligations(
                &self,
                q: &$crate::store::ObligationQuery,
            ) -> Result<Vec<$crate::store::ObligationRow>, $crate::store::StoreError> {
                use $crate::store::to_us;
                let sql = $crate::store::list_obligations_sql(q.as_debtor, q.overdue_at.is_some());
                let (after_due, after_id) = q.after.unwrap_or((i64::MIN, i64::MIN));
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(q.office.as_str())
                    .bind(q.kind.map(|k| k.as_str()).unwrap_or(""))
                    .bind(q.state.map(|s| s.as_str()).unwrap_or(""))
                    .bind(q.overdue_at.map(to_us).unwrap_or(0))
                    .bind(q.counterpart.as_ref().map(|c| c.as_str()).unwrap_or(""))
                    .bind(q.due_after.map(to_us).unwrap_or(i64::MIN))
                    .bind(q.due_before.map(to_us).unwrap_or(i64::MAX))
                    .bind(after_due)
                    .bind(after_id)
                    .bind(i64::from(q.limit))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map($crate::store::sql::obligation_row).collect()
            }

            #[tracing::instrument(skip_all)]
            async fn backlog(
                &self,
                q: &$crate::store::BacklogQuery,
            ) -> Result<
                std::collections::BTreeMap<(String, $crate::store::Side), $crate::domain::kpi::SideStats>,
                $crate::store::StoreError,
            > {
                use sqlx::Row as _;
                use $crate::domain::tally::{Class, Current, Daily, Unflagged, shanghai_day, side_stats};
                use $crate::store::sql::{corrupt, daily};
                use $crate::store::{Side, to_us};
                type Key = (String, Side);
                let side = |raw: String| Side::parse(&raw).ok_or_else(|| corrupt(format!("side {raw}")));
                // Office codes are digits: everything with the prefix sorts
                // below the prefix followed by ':'.
                let upper = format!("{}:", q.prefix);
                // A county's offices are counted together, as the county (its
                // township offices are tallied too, but the county's own
                // office only within the county); a township is its own row.
                let level = if q.prefix.len() == 9 { 9 } else { q.child_len.min(6) as i64 };
                let now_us = to_us(q.now);
                let first_day = shanghai_day(to_us(q.window_start));
                let last_day = shanghai_day(to_us(q.window_end) - 1);

                // The stored tallies and the changes not yet folded into
                // them, as of one instant.
                let mut tx = self.pool.begin_with(Self::BEGIN_SNAPSHOT).await?;
                let mut now: std::collections::BTreeMap<Key, Current> = Default::default();
                for row in sqlx::query(
                    $crate::store::sql::TALLIES_NOW_SQL,
                )
                .bind(&q.prefix)
                .bind(&upper)
                .bind(level)
                .fetch_all(&mut *tx)
                .await?
                {
                    now.entry((row.try_get("prefix")?, side(row.try_get("side")?)?)).or_default().add(
                        &Current {
                            open: row.try_get("open")?,
                            flagged_overdue: row.try_get("flagged_overdue")?,
                            flagged_escalated: row.try_get("flagged_escalated")?,
                            orphans: row.try_get("orphans")?,
                            discrepancies: row.try_get("discrepancies")?,
                        },
                    );
                }
                // The children's parent is the region, but a county or a
                // township is its own child: its row sits under its parent.
                let children_of = if q.prefix.len() as i64 == level {
                    $crate::domain::tally::parent(&q.prefix)
                } else {
                    q.prefix.as_str()
                };
                let mut days: std::collections::BTreeMap<Key, Daily> = Default::default();
                for row in sqlx::query(
                    $crate::store::sql::TALLIES_DAILY_SQL,
                )
                .bind(children_of)
                .bind(first_day)
                .bind(last_day)
                .bind(&q.prefix)
                .bind(&upper)
                .fetch_all(&mut *tx)
                .await?
                {
                    days.entry((row.try_get("prefix")?, side(row.try_get("side")?)?))
                        .or_default()
                        .add(&daily(&row)?);
                }
                let pending = Self::pending_tallies(&mut *tx).await?;
                let among = |prefix: &str| prefix >= q.prefix.as_str() && prefix < upper.as_str();
                for ((prefix, s), c) in &pending.current {
                    if among(prefix.as_str()) && prefix.len() as i64 == level {
                        now.entry((prefix.to_string(), *s)).or_default().add(c);
                    }
                }
                for ((prefix, s, day), d) in &pending.daily {
                    if among(prefix.as_str())
                        && $crate::domain::tally::parent(prefix.as_str()) == children_of
                        && (first_day..=last_day).contains(day)
                    {
                        days.entry((prefix.to_string(), *s)).or_default().add(d);
                    }
                }
                // What the sweeper has not flagged yet, through its own
                // partial indexes: two fixed statements per side.
                let mut unflagged: std::collections::BTreeMap<Key, Unflagged> = Default::default();
                let sides = [(Side::Debtor, "debtor"), (Side::Creditor, "creditor")];
                for ((s, own), escalated) in sides.into_iter().flat_map(|side| [(side, false), (side, true)]) {
                    let rows = sqlx::query(sqlx::AssertSqlSafe(
                        $crate::store::sql::unflagged_sql(own, escalated),
                    ))
                    .bind(level)
                    .bind(now_us)
                    .bind(&q.prefix)
                    .bind(&upper)
                    .fetch_all(&mut *tx)
                    .await?;
                    for row in rows {
                        let counts = unflagged.entry((row.try_get("g")?, s)).or_default();
                        if escalated {
                            counts.escalated += 1;
                        } else {
                            let kind: String = row.try_get("kind")?;
                            let due_day = shanghai_day(row.try_get("due_us")?);
                            counts.overdue(Class::of_kind(&kind), (first_day..=last_day).contains(&due_day));
                        }
                    }
                }
                tx.commit().await?;
                let keys: std::collections::BTreeSet<Key> = now
                    .keys()
                    .chain(days.keys())
                    .chain(unflagged.keys())
                    .cloned()
                    .collect();
                Ok(keys
                    .into_iter()
                    .map(|k| {
                        let stats = side_stats(
                            &now.get(&k).cloned().unwrap_or_default(),
                            &days.get(&k).cloned().unwrap_or_default(),
                            &unflagged.get(&k).cloned().unwrap_or_default(),
                        );
                        (k, stats)
                    })
                    .collect())
            }

            #[tracing::instrument(skip_all)]
            async fn region_days(
                &self,
                prefix: &str,
                side: $crate::store::Side,
                first_day: i64,
                now: time::OffsetDateTime,
            ) -> Result<$crate::domain::tally::RegionDays, $crate::store::StoreError> {
                use sqlx::Row as _;
                use $crate::domain::tally::{Class, RegionDays, parent, shanghai_day};
                use $crate::store::Side;
                let mut tx = self.pool.begin_with(Self::BEGIN_SNAPSHOT).await?;
                let open: Option<i64> = sqlx::query(
                    "SELECT open FROM tallies_now WHERE prefix = $1 AND side = $2",
                )
                .bind(prefix)
                .bind(side.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .map(|row| row.try_get("open"))
                .transpose()?;
                let mut region = RegionDays { open: open.unwrap_or(0), ..RegionDays::default() };
                for row in sqlx::query($crate::store::sql::REGION_DAYS_SQL)
                .bind(parent(prefix))
                .bind(first_day)
                .bind(prefix)
                .bind(side.as_str())
                .fetch_all(&mut *tx)
                .await?
                {
                    region.days.insert(row.try_get("day")?, $crate::store::sql::daily(&row)?);
                }
                let pending = Self::pending_tallies(&mut *tx).await?;
                let tallied = $crate::domain::tally::Prefix::new(prefix);
                if let Some(c) = tallied.and_then(|p| pending.current.get(&(p, side))) {
                    region.open += c.open;
                }
                for ((p, s, day), d) in &pending.daily {
                    if Some(*p) == tallied && *s == side && *day >= first_day {
                        region.days.entry(*day).or_default().add(d);
                    }
                }
                let own = match side {
                    Side::Debtor => "debtor",
                    Side::Creditor => "creditor",
                };
                for row in sqlx::query(sqlx::AssertSqlSafe(
                    $crate::store::sql::unflagged_sql(own, false),
                ))
                .bind(prefix.len() as i64)
                .bind($crate::store::to_us(now))
                .bind(prefix)
                .bind(format!("{prefix}:"))
                .fetch_all(&mut *tx)
                .await?
                {
                    let kind: String = row.try_get("kind")?;
                    region
                        .unflagged
                        .push((shanghai_day(row.try_get("due_us")?), Class::of_kind(&kind)));
                }
                tx.commit().await?;
                Ok(region)
            }

            #[tracing::instrument(skip_all)]
            async fn overdue_in_region(
                &self,
                prefix: &str,
                now: time::OffsetDateTime,
                after: Option<(i64, i64)>,
                limit: u32,
            ) -> Result<
                Vec<($crate::store::ObligationRow, Option<String>)>,
                $crate::store::StoreError,
            > {
                use sqlx::Row as _;
                let (after_due, after_id) = after.unwrap_or((i64::MIN, i64::MIN));
                let rows = sqlx::query(sqlx::AssertSqlSafe(
                    $crate::store::sql::overdue_in_region_sql(prefix.len()),
                ))
                .bind(prefix)
                .bind(format!("{prefix}:"))
                .bind($crate::store::to_us(now))
                .bind(after_due)
                .bind(after_id)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        let state: String = row.try_get("case_state")?;
                        let name = serde_json::from_str::<$crate::domain::CaseState>(&state)
                            .ok()
                            .and_then(|s| s.origin_report.or(s.destination_report))
                            .map(|p| p.name.as_str().to_string());
                        Ok(($crate::store::sql::obligation_row(row)?, name))
                    })
                    .collect()
            }

            async fn ping(&self) -> Result<(), $crate::store::StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn upsert_office(
                &self,
                office: &$crate::store::OfficeRow,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO offices (code, name, contact, active, updated_us) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (code) DO UPDATE SET \
                     name = excluded.name, contact = excluded.contact, \
                     active = excluded.active, updated_us = excluded.updated_us",
                )
                .bind(&office.code)
                .bind(&office.name)
                .bind(&office.contact)
                .bind(office.active)
                .bind($crate::store::to_us(office.updated_at))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn offices(
                &self,
                prefix: &str,
                after_code: &str,
                limit: u32,
            ) -> Result<Vec<$crate::store::OfficeRow>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let rows = sqlx::query(
                    "SELECT code, name, contact, active, updated_us FROM offices \
                     WHERE code >= $1 AND code < $2 AND code > $3 ORDER BY code LIMIT $4",
                )
                .bind(prefix)
                .bind(format!("{prefix}:"))
                .bind(after_code)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok($crate::store::OfficeRow {
                            code: row.try_get("code")?,
                            name: row.try_get("name")?,
                            contact: row.try_get("contact")?,
                            active: row.try_get("active")?,
                            updated_at: $crate::store::from_us(row.try_get("updated_us")?)?,
                        })
                    })
                    .collect()
            }

            async fn open_obligations(
                &self,
                now: time::OffsetDateTime,
            ) -> Result<(i64, i64), $crate::store::StoreError> {
                use sqlx::Row as _;
                // From the tallies (every obligation has one debtor, so one
                // province row on that side), plus what the sweeper has not
                // flagged yet: a scrape never counts the obligations.
                let mut tx = self.pool.begin_with(Self::BEGIN_SNAPSHOT).await?;
                let row = sqlx::query(
                    "SELECT CAST(COALESCE(SUM(open), 0) AS BIGINT) AS open, \
                     CAST(COALESCE(SUM(flagged_overdue), 0) AS BIGINT) AS overdue \
                     FROM tallies_now WHERE side = 'debtor' AND length(prefix) = 2",
                )
                .fetch_one(&mut *tx)
                .await?;
                let unflagged: i64 = sqlx::query(
                    "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM obligations \
                     WHERE state = 'OPEN' AND reminded_overdue_us IS NULL AND due_us < $1",
                )
                .bind($crate::store::to_us(now))
                .fetch_one(&mut *tx)
                .await?
                .try_get("n")?;
                let (mut open, mut overdue): (i64, i64) = (row.try_get("open")?, row.try_get("overdue")?);
                let pending = Self::pending_tallies(&mut *tx).await?;
                for ((prefix, side), c) in &pending.current {
                    if *side == $crate::domain::kpi::Side::Debtor && prefix.len() == 2 {
                        open += c.open;
                        overdue += c.flagged_overdue;
                    }
                }
                tx.commit().await?;
                Ok((open, overdue + unflagged))
            }

            async fn build_tallies(&self) -> Result<Option<u64>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let (_guard, mut tx) = self.begin_write().await?;
                let built: i64 = sqlx::query("SELECT COUNT(*) AS n FROM tallies_built")
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("n")?;
                if built > 0 {
                    return Ok(None);
                }
                // Changes not yet folded in are counted again here.
                for table in ["tallies_now", "tallies_daily", "tally_changes"] {
                    sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
                        .execute(&mut *tx)
                        .await?;
                }
                let (_, n) = Self::count_tallies(&mut tx, true).await?;
                sqlx::query("INSERT INTO tallies_built (built_us) VALUES ($1)")
                    .bind($crate::store::to_us(time::OffsetDateTime::now_utc()))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                // Outside any transaction (VACUUM cannot run in one), by
                // the simple protocol; a new database has nothing to tidy.
                if let (Some(tidy), 1..) = (Self::AFTER_TALLIES_BUILT, n) {
                    sqlx::raw_sql(tidy).execute(&self.pool).await?;
                }
                Ok(Some(n))
            }

            async fn fold_tallies(&self) -> Result<u64, $crate::store::StoreError> {
                // An idle server's folder finds nothing ten times a second:
                // a read tells so without the folder's lock (on SQLite, the
                // write lock that publishers wait for).
                let pending: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tally_changes)")
                    .fetch_one(&self.pool)
                    .await?;
                if !pending {
                    return Ok(0);
                }
                let (_guard, mut tx) = self.begin_fold().await?;
                let (folded, n) =
                    Self::read_tally_changes(&mut tx, "DELETE FROM tally_changes RETURNING changes").await?;
                if n == 0 {
                    return Ok(0);
                }
                Self::add_to_tallies(&mut tx, folded).await?;
                tx.commit().await?;
                Ok(n)
            }

            async fn check_tallies(&self) -> Result<Option<String>, $crate::store::StoreError> {
                let (_guard, mut tx) = self.begin_write().await?;
                let (counted, _) = Self::count_tallies(&mut tx, false).await?;
                let stored = Self::stored_tallies(&mut tx).await?;
                tx.rollback().await?;
                Ok($crate::domain::tally::difference(&stored, &counted))
            }

            async fn analyze_grown_tables(&self) -> Result<u64, $crate::store::StoreError> {
                let Some(grown) = Self::GROWN_TABLES else {
                    return Ok(0);
                };
                let tables: Vec<String> = sqlx::query_scalar(grown).fetch_all(&self.pool).await?;
                if tables.is_empty() {
                    return Ok(0);
                }
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("ANALYZE {}", tables.join(", "))))
                    .execute(&self.pool)
                    .await?;
                Ok(tables.len() as u64)
            }

            fn pool_use(&self) -> (u32, u32) {
                std::iter::once(&self.pool)
                    .chain(self.publishing_pool())
                    .fold((0, 0), |(open, idle), p| (open + p.size(), idle + p.num_idle() as u32))
            }

            fn writers(&self) -> usize {
                Self::WRITERS
            }
        }
    };
}

pub(crate) use sql_store;

#[cfg(test)]
mod tests {
    use super::percent;

    #[test]
    fn progress_is_the_share_of_the_id_range_read() {
        assert_eq!(percent(1, 1, 101), 0);
        assert_eq!(percent(1, 51, 101), 50);
        assert_eq!(percent(1, 101, 101), 100);
        // One obligation, or ids read past the range taken at the start.
        assert_eq!(percent(7, 7, 7), 100);
        assert_eq!(percent(1, 500, 101), 100);
        assert_eq!(percent(i64::MIN, i64::MAX, i64::MAX), 100);
        assert_eq!(percent(i64::MIN, 0, i64::MAX), 50);
    }
}
