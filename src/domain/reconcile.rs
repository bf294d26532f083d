//! Reconciliation: a case's state, obligations, discrepancies and orphans as
//! a pure function of the set of its accepted messages, the policy and the
//! time.
//!
//! Messages are folded in a canonical order — acceptance time, then kind (a
//! registration before what depends on it), then sender and id — so the
//! result depends on the set, never on the order the engine saw them in:
//! order independence and idempotence hold by construction, and a void or
//! correction re-derives what depended on its target.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::case::{CaseState, Standing, apply_body};
use super::message::{Body, Finding, Kind, MessageId, Urgency, VerificationResult};
use super::policy::{DeadlineKind, Policy, midnight_after};
use super::{CaseKey, Message, Period, RegionCode, today};

/// An accepted message as the fold sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    pub id: MessageId,
    pub sender: RegionCode,
    pub recipient: RegionCode,
    #[serde(with = "time::serde::rfc3339")]
    pub accepted_at: OffsetDateTime,
    pub body: Body,
}

impl Recorded {
    pub fn new(message: &Message, accepted_at: OffsetDateTime) -> Self {
        Self {
            id: message.id.clone(),
            sender: message.sender.clone(),
            recipient: message.recipient.clone(),
            accepted_at,
            body: message.body.clone(),
        }
    }

    fn key(&self) -> (&RegionCode, &MessageId) {
        (&self.sender, &self.id)
    }

    /// Within one instant, what others depend on comes first.
    fn rank(&self) -> u8 {
        match self.body.kind() {
            Kind::Registration => 0,
            Kind::Transfer => 1,
            Kind::CertificateIssued => 2,
            Kind::VerificationRequest => 3,
            Kind::RegistrationConfirmation => 4,
            Kind::CertificateVerification => 5,
            Kind::PregnancyCheckFeedback => 6,
            Kind::VerificationReply => 7,
            Kind::Reminder => 8,
            Kind::Correction => 9,
            Kind::Void => 10,
            Kind::Closure => 11,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObligationKind {
    ConfirmRegistration,
    VerifyCertificate,
    AnswerRequest,
    PeriodicFeedback,
    Receipt,
}

impl ObligationKind {
    pub const ALL: [ObligationKind; 5] = [
        ObligationKind::ConfirmRegistration,
        ObligationKind::VerifyCertificate,
        ObligationKind::AnswerRequest,
        ObligationKind::PeriodicFeedback,
        ObligationKind::Receipt,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ObligationKind::ConfirmRegistration => "CONFIRM_REGISTRATION",
            ObligationKind::VerifyCertificate => "VERIFY_CERTIFICATE",
            ObligationKind::AnswerRequest => "ANSWER_REQUEST",
            ObligationKind::PeriodicFeedback => "PERIODIC_FEEDBACK",
            ObligationKind::Receipt => "RECEIPT",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObligationState {
    Open,
    FulfilledOnTime,
    FulfilledLate,
    Cancelled,
}

impl ObligationState {
    pub const ALL: [ObligationState; 4] = [
        ObligationState::Open,
        ObligationState::FulfilledOnTime,
        ObligationState::FulfilledLate,
        ObligationState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ObligationState::Open => "OPEN",
            ObligationState::FulfilledOnTime => "FULFILLED_ON_TIME",
            ObligationState::FulfilledLate => "FULFILLED_LATE",
            ObligationState::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// An answer one office owes another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Obligation {
    /// Unique within the case, e.g. `ANSWER_REQUEST:341502:ask-1`.
    pub key: String,
    pub kind: ObligationKind,
    pub debtor: RegionCode,
    pub creditor: RegionCode,
    pub opened_at: OffsetDateTime,
    pub due_at: OffsetDateTime,
    /// Past this while open, the obligation is escalated.
    pub escalates_at: OffsetDateTime,
    pub state: ObligationState,
    pub closed_at: Option<OffsetDateTime>,
    /// The message that fulfilled or cancelled it, or why it ended.
    pub closed_by: Option<String>,
    /// What it is about: the period, certificate number or request id.
    pub detail: String,
    opened_by: Option<MessageId>,
}

impl Obligation {
    pub fn is_overdue(&self, now: OffsetDateTime) -> bool {
        self.state == ObligationState::Open && now > self.due_at
    }

    pub fn is_escalated(&self, now: OffsetDateTime) -> bool {
        self.state == ObligationState::Open && now > self.escalates_at
    }

    fn close(&mut self, state: ObligationState, at: OffsetDateTime, by: String) {
        self.state = state;
        self.closed_at = Some(at);
        self.closed_by = Some(by);
    }

    fn fulfil(&mut self, at: OffsetDateTime, by: &MessageId) {
        let state = if at <= self.due_at {
            ObligationState::FulfilledOnTime
        } else {
            ObligationState::FulfilledLate
        };
        self.close(state, at, by.to_string());
    }
}

/// A field on which origin and destination disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discrepancy {
    /// `name`, `birth_date`, `sex`, `marital_status`, `children` or
    /// `certificate_number:<number>`.
    pub field: String,
    pub origin_value: String,
    pub destination_value: String,
    #[serde(with = "time::serde::rfc3339")]
    pub found_at: OffsetDateTime,
    pub found_by: MessageId,
    #[serde(with = "time::serde::rfc3339::option")]
    pub resolved_at: Option<OffsetDateTime>,
    pub resolved_by: Option<MessageId>,
}

/// A message still waiting for what it answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Orphan {
    pub message_id: MessageId,
    pub sender: RegionCode,
    pub kind: Kind,
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// What it waits for, e.g. `REGISTRATION` or `VERIFICATION_REQUEST ask-1`.
    pub awaiting: String,
}

/// What a case's reconciliation found, as kept with the case.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Findings {
    pub discrepancies: Vec<Discrepancy>,
    pub orphans: Vec<Orphan>,
}

impl Findings {
    /// Discrepancies not yet resolved: what reports count.
    pub fn open_discrepancies(&self) -> usize {
        self.discrepancies
            .iter()
            .filter(|d| d.resolved_at.is_none())
            .count()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reconciled {
    pub state: CaseState,
    pub obligations: Vec<Obligation>,
    pub discrepancies: Vec<Discrepancy>,
    pub orphans: Vec<Orphan>,
    /// Messages that no longer stand, by (sender, id).
    pub standings: BTreeMap<(RegionCode, MessageId), Standing>,
    /// When the result changes by the passing of time alone (a new feedback
    /// period starts): the case should be reconciled again then.
    pub next_change: Option<OffsetDateTime>,
}

impl Reconciled {
    pub fn standing(&self, sender: &RegionCode, id: &MessageId) -> Standing {
        self.standings
            .get(&(sender.clone(), id.clone()))
            .copied()
            .unwrap_or(Standing::Active)
    }
}

/// Reconciles a case from all its accepted messages.
pub fn reconcile(
    case: &CaseKey,
    messages: &[Recorded],
    policy: &Policy,
    now: OffsetDateTime,
) -> Reconciled {
    let mut ordered: Vec<&Recorded> = messages.iter().collect();
    ordered.sort_by(|a, b| {
        (a.accepted_at, a.rank(), &a.sender, &a.id).cmp(&(
            b.accepted_at,
            b.rank(),
            &b.sender,
            &b.id,
        ))
    });
    ordered.dedup_by(|a, b| a.key() == b.key());

    // What withdraws what: the first void or correction of a message wins.
    let mut withdrawn_by: BTreeMap<(RegionCode, MessageId), &Recorded> = BTreeMap::new();
    for m in &ordered {
        if let Body::Void { target } | Body::Correction { target, .. } = &m.body {
            withdrawn_by
                .entry((m.sender.clone(), target.clone()))
                .or_insert(m);
        }
    }
    let present: BTreeSet<_> = ordered
        .iter()
        .map(|m| (m.sender.clone(), m.id.clone()))
        .collect();
    let standings: BTreeMap<_, _> = withdrawn_by
        .iter()
        .filter(|(target, _)| present.contains(*target))
        .map(|(target, by)| {
            let standing = match by.body {
                Body::Void { .. } => Standing::Voided,
                _ => Standing::Superseded,
            };
            (target.clone(), standing)
        })
        .collect();

    let created = ordered.first().map_or(now, |m| m.accepted_at);
    let mut fold = Fold {
        policy,
        state: CaseState::empty(case, created),
        obligations: BTreeMap::new(),
        discrepancies: Vec::new(),
        parked: Vec::new(),
        waiting: Vec::new(),
        feedback: BTreeMap::new(),
        registered_at: None,
        closed: None,
        seen: BTreeSet::new(),
    };
    for m in ordered {
        let key = (m.sender.clone(), m.id.clone());
        let withdrawn_first = withdrawn_by
            .get(&key)
            .is_some_and(|w| fold.seen.contains(&(w.sender.clone(), w.id.clone())));
        fold.seen.insert(key.clone());
        if withdrawn_first {
            // Withdrawn before it arrived: it never takes effect.
            continue;
        }
        let stands = standings.get(&key) != Some(&Standing::Voided);
        fold.step(m, stands);
    }
    fold.finish(now, standings)
}

struct Fold<'a> {
    policy: &'a Policy,
    state: CaseState,
    obligations: BTreeMap<String, Obligation>,
    discrepancies: Vec<Discrepancy>,
    /// Replies waiting for their counterpart, with what they wait for.
    parked: Vec<(Recorded, String)>,
    /// Messages whose other office is not (yet) a destination of the case:
    /// they take effect once a registration or transfer names it.
    waiting: Vec<(Recorded, bool)>,
    /// The first feedback received for each period.
    feedback: BTreeMap<Period, (OffsetDateTime, MessageId)>,
    registered_at: Option<OffsetDateTime>,
    closed: Option<(OffsetDateTime, MessageId)>,
    seen: BTreeSet<(RegionCode, MessageId)>,
}

impl Fold<'_> {
    /// One message, in canonical order. `stands` is false for a message
    /// voided later: it opens what it would have (the void cancels that,
    /// keeping the history) but leaves no trace in the case's facts.
    fn step(&mut self, m: &Recorded, stands: bool) {
        if self.waits_for_party(m) {
            self.waiting.push((m.clone(), stands));
            return;
        }
        match &m.body {
            Body::Void { target } => {
                let by = format!("voided by {}", m.id);
                for o in self.obligations.values_mut() {
                    if o.opened_by.as_ref() == Some(target) && o.state != ObligationState::Cancelled
                    {
                        o.close(ObligationState::Cancelled, m.accepted_at, by.clone());
                    }
                }
            }
            Body::Correction { target, corrected } => {
                // Before its target, a correction is the only version there
                // is, and acts as the original would.
                let after_target = self.seen.contains(&(m.sender.clone(), target.clone()));
                let touched = self.apply(m, corrected, true, after_target);
                let by = format!("superseded by {}", m.id);
                for o in self.obligations.values_mut() {
                    if o.opened_by.as_ref() == Some(target)
                        && !touched.contains(&o.key)
                        && o.state == ObligationState::Open
                    {
                        o.close(ObligationState::Cancelled, m.accepted_at, by.clone());
                    }
                }
            }
            body => {
                self.apply(m, body, stands, false);
            }
        }
    }

    /// Whether the office on the other side from the origin is not a
    /// destination of the case yet. Registrations name destinations, as do
    /// the origin's transfers; everything else waits for them.
    fn waits_for_party(&self, m: &Recorded) -> bool {
        let origin = &self.state.origin;
        // A correction acts as the body it carries.
        let effective = match &m.body {
            Body::Correction { corrected, .. } => corrected.as_ref(),
            body => body,
        };
        if m.sender == *origin && matches!(effective, Body::Registration(_) | Body::Transfer(_)) {
            return false;
        }
        let other = if m.sender == *origin {
            &m.recipient
        } else {
            &m.sender
        };
        !self.state.was_destination(other)
    }

    /// Steps the waiting messages whose office has become a destination, in
    /// their order.
    fn release_waiting(&mut self) {
        let (ready, still): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|(m, _)| !self.waits_for_party(m));
        self.waiting = still;
        for (m, stands) in ready {
            self.step(&m, stands);
        }
    }

    /// Applies a body's effects; returns the obligation keys it opened or
    /// discharged.
    fn apply(
        &mut self,
        m: &Recorded,
        body: &Body,
        stands: bool,
        correcting: bool,
    ) -> BTreeSet<String> {
        let at = m.accepted_at;
        let before = self.state.current_destination().cloned();
        if stands {
            self.state.updated_at = at;
            let mut ignored = Vec::new();
            // A move the case no longer allows in canonical order (already
            // there) simply changes nothing.
            let _ = apply_body(
                &mut self.state,
                &m.sender,
                &m.recipient,
                body,
                &mut ignored,
                at,
                correcting,
            );
        }
        let mut touched = BTreeSet::new();
        match body {
            Body::Registration(_) if correcting => {
                if stands {
                    self.compare_reports(m);
                }
            }
            Body::Registration(_) => {
                let to = m.recipient.clone();
                if let Some(from) = before.filter(|d| *d != to) {
                    self.move_obligations(&from, &to, m);
                }
                if self.closed.as_ref().is_some_and(|(c, _)| *c <= at) {
                    self.closed = None;
                }
                self.registered_at.get_or_insert(at);
                let key = format!("CONFIRM_REGISTRATION:{to}");
                self.open(
                    &key,
                    ObligationKind::ConfirmRegistration,
                    DeadlineKind::ConfirmRegistration,
                    &to,
                    &self.state.origin.clone(),
                    m,
                    String::new(),
                );
                touched.insert(key.clone());
                self.match_parked(&key, |p| {
                    matches!(p.body, Body::RegistrationConfirmation(_)) && p.sender == to
                });
                if stands {
                    self.compare_reports(m);
                }
                self.release_waiting();
            }
            Body::RegistrationConfirmation(_) => {
                let key = format!("CONFIRM_REGISTRATION:{}", m.sender);
                if self.fulfil(&key, m) {
                    touched.insert(key);
                } else {
                    self.parked.push((m.clone(), "REGISTRATION".into()));
                }
                if stands {
                    self.compare_reports(m);
                }
            }
            Body::CertificateIssued(c) => {
                let key = format!("VERIFY_CERTIFICATE:{}", c.number);
                let origin = self.state.origin.clone();
                self.open(
                    &key,
                    ObligationKind::VerifyCertificate,
                    DeadlineKind::VerifyCertificate,
                    &m.recipient,
                    &origin,
                    m,
                    c.number.clone(),
                );
                touched.insert(key.clone());
                let number = c.number.clone();
                let matched = self.match_parked(
                    &key,
                    |p| matches!(&p.body, Body::CertificateVerification(v) if v.number == number),
                );
                for v in matched {
                    self.certificate_finding(&v);
                }
            }
            Body::CertificateVerification(v) => {
                let key = format!("VERIFY_CERTIFICATE:{}", v.number);
                if self.obligations.contains_key(&key) {
                    self.fulfil(&key, m);
                    touched.insert(key);
                    self.certificate_finding(m);
                } else {
                    self.parked
                        .push((m.clone(), format!("CERTIFICATE_ISSUED {}", v.number)));
                }
            }
            Body::PregnancyCheckFeedback(f) => {
                self.feedback.entry(f.period).or_insert((at, m.id.clone()));
            }
            Body::VerificationRequest(r) => {
                let key = format!("ANSWER_REQUEST:{}:{}", m.sender, m.id);
                let deadline = if r.certificate_mismatch {
                    DeadlineKind::AnswerCertificateMismatch
                } else if r.urgency == Urgency::Urgent {
                    DeadlineKind::AnswerUrgent
                } else {
                    DeadlineKind::AnswerNormal
                };
                let detail = match (r.certificate_mismatch, r.urgency) {
                    (true, _) => "certificate mismatch",
                    (false, Urgency::Urgent) => "urgent",
                    (false, Urgency::Normal) => "normal",
                };
                self.open(
                    &key,
                    ObligationKind::AnswerRequest,
                    deadline,
                    &m.recipient,
                    &m.sender,
                    m,
                    detail.into(),
                );
                touched.insert(key.clone());
                let (asker, debtor, id) = (m.sender.clone(), m.recipient.clone(), m.id.clone());
                self.match_parked(&key, |p| {
                    matches!(&p.body, Body::VerificationReply(r) if r.request == id)
                        && p.recipient == asker
                        && p.sender == debtor
                });
            }
            Body::VerificationReply(r) => {
                let key = format!("ANSWER_REQUEST:{}:{}", m.recipient, r.request);
                let answers = self
                    .obligations
                    .get(&key)
                    .is_some_and(|o| o.debtor == m.sender);
                if answers {
                    self.fulfil(&key, m);
                    touched.insert(key);
                } else {
                    self.parked
                        .push((m.clone(), format!("VERIFICATION_REQUEST {}", r.request)));
                }
            }
            Body::Transfer(t) => {
                let to = t.new_destination.clone();
                if let Some(from) = before.filter(|d| *d != to) {
                    self.move_obligations(&from, &to, m);
                }
                let key = format!("CONFIRM_REGISTRATION:{to}");
                let origin = self.state.origin.clone();
                self.open(
                    &key,
                    ObligationKind::ConfirmRegistration,
                    DeadlineKind::ConfirmRegistration,
                    &to,
                    &origin,
                    m,
                    String::new(),
                );
                touched.insert(key);
                self.release_waiting();
            }
            Body::Closure(_) => {
                let by = format!("closed by {}", m.id);
                for o in self.obligations.values_mut() {
                    if o.state == ObligationState::Open {
                        o.close(ObligationState::Cancelled, at, by.clone());
                    }
                }
                self.closed = Some((at, m.id.clone()));
            }
            Body::Reminder { .. } | Body::Void { .. } | Body::Correction { .. } => {}
        }
        touched
    }

    #[allow(clippy::too_many_arguments)]
    fn open(
        &mut self,
        key: &str,
        kind: ObligationKind,
        deadline: DeadlineKind,
        debtor: &RegionCode,
        creditor: &RegionCode,
        m: &Recorded,
        detail: String,
    ) {
        if self.obligations.contains_key(key) {
            return;
        }
        let due = self.policy.due(deadline, debtor, m.accepted_at);
        self.obligations.insert(
            key.to_string(),
            Obligation {
                key: key.to_string(),
                kind,
                debtor: debtor.clone(),
                creditor: creditor.clone(),
                opened_at: m.accepted_at,
                due_at: due,
                escalates_at: self.policy.escalates_at(m.accepted_at, due),
                state: ObligationState::Open,
                closed_at: None,
                closed_by: None,
                detail,
                opened_by: Some(m.id.clone()),
            },
        );
    }

    /// Discharges an open obligation; false if there is none by that key.
    fn fulfil(&mut self, key: &str, m: &Recorded) -> bool {
        match self.obligations.get_mut(key) {
            Some(o) => {
                if o.state == ObligationState::Open {
                    o.fulfil(m.accepted_at, &m.id);
                }
                true
            }
            None => false,
        }
    }

    /// Fulfils `key` with the parked replies that match, in their order;
    /// returns them.
    fn match_parked(&mut self, key: &str, matches: impl Fn(&Recorded) -> bool) -> Vec<Recorded> {
        let (matched, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.parked)
            .into_iter()
            .partition(|(p, _)| matches(p));
        self.parked = rest;
        let matched: Vec<Recorded> = matched.into_iter().map(|(p, _)| p).collect();
        for p in &matched {
            self.fulfil(key, p);
        }
        matched
    }

    /// A move to another destination: its confirmation is owed anew by the
    /// new one, and an unverified certificate goes with the person. Answers
    /// the old destination already owed stay with it.
    fn move_obligations(&mut self, from: &RegionCode, to: &RegionCode, m: &Recorded) {
        let at = m.accepted_at;
        for o in self.obligations.values_mut() {
            if o.state != ObligationState::Open || &o.debtor != from {
                continue;
            }
            match o.kind {
                ObligationKind::ConfirmRegistration => {
                    o.close(
                        ObligationState::Cancelled,
                        at,
                        format!("moved to {to} by {}", m.id),
                    );
                }
                ObligationKind::VerifyCertificate => {
                    o.debtor = to.clone();
                    o.opened_at = at;
                    o.due_at = self.policy.due(DeadlineKind::VerifyCertificate, to, at);
                    o.escalates_at = self.policy.escalates_at(at, o.due_at);
                }
                _ => {}
            }
        }
    }

    /// A verification that did not find the certificate valid is a
    /// disagreement about it; a later valid one resolves it.
    fn certificate_finding(&mut self, m: &Recorded) {
        let Body::CertificateVerification(v) = &m.body else {
            return;
        };
        let field = format!("certificate_number:{}", v.number);
        let destination_value = match v.result {
            VerificationResult::Valid => None,
            VerificationResult::NotFound => Some("not found".to_string()),
            VerificationResult::Mismatch => {
                Some(format!("mismatch: {}", v.mismatched_fields.join(", ")))
            }
        };
        self.track(&field, Some(v.number.clone()), destination_value, m);
    }

    /// Compares what each side reported about the person.
    fn compare_reports(&mut self, m: &Recorded) {
        let (Some(o), Some(d)) = (&self.state.origin_report, &self.state.destination_report) else {
            return;
        };
        if self.state.finding != Some(Finding::Found) {
            return;
        }
        let pairs: Vec<(&str, Option<String>, Option<String>)> = vec![
            (
                "name",
                Some(o.name.as_str().to_string()),
                Some(d.name.as_str().to_string()),
            ),
            (
                "birth_date",
                o.birth_date.map(|x| x.to_string()),
                d.birth_date.map(|x| x.to_string()),
            ),
            (
                "sex",
                o.sex.map(|x| format!("{x:?}")),
                d.sex.map(|x| format!("{x:?}")),
            ),
            (
                "marital_status",
                o.marital_status.map(|x| format!("{x:?}")),
                d.marital_status.map(|x| format!("{x:?}")),
            ),
            (
                "children",
                o.children.map(|x| x.to_string()),
                d.children.map(|x| x.to_string()),
            ),
        ];
        for (field, origin, destination) in pairs {
            if let (Some(origin), Some(destination)) = (origin, destination) {
                let differs = origin != destination;
                self.track(field, Some(origin), differs.then_some(destination), m);
            }
        }
    }

    /// Opens, updates or resolves the discrepancy on `field`:
    /// `destination` is the disagreeing value, None when the sides agree.
    fn track(
        &mut self,
        field: &str,
        origin: Option<String>,
        destination: Option<String>,
        m: &Recorded,
    ) {
        let open = self
            .discrepancies
            .iter_mut()
            .find(|x| x.field == field && x.resolved_at.is_none());
        match (open, destination) {
            (Some(x), Some(d)) => {
                x.origin_value = origin.unwrap_or_default();
                x.destination_value = d;
            }
            (Some(x), None) => {
                x.resolved_at = Some(m.accepted_at);
                x.resolved_by = Some(m.id.clone());
            }
            (None, Some(d)) => self.discrepancies.push(Discrepancy {
                field: field.to_string(),
                origin_value: origin.unwrap_or_default(),
                destination_value: d,
                found_at: m.accepted_at,
                found_by: m.id.clone(),
                resolved_at: None,
                resolved_by: None,
            }),
            (None, None) => {}
        }
    }

    /// The destination responsible at an instant: the spell that covers it,
    /// or the first one for instants before any.
    fn destination_at(&self, at: OffsetDateTime) -> Option<RegionCode> {
        let spells = &self.state.destinations;
        spells
            .iter()
            .rev()
            .find(|s| s.since <= at)
            .or(spells.first())
            .map(|s| s.office.clone())
    }

    fn finish(
        mut self,
        now: OffsetDateTime,
        standings: BTreeMap<(RegionCode, MessageId), Standing>,
    ) -> Reconciled {
        let mut next_change = None;
        if let (true, Some(registered), Some(_)) = (
            self.state.periodic_checks,
            self.registered_at,
            self.state.destinations.first(),
        ) {
            let first_day = self.state.left_on.unwrap_or_else(|| today(registered));
            let mut period = self.policy.period.containing(first_day);
            let today = today(now);
            while period.start() <= today {
                let starts = start_of(period.start());
                if self.closed.as_ref().is_some_and(|(c, _)| starts > *c) {
                    break;
                }
                let ends = start_of(period.end());
                let responsible_at = [ends, now]
                    .into_iter()
                    .chain(self.closed.as_ref().map(|(c, _)| *c))
                    .min()
                    .unwrap_or(now);
                let Some(debtor) = self.destination_at(responsible_at) else {
                    break;
                };
                let opened = starts.max(registered);
                let due = self.policy.feedback_due(period);
                let mut o = Obligation {
                    key: format!("PERIODIC_FEEDBACK:{period}"),
                    kind: ObligationKind::PeriodicFeedback,
                    debtor,
                    creditor: self.state.origin.clone(),
                    opened_at: opened,
                    due_at: due,
                    escalates_at: self.policy.escalates_at(opened, due),
                    state: ObligationState::Open,
                    closed_at: None,
                    closed_by: None,
                    detail: period.to_string(),
                    opened_by: None,
                };
                let received = self.feedback.get(&period);
                match (received, &self.closed) {
                    (Some((at, id)), closed) if closed.as_ref().is_none_or(|(c, _)| at <= c) => {
                        o.fulfil(*at, id);
                    }
                    (_, Some((c, by))) => {
                        o.close(ObligationState::Cancelled, *c, format!("closed by {by}"))
                    }
                    _ => {}
                }
                self.obligations.insert(o.key.clone(), o);
                period = self.policy.period.containing(period.end());
            }
            if self.closed.is_none() {
                next_change = Some(start_of(period.start()));
            }
        }
        let origin = self.state.origin.clone();
        let waiting = self.waiting.into_iter().map(|(m, _)| {
            let other = if m.sender == origin {
                &m.recipient
            } else {
                &m.sender
            };
            let awaiting = format!("a REGISTRATION or TRANSFER naming {other}");
            (m, awaiting)
        });
        let orphans = self
            .parked
            .into_iter()
            .chain(waiting)
            .map(|(m, awaiting)| Orphan {
                message_id: m.id.clone(),
                sender: m.sender.clone(),
                kind: m.body.kind(),
                since: m.accepted_at,
                awaiting,
            })
            .collect();
        Reconciled {
            state: self.state,
            obligations: self.obligations.into_values().collect(),
            discrepancies: self.discrepancies,
            orphans,
            standings,
            next_change,
        }
    }
}

/// The instant a day begins in Shanghai.
fn start_of(day: time::Date) -> OffsetDateTime {
    midnight_after(day.previous_day().expect("dates within range"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::case::{self, Access, CaseStatus, Earlier};
    use crate::domain::message::{
        CertificateIssued, CertificateVerification, Closure, ClosureReason, Person,
        PregnancyCheckFeedback, Registration, RegistrationConfirmation, Transfer,
        VerificationReply, VerificationRequest,
    };
    use crate::domain::{MaritalStatus, PersonName, ResidentId, Sex};
    use proptest::prelude::*;
    use time::Duration;
    use time::macros::{date, datetime};

    const ORIGIN: &str = "341502";
    const D: &str = "310112";
    const E: &str = "440306";
    const STRANGER: &str = "310114";
    /// 2024-01-10 in Shanghai, in 2024Q1.
    const T0: OffsetDateTime = datetime!(2024-01-10 09:00 +8);

    #[test]
    fn only_unresolved_discrepancies_are_open() {
        let discrepancy = |resolved: bool| Discrepancy {
            field: "name".into(),
            origin_value: "a".into(),
            destination_value: "b".into(),
            found_at: T0,
            found_by: MessageId::parse("m-1").unwrap(),
            resolved_at: resolved.then_some(T0),
            resolved_by: resolved.then(|| MessageId::parse("m-2").unwrap()),
        };
        let findings = Findings {
            discrepancies: vec![discrepancy(false), discrepancy(true), discrepancy(false)],
            orphans: Vec::new(),
        };
        assert_eq!(findings.open_discrepancies(), 2);
        assert_eq!(Findings::default().open_discrepancies(), 0);
    }

    fn code(c: &str) -> RegionCode {
        RegionCode::parse(c).unwrap()
    }

    fn key() -> CaseKey {
        CaseKey {
            resident: ResidentId::parse("11010519491231002X").unwrap(),
            origin: code(ORIGIN),
        }
    }

    fn day(n: i64) -> OffsetDateTime {
        T0 + Duration::days(n)
    }

    fn rec(id: &str, from: &str, to: &str, at: OffsetDateTime, body: Body) -> Recorded {
        Recorded {
            id: MessageId::parse(id).unwrap(),
            sender: code(from),
            recipient: code(to),
            accepted_at: at,
            body,
        }
    }

    fn person(children: u32) -> Person {
        Person {
            name: PersonName::parse("张三").unwrap(),
            sex: Some(Sex::Female),
            birth_date: None,
            marital_status: Some(MaritalStatus::FirstMarriage),
            children: Some(children),
        }
    }

    fn registration(children: u32) -> Body {
        Body::Registration(Registration {
            person: person(children),
            left_on: Some(date!(2023 - 11 - 01)),
            destination_address: String::new(),
            destination_phone: String::new(),
            periodic_checks: true,
        })
    }

    fn confirmation(children: u32) -> Body {
        Body::RegistrationConfirmation(RegistrationConfirmation {
            finding: Finding::Found,
            observed: Some(person(children)),
            address: String::new(),
            phone: String::new(),
            confirmed_on: None,
        })
    }

    fn request(urgency: Urgency) -> Body {
        Body::VerificationRequest(VerificationRequest {
            urgency,
            certificate_mismatch: false,
        })
    }

    fn reply(to: &str) -> Body {
        Body::VerificationReply(VerificationReply {
            request: MessageId::parse(to).unwrap(),
        })
    }

    fn feedback(period: &str) -> Body {
        Body::PregnancyCheckFeedback(PregnancyCheckFeedback {
            period: Period::parse(period).unwrap(),
            result: CheckResult::NotChecked {
                reason: crate::domain::message::NotCheckedReason::NotReached,
            },
        })
    }

    fn transfer(to: &str) -> Body {
        Body::Transfer(Transfer {
            new_destination: code(to),
            moved_on: None,
            new_address: String::new(),
        })
    }

    fn closure() -> Body {
        Body::Closure(Closure {
            reason: ClosureReason::ReturnedHome,
            closed_on: None,
            note: String::new(),
        })
    }

    use crate::domain::message::CheckResult;

    fn run(messages: &[Recorded], now: OffsetDateTime) -> Reconciled {
        reconcile(&key(), messages, &Policy::default(), now)
    }

    fn obligation<'a>(r: &'a Reconciled, key: &str) -> &'a Obligation {
        r.obligations
            .iter()
            .find(|o| o.key == key)
            .unwrap_or_else(|| {
                panic!(
                    "no {key} in {:?}",
                    r.obligations.iter().map(|o| &o.key).collect::<Vec<_>>()
                )
            })
    }

    #[test]
    fn a_timely_confirmation_fulfils_on_time_and_a_late_one_late() {
        let reg = rec("reg", ORIGIN, D, day(0), registration(1));
        let on_time = rec("c", D, ORIGIN, day(10), confirmation(1));
        let r = run(&[reg.clone(), on_time], day(60));
        let o = obligation(&r, "CONFIRM_REGISTRATION:310112");
        assert_eq!(o.state, ObligationState::FulfilledOnTime);
        assert_eq!(o.debtor, code(D));
        assert_eq!(o.closed_by.as_deref(), Some("c"));
        // 30 days end at midnight after 2024-02-09 in Shanghai.
        assert_eq!(o.due_at, datetime!(2024-02-10 00:00 +8));

        let late = rec("c", D, ORIGIN, day(31), confirmation(1));
        let r = run(&[reg.clone(), late], day(60));
        assert_eq!(
            obligation(&r, "CONFIRM_REGISTRATION:310112").state,
            ObligationState::FulfilledLate
        );

        let r = run(&[reg], day(45));
        let o = obligation(&r, "CONFIRM_REGISTRATION:310112");
        assert!(o.is_overdue(day(45)) && !o.is_escalated(day(45)));
        assert!(!o.is_escalated(day(61)) && o.is_escalated(day(62)));
    }

    #[test]
    fn a_reply_before_its_request_waits_then_matches() {
        let reg = rec("reg", ORIGIN, D, day(0), registration(1));
        let answer = rec("ans", D, ORIGIN, day(2), reply("ask"));
        let r = run(&[reg.clone(), answer.clone()], day(3));
        assert_eq!(r.orphans.len(), 1);
        assert_eq!(r.orphans[0].awaiting, "VERIFICATION_REQUEST ask");
        let ask = rec("ask", ORIGIN, D, day(3), request(Urgency::Urgent));
        let r = run(&[reg, answer, ask], day(40));
        assert!(r.orphans.is_empty());
        let o = obligation(&r, "ANSWER_REQUEST:341502:ask");
        assert_eq!(o.state, ObligationState::FulfilledOnTime);
        assert_eq!(o.detail, "urgent");
    }

    #[test]
    fn periodic_feedback_covers_back_periods_and_is_due_on_the_20th() {
        let reg = rec("reg", ORIGIN, D, day(0), registration(1));
        let fb = rec("fb", D, ORIGIN, day(5), feedback("2023Q4"));
        let now = datetime!(2024-05-01 12:00 +8);
        let r = run(&[reg, fb], now);
        let keys: Vec<_> = r
            .obligations
            .iter()
            .filter(|o| o.kind == ObligationKind::PeriodicFeedback)
            .map(|o| o.detail.as_str())
            .collect();
        assert_eq!(keys, ["2023Q4", "2024Q1", "2024Q2"]);
        let q4 = obligation(&r, "PERIODIC_FEEDBACK:2023Q4");
        assert_eq!(q4.state, ObligationState::FulfilledOnTime);
        assert_eq!(q4.due_at, datetime!(2024-01-21 00:00 +8));
        let q1 = obligation(&r, "PERIODIC_FEEDBACK:2024Q1");
        assert!(q1.is_overdue(now));
        assert_eq!(q1.due_at, datetime!(2024-04-21 00:00 +8));
        assert!(!obligation(&r, "PERIODIC_FEEDBACK:2024Q2").is_overdue(now));
        assert_eq!(r.next_change, Some(datetime!(2024-07-01 00:00 +8)));
    }

    #[test]
    fn a_transfer_moves_future_obligations_and_keeps_past_ones() {
        let msgs = [
            rec("reg", ORIGIN, D, day(0), registration(1)),
            rec("c", D, ORIGIN, day(5), confirmation(1)),
            rec("ask", ORIGIN, D, day(6), request(Urgency::Normal)),
            rec(
                "cert",
                ORIGIN,
                D,
                day(7),
                Body::CertificateIssued(CertificateIssued {
                    number: "LA-1".into(),
                    issued_on: date!(2024 - 01 - 01),
                    valid_until: None,
                }),
            ),
            // 2024-04-19, in 2024Q2.
            rec("move", ORIGIN, E, day(100), transfer(E)),
        ];
        let now = datetime!(2024-08-01 12:00 +8);
        let r = run(&msgs, now);
        assert_eq!(obligation(&r, "ANSWER_REQUEST:341502:ask").debtor, code(D));
        let cert = obligation(&r, "VERIFY_CERTIFICATE:LA-1");
        assert_eq!(cert.debtor, code(E));
        assert_eq!(cert.opened_at, day(100));
        assert_eq!(
            obligation(&r, "CONFIRM_REGISTRATION:310112").state,
            ObligationState::FulfilledOnTime
        );
        assert_eq!(
            obligation(&r, "CONFIRM_REGISTRATION:440306").debtor,
            code(E)
        );
        assert_eq!(obligation(&r, "PERIODIC_FEEDBACK:2024Q1").debtor, code(D));
        assert_eq!(obligation(&r, "PERIODIC_FEEDBACK:2024Q2").debtor, code(E));
        assert_eq!(obligation(&r, "PERIODIC_FEEDBACK:2024Q3").debtor, code(E));
        assert_eq!(r.state.access_of(&code(D)), Access::Masked);
    }

    #[test]
    fn closure_cancels_what_is_open_and_stops_new_periods() {
        let msgs = [
            rec("reg", ORIGIN, D, day(0), registration(1)),
            rec("ask", D, ORIGIN, day(1), request(Urgency::Normal)),
            rec("bye", ORIGIN, D, day(20), closure()),
        ];
        let r = run(&msgs, datetime!(2024-12-01 00:00 +8));
        assert!(
            r.obligations
                .iter()
                .all(|o| o.state != ObligationState::Open)
        );
        let ask = obligation(&r, "ANSWER_REQUEST:310112:ask");
        assert_eq!(ask.state, ObligationState::Cancelled);
        assert_eq!(ask.closed_by.as_deref(), Some("closed by bye"));
        let periods: Vec<_> = r
            .obligations
            .iter()
            .filter(|o| o.kind == ObligationKind::PeriodicFeedback)
            .map(|o| o.detail.clone())
            .collect();
        assert_eq!(periods, ["2023Q4", "2024Q1"]);
        assert_eq!(r.next_change, None);
        assert_eq!(r.state.status, CaseStatus::Closed);
    }

    #[test]
    fn voiding_a_request_after_its_reply_cancels_its_obligation() {
        let msgs = [
            rec("reg", ORIGIN, D, day(0), registration(1)),
            rec("ask", ORIGIN, D, day(1), request(Urgency::Normal)),
            rec("ans", D, ORIGIN, day(2), reply("ask")),
            rec(
                "oops",
                ORIGIN,
                D,
                day(3),
                Body::Void {
                    target: MessageId::parse("ask").unwrap(),
                },
            ),
        ];
        let r = run(&msgs, day(10));
        let o = obligation(&r, "ANSWER_REQUEST:341502:ask");
        assert_eq!(o.state, ObligationState::Cancelled);
        assert_eq!(o.closed_by.as_deref(), Some("voided by oops"));
        assert_eq!(
            r.standing(&code(ORIGIN), &MessageId::parse("ask").unwrap()),
            Standing::Voided
        );
        assert!(
            r.orphans.is_empty(),
            "the reply answered something that existed"
        );
    }

    #[test]
    fn a_discrepancy_is_found_and_a_correction_resolves_it() {
        let reg = rec("reg", ORIGIN, D, day(0), registration(1));
        let seen = rec("c", D, ORIGIN, day(4), confirmation(2));
        let r = run(&[reg.clone(), seen.clone()], day(5));
        assert_eq!(r.discrepancies.len(), 1);
        let x = &r.discrepancies[0];
        assert_eq!(
            (
                x.field.as_str(),
                x.origin_value.as_str(),
                x.destination_value.as_str()
            ),
            ("children", "1", "2")
        );
        assert_eq!(x.found_at, day(4));
        assert!(x.resolved_at.is_none());

        let fix = rec(
            "fix",
            ORIGIN,
            D,
            day(6),
            Body::Correction {
                target: MessageId::parse("reg").unwrap(),
                corrected: Box::new(registration(2)),
            },
        );
        let r = run(&[reg, seen, fix], day(7));
        let x = &r.discrepancies[0];
        assert_eq!(x.resolved_at, Some(day(6)));
        assert_eq!(x.resolved_by.as_ref().map(MessageId::as_str), Some("fix"));
        assert_eq!(r.state.origin_report.as_ref().unwrap().children, Some(2));
        assert_eq!(
            obligation(&r, "CONFIRM_REGISTRATION:310112").state,
            ObligationState::FulfilledOnTime,
            "a correction does not reopen what was answered"
        );
    }

    #[test]
    fn a_failed_certificate_check_is_a_discrepancy_until_verified() {
        let issued = Body::CertificateIssued(CertificateIssued {
            number: "LA-1".into(),
            issued_on: date!(2024 - 01 - 01),
            valid_until: None,
        });
        let check = |result| {
            Body::CertificateVerification(CertificateVerification {
                number: "LA-1".into(),
                result,
                mismatched_fields: vec!["name".into()],
                checked_on: None,
            })
        };
        let msgs = [
            rec("reg", ORIGIN, D, day(0), registration(1)),
            rec("v1", D, ORIGIN, day(1), check(VerificationResult::Mismatch)),
            rec("cert", ORIGIN, D, day(2), issued),
            rec("v2", D, ORIGIN, day(9), check(VerificationResult::Valid)),
        ];
        let r = run(&msgs, day(10));
        let x = &r.discrepancies[0];
        assert_eq!(x.field, "certificate_number:LA-1");
        assert_eq!(x.destination_value, "mismatch: name");
        assert_eq!(x.resolved_by.as_ref().map(MessageId::as_str), Some("v2"));
        // The verification that came before the certificate answered it.
        let o = obligation(&r, "VERIFY_CERTIFICATE:LA-1");
        assert_eq!(o.closed_by.as_deref(), Some("v1"));
    }

    #[test]
    fn a_strangers_message_waits_and_changes_nothing() {
        let msgs = [
            rec("reg", ORIGIN, D, day(0), registration(1)),
            rec("x", STRANGER, ORIGIN, day(1), confirmation(5)),
        ];
        let r = run(&msgs, day(2));
        assert!(r.state.destination_report.is_none());
        assert_eq!(r.state.access_of(&code(STRANGER)), Access::None);
        assert_eq!(r.orphans.len(), 1);
        assert_eq!(
            r.orphans[0].awaiting,
            "a REGISTRATION or TRANSFER naming 310114"
        );
        assert_eq!(
            obligation(&r, "CONFIRM_REGISTRATION:310112").state,
            ObligationState::Open
        );
    }

    #[test]
    fn the_new_destination_may_answer_before_the_transfer_arrives() {
        let msgs = [
            rec("reg", ORIGIN, D, day(0), registration(1)),
            rec("early", E, ORIGIN, day(50), confirmation(1)),
            rec("move", ORIGIN, E, day(52), transfer(E)),
        ];
        let r = run(&msgs, day(53));
        assert!(r.orphans.is_empty());
        let o = obligation(&r, "CONFIRM_REGISTRATION:440306");
        assert_eq!(o.state, ObligationState::FulfilledOnTime);
        assert_eq!(o.closed_by.as_deref(), Some("early"));
        assert_eq!(
            r.state.status,
            CaseStatus::Active,
            "the new destination found the person"
        );
    }

    // ---- properties over generated message sets ----

    /// A legitimate history of one case: every message is one its sender
    /// may send, at its own acceptance time (some equal, to test ties).
    fn history() -> impl Strategy<Value = Vec<Recorded>> {
        let times = proptest::collection::vec(0i64..200, 16);
        (
            times,
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            proptest::collection::vec((any::<bool>(), any::<bool>(), any::<bool>()), 0..3),
            proptest::collection::vec(0usize..4, 0..3),
            0u8..4,
        )
            .prop_map(
                |(t, confirm, cert, verify, moves, closes, requests, periods, amend)| {
                    let at = |i: usize| T0 + Duration::hours(t[i]);
                    let mut m = vec![rec("reg", ORIGIN, D, at(0), registration(1))];
                    if confirm {
                        m.push(rec("conf", D, ORIGIN, at(1), confirmation(2)));
                    }
                    if cert {
                        m.push(rec(
                            "cert",
                            ORIGIN,
                            D,
                            at(2),
                            Body::CertificateIssued(CertificateIssued {
                                number: "LA-1".into(),
                                issued_on: date!(2024 - 01 - 01),
                                valid_until: None,
                            }),
                        ));
                    }
                    if verify {
                        m.push(rec(
                            "ver",
                            D,
                            ORIGIN,
                            at(3),
                            Body::CertificateVerification(CertificateVerification {
                                number: "LA-1".into(),
                                result: VerificationResult::Valid,
                                mismatched_fields: vec![],
                                checked_on: None,
                            }),
                        ));
                    }
                    for (i, (from_origin, answered, urgent)) in requests.iter().enumerate() {
                        let (asker, asked) = if *from_origin {
                            (ORIGIN, D)
                        } else {
                            (D, ORIGIN)
                        };
                        let id = format!("ask-{i}");
                        let urgency = if *urgent {
                            Urgency::Urgent
                        } else {
                            Urgency::Normal
                        };
                        m.push(rec(&id, asker, asked, at(4 + i), request(urgency)));
                        if *answered {
                            m.push(rec(
                                &format!("ans-{i}"),
                                asked,
                                asker,
                                at(7 + i),
                                reply(&id),
                            ));
                        }
                    }
                    for (i, q) in periods.iter().enumerate() {
                        let period = ["2023Q4", "2024Q1", "2024Q2", "2024Q3"][*q];
                        m.push(rec(
                            &format!("fb-{i}"),
                            D,
                            ORIGIN,
                            at(10 + i),
                            feedback(period),
                        ));
                    }
                    if moves {
                        m.push(rec("move", ORIGIN, E, at(13), transfer(E)));
                        m.push(rec("conf-e", E, ORIGIN, at(14), confirmation(1)));
                    }
                    match amend {
                        1 if !requests.is_empty() => m.push(rec(
                            "void-0",
                            if requests[0].0 { ORIGIN } else { D },
                            if requests[0].0 { D } else { ORIGIN },
                            at(15),
                            Body::Void {
                                target: MessageId::parse("ask-0").unwrap(),
                            },
                        )),
                        2 => m.push(rec(
                            "fix",
                            ORIGIN,
                            D,
                            at(15),
                            Body::Correction {
                                target: MessageId::parse("reg").unwrap(),
                                corrected: Box::new(registration(2)),
                            },
                        )),
                        _ => {}
                    }
                    if closes {
                        m.push(rec("bye", ORIGIN, D, at(12), closure()));
                    }
                    m
                },
            )
    }

    fn message_of(r: &Recorded) -> Message {
        Message {
            id: r.id.clone(),
            sender: r.sender.clone(),
            recipient: r.recipient.clone(),
            case: key(),
            body: r.body.clone(),
        }
    }

    const NOW: OffsetDateTime = datetime!(2024-12-01 00:00 +8);

    proptest! {
        #![proptest_config(crate::proptest_config())]

        /// Whatever order the messages arrive in, each is accepted and the
        /// case ends the same.
        #[test]
        fn any_arrival_order_is_accepted_and_ends_the_same(
            messages in history(),
            order in any::<proptest::sample::Index>(),
            seed in any::<u64>(),
        ) {
            let _ = order;
            let canonical = run(&messages, NOW);
            // A permutation from the seed (Fisher-Yates with a small LCG).
            let mut arrival = messages.clone();
            let mut x = seed | 1;
            for i in (1..arrival.len()).rev() {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                arrival.swap(i, (x >> 33) as usize % (i + 1));
            }
            let mut arrived: Vec<Recorded> = Vec::new();
            for m in &arrival {
                let state = (!arrived.is_empty()).then(|| run(&arrived, m.accepted_at).state);
                let earlier = match &m.body {
                    Body::Void { target } | Body::Correction { target, .. } => arrived
                        .iter()
                        .find(|a| a.sender == m.sender && &a.id == target)
                        .map(|a| Earlier {
                            sender: a.sender.clone(),
                            kind: a.body.kind(),
                            standing: Standing::Active,
                            same_case: true,
                        }),
                    _ => None,
                };
                let verdict = case::apply(state, &message_of(m), earlier.as_ref(), m.accepted_at);
                prop_assert!(verdict.is_ok(), "{} rejected: {:?}", m.id, verdict.err());
                arrived.push(m.clone());
            }
            prop_assert_eq!(run(&arrived, NOW), canonical);
        }

        /// Replaying any message changes nothing.
        #[test]
        fn replaying_changes_nothing(messages in history(), which in any::<proptest::sample::Index>()) {
            let once = run(&messages, NOW);
            let mut twice = messages.clone();
            twice.push(messages[which.index(messages.len())].clone());
            prop_assert_eq!(run(&twice, NOW), once);
        }

        /// What every history owes and has answered holds together.
        #[test]
        fn obligations_are_consistent(messages in history()) {
            let r = run(&messages, NOW);
            for o in &r.obligations {
                prop_assert_eq!(o.state == ObligationState::Open, o.closed_at.is_none(), "{:?}", o);
                prop_assert!(o.due_at >= o.opened_at || o.kind == ObligationKind::PeriodicFeedback);
                prop_assert!(o.escalates_at >= o.due_at);
                if o.state == ObligationState::FulfilledOnTime {
                    prop_assert!(o.closed_at.unwrap() <= o.due_at);
                }
                if o.state == ObligationState::FulfilledLate {
                    prop_assert!(o.closed_at.unwrap() > o.due_at);
                }
            }
            // Every answered request that stands is answered.
            for m in &messages {
                if let Body::VerificationReply(reply) = &m.body {
                    let key = format!("ANSWER_REQUEST:{}:{}", m.recipient, reply.request);
                    if let Some(o) = r.obligations.iter().find(|o| o.key == key) {
                        prop_assert_ne!(o.state, ObligationState::Open);
                    }
                }
            }
            // Nothing waits once its counterpart is there.
            prop_assert!(r.orphans.iter().all(|o| o.kind != Kind::RegistrationConfirmation || o.sender == code(STRANGER)));
        }
    }
}
