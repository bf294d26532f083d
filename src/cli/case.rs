//! `twoplace case show` and `twoplace obligations`: readable by default,
//! JSON for scripts.

use anyhow::Result;

use super::{Connect, Output, local_time, status_error, to_json};
use twoplace::proto;

#[derive(clap::Args)]
pub struct CaseArgs {
    #[command(subcommand)]
    command: CaseCommand,
}

#[derive(clap::Subcommand)]
enum CaseCommand {
    /// One case: the person as each side reported them, obligations,
    /// discrepancies, orphans and history. The read is audited.
    Show {
        resident_id: String,
        /// Needed only when you see more than one case of the person.
        #[arg(long)]
        origin: Option<String>,
        /// Why you read it (kept in the audit record).
        #[arg(long, default_value = "case show")]
        purpose: String,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
}

#[derive(clap::Args)]
pub struct ObligationsArgs {
    /// What you are owed, instead of what you owe.
    #[arg(long)]
    owed_to_me: bool,
    /// Only what is open past its due time.
    #[arg(long)]
    overdue: bool,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    limit: i32,
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

fn enum_name<E: std::fmt::Debug>(
    value: Result<E, prost::UnknownEnumValue>,
    prefix: &str,
) -> String {
    value
        .map(|v| format!("{v:?}"))
        .unwrap_or_else(|_| "?".into())
        .trim_start_matches(prefix)
        .to_string()
}

pub async fn show(connect: &Connect, args: CaseArgs) -> Result<i32> {
    let CaseCommand::Show {
        resident_id,
        origin,
        purpose,
        output,
    } = args.command;
    let case = connect
        .exchange()
        .await?
        .get_case(proto::GetCaseRequest {
            resident_id,
            origin_office: origin.unwrap_or_default(),
            purpose,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    if output == Output::Json {
        println!("{}", to_json("twoplace.v1.Case", &case));
        return Ok(0);
    }
    println!(
        "case        {} (origin {})",
        case.resident_id, case.origin_office
    );
    println!(
        "status      {}    destination {}",
        enum_name(proto::CaseStatus::try_from(case.status), ""),
        if case.destination_office.is_empty() {
            "-"
        } else {
            &case.destination_office
        }
    );
    let person = |p: &Option<proto::Person>| {
        p.as_ref().map_or("-".to_string(), |p| {
            format!(
                "{}  {}  born {}  {}  children {}",
                p.name,
                enum_name(proto::Sex::try_from(p.sex), ""),
                p.birth_date.as_ref().map_or("-".into(), |d| format!(
                    "{:04}-{:02}-{:02}",
                    d.year, d.month, d.day
                )),
                enum_name(proto::MaritalStatus::try_from(p.marital_status), ""),
                p.children.map_or("-".into(), |c| c.to_string()),
            )
        })
    };
    println!("origin says {}", person(&case.origin_report));
    println!("destination {}", person(&case.destination_report));
    if !case.obligations.is_empty() {
        println!("\nobligations");
        for o in &case.obligations {
            println!("  {}", obligation_line(o));
        }
    }
    let open: Vec<_> = case
        .discrepancies
        .iter()
        .filter(|d| d.resolved_at.is_none())
        .collect();
    if !case.discrepancies.is_empty() {
        println!("\ndiscrepancies ({} open)", open.len());
        for d in &case.discrepancies {
            println!(
                "  {:<28} origin {:<12} destination {:<12} found {}  {}",
                d.field,
                d.origin_value,
                d.destination_value,
                local_time(d.found_at.as_ref()),
                if d.resolved_by.is_empty() {
                    "open".into()
                } else {
                    format!("resolved by {}", d.resolved_by)
                }
            );
        }
    }
    if !case.orphans.is_empty() {
        println!("\nwaiting");
        for o in &case.orphans {
            println!(
                "  {} {} from {} awaits {}",
                o.kind, o.message_id, o.sender_office, o.awaiting
            );
        }
    }
    println!("\nhistory");
    for h in &case.history {
        println!(
            "  {}  {:<8} → {:<8} {:<26} {:<24} {}",
            local_time(h.accepted_at.as_ref()),
            h.sender_office,
            h.recipient_office,
            h.kind,
            h.message_id,
            h.standing
        );
    }
    Ok(0)
}

fn obligation_line(o: &proto::Obligation) -> String {
    let state = if o.overdue {
        format!(
            "OVERDUE {}d{}",
            o.days_overdue,
            if o.escalated { " ESCALATED" } else { "" }
        )
    } else {
        enum_name(proto::ObligationState::try_from(o.state), "")
    };
    format!(
        "due {}  {:<20} {:<8} → {:<8} {:<22} {}",
        local_time(o.due_at.as_ref()),
        enum_name(proto::ObligationKind::try_from(o.kind), ""),
        o.debtor_office,
        o.creditor_office,
        state,
        o.detail
    )
}

pub async fn obligations(connect: &Connect, args: ObligationsArgs) -> Result<i32> {
    let role = if args.owed_to_me {
        proto::ObligationRole::Creditor
    } else {
        proto::ObligationRole::Debtor
    };
    let page = connect
        .exchange()
        .await?
        .list_obligations(proto::ListObligationsRequest {
            role: role as i32,
            overdue_only: args.overdue,
            page_size: args.limit,
            ..Default::default()
        })
        .await
        .map_err(status_error)?
        .into_inner();
    for o in &page.obligations {
        match args.output {
            Output::Json => println!("{}", to_json("twoplace.v1.Obligation", o)),
            Output::Table => println!("{}  {}", obligation_line(o), o.resident_id),
        }
    }
    if args.output == Output::Table {
        eprintln!("{} obligations", page.obligations.len());
    }
    Ok(0)
}
