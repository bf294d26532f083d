//! CSV rows as envelopes: one message per row, a `kind` column naming the
//! message kind, and the documented column set of each kind. A row becomes
//! the same protobuf JSON a JSON Lines file holds, so both formats are
//! checked in one place, by the server.
//!
//! Columns (besides `kind, message_id, recipient_office, resident_id,
//! origin_office`; empty cells are left out):
//! - `registration`: name, sex, birth_date, marital_status, children,
//!   left_on, destination_address, destination_phone, periodic_checks, note
//! - `registration_confirmation`: finding, name, sex, birth_date,
//!   marital_status, children, address, phone, confirmed_on, note
//! - `certificate_issued`: certificate_number, issued_on, valid_until
//! - `certificate_verification`: certificate_number, result,
//!   mismatched_fields (separated by `;`), checked_on, note
//! - `pregnancy_check_feedback`: period, checked_on, outcome,
//!   not_checked_reason, note
//! - `verification_request`: urgency, question, certificate_mismatch
//! - `verification_reply`: request_message_id, answer
//! - `transfer`: new_destination_office, moved_on, new_address
//! - `closure`: reason, closed_on, note
//! - `reminder`: about_message_id, note
//! - `void`: target_message_id, reason
//!
//! Dates are `YYYY-MM-DD`; enum values are written in lower case with
//! dashes (`female`, `first-marriage`, `not-found`, `returned-home`);
//! booleans `true`/`false` (or `1`/`0`, `是`/`否`).

use std::collections::HashMap;

use serde_json::{Map, Value, json};

pub const REQUIRED: [&str; 5] = [
    "kind",
    "message_id",
    "recipient_office",
    "resident_id",
    "origin_office",
];

/// The cells of one row, by column name.
pub struct Row<'a> {
    cells: HashMap<&'a str, &'a str>,
}

impl<'a> Row<'a> {
    pub fn new(header: &'a [String], record: &'a csv::StringRecord) -> Self {
        let cells = header
            .iter()
            .map(String::as_str)
            .zip(record.iter())
            .filter(|(_, v)| !v.trim().is_empty())
            .collect();
        Self { cells }
    }

    fn get(&self, column: &str) -> Option<&'a str> {
        self.cells.get(column).map(|v| v.trim())
    }
}

fn date(row: &Row, column: &str) -> Result<Option<Value>, String> {
    let Some(raw) = row.get(column) else {
        return Ok(None);
    };
    let parts: Vec<&str> = raw.split('-').collect();
    match parts.as_slice() {
        [y, m, d] => match (y.parse::<i32>(), m.parse::<i32>(), d.parse::<i32>()) {
            (Ok(year), Ok(month), Ok(day)) => {
                Ok(Some(json!({"year": year, "month": month, "day": day})))
            }
            _ => Err(format!("{column}: {raw:?} is not a date like 2024-03-05")),
        },
        _ => Err(format!("{column}: {raw:?} is not a date like 2024-03-05")),
    }
}

/// `first-marriage` in a column becomes `MARITAL_STATUS_FIRST_MARRIAGE`.
fn choice(row: &Row, column: &str, prefix: &str) -> Option<Value> {
    row.get(column).map(|v| {
        Value::String(format!(
            "{prefix}_{}",
            v.to_uppercase().replace(['-', ' '], "_")
        ))
    })
}

fn boolean(row: &Row, column: &str) -> Result<Option<Value>, String> {
    match row.get(column) {
        None => Ok(None),
        Some("true" | "1" | "yes" | "是") => Ok(Some(Value::Bool(true))),
        Some("false" | "0" | "no" | "否") => Ok(Some(Value::Bool(false))),
        Some(other) => Err(format!("{column}: {other:?} is not true or false")),
    }
}

fn number(row: &Row, column: &str) -> Result<Option<Value>, String> {
    row.get(column)
        .map(|v| {
            v.parse::<u32>()
                .map(Value::from)
                .map_err(|_| format!("{column}: {v:?} is not a number"))
        })
        .transpose()
}

/// Puts the present values into an object.
fn object(fields: Vec<(&str, Option<Value>)>) -> Value {
    Value::Object(
        fields
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
            .collect::<Map<_, _>>(),
    )
}

fn text(row: &Row, column: &str) -> Option<Value> {
    row.get(column).map(|v| Value::String(v.to_string()))
}

fn person(row: &Row) -> Result<Value, String> {
    Ok(object(vec![
        ("name", text(row, "name")),
        ("sex", choice(row, "sex", "SEX")),
        ("birthDate", date(row, "birth_date")?),
        (
            "maritalStatus",
            choice(row, "marital_status", "MARITAL_STATUS"),
        ),
        ("children", number(row, "children")?),
    ]))
}

/// The envelope of a row, as protobuf JSON.
pub fn envelope_json(row: &Row) -> Result<String, String> {
    for column in REQUIRED {
        if column != "message_id" && row.get(column).is_none() {
            return Err(format!("{column}: required"));
        }
    }
    let kind = row.get("kind").unwrap_or_default();
    let (field, body) = match kind {
        "registration" => (
            "registration",
            object(vec![
                ("person", Some(person(row)?)),
                ("leftOn", date(row, "left_on")?),
                ("destinationAddress", text(row, "destination_address")),
                ("destinationPhone", text(row, "destination_phone")),
                ("periodicChecks", boolean(row, "periodic_checks")?),
                ("note", text(row, "note")),
            ]),
        ),
        "registration_confirmation" => {
            let found = row.get("finding") != Some("not-found");
            (
                "registrationConfirmation",
                object(vec![
                    ("finding", choice(row, "finding", "FINDING")),
                    ("observed", found.then(|| person(row)).transpose()?),
                    ("address", text(row, "address")),
                    ("phone", text(row, "phone")),
                    ("confirmedOn", date(row, "confirmed_on")?),
                    ("note", text(row, "note")),
                ]),
            )
        }
        "certificate_issued" => (
            "certificateIssued",
            object(vec![
                ("certificateNumber", text(row, "certificate_number")),
                ("issuedOn", date(row, "issued_on")?),
                ("validUntil", date(row, "valid_until")?),
            ]),
        ),
        "certificate_verification" => (
            "certificateVerification",
            object(vec![
                ("certificateNumber", text(row, "certificate_number")),
                ("result", choice(row, "result", "VERIFICATION_RESULT")),
                (
                    "mismatchedFields",
                    row.get("mismatched_fields")
                        .map(|v| Value::from(v.split(';').map(str::trim).collect::<Vec<_>>())),
                ),
                ("checkedOn", date(row, "checked_on")?),
                ("note", text(row, "note")),
            ]),
        ),
        "pregnancy_check_feedback" => {
            let result = if row.get("not_checked_reason").is_some() {
                (
                    "notChecked",
                    object(vec![
                        (
                            "reason",
                            choice(row, "not_checked_reason", "NOT_CHECKED_REASON"),
                        ),
                        ("note", text(row, "note")),
                    ]),
                )
            } else {
                (
                    "checked",
                    object(vec![
                        ("checkedOn", date(row, "checked_on")?),
                        ("outcome", choice(row, "outcome", "CHECK_OUTCOME")),
                    ]),
                )
            };
            (
                "pregnancyCheckFeedback",
                object(vec![
                    ("period", text(row, "period")),
                    (result.0, Some(result.1)),
                ]),
            )
        }
        "verification_request" => (
            "verificationRequest",
            object(vec![
                ("urgency", choice(row, "urgency", "URGENCY")),
                ("question", text(row, "question")),
                ("certificateMismatch", boolean(row, "certificate_mismatch")?),
            ]),
        ),
        "verification_reply" => (
            "verificationReply",
            object(vec![
                ("requestMessageId", text(row, "request_message_id")),
                ("answer", text(row, "answer")),
            ]),
        ),
        "transfer" => (
            "transfer",
            object(vec![
                ("newDestinationOffice", text(row, "new_destination_office")),
                ("movedOn", date(row, "moved_on")?),
                ("newAddress", text(row, "new_address")),
            ]),
        ),
        "closure" => (
            "closure",
            object(vec![
                ("reason", choice(row, "reason", "CLOSURE_REASON")),
                ("closedOn", date(row, "closed_on")?),
                ("note", text(row, "note")),
            ]),
        ),
        "reminder" => (
            "reminder",
            object(vec![
                ("aboutMessageId", text(row, "about_message_id")),
                ("note", text(row, "note")),
            ]),
        ),
        "void" => (
            "void",
            object(vec![
                ("targetMessageId", text(row, "target_message_id")),
                ("reason", text(row, "reason")),
            ]),
        ),
        other => {
            return Err(format!(
                "kind: {other:?} is not a message kind this format knows"
            ));
        }
    };
    let envelope = object(vec![
        ("messageId", text(row, "message_id")),
        ("recipientOffice", text(row, "recipient_office")),
        (
            "caseRef",
            Some(object(vec![
                ("residentId", text(row, "resident_id")),
                ("originOffice", text(row, "origin_office")),
            ])),
        ),
        (field, Some(body)),
    ]);
    Ok(envelope.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_of(header: &str, line: &str) -> Result<String, String> {
        let header: Vec<String> = header.split(',').map(str::to_string).collect();
        let record = csv::StringRecord::from(line.split(',').collect::<Vec<_>>());
        envelope_json(&Row::new(&header, &record))
    }

    #[test]
    fn a_registration_row_is_an_envelope() {
        let json = json_of(
            "kind,message_id,recipient_office,resident_id,origin_office,name,sex,birth_date,marital_status,children,periodic_checks",
            "registration,r-1,310112,341502198506150029,341502,张三,female,1985-06-15,first-marriage,1,是",
        )
        .unwrap();
        let env = super::super::envelope_from_json(&json).unwrap();
        assert_eq!(env.message_id, "r-1");
        let Some(twoplace::proto::envelope::Body::Registration(r)) = env.body else {
            panic!("a registration")
        };
        let p = r.person.unwrap();
        assert_eq!(p.sex, twoplace::proto::Sex::Female as i32);
        assert_eq!(
            p.marital_status,
            twoplace::proto::MaritalStatus::FirstMarriage as i32
        );
        assert_eq!(p.birth_date.unwrap().day, 15);
        assert!(r.periodic_checks);
    }

    #[test]
    fn bad_cells_say_which_column() {
        let err = json_of(
            "kind,recipient_office,resident_id,origin_office,birth_date",
            "registration,310112,341502198506150029,341502,15/06/1985",
        )
        .unwrap_err();
        assert!(err.starts_with("birth_date:"), "{err}");
        let err = json_of("kind,recipient_office,resident_id", "teleport,310112,1").unwrap_err();
        assert_eq!(err, "origin_office: required");
        let err = json_of(
            "kind,recipient_office,resident_id,origin_office",
            "teleport,310112,1,341502",
        )
        .unwrap_err();
        assert!(err.starts_with("kind:"), "{err}");
    }

    #[test]
    fn feedback_rows_are_checked_or_not() {
        let header = "kind,message_id,recipient_office,resident_id,origin_office,period,checked_on,outcome,not_checked_reason";
        let checked = json_of(header, "pregnancy_check_feedback,f-1,341502,341502198506150029,341502,2024Q1,2024-03-05,normal,").unwrap();
        assert!(
            super::super::envelope_from_json(&checked).is_ok(),
            "{checked}"
        );
        let not = json_of(
            header,
            "pregnancy_check_feedback,f-2,341502,341502198506150029,341502,2024Q1,,,not-reached",
        )
        .unwrap();
        assert!(not.contains("NOT_CHECKED_REASON_NOT_REACHED"), "{not}");
    }
}
