//! `twoplace inbox` (a page, or `--follow` to print deliveries as they
//! arrive, resuming from a saved cursor) and `twoplace ack`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio_stream::StreamExt;

use super::{
    Connect, Output, kind_of, local_time, starting, status_error, to_json, worth_retrying,
};
use twoplace::proto;

#[derive(clap::Args)]
pub struct InboxArgs {
    /// Print deliveries as they arrive, until interrupted.
    #[arg(long)]
    follow: bool,
    /// Start after this cursor (empty: from the beginning).
    #[arg(long, default_value = "")]
    after: String,
    /// Read the cursor from this file and keep it there, so the next run
    /// goes on where this one stopped.
    #[arg(long)]
    cursor_file: Option<PathBuf>,
    /// At most this many deliveries without --follow.
    #[arg(long, default_value_t = 100)]
    limit: i32,
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

#[derive(clap::Args)]
pub struct AckArgs {
    /// Acknowledge everything up to and including this cursor.
    #[arg(long)]
    up_to: Option<String>,
    /// Acknowledge one message, as SENDER:MESSAGE_ID; repeat for more.
    #[arg(long = "message", value_name = "SENDER:ID")]
    messages: Vec<String>,
}

fn print(d: &proto::Delivery, output: Output) {
    match output {
        Output::Json => println!("{}", to_json("twoplace.v1.Delivery", d)),
        Output::Table => {
            let env = d.envelope.clone().unwrap_or_default();
            let case = env.case_ref.clone().unwrap_or_default();
            println!(
                "{:<10} {}  from {:<8} {:<26} {:<24} {} (origin {})",
                d.cursor,
                local_time(d.accepted_at.as_ref()),
                d.sender_office,
                kind_of(&env),
                env.message_id,
                case.resident_id,
                case.origin_office
            );
        }
    }
}

/// Written beside the file and renamed over it: whoever reads it (the next
/// run, after a kill) finds the old cursor or the new one, never a file cut
/// short — which would start the inbox over from the beginning.
fn save_cursor(file: &Option<PathBuf>, cursor: &str) -> Result<()> {
    if let Some(path) = file {
        let mut aside = path.clone().into_os_string();
        aside.push(".new");
        let aside = PathBuf::from(aside);
        std::fs::write(&aside, cursor).with_context(|| format!("writing {}", aside.display()))?;
        std::fs::rename(&aside, path).with_context(|| format!("replacing {}", path.display()))?;
    }
    Ok(())
}

pub async fn run(connect: &Connect, args: InboxArgs) -> Result<i32> {
    let mut cursor = match &args.cursor_file {
        Some(path) if path.exists() => std::fs::read_to_string(path)
            .with_context(|| format!("reading {}", path.display()))?
            .trim()
            .to_string(),
        _ => args.after.clone(),
    };
    let mut client = connect.exchange().await?;
    if !args.follow {
        let page = client
            .inbox(proto::InboxRequest {
                after_cursor: cursor,
                page_size: args.limit,
            })
            .await
            .map_err(status_error)?
            .into_inner();
        for d in &page.deliveries {
            print(d, args.output);
        }
        save_cursor(&args.cursor_file, &page.next_cursor)?;
        if args.output == Output::Table {
            eprintln!(
                "{} deliveries; next page: --after {}",
                page.deliveries.len(),
                page.next_cursor
            );
        }
        return Ok(0);
    }
    // Follow: reconnect with the last cursor after any break, so nothing is
    // missed and nothing printed twice.
    let mut wait = Duration::from_millis(200);
    loop {
        let stream = client
            .subscribe(proto::SubscribeRequest {
                after_cursor: cursor.clone(),
            })
            .await;
        let mut stream = match stream {
            Ok(s) => s.into_inner(),
            Err(status) if !worth_retrying(&status) => return Err(status_error(status)),
            Err(status) => {
                // A starting server says how long; otherwise back off.
                let delay = starting(&status).unwrap_or_else(|| {
                    let delay = wait;
                    wait = (wait * 2).min(Duration::from_secs(15));
                    delay
                });
                eprintln!(
                    "feed unavailable ({}); retrying in {delay:?}",
                    status.message()
                );
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        wait = Duration::from_millis(200);
        while let Some(event) = stream.next().await {
            match event {
                Ok(proto::InboxEvent {
                    event: Some(proto::inbox_event::Event::Delivery(d)),
                }) => {
                    print(&d, args.output);
                    cursor = d.cursor.clone();
                    save_cursor(&args.cursor_file, &cursor)?;
                }
                Ok(proto::InboxEvent {
                    event: Some(proto::inbox_event::Event::Heartbeat(h)),
                }) => {
                    cursor = h.cursor;
                    save_cursor(&args.cursor_file, &cursor)?;
                }
                Ok(_) => {}
                Err(status) if !worth_retrying(&status) => return Err(status_error(status)),
                Err(status) => {
                    eprintln!("feed interrupted ({}); resuming", status.message());
                    break;
                }
            }
        }
        tokio::time::sleep(wait).await;
    }
}

pub async fn ack(connect: &Connect, args: AckArgs) -> Result<i32> {
    if args.up_to.is_none() && args.messages.is_empty() {
        bail!("say what to acknowledge: --up-to CURSOR and/or --message SENDER:ID");
    }
    let mut messages = Vec::new();
    for m in &args.messages {
        let Some((sender, id)) = m.split_once(':') else {
            bail!("--message {m}: give SENDER:MESSAGE_ID, e.g. 341502:reg-2024-0001");
        };
        messages.push(proto::MessageRef {
            sender_office: sender.into(),
            message_id: id.into(),
        });
    }
    let answer = connect
        .exchange()
        .await?
        .acknowledge(proto::AcknowledgeRequest {
            up_to_cursor: args.up_to.unwrap_or_default(),
            messages,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    println!("acknowledged {}", answer.acknowledged);
    Ok(0)
}
