//! Tallies: the counts a backlog needs, kept as running sums per region
//! (province, city and county prefixes), side and due day, so that a
//! province's backlog reads a few thousand small rows instead of counting
//! millions of obligations. Pure: the store says what an obligation or case
//! row was and what it became; this says what that adds to which counter.
//!
//! "Overdue" and "escalated" are counted here once the sweeper has flagged
//! an obligation (its reminder went out); what is past due but not yet
//! flagged — the sweeper's lag — is counted from the obligations themselves
//! through the sweeper's own partial indexes, so the sum is exact at any
//! instant.

use std::collections::BTreeMap;

use super::kpi::{Replies, Side, SideStats, put_varint};

/// The region levels tallied: province, city, county and township (an
/// office's code is its county's or its township's).
pub const LEVELS: [usize; 4] = [2, 4, 6, 9];

/// The region a tallied prefix belongs to: its code at the level above
/// ('' for a province).
pub fn parent(prefix: &str) -> &str {
    let up = LEVELS
        .into_iter()
        .take_while(|&n| n < prefix.len())
        .last()
        .unwrap_or(0);
    prefix.get(..up).unwrap_or_default()
}

/// A tallied region: an office code's first 2, 4, 6 or 9 digits
/// (`LEVELS`). Copy and ordered as its text, so that counting an obligation
/// (a publish counts several a message) allocates nothing for its keys.
///
/// Ordered by its digits padded with zero bytes, which sort before any
/// digit: the order of the text, without reading it as text.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Prefix {
    digits: [u8; 9],
    len: u8,
}

impl Prefix {
    /// The prefix this text is: at most 9 ASCII digits.
    pub fn new(text: &str) -> Option<Prefix> {
        let bytes = text.as_bytes();
        if bytes.len() > 9 || !bytes.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let mut digits = [0; 9];
        digits[..bytes.len()].copy_from_slice(bytes);
        Some(Prefix {
            digits,
            len: bytes.len() as u8,
        })
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits are ever stored (`new`).
        std::str::from_utf8(&self.digits[..usize::from(self.len)]).unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl std::fmt::Debug for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

const DAY_US: i64 = 86_400_000_000;
/// Days are counted in China Standard Time (UTC+8, no daylight saving).
const SHANGHAI_OFFSET_US: i64 = 8 * 3_600_000_000;

/// The Shanghai calendar day of an instant, as days since 1970-01-01.
pub fn shanghai_day(us: i64) -> i64 {
    (us + SHANGHAI_OFFSET_US).div_euclid(DAY_US)
}

/// The instant a Shanghai day begins.
pub fn day_start_us(day: i64) -> i64 {
    day * DAY_US - SHANGHAI_OFFSET_US
}

/// What an obligation counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Receipt,
    Feedback,
    /// Any other answer owed (confirmation, verification, request).
    Answer,
}

impl Class {
    pub fn of_kind(kind: &str) -> Class {
        match kind {
            "RECEIPT" => Class::Receipt,
            "PERIODIC_FEEDBACK" => Class::Feedback,
            _ => Class::Answer,
        }
    }
}

/// One obligation row, as far as tallies care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObligationFacts {
    pub class: Class,
    pub debtor: String,
    pub creditor: String,
    /// OPEN, FULFILLED_ON_TIME, FULFILLED_LATE or CANCELLED.
    pub state: String,
    pub opened_us: i64,
    pub due_us: i64,
    pub escalates_us: i64,
    pub closed_us: Option<i64>,
    /// The sweeper has sent its overdue (escalation) reminder.
    pub flagged_overdue: bool,
    pub flagged_escalated: bool,
}

/// Counts that hold now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Current {
    pub open: i64,
    pub flagged_overdue: i64,
    pub flagged_escalated: i64,
    pub orphans: i64,
    pub discrepancies: i64,
}

impl Current {
    pub fn add(&mut self, o: &Current) {
        self.open += o.open;
        self.flagged_overdue += o.flagged_overdue;
        self.flagged_escalated += o.flagged_escalated;
        self.orphans += o.orphans;
        self.discrepancies += o.discrepancies;
    }

    pub fn is_zero(&self) -> bool {
        *self == Current::default()
    }
}

/// How many obligations entered and left each state on one day: open
/// (opened, then answered or cancelled), overdue (past due while open) and
/// escalated (past escalation while open). Summed over every day up to
/// one, they say exactly how many were in that state when it ended — a
/// trend's points without reading a single obligation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Moves {
    pub open_in: i64,
    pub open_out: i64,
    pub overdue_in: i64,
    pub overdue_out: i64,
    pub escalated_in: i64,
    pub escalated_out: i64,
}

impl Moves {
    pub fn add(&mut self, o: &Moves) {
        self.open_in += o.open_in;
        self.open_out += o.open_out;
        self.overdue_in += o.overdue_in;
        self.overdue_out += o.overdue_out;
        self.escalated_in += o.escalated_in;
        self.escalated_out += o.escalated_out;
    }

    /// Open, overdue and escalated at the end of the last day summed.
    pub fn standing(&self) -> (i64, i64, i64) {
        (
            self.open_in - self.open_out,
            self.overdue_in - self.overdue_out,
            self.escalated_in - self.escalated_out,
        )
    }
}

/// Counts of one day: of the obligations due that day (cancelled ones never
/// count), and the [`Moves`] that happened on it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Daily {
    pub receipts_answered: i64,
    pub receipts_on_time: i64,
    pub receipts_flagged: i64,
    pub feedback_answered: i64,
    pub feedback_flagged: i64,
    /// Every answer but receipts (feedback included).
    pub answers_answered: i64,
    pub answers_on_time: i64,
    pub answers_flagged: i64,
    /// Reply times of the answers given.
    pub replies: Replies,
    pub moves: Moves,
}

impl Daily {
    pub fn add(&mut self, o: &Daily) {
        self.receipts_answered += o.receipts_answered;
        self.receipts_on_time += o.receipts_on_time;
        self.receipts_flagged += o.receipts_flagged;
        self.feedback_answered += o.feedback_answered;
        self.feedback_flagged += o.feedback_flagged;
        self.answers_answered += o.answers_answered;
        self.answers_on_time += o.answers_on_time;
        self.answers_flagged += o.answers_flagged;
        self.replies.merge(&o.replies);
        self.moves.add(&o.moves);
    }

    pub fn is_zero(&self) -> bool {
        self.receipts_answered == 0
            && self.receipts_on_time == 0
            && self.receipts_flagged == 0
            && self.feedback_answered == 0
            && self.feedback_flagged == 0
            && self.answers_answered == 0
            && self.answers_on_time == 0
            && self.answers_flagged == 0
            && self.replies.is_empty()
            && self.moves == Moves::default()
    }
}

/// Changes to tallies, collected over a transaction and written at its end.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Tallies {
    pub current: BTreeMap<(Prefix, Side), Current>,
    pub daily: BTreeMap<(Prefix, Side, i64), Daily>,
}

impl Tallies {
    /// Adds (`sign` 1) or takes away (-1) what an obligation row counts for.
    pub fn obligation(&mut self, o: &ObligationFacts, sign: i64) {
        let open = o.state == "OPEN";
        let on_time = o.state == "FULFILLED_ON_TIME";
        let answered = on_time || o.state == "FULFILLED_LATE";
        let now = Current {
            open: i64::from(open) * sign,
            flagged_overdue: i64::from(open && o.flagged_overdue) * sign,
            flagged_escalated: i64::from(open && o.flagged_escalated) * sign,
            ..Current::default()
        };
        let flagged = open && o.flagged_overdue;
        let due_day = shanghai_day(o.due_us);
        let mut days: Vec<(i64, Daily)> = Vec::with_capacity(4);
        let day = on(&mut days, due_day);
        if o.state != "CANCELLED" {
            match o.class {
                Class::Receipt => {
                    day.receipts_answered = i64::from(answered) * sign;
                    day.receipts_on_time = i64::from(on_time) * sign;
                    day.receipts_flagged = i64::from(flagged) * sign;
                }
                Class::Feedback | Class::Answer => {
                    if o.class == Class::Feedback {
                        day.feedback_answered = i64::from(answered) * sign;
                        day.feedback_flagged = i64::from(flagged) * sign;
                    }
                    day.answers_answered = i64::from(answered) * sign;
                    day.answers_on_time = i64::from(on_time) * sign;
                    day.answers_flagged = i64::from(flagged) * sign;
                    if let (true, Some(closed)) = (answered, o.closed_us) {
                        day.replies
                            .add(((closed - o.opened_us) / 1_000_000).max(0), sign);
                    }
                }
            }
        }
        // Each state is an interval of days [entered, left): entered when
        // opened and past its threshold, left when closed (never before
        // it was entered). Cancelled obligations were open too.
        let opened = shanghai_day(o.opened_us);
        // Closed means not OPEN, whatever closed_us says: so that what is
        // in a state now adds up to the open count of `Current`.
        let closed = (!open).then(|| shanghai_day(o.closed_us.unwrap_or(o.opened_us)));
        type Counter = fn(&mut Moves) -> &mut i64;
        let intervals: [(i64, Counter, Counter); 3] = [
            (opened, |m| &mut m.open_in, |m| &mut m.open_out),
            (
                opened.max(due_day),
                |m| &mut m.overdue_in,
                |m| &mut m.overdue_out,
            ),
            (
                opened.max(shanghai_day(o.escalates_us)),
                |m| &mut m.escalated_in,
                |m| &mut m.escalated_out,
            ),
        ];
        for (entered, into, out_of) in intervals {
            *into(&mut on(&mut days, entered).moves) += sign;
            if let Some(closed) = closed {
                *out_of(&mut on(&mut days, entered.max(closed)).moves) += sign;
            }
        }
        for (side, office) in [(Side::Debtor, &o.debtor), (Side::Creditor, &o.creditor)] {
            for prefix in prefixes(office) {
                if !now.is_zero() {
                    self.current.entry((prefix, side)).or_default().add(&now);
                }
                for (day, counts) in &days {
                    if !counts.is_zero() {
                        self.daily
                            .entry((prefix, side, *day))
                            .or_default()
                            .add(counts);
                    }
                }
            }
        }
    }

    /// Adds or takes away a case's orphans and open discrepancies: the
    /// destination's as debtor, the origin's as creditor.
    pub fn case(
        &mut self,
        origin: &str,
        destination: Option<&str>,
        orphans: i64,
        discrepancies: i64,
        sign: i64,
    ) {
        if orphans == 0 && discrepancies == 0 {
            return;
        }
        let counts = Current {
            orphans: orphans * sign,
            discrepancies: discrepancies * sign,
            ..Current::default()
        };
        let sides = [(Side::Creditor, Some(origin)), (Side::Debtor, destination)];
        for (side, office) in sides {
            for prefix in office.into_iter().flat_map(prefixes) {
                self.current.entry((prefix, side)).or_default().add(&counts);
            }
        }
    }

    /// Adds another transaction's changes to these.
    pub fn add(&mut self, other: &Tallies) {
        for (key, c) in &other.current {
            self.current.entry(*key).or_default().add(c);
        }
        for (key, d) in &other.daily {
            self.daily.entry(*key).or_default().add(d);
        }
    }

    /// The stored form of a transaction's changes (`tally_changes`), as
    /// varints: a version, then each entry of `current` and of `daily`,
    /// counts zig-zagged. A group of single publishes changes about a
    /// hundred entries; this keeps that one row of a few kilobytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.daily.len() * 32);
        out.push(CHANGES_VERSION);
        put_varint(&mut out, self.current.len() as u64);
        for ((prefix, side), c) in &self.current {
            put_key(&mut out, prefix, *side);
            for n in [
                c.open,
                c.flagged_overdue,
                c.flagged_escalated,
                c.orphans,
                c.discrepancies,
            ] {
                put_signed(&mut out, n);
            }
        }
        put_varint(&mut out, self.daily.len() as u64);
        for ((prefix, side, day), d) in &self.daily {
            put_key(&mut out, prefix, *side);
            put_signed(&mut out, *day);
            for n in daily_counts(d) {
                put_signed(&mut out, n);
            }
            let replies = d.replies.to_bytes();
            put_varint(&mut out, replies.len() as u64);
            out.extend_from_slice(&replies);
        }
        out
    }

    /// Reads what [`Tallies::to_bytes`] wrote.
    pub fn from_bytes(bytes: &[u8]) -> Result<Tallies, MalformedChanges> {
        let mut tallies = Tallies::default();
        tallies.add_bytes(bytes)?;
        Ok(tallies)
    }

    /// Adds the changes [`Tallies::to_bytes`] wrote to these, as
    /// `add(&from_bytes(bytes)?)` would without building them first: the
    /// folder and every backlog read add up every recorded row this way.
    /// On an error these hold part of them.
    pub fn add_bytes(&mut self, mut bytes: &[u8]) -> Result<(), MalformedChanges> {
        let bytes = &mut bytes;
        if take(bytes, 1)? != [CHANGES_VERSION] {
            return Err(MalformedChanges("unknown version"));
        }
        for _ in 0..take_varint(bytes)? {
            let key = take_key(bytes)?;
            let mut n = [0; 5];
            for v in &mut n {
                *v = take_signed(bytes)?;
            }
            let [
                open,
                flagged_overdue,
                flagged_escalated,
                orphans,
                discrepancies,
            ] = n;
            let current = Current {
                open,
                flagged_overdue,
                flagged_escalated,
                orphans,
                discrepancies,
            };
            self.current.entry(key).or_default().add(&current);
        }
        for _ in 0..take_varint(bytes)? {
            let (prefix, side) = take_key(bytes)?;
            let day = take_signed(bytes)?;
            let mut n = [0; 14];
            for v in &mut n {
                *v = take_signed(bytes)?;
            }
            let length = usize::try_from(take_varint(bytes)?)
                .map_err(|_| MalformedChanges("histogram too long"))?;
            let replies = Replies::from_bytes(take(bytes, length)?)
                .map_err(|_| MalformedChanges("histogram"))?;
            self.daily
                .entry((prefix, side, day))
                .or_default()
                .add(&daily_of(n, replies));
        }
        if !bytes.is_empty() {
            return Err(MalformedChanges("trailing bytes"));
        }
        Ok(())
    }

    /// Leaves out what adds up to nothing, so unchanged rows are not written.
    pub fn settled(mut self) -> Tallies {
        self.current.retain(|_, c| !c.is_zero());
        self.daily.retain(|_, d| !d.is_zero());
        self
    }

    pub fn is_empty(&self) -> bool {
        self.current.is_empty() && self.daily.is_empty()
    }
}

/// Stored changes that do not decode.
#[derive(Debug, thiserror::Error)]
#[error("tally changes: {0}")]
pub struct MalformedChanges(&'static str);

const CHANGES_VERSION: u8 = 1;

/// A day's counts in stored order.
fn daily_counts(d: &Daily) -> [i64; 14] {
    let m = &d.moves;
    [
        d.receipts_answered,
        d.receipts_on_time,
        d.receipts_flagged,
        d.feedback_answered,
        d.feedback_flagged,
        d.answers_answered,
        d.answers_on_time,
        d.answers_flagged,
        m.open_in,
        m.open_out,
        m.overdue_in,
        m.overdue_out,
        m.escalated_in,
        m.escalated_out,
    ]
}

fn daily_of(n: [i64; 14], replies: Replies) -> Daily {
    let [
        receipts_answered,
        receipts_on_time,
        receipts_flagged,
        feedback_answered,
        feedback_flagged,
        answers_answered,
        answers_on_time,
        answers_flagged,
        open_in,
        open_out,
        overdue_in,
        overdue_out,
        escalated_in,
        escalated_out,
    ] = n;
    Daily {
        receipts_answered,
        receipts_on_time,
        receipts_flagged,
        feedback_answered,
        feedback_flagged,
        answers_answered,
        answers_on_time,
        answers_flagged,
        replies,
        moves: Moves {
            open_in,
            open_out,
            overdue_in,
            overdue_out,
            escalated_in,
            escalated_out,
        },
    }
}

fn put_key(out: &mut Vec<u8>, prefix: &Prefix, side: Side) {
    put_varint(out, prefix.len() as u64);
    out.extend_from_slice(prefix.as_str().as_bytes());
    out.push(match side {
        Side::Debtor => 0,
        Side::Creditor => 1,
    });
}

fn take_key(bytes: &mut &[u8]) -> Result<(Prefix, Side), MalformedChanges> {
    let length =
        usize::try_from(take_varint(bytes)?).map_err(|_| MalformedChanges("prefix too long"))?;
    let prefix = std::str::from_utf8(take(bytes, length)?)
        .ok()
        .and_then(Prefix::new)
        .ok_or(MalformedChanges("not a region prefix"))?;
    let side = match take(bytes, 1)? {
        [0] => Side::Debtor,
        [1] => Side::Creditor,
        _ => return Err(MalformedChanges("unknown side")),
    };
    Ok((prefix, side))
}

fn put_signed(out: &mut Vec<u8>, n: i64) {
    put_varint(out, ((n << 1) ^ (n >> 63)) as u64);
}

fn take_signed(bytes: &mut &[u8]) -> Result<i64, MalformedChanges> {
    let zigzag = take_varint(bytes)?;
    Ok((zigzag >> 1) as i64 ^ -((zigzag & 1) as i64))
}

fn take_varint(bytes: &mut &[u8]) -> Result<u64, MalformedChanges> {
    super::kpi::take_varint(bytes).map_err(|_| MalformedChanges("varint"))
}

fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8], MalformedChanges> {
    if bytes.len() < n {
        return Err(MalformedChanges("truncated"));
    }
    let (head, rest) = bytes.split_at(n);
    *bytes = rest;
    Ok(head)
}

/// Open obligations past due that the sweeper has not flagged yet, counted
/// from the obligations themselves (few: the sweeper's lag).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unflagged {
    pub overdue: i64,
    pub escalated: i64,
    /// Of the overdue ones, those due within the window, by class.
    pub receipts: i64,
    pub feedback: i64,
    pub answers: i64,
}

impl Unflagged {
    /// Counts one open obligation past due and not flagged overdue.
    pub fn overdue(&mut self, class: Class, in_window: bool) {
        self.overdue += 1;
        if in_window {
            match class {
                Class::Receipt => self.receipts += 1,
                Class::Feedback => {
                    self.feedback += 1;
                    self.answers += 1;
                }
                Class::Answer => self.answers += 1,
            }
        }
    }
}

/// A region's backlog counts: the tallies of now and of the window's days,
/// plus what the sweeper has not flagged yet. Overdue answers count as due
/// whether flagged or not; answered ones count whenever they were answered.
pub fn side_stats(now: &Current, days: &Daily, unflagged: &Unflagged) -> SideStats {
    SideStats {
        open: now.open,
        overdue: now.flagged_overdue + unflagged.overdue,
        escalated: now.flagged_escalated + unflagged.escalated,
        orphans: now.orphans,
        open_discrepancies: now.discrepancies,
        receipts_due: days.receipts_answered + days.receipts_flagged + unflagged.receipts,
        receipts_on_time: days.receipts_on_time,
        feedback_due: days.feedback_answered + days.feedback_flagged + unflagged.feedback,
        feedback_given: days.feedback_answered,
        answers_due: days.answers_answered + days.answers_flagged + unflagged.answers,
        answers_on_time: days.answers_on_time,
        replies: days.replies.clone(),
    }
}

/// What a trend reads of one region on one side: its open obligations now,
/// the tallies of each day from its first bucket on (to the last day
/// anything is due or escalates), and the open obligations past due the
/// sweeper has not flagged yet.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegionDays {
    pub open: i64,
    pub days: BTreeMap<i64, Daily>,
    /// (due day, class) of each unflagged overdue obligation.
    pub unflagged: Vec<(i64, Class)>,
}

/// The KPIs of each bucket of whole days `(first, last)`, in ascending
/// order: open, overdue and escalated as its last day ended; rates and
/// reply times of what fell due within it, as things stand now.
pub fn trend(region: &RegionDays, buckets: &[(i64, i64)]) -> Vec<SideStats> {
    // Whatever is open now is in each state from some day on, so what
    // stood before the first day is what is open now less the moves since.
    let mut since = Moves::default();
    for counts in region.days.values() {
        since.add(&counts.moves);
    }
    let (open, overdue, escalated) = since.standing();
    let mut standing = Moves {
        open_in: region.open - open,
        overdue_in: region.open - overdue,
        escalated_in: region.open - escalated,
        ..Moves::default()
    };
    let mut days = region.days.iter().peekable();
    buckets
        .iter()
        .map(|&(first, last)| {
            let mut due = Daily::default();
            while let Some((_, counts)) = days.next_if(|(d, _)| **d <= last) {
                standing.add(&counts.moves);
            }
            for (_, counts) in region.days.range(first..=last) {
                due.add(counts);
            }
            let mut late = Unflagged::default();
            for &(day, class) in &region.unflagged {
                late.overdue(class, (first..=last).contains(&day));
            }
            let (open, overdue, escalated) = standing.standing();
            let then = Current {
                open,
                flagged_overdue: overdue,
                flagged_escalated: escalated,
                ..Current::default()
            };
            // The standing already holds every overdue one, flagged or not.
            side_stats(
                &then,
                &due,
                &Unflagged {
                    overdue: 0,
                    escalated: 0,
                    ..late
                },
            )
        })
        .collect()
}

/// What differs between stored and recounted tallies, if anything.
pub fn difference(stored: &Tallies, counted: &Tallies) -> Option<String> {
    let mut lines = Vec::new();
    differences("now", &stored.current, &counted.current, &mut lines);
    differences("day", &stored.daily, &counted.daily, &mut lines);
    (!lines.is_empty()).then(|| lines.join("\n"))
}

fn differences<K: Ord + std::fmt::Debug, V: PartialEq + std::fmt::Debug>(
    what: &str,
    stored: &BTreeMap<K, V>,
    counted: &BTreeMap<K, V>,
    lines: &mut Vec<String>,
) {
    let keys: std::collections::BTreeSet<&K> = stored.keys().chain(counted.keys()).collect();
    for k in keys {
        let (s, c) = (stored.get(k), counted.get(k));
        if s != c {
            lines.push(format!("{what} {k:?}: stored {s:?}, counted {c:?}"));
        }
    }
}

/// The counts of one day among a few.
fn on(days: &mut Vec<(i64, Daily)>, day: i64) -> &mut Daily {
    let i = match days.iter().position(|(d, _)| *d == day) {
        Some(i) => i,
        None => {
            days.push((day, Daily::default()));
            days.len() - 1
        }
    };
    &mut days[i].1
}

/// The tallied prefixes of an office code (all three for a 6-digit code).
fn prefixes(office: &str) -> impl Iterator<Item = Prefix> + '_ {
    LEVELS
        .into_iter()
        .filter_map(move |n| office.get(..n).and_then(Prefix::new))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn p(text: &str) -> Prefix {
        Prefix::new(text).unwrap()
    }

    fn facts(class: Class, state: &str, flagged: bool) -> ObligationFacts {
        ObligationFacts {
            class,
            debtor: "310112".into(),
            creditor: "341502".into(),
            state: state.into(),
            opened_us: 0,
            due_us: 10 * DAY_US,
            escalates_us: 15 * DAY_US,
            closed_us: (state != "OPEN").then_some(3 * DAY_US),
            flagged_overdue: flagged,
            flagged_escalated: false,
        }
    }

    #[test]
    fn stored_changes_that_do_not_decode_are_errors() {
        let mut t = Tallies::default();
        t.obligation(&facts(Class::Answer, "FULFILLED_LATE", false), 1);
        let bytes = t.to_bytes();
        assert!(Tallies::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        assert!(Tallies::from_bytes(&[&bytes[..], &[0]].concat()).is_err());
        assert!(Tallies::from_bytes(&[9]).is_err());
        assert!(Tallies::from_bytes(&[]).is_err());
        assert_eq!(
            Tallies::from_bytes(&Tallies::default().to_bytes()).unwrap(),
            Tallies::default()
        );
    }

    #[test]
    fn parents_go_up_one_level() {
        let up: Vec<&str> = ["34", "3415", "341502", "341502001"].map(parent).into();
        assert_eq!(up, ["", "34", "3415", "341502"]);
    }

    #[test]
    fn days_turn_at_midnight_in_shanghai() {
        // 2024-03-01 15:59:59 UTC is 23:59:59 in Shanghai; a second later
        // it is the next day there.
        let before = 1_709_308_799 * 1_000_000;
        assert_eq!(shanghai_day(before) + 1, shanghai_day(before + 1_000_000));
        assert_eq!(
            day_start_us(shanghai_day(before + 1_000_000)),
            before + 1_000_000
        );
    }

    #[test]
    fn an_obligation_counts_on_both_sides_at_every_level() {
        let mut t = Tallies::default();
        t.obligation(&facts(Class::Answer, "OPEN", true), 1);
        for prefix in ["31", "3101", "310112"] {
            let c = &t.current[&(p(prefix), Side::Debtor)];
            assert_eq!((c.open, c.flagged_overdue), (1, 1));
            assert_eq!(t.daily[&(p(prefix), Side::Debtor, 10)].answers_flagged, 1);
        }
        for prefix in ["34", "3415", "341502"] {
            assert_eq!(t.current[&(p(prefix), Side::Creditor)].open, 1);
        }
        assert_eq!(t.current.len(), 6);
    }

    #[test]
    fn an_answer_moves_counts_and_records_its_reply_time() {
        let mut t = Tallies::default();
        t.obligation(&facts(Class::Feedback, "OPEN", true), -1);
        t.obligation(&facts(Class::Feedback, "FULFILLED_LATE", false), 1);
        let t = t.settled();
        assert!(
            t.current
                .values()
                .all(|c| c.open == -1 && c.flagged_overdue == -1)
        );
        let d = &t.daily[&(p("310112"), Side::Debtor, 10)];
        assert_eq!((d.feedback_flagged, d.feedback_answered), (-1, 1));
        assert_eq!(
            (d.answers_flagged, d.answers_answered, d.answers_on_time),
            (-1, 1, 0)
        );
        let median = d.replies.percentile(0.5).unwrap();
        assert!((median - 3.0 * 86_400.0).abs() < 0.01 * 3.0 * 86_400.0);
    }

    #[test]
    fn cancelled_obligations_count_only_as_once_open() {
        let mut t = Tallies::default();
        t.obligation(&facts(Class::Receipt, "CANCELLED", false), 1);
        let t = t.settled();
        assert!(t.current.is_empty());
        assert!(t.daily.values().all(|d| {
            Daily {
                moves: Moves::default(),
                ..d.clone()
            }
            .is_zero()
        }));
        // Opened on day 0, cancelled on day 3: open in between, and
        // neither overdue nor escalated (due day 10, escalation day 15).
        let day = |d: i64| t.daily[&(p("341502"), Side::Creditor, d)].moves;
        assert_eq!((day(0).open_in, day(3).open_out), (1, 1));
        assert_eq!((day(10).overdue_in, day(10).overdue_out), (1, 1));
        assert_eq!((day(15).escalated_in, day(15).escalated_out), (1, 1));
    }

    #[test]
    fn a_trend_adds_up_rates_per_bucket() {
        let mut t = Tallies::default();
        // Due day 10: one answered late on day 3 (counts as answered), one
        // open and flagged, one open not flagged yet (the sweeper's lag).
        t.obligation(&facts(Class::Answer, "FULFILLED_LATE", false), 1);
        t.obligation(&facts(Class::Answer, "OPEN", true), 1);
        let region = RegionDays {
            days: t
                .daily
                .iter()
                .filter(|((p, s, _), _)| p.as_str() == "310112" && *s == Side::Debtor)
                .map(|((_, _, d), c)| (*d, c.clone()))
                .collect(),
            open: 1,
            unflagged: vec![(10, Class::Answer)],
        };
        let points = trend(&region, &[(0, 6), (7, 13), (14, 20)]);
        assert_eq!(points[1].answers_due, 3);
        assert_eq!(points[1].answers_on_time, 0);
        assert_eq!(points[1].replies.count(), 1);
        assert_eq!(points[0].answers_due + points[2].answers_due, 0);
        // At the end of days 6, 13 and 20: two opened on day 0 (one
        // answered on day 3); the open one overdue from day 10, escalated
        // from day 15. The unflagged one is not in these tallies at all.
        let standing: Vec<_> = points
            .iter()
            .map(|p| (p.open, p.overdue, p.escalated))
            .collect();
        assert_eq!(standing, [(1, 0, 0), (1, 1, 0), (1, 1, 1)]);
    }

    #[test]
    fn case_findings_count_for_origin_and_destination() {
        let mut t = Tallies::default();
        t.case("341502", Some("310112"), 1, 2, 1);
        t.case("341502", None, 1, 0, -1);
        let t = t.settled();
        assert_eq!(t.current[&(p("34"), Side::Creditor)].discrepancies, 2);
        assert_eq!(t.current[&(p("34"), Side::Creditor)].orphans, 0);
        assert_eq!(t.current[&(p("3101"), Side::Debtor)].orphans, 1);
    }

    fn any_facts() -> impl Strategy<Value = ObligationFacts> {
        (
            prop_oneof![
                Just(Class::Receipt),
                Just(Class::Feedback),
                Just(Class::Answer)
            ],
            prop_oneof![
                Just("OPEN"),
                Just("FULFILLED_ON_TIME"),
                Just("FULFILLED_LATE"),
                Just("CANCELLED")
            ],
            0i64..100,
            0i64..100,
            any::<(bool, bool)>(),
        )
            .prop_map(
                |(class, state, due_day, reply_days, (fo, fe))| ObligationFacts {
                    class,
                    debtor: "310112".into(),
                    creditor: "341502".into(),
                    state: state.into(),
                    opened_us: 0,
                    due_us: due_day * DAY_US,
                    escalates_us: (due_day + 5) * DAY_US,
                    closed_us: (state != "OPEN").then_some(reply_days * DAY_US),
                    flagged_overdue: fo,
                    flagged_escalated: fe,
                },
            )
    }

    #[test]
    fn a_prefix_is_up_to_nine_digits() {
        assert_eq!(p("341502").as_str(), "341502");
        assert_eq!(p("").len(), 0);
        assert_eq!(format!("{:?} {}", p("34"), p("34")), "\"34\" 34");
        assert_eq!(Prefix::new("3415020011"), None, "ten digits");
        assert_eq!(Prefix::new("34150a"), None);
        assert_eq!(Prefix::new("３４"), None, "not ASCII");
    }

    proptest! {
        #![proptest_config(crate::proptest_config())]

        /// Prefixes sort as their text does: tallies are written, and their
        /// differences listed, in key order.
        #[test]
        fn prefixes_sort_as_their_text(a in "[0-9]{0,9}", b in "[0-9]{0,9}") {
            prop_assert_eq!(p(&a).cmp(&p(&b)), a.cmp(&b));
            prop_assert_eq!(p(&a) == p(&b), a == b);
        }

        /// Whatever a row goes through, taking away what it was and adding
        /// what it is leaves the tallies of its final state alone.
        #[test]
        fn changes_add_up_to_the_final_state(history in proptest::collection::vec(any_facts(), 1..8)) {
            let mut changes = Tallies::default();
            changes.obligation(&history[0], 1);
            for pair in history.windows(2) {
                changes.obligation(&pair[0], -1);
                changes.obligation(&pair[1], 1);
            }
            let mut last = Tallies::default();
            last.obligation(history.last().unwrap(), 1);
            prop_assert_eq!(changes.settled(), last.settled());
        }

        /// Changes stored as bytes read back as they were, and changes added
        /// one transaction at a time (read whole, or added straight from
        /// their bytes) are the changes of all of them at once.
        #[test]
        fn stored_changes_read_back_and_add_up(
            transactions in proptest::collection::vec(
                proptest::collection::vec((any_facts(), prop_oneof![Just(1i64), Just(-1i64)]), 0..6),
                1..5,
            ),
        ) {
            let mut all = Tallies::default();
            let mut added = Tallies::default();
            let mut added_from_bytes = Tallies::default();
            for rows in &transactions {
                let mut t = Tallies::default();
                for (facts, sign) in rows {
                    t.obligation(facts, *sign);
                    all.obligation(facts, *sign);
                }
                t.case("341502", Some("310112"), rows.len() as i64, -1, 1);
                all.case("341502", Some("310112"), rows.len() as i64, -1, 1);
                let t = t.settled();
                let read = Tallies::from_bytes(&t.to_bytes()).unwrap();
                prop_assert_eq!(&read, &t);
                added.add(&read);
                added_from_bytes.add_bytes(&t.to_bytes()).unwrap();
            }
            prop_assert_eq!(&added_from_bytes, &added);
            prop_assert_eq!(added.settled(), all.settled());
        }

        /// A trend's standing at the end of each day, from the tallies of
        /// days alone, is what counting the obligations at that instant
        /// gives — however they were opened, answered, cancelled or late.
        #[test]
        fn a_trend_stands_where_the_obligations_stood(
            rows in proptest::collection::vec(
                (0i64..40, -5i64..20, 0i64..10, proptest::option::of(0i64..30), 0i64..DAY_US, 0usize..3),
                1..40,
            ),
            first in 0i64..60,
        ) {
            let at = |day: i64, frac: i64| day_start_us(day) + frac;
            let facts: Vec<ObligationFacts> = rows
                .iter()
                .map(|&(opened, due, esc, closed, frac, state)| ObligationFacts {
                    class: Class::Answer,
                    debtor: "310112".into(),
                    creditor: "341502".into(),
                    state: match (closed, state) {
                        (None, _) => "OPEN",
                        (Some(_), 0) => "FULFILLED_ON_TIME",
                        (Some(_), 1) => "FULFILLED_LATE",
                        (Some(_), _) => "CANCELLED",
                    }
                    .into(),
                    opened_us: at(opened, frac),
                    due_us: at(opened + due, frac / 2),
                    escalates_us: at(opened + due + esc, frac / 3),
                    closed_us: closed.map(|c| at(opened + c, (frac * 7) % DAY_US).max(at(opened, frac))),
                    flagged_overdue: false,
                    flagged_escalated: false,
                })
                .collect();
            let mut t = Tallies::default();
            for f in &facts {
                t.obligation(f, 1);
            }
            let t = t.settled();
            let region = RegionDays {
                open: t.current.get(&(p("3101"), Side::Debtor)).map_or(0, |c| c.open),
                days: t
                    .daily
                    .into_iter()
                    .filter(|((prefix, side, day), _)| prefix.as_str() == "3101" && *side == Side::Debtor && *day >= first)
                    .map(|((_, _, day), counts)| (day, counts))
                    .collect(),
                unflagged: vec![],
            };
            let buckets: Vec<(i64, i64)> = (first..first + 30).map(|d| (d, d)).collect();
            for (&(day, _), point) in buckets.iter().zip(trend(&region, &buckets)) {
                let end = day_start_us(day + 1);
                let open: Vec<&ObligationFacts> = facts
                    .iter()
                    .filter(|f| f.opened_us < end && f.closed_us.is_none_or(|c| c >= end))
                    .collect();
                let overdue = open.iter().filter(|f| f.due_us < end).count() as i64;
                let escalated = open.iter().filter(|f| f.escalates_us < end).count() as i64;
                prop_assert_eq!(
                    (point.open, point.overdue, point.escalated),
                    (open.len() as i64, overdue, escalated),
                    "day {}", day
                );
            }
        }
    }
}
