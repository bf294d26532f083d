//! `twoplace reply`: answer what your office owes, from flags (a file of
//! answers goes through `publish`). The case is looked up to address the
//! answer, so a reply needs only the resident ID and the answer itself.

use anyhow::{Result, bail};
use prost::Message as _;

use super::{Connect, status_error};
use twoplace::proto::{self, envelope::Body};

#[derive(clap::Args)]
pub struct ReplyArgs {
    #[command(subcommand)]
    kind: ReplyKind,
    /// The message id. [default: derived from the answer, so sending the
    /// same answer twice is recognised as a duplicate]
    #[arg(long, global = true)]
    id: Option<String>,
}

#[derive(clap::Subcommand)]
enum ReplyKind {
    /// Confirm (or not) that a registered person is here (核实反馈). Found,
    /// the person is as registered unless flags say otherwise.
    Confirm {
        resident_id: String,
        #[arg(long, conflicts_with = "not_found")]
        found: bool,
        #[arg(long)]
        not_found: bool,
        #[arg(long)]
        name: Option<String>,
        /// female or male.
        #[arg(long)]
        sex: Option<String>,
        /// unmarried, first-marriage, remarried, divorced or widowed.
        #[arg(long)]
        marital: Option<String>,
        #[arg(long)]
        children: Option<u32>,
        #[arg(long)]
        address: Option<String>,
        #[arg(long)]
        phone: Option<String>,
    },
    /// Report a certificate check (查验).
    Verify {
        resident_id: String,
        #[arg(long)]
        certificate: String,
        #[arg(long, conflicts_with_all = ["not_found", "mismatch"])]
        valid: bool,
        #[arg(long, conflicts_with = "mismatch")]
        not_found: bool,
        /// The fields that disagree, comma-separated (name,birth_date).
        #[arg(long, value_delimiter = ',')]
        mismatch: Vec<String>,
    },
    /// Report one period's pregnancy check (孕检反馈).
    Feedback {
        resident_id: String,
        /// 2024Q1, 2024-03 or 2024H1.
        #[arg(long)]
        period: String,
        /// The day of the check (YYYY-MM-DD).
        #[arg(long, conflicts_with = "not_checked")]
        checked_on: Option<String>,
        /// normal, pregnant or follow-up.
        #[arg(long, default_value = "normal")]
        outcome: String,
        /// Why there was no check: not-reached, refused, moved-away, exempt, other.
        #[arg(long)]
        not_checked: Option<String>,
    },
    /// Answer a verification request (协查反馈).
    Answer {
        resident_id: String,
        /// The request's message id.
        #[arg(long)]
        request: String,
        #[arg(long)]
        text: String,
        /// Who asked. [default: the case's origin, or its destination when
        /// you are the origin]
        #[arg(long)]
        to: Option<String>,
    },
}

fn date(raw: &str, flag: &str) -> Result<proto::Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let d = time::Date::parse(raw, &format)
        .map_err(|_| anyhow::anyhow!("--{flag} {raw}: give a date like 2024-03-05"))?;
    Ok(proto::Date {
        year: d.year(),
        month: i32::from(d.month() as u8),
        day: i32::from(d.day()),
    })
}

fn choice(raw: &str, flag: &str, options: &[(&str, i32)]) -> Result<i32> {
    options
        .iter()
        .find(|(name, _)| *name == raw)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<_> = options.iter().map(|(n, _)| *n).collect();
            anyhow::anyhow!("--{flag} {raw}: one of {}", names.join(", "))
        })
}

pub async fn run(connect: &Connect, args: ReplyArgs) -> Result<i32> {
    let mut client = connect.exchange().await?;
    let resident_id = match &args.kind {
        ReplyKind::Confirm { resident_id, .. }
        | ReplyKind::Verify { resident_id, .. }
        | ReplyKind::Feedback { resident_id, .. }
        | ReplyKind::Answer { resident_id, .. } => resident_id.clone(),
    };
    let case = client
        .get_case(proto::GetCaseRequest {
            resident_id: resident_id.clone(),
            origin_office: String::new(),
            purpose: "reply".into(),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    let origin = case.origin_office.clone();
    let (recipient, body) = match args.kind {
        ReplyKind::Confirm {
            found,
            not_found,
            name,
            sex,
            marital,
            children,
            address,
            phone,
            ..
        } => {
            if found == not_found {
                bail!("say --found or --not-found");
            }
            let observed = found.then(|| -> Result<proto::Person> {
                let mut p = case.origin_report.clone().unwrap_or_default();
                if let Some(n) = name {
                    p.name = n;
                }
                if let Some(s) = sex {
                    p.sex = choice(
                        &s,
                        "sex",
                        &[
                            ("female", proto::Sex::Female as i32),
                            ("male", proto::Sex::Male as i32),
                        ],
                    )?;
                }
                if let Some(m) = marital {
                    use proto::MaritalStatus as M;
                    p.marital_status = choice(
                        &m,
                        "marital",
                        &[
                            ("unmarried", M::Unmarried as i32),
                            ("first-marriage", M::FirstMarriage as i32),
                            ("remarried", M::Remarried as i32),
                            ("divorced", M::Divorced as i32),
                            ("widowed", M::Widowed as i32),
                        ],
                    )?;
                }
                if children.is_some() {
                    p.children = children;
                }
                Ok(p)
            });
            (
                origin.clone(),
                Body::RegistrationConfirmation(proto::RegistrationConfirmation {
                    finding: if found {
                        proto::Finding::Found
                    } else {
                        proto::Finding::NotFound
                    } as i32,
                    observed: observed.transpose()?,
                    address: address.unwrap_or_default(),
                    phone: phone.unwrap_or_default(),
                    confirmed_on: None,
                    note: String::new(),
                }),
            )
        }
        ReplyKind::Verify {
            certificate,
            valid,
            not_found,
            mismatch,
            ..
        } => {
            let result = match (valid, not_found, mismatch.is_empty()) {
                (true, _, _) => proto::VerificationResult::Valid,
                (_, true, _) => proto::VerificationResult::NotFound,
                (_, _, false) => proto::VerificationResult::Mismatch,
                _ => bail!("say --valid, --not-found or --mismatch FIELDS"),
            };
            (
                origin.clone(),
                Body::CertificateVerification(proto::CertificateVerification {
                    certificate_number: certificate,
                    result: result as i32,
                    mismatched_fields: mismatch,
                    checked_on: None,
                    note: String::new(),
                }),
            )
        }
        ReplyKind::Feedback {
            period,
            checked_on,
            outcome,
            not_checked,
            ..
        } => {
            use proto::pregnancy_check_feedback::{Checked, NotChecked, Result as R};
            let result = match (checked_on, not_checked) {
                (Some(day), None) => R::Checked(Checked {
                    checked_on: Some(date(&day, "checked-on")?),
                    outcome: choice(
                        &outcome,
                        "outcome",
                        &[
                            ("normal", proto::CheckOutcome::Normal as i32),
                            ("pregnant", proto::CheckOutcome::Pregnant as i32),
                            ("follow-up", proto::CheckOutcome::FollowUp as i32),
                        ],
                    )?,
                }),
                (None, Some(reason)) => {
                    use proto::NotCheckedReason as N;
                    R::NotChecked(NotChecked {
                        reason: choice(
                            &reason,
                            "not-checked",
                            &[
                                ("not-reached", N::NotReached as i32),
                                ("refused", N::Refused as i32),
                                ("moved-away", N::MovedAway as i32),
                                ("exempt", N::Exempt as i32),
                                ("other", N::Other as i32),
                            ],
                        )?,
                        note: String::new(),
                    })
                }
                _ => bail!("say --checked-on DATE (with --outcome) or --not-checked REASON"),
            };
            (
                origin.clone(),
                Body::PregnancyCheckFeedback(proto::PregnancyCheckFeedback {
                    period,
                    result: Some(result),
                }),
            )
        }
        ReplyKind::Answer {
            request, text, to, ..
        } => {
            let me = connect.office();
            let to = match (to, me) {
                (Some(to), _) => to,
                (None, Some(me)) if me == origin => case.destination_office.clone(),
                (None, _) => origin.clone(),
            };
            (
                to,
                Body::VerificationReply(proto::VerificationReply {
                    request_message_id: request,
                    answer: text,
                }),
            )
        }
    };
    let mut envelope = proto::Envelope {
        message_id: String::new(),
        sender_office: String::new(),
        recipient_office: recipient,
        case_ref: Some(proto::CaseRef {
            resident_id,
            origin_office: origin,
        }),
        sent_at: None,
        body: Some(body),
    };
    envelope.message_id = match args.id {
        Some(id) => id,
        None => {
            let digest = ring::digest::digest(&ring::digest::SHA256, &envelope.encode_to_vec());
            let hex: String = digest.as_ref()[..10]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            format!("reply-{hex}")
        }
    };
    let outcome = client
        .publish(proto::PublishRequest {
            messages: vec![envelope],
        })
        .await
        .map_err(status_error)?
        .into_inner()
        .outcomes
        .remove(0);
    match proto::PublishStatus::try_from(outcome.status) {
        Ok(proto::PublishStatus::Accepted) => {
            println!("accepted {}", outcome.message_id);
            Ok(0)
        }
        Ok(proto::PublishStatus::Duplicate) => {
            println!("already sent as {}", outcome.message_id);
            Ok(0)
        }
        _ => {
            eprintln!("rejected {}:", outcome.message_id);
            for v in &outcome.violations {
                eprintln!(
                    "  {}: {} ({})",
                    v.field
                        .split_once("].")
                        .map_or(v.field.as_str(), |(_, f)| f),
                    v.description,
                    v.reason
                );
            }
            Ok(2)
        }
    }
}
