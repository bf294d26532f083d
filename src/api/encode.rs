//! Domain → wire: cases and timestamps as the caller may see them.

use prost_types::Timestamp;
use time::{Date, OffsetDateTime};

use crate::domain::case::{Access, CaseState, CaseStatus};
use crate::domain::message::{
    CheckOutcome, CheckResult, ClosureReason, Finding, NotCheckedReason, Person, VerificationResult,
};
use crate::domain::reconcile::{Discrepancy, Findings, ObligationKind, ObligationState, Orphan};
use crate::domain::{MaritalStatus, RegionCode, ResidentId, Sex};
use crate::proto;
use crate::store::{HistoryRow, ObligationRow};

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

pub fn obligation_kind(k: ObligationKind) -> proto::ObligationKind {
    match k {
        ObligationKind::ConfirmRegistration => proto::ObligationKind::ConfirmRegistration,
        ObligationKind::VerifyCertificate => proto::ObligationKind::VerifyCertificate,
        ObligationKind::AnswerRequest => proto::ObligationKind::AnswerRequest,
        ObligationKind::PeriodicFeedback => proto::ObligationKind::PeriodicFeedback,
        ObligationKind::Receipt => proto::ObligationKind::Receipt,
    }
}

pub fn obligation_state(s: ObligationState) -> proto::ObligationState {
    match s {
        ObligationState::Open => proto::ObligationState::Open,
        ObligationState::FulfilledOnTime => proto::ObligationState::FulfilledOnTime,
        ObligationState::FulfilledLate => proto::ObligationState::FulfilledLate,
        ObligationState::Cancelled => proto::ObligationState::Cancelled,
    }
}

/// Whether an office sees an obligation's case in full: its origin and its
/// current destination do.
pub fn sees_in_full(o: &ObligationRow, reader: &RegionCode) -> bool {
    o.origin == reader.as_str() || o.destination.as_deref() == Some(reader.as_str())
}

/// An obligation at `now`, its person in full or masked.
pub fn obligation(o: &ObligationRow, full: bool, now: OffsetDateTime) -> proto::Obligation {
    let open = o.state == ObligationState::Open;
    let overdue = open && now > o.due_at;
    proto::Obligation {
        key: o.key.clone(),
        kind: obligation_kind(o.kind) as i32,
        debtor_office: o.debtor.clone(),
        creditor_office: o.creditor.clone(),
        state: obligation_state(o.state) as i32,
        opened_at: Some(timestamp(o.opened_at)),
        due_at: Some(timestamp(o.due_at)),
        escalates_at: Some(timestamp(o.escalates_at)),
        closed_at: o.closed_at.map(timestamp),
        closed_by: o.closed_by.clone().unwrap_or_default(),
        detail: o.detail.clone(),
        overdue,
        escalated: open && now > o.escalates_at,
        days_overdue: if overdue {
            i32::try_from((now - o.due_at).whole_days()).unwrap_or(i32::MAX)
        } else {
            0
        },
        resident_id: resident_id(
            &o.resident_id,
            if full { Access::Full } else { Access::Masked },
        ),
        origin_office: o.origin.clone(),
    }
}

fn discrepancy(d: &Discrepancy, masked: bool) -> proto::Discrepancy {
    let value = |v: &str| if masked { String::new() } else { v.to_string() };
    proto::Discrepancy {
        field: d.field.clone(),
        origin_value: value(&d.origin_value),
        destination_value: value(&d.destination_value),
        found_at: Some(timestamp(d.found_at)),
        found_by: d.found_by.to_string(),
        resolved_at: d.resolved_at.map(timestamp),
        resolved_by: d
            .resolved_by
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
    }
}

fn orphan(o: &Orphan, now: OffsetDateTime) -> proto::Orphan {
    proto::Orphan {
        message_id: o.message_id.to_string(),
        sender_office: o.sender.to_string(),
        kind: o.kind.as_str().to_string(),
        since: Some(timestamp(o.since)),
        awaiting: o.awaiting.clone(),
        age_seconds: (now - o.since).whole_seconds().max(0),
    }
}

/// What the case view shows besides the case's own facts.
pub struct CaseFindings<'a> {
    pub history: &'a [HistoryRow],
    pub obligations: &'a [ObligationRow],
    pub findings: &'a Findings,
    pub now: OffsetDateTime,
}

/// The case as `reader` may see it: everything for the origin and the
/// current destination; a past destination sees identifying data masked,
/// no contact details and only the history and obligations it took part in.
pub fn case(
    state: &CaseState,
    seen: CaseFindings<'_>,
    reader: &RegionCode,
    access: Access,
) -> proto::Case {
    let CaseFindings {
        history,
        obligations,
        findings,
        now,
    } = seen;
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
        obligations: obligations
            .iter()
            .filter(|o| !masked || o.debtor == reader.as_str() || o.creditor == reader.as_str())
            .map(|o| obligation(o, sees_in_full(o, reader), now))
            .collect(),
        discrepancies: findings
            .discrepancies
            .iter()
            .map(|d| discrepancy(d, masked))
            .collect(),
        orphans: findings
            .orphans
            .iter()
            .filter(|o| !masked || &o.sender == reader)
            .map(|o| orphan(o, now))
            .collect(),
    }
}

fn current_destination(state: &CaseState) -> String {
    state
        .current_destination()
        .map(ToString::to_string)
        .unwrap_or_default()
}

pub fn case_summary(state: &CaseState, findings: &Findings) -> proto::CaseSummary {
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
        open_discrepancies: findings.open_discrepancies() as i32,
        orphans: findings.orphans.len() as i32,
    }
}
