//! `twoplace backlog`: the administrators' view of a region as a table.

use anyhow::Result;

use super::{Connect, Output, status_error, to_json};
use twoplace::proto;

#[derive(clap::Args)]
pub struct BacklogArgs {
    /// The region, as a code prefix (34, 3415, 341502). [default: the
    /// region of your administrator certificate, e.g. --as admin:34]
    #[arg(long, default_value = "")]
    region: String,
    /// The window of rates and reply times, in days up to now.
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(i32).range(1..=3660))]
    days: i32,
    /// Show what offices are owed instead of what they owe.
    #[arg(long)]
    as_creditor: bool,
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or("-".into(), |r| format!("{:.0}%", r * 100.0))
}

fn duration(seconds: Option<f64>) -> String {
    match seconds {
        None => "-".into(),
        Some(s) if s >= 86_400.0 => format!("{:.1}d", s / 86_400.0),
        Some(s) if s >= 3_600.0 => format!("{:.1}h", s / 3_600.0),
        Some(s) => format!("{:.0}s", s),
    }
}

pub async fn run(connect: &Connect, args: BacklogArgs) -> Result<i32> {
    // The window ends at the server's now, not ours.
    let backlog = proto::admin_client::AdminClient::new(connect.channel().await?)
        .backlog(proto::BacklogRequest {
            region: args.region,
            window_days: args.days,
            ..Default::default()
        })
        .await
        .map_err(status_error)?
        .into_inner();
    if args.output == Output::Json {
        println!("{}", to_json("twoplace.v1.BacklogResponse", &backlog));
        return Ok(0);
    }
    println!(
        "{:<10} {:<18} {:>7} {:>8} {:>9} {:>7} {:>13} {:>8} {:>9} {:>8} {:>7}",
        "region",
        "name",
        "open",
        "overdue",
        "escalated",
        "orphans",
        "discrepancies",
        "receipt",
        "feedback",
        "on time",
        "median"
    );
    let side = |row: &proto::BacklogRow| {
        if args.as_creditor {
            row.as_creditor
        } else {
            row.as_debtor
        }
        .unwrap_or_default()
    };
    for row in backlog.children.iter().chain(backlog.total.as_ref()) {
        let k = side(row);
        let name: String = row.name.chars().take(9).collect();
        println!(
            "{:<10} {:<width$} {:>7} {:>8} {:>9} {:>7} {:>13} {:>8} {:>9} {:>8} {:>7}",
            row.region,
            name,
            k.open,
            k.overdue,
            k.escalated,
            k.orphans,
            k.open_discrepancies,
            percent(k.receipt_rate),
            percent(k.feedback_rate),
            percent(k.on_time_rate),
            duration(k.median_reply_seconds),
            // CJK characters take two columns.
            width = 18 - name.chars().count(),
        );
    }
    eprintln!(
        "{} (last {} days); --as-creditor for what offices are owed",
        if args.as_creditor {
            "what offices are owed"
        } else {
            "what offices owe"
        },
        args.days
    );
    Ok(0)
}
