//! A message as the domain sees it: parsed at the edge, then trusted. The
//! checks here are the ones that need more than one field or the clock.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use super::{
    MaritalStatus, Period, PersonName, Policy, RegionCode, ResidentId, Sex, Violation, today,
};

/// A sender-chosen idempotency key: 1 to 64 characters of `[A-Za-z0-9._:-]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MessageId(String);

impl MessageId {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.is_empty() {
            Err("must not be empty")
        } else if raw.len() > 64 {
            Err("must be at most 64 characters")
        } else if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        {
            Err("may contain only A-Z, a-z, 0-9 and . _ : -")
        } else {
            Ok(Self(raw.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({})", self.0)
    }
}

/// A case is one person under co-management, keyed by resident ID and
/// origin office.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CaseKey {
    pub resident: ResidentId,
    pub origin: RegionCode,
}

#[derive(Debug, Clone)]
pub struct Message {
    pub id: MessageId,
    pub sender: RegionCode,
    pub recipient: RegionCode,
    pub case: CaseKey,
    pub body: Body,
}

/// The person as one side reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub name: PersonName,
    pub sex: Option<Sex>,
    pub birth_date: Option<Date>,
    pub marital_status: Option<MaritalStatus>,
    pub children: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub person: Person,
    pub left_on: Option<Date>,
    pub destination_address: String,
    pub destination_phone: String,
    pub periodic_checks: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Finding {
    Found,
    NotFound,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationConfirmation {
    pub finding: Finding,
    pub observed: Option<Person>,
    pub address: String,
    pub phone: String,
    pub confirmed_on: Option<Date>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateIssued {
    pub number: String,
    pub issued_on: Date,
    pub valid_until: Option<Date>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VerificationResult {
    Valid,
    NotFound,
    Mismatch,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateVerification {
    pub number: String,
    pub result: VerificationResult,
    pub mismatched_fields: Vec<String>,
    pub checked_on: Option<Date>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckOutcome {
    Normal,
    Pregnant,
    FollowUp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NotCheckedReason {
    NotReached,
    Refused,
    MovedAway,
    Exempt,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckResult {
    Checked { on: Date, outcome: CheckOutcome },
    NotChecked { reason: NotCheckedReason },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PregnancyCheckFeedback {
    pub period: Period,
    pub result: CheckResult,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Urgency {
    Normal,
    Urgent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerificationRequest {
    pub urgency: Urgency,
    pub certificate_mismatch: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerificationReply {
    pub request: MessageId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub new_destination: RegionCode,
    pub moved_on: Option<Date>,
    pub new_address: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClosureReason {
    ReturnedHome,
    OutOfScope,
    Deceased,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closure {
    pub reason: ClosureReason,
    pub closed_on: Option<Date>,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    Registration(Registration),
    RegistrationConfirmation(RegistrationConfirmation),
    CertificateIssued(CertificateIssued),
    CertificateVerification(CertificateVerification),
    PregnancyCheckFeedback(PregnancyCheckFeedback),
    VerificationRequest(VerificationRequest),
    VerificationReply(VerificationReply),
    Transfer(Transfer),
    Closure(Closure),
    Reminder {
        about: Option<MessageId>,
    },
    Void {
        target: MessageId,
    },
    Correction {
        target: MessageId,
        corrected: Box<Body>,
    },
}

/// The kind of a message, as stored and shown (`REGISTRATION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Kind {
    Registration,
    RegistrationConfirmation,
    CertificateIssued,
    CertificateVerification,
    PregnancyCheckFeedback,
    VerificationRequest,
    VerificationReply,
    Transfer,
    Closure,
    Reminder,
    Void,
    Correction,
}

/// Which side of the case may send a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Origin,
    Destination,
    Either,
}

impl Kind {
    pub const ALL: [Kind; 12] = [
        Kind::Registration,
        Kind::RegistrationConfirmation,
        Kind::CertificateIssued,
        Kind::CertificateVerification,
        Kind::PregnancyCheckFeedback,
        Kind::VerificationRequest,
        Kind::VerificationReply,
        Kind::Transfer,
        Kind::Closure,
        Kind::Reminder,
        Kind::Void,
        Kind::Correction,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Registration => "REGISTRATION",
            Kind::RegistrationConfirmation => "REGISTRATION_CONFIRMATION",
            Kind::CertificateIssued => "CERTIFICATE_ISSUED",
            Kind::CertificateVerification => "CERTIFICATE_VERIFICATION",
            Kind::PregnancyCheckFeedback => "PREGNANCY_CHECK_FEEDBACK",
            Kind::VerificationRequest => "VERIFICATION_REQUEST",
            Kind::VerificationReply => "VERIFICATION_REPLY",
            Kind::Transfer => "TRANSFER",
            Kind::Closure => "CLOSURE",
            Kind::Reminder => "REMINDER",
            Kind::Void => "VOID",
            Kind::Correction => "CORRECTION",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn sent_by(self) -> Side {
        match self {
            Kind::Registration | Kind::CertificateIssued | Kind::Closure => Side::Origin,
            Kind::RegistrationConfirmation
            | Kind::CertificateVerification
            | Kind::PregnancyCheckFeedback => Side::Destination,
            Kind::VerificationRequest
            | Kind::VerificationReply
            | Kind::Transfer
            | Kind::Reminder
            | Kind::Void
            | Kind::Correction => Side::Either,
        }
    }
}

impl Body {
    pub fn kind(&self) -> Kind {
        match self {
            Body::Registration(_) => Kind::Registration,
            Body::RegistrationConfirmation(_) => Kind::RegistrationConfirmation,
            Body::CertificateIssued(_) => Kind::CertificateIssued,
            Body::CertificateVerification(_) => Kind::CertificateVerification,
            Body::PregnancyCheckFeedback(_) => Kind::PregnancyCheckFeedback,
            Body::VerificationRequest(_) => Kind::VerificationRequest,
            Body::VerificationReply(_) => Kind::VerificationReply,
            Body::Transfer(_) => Kind::Transfer,
            Body::Closure(_) => Kind::Closure,
            Body::Reminder { .. } => Kind::Reminder,
            Body::Void { .. } => Kind::Void,
            Body::Correction { .. } => Kind::Correction,
        }
    }
}

impl Message {
    /// The checks that need the clock, the policy or several fields: IDs and
    /// codes the policy does not accept, dates in the future, birth date and
    /// sex that disagree with the ID. Field paths are relative to the
    /// envelope.
    pub fn check(&self, policy: &Policy, now: OffsetDateTime) -> Vec<Violation> {
        let mut v = Vec::new();
        let today = today(now);
        if !self.case.resident.check_digit_ok() && !policy.accept_bad_check_digits {
            v.push(Violation::new(
                "case_ref.resident_id",
                "BAD_CHECK_DIGIT",
                "the check character does not match the first 17 digits (GB 11643)",
            ));
        }
        if self.case.resident.birth_date() > today {
            v.push(Violation::new(
                "case_ref.resident_id",
                "FUTURE_DATE",
                "the birth date in the ID is in the future",
            ));
        }
        let mut code = |field: &str, c: &RegionCode| {
            if !c.is_known() && !policy.accept_unknown_regions {
                v.push(Violation::new(
                    field,
                    "UNKNOWN_REGION",
                    format!("{c} is not a region code of GB/T 2260"),
                ));
            }
        };
        code("case_ref.origin_office", &self.case.origin);
        code("recipient_office", &self.recipient);
        if let Body::Transfer(t) = &self.body {
            code("transfer.new_destination_office", &t.new_destination);
        }
        if self.sender == self.recipient {
            v.push(Violation::new(
                "recipient_office",
                "SELF_ADDRESSED",
                "a message must be addressed to another office",
            ));
        }
        let origin_sends = self.sender == self.case.origin;
        if !origin_sends && self.recipient != self.case.origin {
            v.push(Violation::new(
                "recipient_office",
                "NOT_A_PARTY",
                "one of sender and recipient must be the case's origin office",
            ));
        }
        match (self.body.kind().sent_by(), origin_sends) {
            (Side::Origin, false) => v.push(Violation::new(
                field_of(self.body.kind()),
                "WRONG_SIDE",
                format!(
                    "{} is sent by the case's origin office only",
                    self.body.kind().as_str()
                ),
            )),
            (Side::Destination, true) => v.push(Violation::new(
                field_of(self.body.kind()),
                "WRONG_SIDE",
                format!(
                    "{} is sent by the destination office only",
                    self.body.kind().as_str()
                ),
            )),
            _ => {}
        }
        check_body(&self.body, &self.case.resident, today, &mut v, "");
        v
    }
}

/// The envelope field that holds a body of this kind.
pub fn field_of(kind: Kind) -> &'static str {
    match kind {
        Kind::Registration => "registration",
        Kind::RegistrationConfirmation => "registration_confirmation",
        Kind::CertificateIssued => "certificate_issued",
        Kind::CertificateVerification => "certificate_verification",
        Kind::PregnancyCheckFeedback => "pregnancy_check_feedback",
        Kind::VerificationRequest => "verification_request",
        Kind::VerificationReply => "verification_reply",
        Kind::Transfer => "transfer",
        Kind::Closure => "closure",
        Kind::Reminder => "reminder",
        Kind::Void => "void",
        Kind::Correction => "correction",
    }
}

fn check_body(body: &Body, id: &ResidentId, today: Date, v: &mut Vec<Violation>, prefix: &str) {
    let base = format!("{prefix}{}", field_of(body.kind()));
    let mut not_future = |field: &str, d: Option<Date>| {
        if d.is_some_and(|d| d > today) {
            v.push(Violation::new(
                format!("{base}.{field}"),
                "FUTURE_DATE",
                "must not be in the future",
            ));
        }
    };
    match body {
        Body::Registration(r) => {
            not_future("left_on", r.left_on);
            check_person(&r.person, id, &format!("{base}.person"), v);
        }
        Body::RegistrationConfirmation(c) => {
            not_future("confirmed_on", c.confirmed_on);
            if let Some(p) = &c.observed {
                check_person(p, id, &format!("{base}.observed"), v);
            }
        }
        Body::CertificateIssued(c) => {
            not_future("issued_on", Some(c.issued_on));
            if c.valid_until.is_some_and(|u| u < c.issued_on) {
                v.push(Violation::new(
                    format!("{base}.valid_until"),
                    "INVALID_RANGE",
                    "must not be before issued_on",
                ));
            }
        }
        Body::CertificateVerification(c) => not_future("checked_on", c.checked_on),
        Body::PregnancyCheckFeedback(f) => {
            if f.period.start() > today {
                v.push(Violation::new(
                    format!("{base}.period"),
                    "FUTURE_PERIOD",
                    "the period has not started yet",
                ));
            }
            if let CheckResult::Checked { on, .. } = f.result
                && on > today
            {
                v.push(Violation::new(
                    format!("{base}.checked.checked_on"),
                    "FUTURE_DATE",
                    "must not be in the future",
                ));
            }
        }
        Body::Transfer(t) => not_future("moved_on", t.moved_on),
        Body::Closure(c) => not_future("closed_on", c.closed_on),
        Body::Correction { corrected, .. } => {
            check_body(corrected, id, today, v, &format!("{base}."));
        }
        Body::VerificationRequest(_)
        | Body::VerificationReply(_)
        | Body::Reminder { .. }
        | Body::Void { .. } => {}
    }
}

/// Birth date and sex stated in a message must agree with the ID.
fn check_person(p: &Person, id: &ResidentId, field: &str, v: &mut Vec<Violation>) {
    if p.birth_date.is_some_and(|d| d != id.birth_date()) {
        v.push(Violation::new(
            format!("{field}.birth_date"),
            "DISAGREES_WITH_ID",
            "the birth date differs from the one in the resident ID",
        ));
    }
    if p.sex.is_some_and(|s| s != id.sex()) {
        v.push(Violation::new(
            format!("{field}.sex"),
            "DISAGREES_WITH_ID",
            "the sex differs from the one in the resident ID (17th digit)",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    fn person() -> Person {
        Person {
            name: PersonName::parse("张三").unwrap(),
            sex: Some(Sex::Female),
            birth_date: Some(date!(1949 - 12 - 31)),
            marital_status: Some(MaritalStatus::FirstMarriage),
            children: Some(1),
        }
    }

    fn registration(sender: &str, recipient: &str) -> Message {
        Message {
            id: MessageId::parse("m-1").unwrap(),
            sender: RegionCode::parse(sender).unwrap(),
            recipient: RegionCode::parse(recipient).unwrap(),
            case: CaseKey {
                resident: ResidentId::parse("11010519491231002X").unwrap(),
                origin: RegionCode::parse("341502").unwrap(),
            },
            body: Body::Registration(Registration {
                person: person(),
                left_on: Some(date!(2008 - 03 - 01)),
                destination_address: String::new(),
                destination_phone: String::new(),
                periodic_checks: true,
            }),
        }
    }

    const NOW: OffsetDateTime = datetime!(2009-01-01 00:00 UTC);

    #[test]
    fn a_good_registration_passes() {
        assert_eq!(
            registration("341502", "310112").check(&Policy::default(), NOW),
            vec![]
        );
    }

    #[test]
    fn message_ids_are_limited() {
        assert!(MessageId::parse("a.b_c:d-1").is_ok());
        assert!(MessageId::parse("").is_err());
        assert!(MessageId::parse(&"a".repeat(65)).is_err());
        assert!(MessageId::parse("a b").is_err());
        assert!(MessageId::parse("号").is_err());
    }

    #[test]
    fn a_registration_from_a_destination_is_the_wrong_side() {
        let v = registration("310112", "341502").check(&Policy::default(), NOW);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].reason, "WRONG_SIDE");
        assert_eq!(v[0].field, "registration");
    }

    #[test]
    fn outsiders_cannot_talk_about_a_case() {
        let v = registration("310112", "310114").check(&Policy::default(), NOW);
        assert!(v.iter().any(|v| v.reason == "NOT_A_PARTY"));
    }

    #[test]
    fn birth_date_and_sex_must_agree_with_the_id() {
        let mut m = registration("341502", "310112");
        if let Body::Registration(r) = &mut m.body {
            r.person.sex = Some(Sex::Male);
            r.person.birth_date = Some(date!(1950 - 01 - 01));
        }
        let v = m.check(&Policy::default(), NOW);
        let fields: Vec<_> = v.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            ["registration.person.birth_date", "registration.person.sex"]
        );
    }

    #[test]
    fn future_dates_are_rejected() {
        let mut m = registration("341502", "310112");
        if let Body::Registration(r) = &mut m.body {
            r.left_on = Some(date!(2009 - 01 - 02));
        }
        let v = m.check(&Policy::default(), NOW);
        assert_eq!(v[0].field, "registration.left_on");
        assert_eq!(v[0].reason, "FUTURE_DATE");
        // Today in Shanghai is already 2009-01-01 08:00 at midnight UTC.
        if let Body::Registration(r) = &mut m.body {
            r.left_on = Some(date!(2009 - 01 - 01));
        }
        assert_eq!(m.check(&Policy::default(), NOW), vec![]);
    }

    #[test]
    fn bad_check_digits_follow_the_policy() {
        let mut m = registration("341502", "310112");
        m.case.resident = ResidentId::parse("110105194912310021").unwrap();
        if let Body::Registration(r) = &mut m.body {
            r.person.sex = None;
        }
        let v = m.check(&Policy::default(), NOW);
        assert_eq!(v[0].reason, "BAD_CHECK_DIGIT");
        let lenient = Policy {
            accept_bad_check_digits: true,
            ..Policy::default()
        };
        assert_eq!(m.check(&lenient, NOW), vec![]);
    }

    #[test]
    fn unknown_regions_follow_the_policy() {
        let mut m = registration("341502", "310112");
        m.recipient = RegionCode::parse_format("999999").unwrap();
        let v = m.check(&Policy::default(), NOW);
        assert_eq!(v[0].reason, "UNKNOWN_REGION");
        assert_eq!(v[0].field, "recipient_office");
        let lenient = Policy {
            accept_unknown_regions: true,
            ..Policy::default()
        };
        assert_eq!(m.check(&lenient, NOW), vec![]);
    }

    #[test]
    fn kinds_round_trip() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
        }
    }
}
