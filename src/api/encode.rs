//! Domain → wire: cases and timestamps as the caller may see them.

use prost_types::Timestamp;
use time::{Date, OffsetDateTime};

use crate::domain::case::{Access, CaseState, CaseStatus};
use crate::domain::message::{
    CheckOutcome, CheckResult, ClosureReason, Finding, NotCheckedReason, Person, VerificationResult,
};
use crate::domain::{MaritalStatus, RegionCode, ResidentId, Sex};
use crate::proto;
use crate::store::HistoryRow;

pub fn timestamp(t: OffsetDateTime) -> Timestamp {
    Timestamp {
        seconds: t.unix_timestamp(),
        nanos: t.nanosecond() as i32,
    }
}

pub fn date(d: Date) -> proto::Date {
    proto::Date {
        year: d.year(),
        month: i32::from(d.month() as u8),
        day: i32::from(d.day()),
    }
}

pub fn case_status(s: CaseStatus) -> proto::CaseStatus {
    match s {
        CaseStatus::Pending => proto::CaseStatus::Pending,
        CaseStatus::Active => proto::CaseStatus::Active,
        CaseStatus::Transferred => proto::CaseStatus::Transferred,
        CaseStatus::Closed => proto::CaseStatus::Closed,
    }
}

fn person(p: &Person, masked: bool) -> proto::Person {
    proto::Person {
        name: if masked {
            p.name.masked()
        } else {
            p.name.as_str().to_string()
        },
        sex: match p.sex {
            Some(Sex::Male) => proto::Sex::Male,
            Some(Sex::Female) => proto::Sex::Female,
            None => proto::Sex::Unspecified,
        } as i32,
        birth_date: if masked { None } else { p.birth_date.map(date) },
        marital_status: match p.marital_status {
            None => proto::MaritalStatus::Unspecified,
            Some(MaritalStatus::Unmarried) => proto::MaritalStatus::Unmarried,
            Some(MaritalStatus::FirstMarriage) => proto::MaritalStatus::FirstMarriage,
            Some(MaritalStatus::Remarried) => proto::MaritalStatus::Remarried,
            Some(MaritalStatus::Divorced) => proto::MaritalStatus::Divorced,
            Some(MaritalStatus::Widowed) => proto::MaritalStatus::Widowed,
        } as i32,
        children: p.children,
    }
}

fn verification(r: VerificationResult) -> proto::VerificationResult {
    match r {
        VerificationResult::Valid => proto::VerificationResult::Valid,
        VerificationResult::NotFound => proto::VerificationResult::NotFound,
        VerificationResult::Mismatch => proto::VerificationResult::Mismatch,
    }
}

fn closure_reason(r: ClosureReason) -> proto::ClosureReason {
    match r {
        ClosureReason::ReturnedHome => proto::ClosureReason::ReturnedHome,
        ClosureReason::OutOfScope => proto::ClosureReason::OutOfScope,
        ClosureReason::Deceased => proto::ClosureReason::Deceased,
        ClosureReason::Other => proto::ClosureReason::Other,
    }
}

fn feedback(r: &crate::domain::case::FeedbackRecord) -> proto::FeedbackRecord {
    let mut out = proto::FeedbackRecord {
        period: r.period.clone(),
        from_office: r.from_office.to_string(),
        ..Default::default()
    };
    match r.result {
        CheckResult::Checked { on, outcome } => {
            out.checked = true;
            out.checked_on = Some(date(on));
            out.outcome = match outcome {
                CheckOutcome::Normal => proto::CheckOutcome::Normal,
                CheckOutcome::Pregnant => proto::CheckOutcome::Pregnant,
                CheckOutcome::FollowUp => proto::CheckOutcome::FollowUp,
            } as i32;
        }
        CheckResult::NotChecked { reason } => {
            out.not_checked_reason = match reason {
                NotCheckedReason::NotReached => proto::NotCheckedReason::NotReached,
                NotCheckedReason::Refused => proto::NotCheckedReason::Refused,
                NotCheckedReason::MovedAway => proto::NotCheckedReason::MovedAway,
                NotCheckedReason::Exempt => proto::NotCheckedReason::Exempt,
                NotCheckedReason::Other => proto::NotCheckedReason::Other,
            } as i32;
        }
    }
    out
}

/// The resident ID as a reader with `access` may see it.
pub fn resident_id(id: &str, access: Access) -> String {
    match access {
        Access::Full => id.to_string(),
        _ => ResidentId::parse(id)
            .map(|r| r.masked())
            .unwrap_or_else(|_| "******************".into()),
    }
}

/// The case as `reader` may see it: everything for the origin and the
/// current destination; a past destination sees identifying data masked,
/// no contact details and only the history it took part in.
pub fn case(
    state: &CaseState,
    history: &[HistoryRow],
    reader: &RegionCode,
    access: Access,
) -> proto::Case {
    let masked = access != Access::Full;
    let full = |s: &str| if masked { String::new() } else { s.to_string() };
    proto::Case {
        resident_id: resident_id(&state.resident_id, access),
        legacy_resident_id: state
            .legacy_resident_id
            .as_deref()
            .map(full)
            .unwrap_or_default(),
        origin_office: state.origin.to_string(),
        destination_office: current_destination(state),
        status: case_status(state.status) as i32,
        closure_reason: state
            .closure
            .as_ref()
            .map_or(proto::ClosureReason::Unspecified, |c| {
                closure_reason(c.reason)
            }) as i32,
        closure_note: state
            .closure
            .as_ref()
            .map(|c| full(&c.note))
            .unwrap_or_default(),
        origin_report: state.origin_report.as_ref().map(|p| person(p, masked)),
        destination_report: state.destination_report.as_ref().map(|p| person(p, masked)),
        destination_finding: match state.finding {
            None => proto::Finding::Unspecified,
            Some(Finding::Found) => proto::Finding::Found,
            Some(Finding::NotFound) => proto::Finding::NotFound,
        } as i32,
        left_on: state.left_on.map(date),
        destination_address: full(&state.destination_address),
        destination_phone: full(&state.destination_phone),
        periodic_checks: state.periodic_checks,
        certificates: state
            .certificates
            .iter()
            .map(|c| proto::Certificate {
                certificate_number: c.number.clone(),
                issued_on: Some(date(c.issued_on)),
                valid_until: c.valid_until.map(date),
                last_verification: c
                    .last_verification
                    .map_or(proto::VerificationResult::Unspecified, verification)
                    as i32,
                verified_on: c.verified_on.map(date),
            })
            .collect(),
        feedback: state
            .feedback
            .iter()
            .filter(|r| !masked || &r.from_office == reader)
            .map(feedback)
            .collect(),
        destinations: state
            .destinations
            .iter()
            .map(|s| proto::DestinationSpell {
                office: s.office.to_string(),
                since: Some(timestamp(s.since)),
                until: s.until.map(timestamp),
            })
            .collect(),
        history: history
            .iter()
            .filter(|h| !masked || h.sender == reader.as_str() || h.recipient == reader.as_str())
            .map(|h| proto::HistoryEntry {
                message_id: h.message_id.clone(),
                sender_office: h.sender.clone(),
                recipient_office: h.recipient.clone(),
                kind: h.kind.clone(),
                accepted_at: Some(timestamp(h.accepted_at)),
                standing: h.standing.as_str().to_string(),
            })
            .collect(),
        created_at: Some(timestamp(state.created_at)),
        updated_at: Some(timestamp(state.updated_at)),
    }
}

fn current_destination(state: &CaseState) -> String {
    state
        .current_destination()
        .map(ToString::to_string)
        .unwrap_or_default()
}

pub fn case_summary(state: &CaseState) -> proto::CaseSummary {
    proto::CaseSummary {
        resident_id: state.resident_id.clone(),
        name: state
            .origin_report
            .as_ref()
            .or(state.destination_report.as_ref())
            .map(|p| p.name.as_str().to_string())
            .unwrap_or_default(),
        origin_office: state.origin.to_string(),
        destination_office: current_destination(state),
        status: case_status(state.status) as i32,
        updated_at: Some(timestamp(state.updated_at)),
    }
}
