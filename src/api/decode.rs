//! Parsing at the edge: a wire envelope becomes a domain [`Message`], or a
//! list of every field that is wrong, each with its path relative to the
//! envelope (`registration.person.name`).

use time::{Date, Month};

use crate::domain::message::{
    CertificateIssued, CertificateVerification, CheckOutcome, CheckResult, Closure, ClosureReason,
    Finding, NotCheckedReason, Person, PregnancyCheckFeedback, Registration,
    RegistrationConfirmation, Transfer, Urgency, VerificationReply, VerificationRequest,
    VerificationResult,
};
use crate::domain::region::RegionCodeError;
use crate::domain::resident_id::ResidentIdError;
use crate::domain::{
    Body, CaseKey, MaritalStatus, Message, MessageId, Period, PersonName, RegionCode, ResidentId,
    Sex, Violation,
};
use crate::proto;
use crate::proto::envelope::Body as WireBody;

/// Collects violations while decoding, so one pass reports every problem.
#[derive(Default)]
struct Decoder {
    violations: Vec<Violation>,
}

impl Decoder {
    fn fail(&mut self, field: &str, reason: &'static str, description: impl Into<String>) {
        self.violations
            .push(Violation::new(field, reason, description));
    }

    fn required<T>(&mut self, field: &str, value: Option<T>) -> Option<T> {
        if value.is_none() {
            self.fail(field, "REQUIRED", "is required");
        }
        value
    }

    fn message_id(&mut self, field: &str, raw: &str) -> Option<MessageId> {
        MessageId::parse(raw)
            .map_err(|e| self.fail(field, "INVALID_MESSAGE_ID", e))
            .ok()
    }

    /// A region code: well-formed here; whether it is known is the policy's
    /// call (`Message::check`).
    fn region(&mut self, field: &str, raw: &str) -> Option<RegionCode> {
        if raw.trim().is_empty() {
            self.fail(field, "REQUIRED", "is required");
            return None;
        }
        RegionCode::parse_format(raw)
            .map_err(|e: RegionCodeError| self.fail(field, "INVALID_REGION_CODE", e.to_string()))
            .ok()
    }

    fn resident_id(&mut self, field: &str, raw: &str) -> Option<ResidentId> {
        ResidentId::parse(raw)
            .map_err(|e: ResidentIdError| self.fail(field, "INVALID_RESIDENT_ID", e.to_string()))
            .ok()
    }

    fn date(&mut self, field: &str, d: Option<&proto::Date>) -> Option<Date> {
        let d = d?;
        let month = u8::try_from(d.month)
            .ok()
            .and_then(|m| Month::try_from(m).ok());
        let day = u8::try_from(d.day).ok();
        match (month, day) {
            (Some(m), Some(day)) if (1850..=9999).contains(&d.year) => {
                Date::from_calendar_date(d.year, m, day).ok()
            }
            _ => None,
        }
        .or_else(|| {
            self.fail(field, "INVALID_DATE", "is not a calendar date");
            None
        })
    }

    fn required_date(&mut self, field: &str, d: Option<&proto::Date>) -> Option<Date> {
        let d = self.required(field, d)?;
        self.date(field, Some(d))
    }

    /// Free text: trimmed, at most `max` characters, no control characters
    /// other than line breaks.
    fn text(&mut self, field: &str, raw: &str, max: usize) -> String {
        let text = raw.trim();
        if text.chars().count() > max {
            self.fail(
                field,
                "TOO_LONG",
                format!("must be at most {max} characters"),
            );
        } else if text.chars().any(|c| c.is_control() && c != '\n') {
            self.fail(
                field,
                "CONTROL_CHARACTERS",
                "must not contain control characters",
            );
        }
        text.to_string()
    }

    fn required_text(&mut self, field: &str, raw: &str, max: usize) -> String {
        if raw.trim().is_empty() {
            self.fail(field, "REQUIRED", "is required");
        }
        self.text(field, raw, max)
    }

    /// An enum that must be set: unknown numbers and UNSPECIFIED are errors.
    fn choice<W, D>(&mut self, field: &str, raw: i32, map: impl Fn(W) -> Option<D>) -> Option<D>
    where
        W: TryFrom<i32>,
    {
        let value = W::try_from(raw).ok().and_then(map);
        if value.is_none() {
            self.fail(field, "REQUIRED", "must be set to one of the enum's values");
        }
        value
    }

    /// An enum that may be left UNSPECIFIED.
    fn optional_choice<W, D>(
        &mut self,
        field: &str,
        raw: i32,
        map: impl Fn(W) -> Option<D>,
    ) -> Option<D>
    where
        W: TryFrom<i32>,
    {
        if raw == 0 {
            return None;
        }
        self.choice(field, raw, map)
    }

    fn person(&mut self, field: &str, p: Option<&proto::Person>) -> Option<Person> {
        let p = self.required(field, p)?;
        let name = PersonName::parse(&p.name)
            .map_err(|e| self.fail(&format!("{field}.name"), "INVALID_NAME", e))
            .ok();
        let sex = self.optional_choice(&format!("{field}.sex"), p.sex, |s: proto::Sex| match s {
            proto::Sex::Male => Some(Sex::Male),
            proto::Sex::Female => Some(Sex::Female),
            proto::Sex::Unspecified => None,
        });
        let birth_date = self.date(&format!("{field}.birth_date"), p.birth_date.as_ref());
        let marital_status = self.optional_choice(
            &format!("{field}.marital_status"),
            p.marital_status,
            |m: proto::MaritalStatus| match m {
                proto::MaritalStatus::Unmarried => Some(MaritalStatus::Unmarried),
                proto::MaritalStatus::FirstMarriage => Some(MaritalStatus::FirstMarriage),
                proto::MaritalStatus::Remarried => Some(MaritalStatus::Remarried),
                proto::MaritalStatus::Divorced => Some(MaritalStatus::Divorced),
                proto::MaritalStatus::Widowed => Some(MaritalStatus::Widowed),
                proto::MaritalStatus::Unspecified => None,
            },
        );
        if p.children.is_some_and(|c| c > 30) {
            self.fail(
                &format!("{field}.children"),
                "OUT_OF_RANGE",
                "must be at most 30",
            );
        }
        Some(Person {
            name: name?,
            sex,
            birth_date,
            marital_status,
            children: p.children,
        })
    }

    fn certificate_number(&mut self, field: &str, raw: &str) -> String {
        let number = self.required_text(field, raw, 64);
        if number.chars().any(char::is_whitespace) {
            self.fail(
                field,
                "INVALID_CERTIFICATE_NUMBER",
                "must not contain spaces",
            );
        }
        number
    }

    fn body(&mut self, field: &str, body: &WireBody) -> Option<Body> {
        let f = |name: &str| format!("{field}{name}");
        Some(match body {
            WireBody::Registration(r) => {
                let person = self.person(&f("registration.person"), r.person.as_ref());
                let left_on = self.date(&f("registration.left_on"), r.left_on.as_ref());
                let destination_address = self.text(
                    &f("registration.destination_address"),
                    &r.destination_address,
                    200,
                );
                let destination_phone = self.text(
                    &f("registration.destination_phone"),
                    &r.destination_phone,
                    32,
                );
                self.text(&f("registration.note"), &r.note, 2000);
                Body::Registration(Registration {
                    person: person?,
                    left_on,
                    destination_address,
                    destination_phone,
                    periodic_checks: r.periodic_checks,
                })
            }
            WireBody::RegistrationConfirmation(c) => {
                let base = f("registration_confirmation");
                let finding = self.choice(
                    &format!("{base}.finding"),
                    c.finding,
                    |x: proto::Finding| match x {
                        proto::Finding::Found => Some(Finding::Found),
                        proto::Finding::NotFound => Some(Finding::NotFound),
                        proto::Finding::Unspecified => None,
                    },
                );
                // A found person comes with what the destination observed.
                let observed = match (finding, c.observed.as_ref()) {
                    (Some(Finding::Found), _) | (_, Some(_)) => {
                        Some(self.person(&format!("{base}.observed"), c.observed.as_ref()))
                    }
                    (_, None) => None,
                };
                let address = self.text(&format!("{base}.address"), &c.address, 200);
                let phone = self.text(&format!("{base}.phone"), &c.phone, 32);
                let confirmed_on =
                    self.date(&format!("{base}.confirmed_on"), c.confirmed_on.as_ref());
                self.text(&format!("{base}.note"), &c.note, 2000);
                Body::RegistrationConfirmation(RegistrationConfirmation {
                    finding: finding?,
                    observed: observed.map(|o| o.ok_or(())).transpose().ok()?,
                    address,
                    phone,
                    confirmed_on,
                })
            }
            WireBody::CertificateIssued(c) => {
                let base = f("certificate_issued");
                let number = self.certificate_number(
                    &format!("{base}.certificate_number"),
                    &c.certificate_number,
                );
                let issued_on =
                    self.required_date(&format!("{base}.issued_on"), c.issued_on.as_ref());
                let valid_until = self.date(&format!("{base}.valid_until"), c.valid_until.as_ref());
                Body::CertificateIssued(CertificateIssued {
                    number,
                    issued_on: issued_on?,
                    valid_until,
                })
            }
            WireBody::CertificateVerification(c) => {
                let base = f("certificate_verification");
                let number = self.certificate_number(
                    &format!("{base}.certificate_number"),
                    &c.certificate_number,
                );
                let result = self.choice(
                    &format!("{base}.result"),
                    c.result,
                    |r: proto::VerificationResult| match r {
                        proto::VerificationResult::Valid => Some(VerificationResult::Valid),
                        proto::VerificationResult::NotFound => Some(VerificationResult::NotFound),
                        proto::VerificationResult::Mismatch => Some(VerificationResult::Mismatch),
                        proto::VerificationResult::Unspecified => None,
                    },
                );
                if result == Some(VerificationResult::Mismatch) && c.mismatched_fields.is_empty() {
                    self.fail(
                        &format!("{base}.mismatched_fields"),
                        "REQUIRED",
                        "a mismatch names the fields that disagree",
                    );
                }
                if c.mismatched_fields.len() > 16 {
                    self.fail(
                        &format!("{base}.mismatched_fields"),
                        "TOO_MANY",
                        "at most 16 fields",
                    );
                }
                let mismatched_fields = c
                    .mismatched_fields
                    .iter()
                    .enumerate()
                    .map(|(i, name)| {
                        self.required_text(&format!("{base}.mismatched_fields[{i}]"), name, 64)
                    })
                    .collect();
                let checked_on = self.date(&format!("{base}.checked_on"), c.checked_on.as_ref());
                self.text(&format!("{base}.note"), &c.note, 2000);
                Body::CertificateVerification(CertificateVerification {
                    number,
                    result: result?,
                    mismatched_fields,
                    checked_on,
                })
            }
            WireBody::PregnancyCheckFeedback(p) => {
                self.feedback(&f("pregnancy_check_feedback"), p)?
            }
            WireBody::VerificationRequest(r) => {
                let base = f("verification_request");
                let urgency = self.choice(
                    &format!("{base}.urgency"),
                    r.urgency,
                    |u: proto::Urgency| match u {
                        proto::Urgency::Normal => Some(Urgency::Normal),
                        proto::Urgency::Urgent => Some(Urgency::Urgent),
                        proto::Urgency::Unspecified => None,
                    },
                );
                self.required_text(&format!("{base}.question"), &r.question, 2000);
                Body::VerificationRequest(VerificationRequest {
                    urgency: urgency?,
                    certificate_mismatch: r.certificate_mismatch,
                })
            }
            WireBody::VerificationReply(r) => {
                let base = f("verification_reply");
                let request =
                    self.message_id(&format!("{base}.request_message_id"), &r.request_message_id);
                self.required_text(&format!("{base}.answer"), &r.answer, 2000);
                Body::VerificationReply(VerificationReply { request: request? })
            }
            WireBody::Transfer(t) => {
                let base = f("transfer");
                let new_destination = self.region(
                    &format!("{base}.new_destination_office"),
                    &t.new_destination_office,
                );
                let moved_on = self.date(&format!("{base}.moved_on"), t.moved_on.as_ref());
                let new_address = self.text(&format!("{base}.new_address"), &t.new_address, 200);
                Body::Transfer(Transfer {
                    new_destination: new_destination?,
                    moved_on,
                    new_address,
                })
            }
            WireBody::Closure(c) => {
                let base = f("closure");
                let reason = self.choice(
                    &format!("{base}.reason"),
                    c.reason,
                    |r: proto::ClosureReason| match r {
                        proto::ClosureReason::ReturnedHome => Some(ClosureReason::ReturnedHome),
                        proto::ClosureReason::OutOfScope => Some(ClosureReason::OutOfScope),
                        proto::ClosureReason::Deceased => Some(ClosureReason::Deceased),
                        proto::ClosureReason::Other => Some(ClosureReason::Other),
                        proto::ClosureReason::Unspecified => None,
                    },
                );
                let closed_on = self.date(&format!("{base}.closed_on"), c.closed_on.as_ref());
                let note = self.text(&format!("{base}.note"), &c.note, 2000);
                if reason == Some(ClosureReason::Other) && note.is_empty() {
                    self.fail(
                        &format!("{base}.note"),
                        "REQUIRED",
                        "say why when the reason is OTHER",
                    );
                }
                Body::Closure(Closure {
                    reason: reason?,
                    closed_on,
                    note,
                })
            }
            WireBody::Reminder(r) => {
                let base = f("reminder");
                let about = if r.about_message_id.is_empty() {
                    None
                } else {
                    Some(self.message_id(&format!("{base}.about_message_id"), &r.about_message_id)?)
                };
                self.text(&format!("{base}.note"), &r.note, 2000);
                Body::Reminder { about }
            }
            WireBody::Void(v) => {
                let base = f("void");
                let target =
                    self.message_id(&format!("{base}.target_message_id"), &v.target_message_id);
                self.text(&format!("{base}.reason"), &v.reason, 2000);
                Body::Void { target: target? }
            }
            WireBody::Correction(c) => {
                let base = f("correction");
                let target =
                    self.message_id(&format!("{base}.target_message_id"), &c.target_message_id);
                self.required_text(&format!("{base}.reason"), &c.reason, 2000);
                use proto::correction::Corrected;
                let corrected = match &c.corrected {
                    None => {
                        self.fail(
                            &format!("{base}.corrected"),
                            "REQUIRED",
                            "the corrected body is required",
                        );
                        None
                    }
                    Some(body) => {
                        let wire = match body {
                            Corrected::Registration(x) => WireBody::Registration(x.clone()),
                            Corrected::RegistrationConfirmation(x) => {
                                WireBody::RegistrationConfirmation(x.clone())
                            }
                            Corrected::CertificateIssued(x) => {
                                WireBody::CertificateIssued(x.clone())
                            }
                            Corrected::CertificateVerification(x) => {
                                WireBody::CertificateVerification(x.clone())
                            }
                            Corrected::PregnancyCheckFeedback(x) => {
                                WireBody::PregnancyCheckFeedback(x.clone())
                            }
                            Corrected::VerificationReply(x) => {
                                WireBody::VerificationReply(x.clone())
                            }
                            Corrected::Closure(x) => WireBody::Closure(x.clone()),
                        };
                        self.body(&format!("{base}."), &wire)
                    }
                };
                Body::Correction {
                    target: target?,
                    corrected: Box::new(corrected?),
                }
            }
        })
    }

    fn feedback(&mut self, base: &str, p: &proto::PregnancyCheckFeedback) -> Option<Body> {
        use proto::pregnancy_check_feedback::Result as Wire;
        let period = Period::parse(&p.period)
            .map_err(|e| self.fail(&format!("{base}.period"), "INVALID_PERIOD", e.to_string()))
            .ok();
        let result = match &p.result {
            None => {
                self.fail(
                    &format!("{base}.result"),
                    "REQUIRED",
                    "either checked or not_checked is required",
                );
                None
            }
            Some(Wire::Checked(c)) => {
                let on = self
                    .required_date(&format!("{base}.checked.checked_on"), c.checked_on.as_ref());
                let outcome = self.choice(
                    &format!("{base}.checked.outcome"),
                    c.outcome,
                    |o: proto::CheckOutcome| match o {
                        proto::CheckOutcome::Normal => Some(CheckOutcome::Normal),
                        proto::CheckOutcome::Pregnant => Some(CheckOutcome::Pregnant),
                        proto::CheckOutcome::FollowUp => Some(CheckOutcome::FollowUp),
                        proto::CheckOutcome::Unspecified => None,
                    },
                );
                Some(CheckResult::Checked {
                    on: on?,
                    outcome: outcome?,
                })
            }
            Some(Wire::NotChecked(n)) => {
                let reason = self.choice(
                    &format!("{base}.not_checked.reason"),
                    n.reason,
                    |r: proto::NotCheckedReason| match r {
                        proto::NotCheckedReason::NotReached => Some(NotCheckedReason::NotReached),
                        proto::NotCheckedReason::Refused => Some(NotCheckedReason::Refused),
                        proto::NotCheckedReason::MovedAway => Some(NotCheckedReason::MovedAway),
                        proto::NotCheckedReason::Exempt => Some(NotCheckedReason::Exempt),
                        proto::NotCheckedReason::Other => Some(NotCheckedReason::Other),
                        proto::NotCheckedReason::Unspecified => None,
                    },
                );
                self.text(&format!("{base}.not_checked.note"), &n.note, 2000);
                Some(CheckResult::NotChecked { reason: reason? })
            }
        };
        Some(Body::PregnancyCheckFeedback(PregnancyCheckFeedback {
            period: period?,
            result: result?,
        }))
    }
}

/// Decodes one envelope sent by `caller`. Field paths are relative to the
/// envelope.
pub fn envelope(env: &proto::Envelope, caller: &RegionCode) -> Result<Message, Vec<Violation>> {
    let mut d = Decoder::default();
    let id = d.message_id("message_id", &env.message_id);
    if !env.sender_office.is_empty() && env.sender_office != caller.as_str() {
        d.fail(
            "sender_office",
            "SENDER_MISMATCH",
            format!(
                "the sender is the office of the client certificate ({caller}); \
                 leave it empty or set it to that"
            ),
        );
    }
    let recipient = d.region("recipient_office", &env.recipient_office);
    let case = d.required("case_ref", env.case_ref.as_ref()).and_then(|r| {
        let resident = d.resident_id("case_ref.resident_id", &r.resident_id);
        let origin = d.region("case_ref.origin_office", &r.origin_office);
        Some(CaseKey {
            resident: resident?,
            origin: origin?,
        })
    });
    let body = match &env.body {
        Some(b) => d.body("", b),
        None => {
            d.fail(
                "body",
                "REQUIRED",
                "one message body (registration, …) is required",
            );
            None
        }
    };
    match (id, recipient, case, body) {
        (Some(id), Some(recipient), Some(case), Some(body)) if d.violations.is_empty() => {
            Ok(Message {
                id,
                sender: caller.clone(),
                recipient,
                case,
                body,
            })
        }
        _ => Err(d.violations),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Policy;
    use proptest::prelude::*;
    use prost::Message as _;

    fn caller() -> RegionCode {
        RegionCode::parse("341502").unwrap()
    }

    fn base(body: WireBody) -> proto::Envelope {
        proto::Envelope {
            message_id: "m-1".into(),
            sender_office: String::new(),
            recipient_office: "310112".into(),
            case_ref: Some(proto::CaseRef {
                resident_id: "11010519491231002X".into(),
                origin_office: "341502".into(),
            }),
            sent_at: None,
            body: Some(body),
        }
    }

    fn fields(env: &proto::Envelope) -> Vec<(String, &'static str)> {
        envelope(env, &caller())
            .unwrap_err()
            .into_iter()
            .map(|v| (v.field, v.reason))
            .collect()
    }

    #[test]
    fn every_problem_is_named_by_its_path() {
        let env = proto::Envelope {
            message_id: String::new(),
            recipient_office: "31011".into(),
            case_ref: None,
            body: None,
            ..base(WireBody::Reminder(proto::Reminder::default()))
        };
        assert_eq!(
            fields(&env),
            [
                ("message_id".to_string(), "INVALID_MESSAGE_ID"),
                ("recipient_office".to_string(), "INVALID_REGION_CODE"),
                ("case_ref".to_string(), "REQUIRED"),
                ("body".to_string(), "REQUIRED"),
            ]
        );
    }

    #[test]
    fn dates_and_enums_must_be_real() {
        let env = base(WireBody::Registration(proto::Registration {
            person: Some(proto::Person {
                name: "张三".into(),
                sex: 7,
                birth_date: Some(proto::Date {
                    year: 1949,
                    month: 2,
                    day: 30,
                }),
                marital_status: 0,
                children: Some(99),
            }),
            ..Default::default()
        }));
        assert_eq!(
            fields(&env),
            [
                ("registration.person.sex".to_string(), "REQUIRED"),
                ("registration.person.birth_date".to_string(), "INVALID_DATE"),
                ("registration.person.children".to_string(), "OUT_OF_RANGE"),
            ]
        );
    }

    #[test]
    fn corrections_are_checked_inside() {
        let env = base(WireBody::Correction(proto::Correction {
            target_message_id: "m-0".into(),
            reason: "typo".into(),
            corrected: Some(proto::correction::Corrected::Closure(proto::Closure {
                reason: 0,
                ..Default::default()
            })),
        }));
        assert_eq!(
            fields(&env),
            [("correction.closure.reason".to_string(), "REQUIRED")]
        );
    }

    #[test]
    fn a_found_person_needs_the_observed_facts() {
        let env = base(WireBody::RegistrationConfirmation(
            proto::RegistrationConfirmation {
                finding: proto::Finding::Found as i32,
                ..Default::default()
            },
        ));
        assert_eq!(
            fields(&env),
            [("registration_confirmation.observed".to_string(), "REQUIRED")]
        );
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            "\\PC{0,70}",
            "[0-9]{5,10}",
            "[0-9]{14,17}[0-9Xx]?",
            "[0-9]{4}(Q[0-5]|H[0-3]|-[0-9]{2})",
        ]
    }

    fn date() -> impl Strategy<Value = Option<proto::Date>> {
        proptest::option::of(
            (
                prop_oneof![any::<i32>(), 1840..2100i32],
                prop_oneof![any::<i32>(), 0..14i32],
                prop_oneof![any::<i32>(), 0..32i32],
            )
                .prop_map(|(year, month, day)| proto::Date { year, month, day }),
        )
    }

    fn enum_value() -> impl Strategy<Value = i32> {
        prop_oneof![any::<i32>(), 0..7i32]
    }

    fn person() -> impl Strategy<Value = Option<proto::Person>> {
        proptest::option::of(
            (
                text(),
                enum_value(),
                date(),
                enum_value(),
                proptest::option::of(any::<u32>()),
            )
                .prop_map(|(name, sex, birth_date, marital_status, children)| {
                    proto::Person {
                        name,
                        sex,
                        birth_date,
                        marital_status,
                        children,
                    }
                }),
        )
    }

    fn body() -> impl Strategy<Value = WireBody> {
        prop_oneof![
            (person(), date(), text(), text(), any::<bool>()).prop_map(
                |(person, left_on, a, p, c)| {
                    WireBody::Registration(proto::Registration {
                        person,
                        left_on,
                        destination_address: a,
                        destination_phone: p,
                        periodic_checks: c,
                        note: String::new(),
                    })
                }
            ),
            (enum_value(), person(), date()).prop_map(|(finding, observed, confirmed_on)| {
                WireBody::RegistrationConfirmation(proto::RegistrationConfirmation {
                    finding,
                    observed,
                    confirmed_on,
                    ..Default::default()
                })
            }),
            (text(), date(), date()).prop_map(|(n, i, v)| WireBody::CertificateIssued(
                proto::CertificateIssued {
                    certificate_number: n,
                    issued_on: i,
                    valid_until: v,
                }
            )),
            (
                text(),
                enum_value(),
                proptest::collection::vec(text(), 0..3),
                date()
            )
                .prop_map(|(n, r, f, d)| WireBody::CertificateVerification(
                    proto::CertificateVerification {
                        certificate_number: n,
                        result: r,
                        mismatched_fields: f,
                        checked_on: d,
                        note: String::new(),
                    }
                )),
            (text(), date(), enum_value(), any::<bool>()).prop_map(|(period, d, o, checked)| {
                use proto::pregnancy_check_feedback::{Checked, NotChecked, Result as R};
                WireBody::PregnancyCheckFeedback(proto::PregnancyCheckFeedback {
                    period,
                    result: Some(if checked {
                        R::Checked(Checked {
                            checked_on: d,
                            outcome: o,
                        })
                    } else {
                        R::NotChecked(NotChecked {
                            reason: o,
                            note: String::new(),
                        })
                    }),
                })
            }),
            (enum_value(), text()).prop_map(|(u, q)| WireBody::VerificationRequest(
                proto::VerificationRequest {
                    urgency: u,
                    question: q,
                    certificate_mismatch: false,
                }
            )),
            (text(), text()).prop_map(|(r, a)| WireBody::VerificationReply(
                proto::VerificationReply {
                    request_message_id: r,
                    answer: a,
                }
            )),
            (text(), date()).prop_map(|(d, m)| WireBody::Transfer(proto::Transfer {
                new_destination_office: d,
                moved_on: m,
                new_address: String::new(),
            })),
            (enum_value(), date(), text()).prop_map(|(r, d, n)| WireBody::Closure(
                proto::Closure {
                    reason: r,
                    closed_on: d,
                    note: n,
                }
            )),
            (text(), text()).prop_map(|(t, r)| WireBody::Void(proto::Void {
                target_message_id: t,
                reason: r,
            })),
            (text(), enum_value(), date()).prop_map(|(t, r, d)| WireBody::Correction(
                proto::Correction {
                    target_message_id: t,
                    reason: "fix".into(),
                    corrected: Some(proto::correction::Corrected::Closure(proto::Closure {
                        reason: r,
                        closed_on: d,
                        note: String::new(),
                    })),
                }
            )),
        ]
    }

    fn any_envelope() -> impl Strategy<Value = proto::Envelope> {
        (
            text(),
            text(),
            text(),
            text(),
            text(),
            proptest::option::of(body()),
        )
            .prop_map(
                |(id, sender, recipient, resident, origin, body)| proto::Envelope {
                    message_id: id,
                    sender_office: sender,
                    recipient_office: recipient,
                    case_ref: Some(proto::CaseRef {
                        resident_id: resident,
                        origin_office: origin,
                    }),
                    sent_at: None,
                    body,
                },
            )
    }

    proptest! {
        #![proptest_config(crate::proptest_config())]

        /// Nothing a client sends makes decoding or checking panic, and a
        /// rejection always names at least one field.
        #[test]
        fn any_envelope_is_decoded_or_rejected_with_reasons(env in any_envelope()) {
            let now = time::macros::datetime!(2024-03-01 00:00 UTC);
            match envelope(&env, &caller()) {
                Ok(message) => { let _ = message.check(&Policy::default(), now); }
                Err(violations) => prop_assert!(!violations.is_empty()),
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(env) = proto::Envelope::decode(bytes.as_slice()) {
                let _ = envelope(&env, &caller());
            }
        }
    }
}
