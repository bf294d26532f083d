//! A case and what one message does to it: `apply` is a pure function of
//! the case as stored, the message, the earlier message it refers to (for
//! void and correction) and the time.

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use super::message::{
    Body, CertificateIssued, CheckResult, ClosureReason, Finding, Kind, Message, MessageId, Person,
    VerificationResult, field_of,
};
use super::{CaseKey, RegionCode, Violation};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CaseStatus {
    /// Messages about the person arrived before the origin's registration.
    Pending,
    Active,
    /// Moved to another destination, which has not confirmed the person yet.
    Transferred,
    Closed,
}

impl CaseStatus {
    pub const ALL: [CaseStatus; 4] = [
        CaseStatus::Pending,
        CaseStatus::Active,
        CaseStatus::Transferred,
        CaseStatus::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::Pending => "pending",
            CaseStatus::Active => "active",
            CaseStatus::Transferred => "transferred",
            CaseStatus::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// A destination the person lived in, from `since` until `until` (open while
/// current).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spell {
    pub office: RegionCode,
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub until: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateRecord {
    pub number: String,
    pub issued_on: Date,
    pub valid_until: Option<Date>,
    pub last_verification: Option<VerificationResult>,
    pub verified_on: Option<Date>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedbackRecord {
    pub period: String,
    pub result: CheckResult,
    pub from_office: RegionCode,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosureRecord {
    pub reason: ClosureReason,
    pub closed_on: Option<Date>,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseState {
    pub resident_id: String,
    pub legacy_resident_id: Option<String>,
    pub origin: RegionCode,
    /// Every destination in order; the last one with no `until` is current.
    pub destinations: Vec<Spell>,
    pub status: CaseStatus,
    pub closure: Option<ClosureRecord>,
    pub origin_report: Option<Person>,
    pub destination_report: Option<Person>,
    pub finding: Option<Finding>,
    pub left_on: Option<Date>,
    pub destination_address: String,
    pub destination_phone: String,
    pub periodic_checks: bool,
    pub certificates: Vec<CertificateRecord>,
    pub feedback: Vec<FeedbackRecord>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl CaseState {
    /// A case no message has touched yet.
    pub fn empty(case: &CaseKey, created: OffsetDateTime) -> Self {
        Self {
            resident_id: case.resident.as_str().to_string(),
            legacy_resident_id: case.resident.legacy().map(str::to_string),
            origin: case.origin.clone(),
            destinations: Vec::new(),
            status: CaseStatus::Pending,
            closure: None,
            origin_report: None,
            destination_report: None,
            finding: None,
            left_on: None,
            destination_address: String::new(),
            destination_phone: String::new(),
            periodic_checks: false,
            certificates: Vec::new(),
            feedback: Vec::new(),
            created_at: created,
            updated_at: created,
        }
    }

    pub fn current_destination(&self) -> Option<&RegionCode> {
        self.destinations
            .last()
            .filter(|s| s.until.is_none())
            .map(|s| &s.office)
    }

    /// Whether the office is or was a destination of the case.
    pub fn was_destination(&self, office: &RegionCode) -> bool {
        self.destinations.iter().any(|s| &s.office == office)
    }

    /// Who may read the case, and in how much detail.
    pub fn access_of(&self, office: &RegionCode) -> Access {
        if office == &self.origin || self.current_destination() == Some(office) {
            Access::Full
        } else if self.was_destination(office) {
            Access::Masked
        } else {
            Access::None
        }
    }

    fn move_to(&mut self, office: &RegionCode, now: OffsetDateTime) {
        if self.current_destination() == Some(office) {
            return;
        }
        if let Some(last) = self.destinations.last_mut()
            && last.until.is_none()
        {
            last.until = Some(now);
        }
        self.destinations.push(Spell {
            office: office.clone(),
            since: now,
            until: None,
        });
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The origin and the current destination.
    Full,
    /// A past destination: identifying data masked.
    Masked,
    None,
}

/// Whether an accepted message still stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Active,
    Voided,
    Superseded,
}

impl Standing {
    pub fn as_str(self) -> &'static str {
        match self {
            Standing::Active => "ACTIVE",
            Standing::Voided => "VOIDED",
            Standing::Superseded => "SUPERSEDED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Standing::Active, Standing::Voided, Standing::Superseded]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

/// An earlier message a void or correction refers to, as stored.
#[derive(Debug, Clone)]
pub struct Earlier {
    pub sender: RegionCode,
    pub kind: Kind,
    pub standing: Standing,
    /// Whether it is about the same case.
    pub same_case: bool,
}

/// What accepting a message does.
#[derive(Debug, Clone)]
pub struct Applied {
    pub state: CaseState,
    /// The offices that receive the message: the recipient first, then any
    /// other party that must hear of it (both destinations of a transfer).
    pub recipients: Vec<RegionCode>,
    /// The new standing of the message a void or correction refers to.
    pub target: Option<(MessageId, Standing)>,
}

/// Applies one message that passed `Message::check` to the case it names.
/// `earlier` is the message a void or correction targets, if it has arrived.
pub fn apply(
    state: Option<CaseState>,
    msg: &Message,
    earlier: Option<&Earlier>,
    now: OffsetDateTime,
) -> Result<Applied, Vec<Violation>> {
    let mut state = state.unwrap_or_else(|| CaseState::empty(&msg.case, now));
    let mut recipients = vec![msg.recipient.clone()];
    let mut target = None;
    match &msg.body {
        Body::Void { target: id } => {
            if let Some(e) = earlier {
                check_target(e, msg, None)?;
                target = Some((id.clone(), Standing::Voided));
            }
        }
        Body::Correction {
            target: id,
            corrected,
        } => {
            if let Some(e) = earlier {
                check_target(e, msg, Some(corrected.kind()))?;
                target = Some((id.clone(), Standing::Superseded));
            }
            apply_body(
                &mut state,
                &msg.sender,
                &msg.recipient,
                corrected,
                &mut recipients,
                now,
                earlier.is_some(),
            )?;
        }
        body => apply_body(
            &mut state,
            &msg.sender,
            &msg.recipient,
            body,
            &mut recipients,
            now,
            false,
        )?,
    }
    state.updated_at = now;
    Ok(Applied {
        state,
        recipients,
        target,
    })
}

fn check_target(e: &Earlier, msg: &Message, kind: Option<Kind>) -> Result<(), Vec<Violation>> {
    let field = format!("{}.target_message_id", field_of(msg.body.kind()));
    let fail = |reason, text: &str| Err(vec![Violation::new(field.clone(), reason, text)]);
    if !e.same_case {
        return fail("OTHER_CASE", "the target message is about another case");
    }
    if e.sender != msg.sender {
        return fail(
            "NOT_ORIGINAL_SENDER",
            "only the original sender may void or correct a message",
        );
    }
    if e.standing != Standing::Active {
        return fail(
            "NOT_ACTIVE",
            "the target message was already voided or superseded",
        );
    }
    if matches!(e.kind, Kind::Void | Kind::Correction) && kind.is_none() {
        return fail("NOT_VOIDABLE", "a void or correction cannot be voided");
    }
    if let Some(k) = kind
        && k != e.kind
    {
        return fail(
            "KIND_MISMATCH",
            "the corrected body must be of the target message's kind",
        );
    }
    Ok(())
}

/// What one body does to the case state, sent by `sender` to `recipient`.
/// A corrected body (`correcting`) fixes facts: it never moves the person
/// or reopens a closed case.
pub(crate) fn apply_body(
    state: &mut CaseState,
    sender: &RegionCode,
    recipient: &RegionCode,
    body: &Body,
    recipients: &mut Vec<RegionCode>,
    now: OffsetDateTime,
    correcting: bool,
) -> Result<(), Vec<Violation>> {
    match body {
        Body::Registration(r) if correcting => {
            state.origin_report = Some(r.person.clone());
            state.left_on = r.left_on.or(state.left_on);
            state.destination_address = r.destination_address.clone();
            state.destination_phone = r.destination_phone.clone();
            state.periodic_checks = r.periodic_checks;
        }
        Body::Registration(r) => {
            state.move_to(recipient, now);
            state.origin_report = Some(r.person.clone());
            state.left_on = r.left_on.or(state.left_on);
            state.destination_address = r.destination_address.clone();
            state.destination_phone = r.destination_phone.clone();
            state.periodic_checks = r.periodic_checks;
            if matches!(state.status, CaseStatus::Pending | CaseStatus::Closed) {
                state.status = CaseStatus::Active;
                state.closure = None;
            }
        }
        Body::RegistrationConfirmation(c) => {
            state.finding = Some(c.finding);
            if let Some(p) = &c.observed {
                state.destination_report = Some(p.clone());
            }
            if !c.address.is_empty() {
                state.destination_address = c.address.clone();
            }
            if !c.phone.is_empty() {
                state.destination_phone = c.phone.clone();
            }
            if c.finding == Finding::Found && state.status == CaseStatus::Transferred {
                state.status = CaseStatus::Active;
            }
        }
        Body::CertificateIssued(c) => issue_certificate(state, c),
        Body::CertificateVerification(v) => {
            if let Some(cert) = state.certificates.iter_mut().find(|c| c.number == v.number) {
                cert.last_verification = Some(v.result);
                cert.verified_on = v.checked_on;
            }
        }
        Body::PregnancyCheckFeedback(f) => {
            let period = f.period.to_string();
            let record = FeedbackRecord {
                period: period.clone(),
                result: f.result,
                from_office: sender.clone(),
            };
            match state.feedback.iter_mut().find(|r| r.period == period) {
                Some(existing) => *existing = record,
                None => state.feedback.push(record),
            }
        }
        Body::Transfer(t) => {
            let field = "transfer.new_destination_office";
            if t.new_destination == state.origin {
                return Err(vec![Violation::new(
                    field,
                    "NOT_A_DESTINATION",
                    "a person who moves back home is closed (CLOSURE), not transferred",
                )]);
            }
            let current = state.current_destination().cloned();
            if current.as_ref() == Some(&t.new_destination) {
                return Err(vec![Violation::new(
                    field,
                    "ALREADY_THERE",
                    "is already the case's destination",
                )]);
            }
            if *sender != state.origin && current.as_ref() != Some(sender) {
                return Err(vec![Violation::new(
                    "sender_office",
                    "NOT_CURRENT_DESTINATION",
                    "only the origin or the current destination may transfer a case",
                )]);
            }
            state.move_to(&t.new_destination, now);
            if !t.new_address.is_empty() {
                state.destination_address = t.new_address.clone();
            }
            if state.status != CaseStatus::Closed {
                state.status = CaseStatus::Transferred;
            }
            for office in [
                Some(state.origin.clone()),
                current,
                Some(t.new_destination.clone()),
            ]
            .into_iter()
            .flatten()
            {
                if &office != sender && !recipients.contains(&office) {
                    recipients.push(office);
                }
            }
        }
        Body::Closure(c) => {
            state.status = CaseStatus::Closed;
            state.closure = Some(ClosureRecord {
                reason: c.reason,
                closed_on: c.closed_on,
                note: c.note.clone(),
            });
        }
        // Recorded in the history; their obligations come with the
        // reconciliation engine.
        Body::VerificationRequest(_)
        | Body::VerificationReply(_)
        | Body::Reminder { .. }
        | Body::Void { .. }
        | Body::Correction { .. } => {}
    }
    Ok(())
}

fn issue_certificate(state: &mut CaseState, c: &CertificateIssued) {
    let record = CertificateRecord {
        number: c.number.clone(),
        issued_on: c.issued_on,
        valid_until: c.valid_until,
        last_verification: None,
        verified_on: None,
    };
    match state.certificates.iter_mut().find(|r| r.number == c.number) {
        Some(existing) => {
            existing.issued_on = c.issued_on;
            existing.valid_until = c.valid_until;
        }
        None => state.certificates.push(record),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::message::{
        CaseKey, Closure, Registration, RegistrationConfirmation, Transfer,
    };
    use crate::domain::{MaritalStatus, PersonName, ResidentId, Sex};
    use time::macros::{date, datetime};

    const NOW: OffsetDateTime = datetime!(2009-01-01 00:00 UTC);

    fn code(c: &str) -> RegionCode {
        RegionCode::parse(c).unwrap()
    }

    fn msg(id: &str, sender: &str, recipient: &str, body: Body) -> Message {
        Message {
            id: MessageId::parse(id).unwrap(),
            sender: code(sender),
            recipient: code(recipient),
            case: CaseKey {
                resident: ResidentId::parse("11010519491231002X").unwrap(),
                origin: code("341502"),
            },
            body,
        }
    }

    fn person(name: &str) -> Person {
        Person {
            name: PersonName::parse(name).unwrap(),
            sex: Some(Sex::Female),
            birth_date: None,
            marital_status: Some(MaritalStatus::FirstMarriage),
            children: Some(1),
        }
    }

    fn registration(to: &str) -> Message {
        msg(
            "reg-1",
            "341502",
            to,
            Body::Registration(Registration {
                person: person("张三"),
                left_on: Some(date!(2008 - 03 - 01)),
                destination_address: "上海市闵行区".into(),
                destination_phone: String::new(),
                periodic_checks: true,
            }),
        )
    }

    fn registered() -> CaseState {
        apply(None, &registration("310112"), None, NOW)
            .unwrap()
            .state
    }

    #[test]
    fn registration_opens_an_active_case_at_the_destination() {
        let s = registered();
        assert_eq!(s.status, CaseStatus::Active);
        assert_eq!(s.current_destination(), Some(&code("310112")));
        assert_eq!(s.access_of(&code("341502")), Access::Full);
        assert_eq!(s.access_of(&code("310112")), Access::Full);
        assert_eq!(s.access_of(&code("310114")), Access::None);
    }

    #[test]
    fn a_confirmation_before_registration_leaves_a_pending_case() {
        let confirmation = msg(
            "c-1",
            "310112",
            "341502",
            Body::RegistrationConfirmation(RegistrationConfirmation {
                finding: Finding::Found,
                observed: Some(person("张三")),
                address: String::new(),
                phone: String::new(),
                confirmed_on: None,
            }),
        );
        let s = apply(None, &confirmation, None, NOW).unwrap().state;
        assert_eq!(s.status, CaseStatus::Pending);
        // Sending first grants no access: only the origin names destinations.
        assert_eq!(s.access_of(&code("310112")), Access::None);
        let s = apply(Some(s), &registration("310112"), None, NOW)
            .unwrap()
            .state;
        assert_eq!(s.status, CaseStatus::Active);
        assert!(s.destination_report.is_some() && s.origin_report.is_some());
    }

    #[test]
    fn transfer_keeps_history_and_tells_every_party() {
        let s = registered();
        let later = NOW + time::Duration::days(30);
        let t = msg(
            "t-1",
            "310112",
            "341502",
            Body::Transfer(Transfer {
                new_destination: code("440306"),
                moved_on: None,
                new_address: String::new(),
            }),
        );
        let applied = apply(Some(s), &t, None, later).unwrap();
        assert_eq!(applied.recipients, vec![code("341502"), code("440306")]);
        let s = applied.state;
        assert_eq!(s.status, CaseStatus::Transferred);
        assert_eq!(s.current_destination(), Some(&code("440306")));
        assert_eq!(s.destinations[0].until, Some(later));
        assert_eq!(s.access_of(&code("310112")), Access::Masked);
        assert_eq!(s.access_of(&code("440306")), Access::Full);
    }

    #[test]
    fn only_the_original_sender_voids() {
        let s = registered();
        let earlier = Earlier {
            sender: code("341502"),
            kind: Kind::Registration,
            standing: Standing::Active,
            same_case: true,
        };
        let void = msg(
            "v-1",
            "310112",
            "341502",
            Body::Void {
                target: MessageId::parse("reg-1").unwrap(),
            },
        );
        let err = apply(Some(s.clone()), &void, Some(&earlier), NOW).unwrap_err();
        assert_eq!(err[0].reason, "NOT_ORIGINAL_SENDER");
        let void = msg(
            "v-2",
            "341502",
            "310112",
            Body::Void {
                target: MessageId::parse("reg-1").unwrap(),
            },
        );
        let applied = apply(Some(s), &void, Some(&earlier), NOW).unwrap();
        assert_eq!(applied.target.unwrap().1, Standing::Voided);
    }

    #[test]
    fn closure_then_registration_reopens() {
        let s = registered();
        let c = msg(
            "x-1",
            "341502",
            "310112",
            Body::Closure(Closure {
                reason: ClosureReason::ReturnedHome,
                closed_on: None,
                note: String::new(),
            }),
        );
        let s = apply(Some(s), &c, None, NOW).unwrap().state;
        assert_eq!(s.status, CaseStatus::Closed);
        let s = apply(Some(s), &registration("310112"), None, NOW)
            .unwrap()
            .state;
        assert_eq!(s.status, CaseStatus::Active);
        assert!(s.closure.is_none());
    }

    #[test]
    fn state_survives_storage_as_json() {
        let s = registered();
        let json = serde_json::to_string(&s).unwrap();
        let back: CaseState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }
}
