//! `twoplace publish FILE`: a file of messages (JSON Lines, one envelope per
//! line in the protobuf JSON mapping) streamed to the exchange in batches,
//! with progress, a report of rejected lines, and resumption after a crash
//! or Ctrl-C.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, IsTerminal, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use tonic::Code;

use super::{Connect, envelope_from_json, starting, status_error};
use twoplace::proto;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One envelope per line in the protobuf JSON mapping.
    Jsonl,
    /// A header row, then one message per row; see the README for the
    /// columns of each kind.
    Csv,
}

#[derive(clap::Args)]
pub struct PublishArgs {
    /// JSON Lines: one envelope per line, as `buf curl`/grpcurl take it
    /// (`{"messageId": …, "recipientOffice": …, "caseRef": {…}, "registration": {…}}`),
    /// or CSV (by the `.csv` extension or --format csv): a header row and a
    /// `kind` column naming each row's message kind. Blank lines and lines
    /// starting with `#` are skipped. A message without an id gets one
    /// derived from its line number and content, so a rerun sends the same
    /// ids.
    file: PathBuf,
    /// The file's format. [default: by extension, csv or jsonl]
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Messages per request (at most 1000).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u16).range(1..=1000))]
    batch_size: u16,
    /// Where rejected lines are reported (JSON Lines: line, message id,
    /// field, reason, description). [default: FILE.rejected.jsonl]
    #[arg(long)]
    report: Option<PathBuf>,
    /// Start from the first line even if an earlier run was interrupted.
    #[arg(long)]
    restart: bool,
}

/// Where an interrupted run stopped: kept beside the file until it ends.
#[derive(Serialize, Deserialize, Default, Clone, Copy)]
struct Journal {
    /// The file's length when the run began (a changed file starts over).
    file_len: u64,
    /// Bytes and lines fully sent and answered.
    offset: u64,
    line: u64,
    accepted: u64,
    duplicates: u64,
    rejected: u64,
}

fn sidecar(file: &Path, suffix: &str) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn save(path: &Path, journal: &Journal) -> Result<()> {
    let tmp = sidecar(path, ".tmp");
    fs::write(&tmp, serde_json::to_vec(journal)?)?;
    fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

#[derive(Serialize)]
struct RejectedLine<'a> {
    line: u64,
    message_id: &'a str,
    field: &'a str,
    reason: &'a str,
    description: &'a str,
}

/// The exit code: 0 all accepted (or duplicates), 2 some lines rejected.
pub async fn run(connect: &Connect, args: PublishArgs) -> Result<i32> {
    let file =
        File::open(&args.file).with_context(|| format!("opening {}", args.file.display()))?;
    let file_len = file.metadata()?.len();
    let journal_path = sidecar(&args.file, ".twoplace-progress");
    let report_path = args
        .report
        .clone()
        .unwrap_or_else(|| sidecar(&args.file, ".rejected.jsonl"));

    let mut journal = match fs::read(&journal_path) {
        Ok(bytes) if !args.restart => match serde_json::from_slice::<Journal>(&bytes) {
            Ok(j) if j.file_len == file_len => {
                eprintln!(
                    "resuming {} at line {} (an earlier run stopped there; --restart to start over)",
                    args.file.display(),
                    j.line + 1
                );
                j
            }
            _ => Journal::default(),
        },
        _ => Journal::default(),
    };
    journal.file_len = file_len;
    let resuming = journal.offset > 0;
    let mut report = OpenOptions::new()
        .create(true)
        .write(true)
        .append(resuming)
        .truncate(!resuming)
        .open(&report_path)
        .with_context(|| format!("writing {}", report_path.display()))?;

    let format = args
        .format
        .unwrap_or(match args.file.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("csv") => Format::Csv,
            _ => Format::Jsonl,
        });
    let mut reader = BufReader::new(file);
    // A CSV file's header, read again when resuming past it.
    let mut header: Option<Vec<String>> = None;
    if format == Format::Csv && journal.offset > 0 {
        let mut line = String::new();
        while reader.read_line(&mut line)? > 0 {
            if !line.trim().is_empty() && !line.trim_start().starts_with('#') {
                header = Some(csv_header(&line)?);
                break;
            }
            line.clear();
        }
    }
    reader.seek(SeekFrom::Start(journal.offset))?;
    let mut client = connect.exchange().await?;
    let mut progress = Progress::new(file_len, journal.offset);
    let mut offset = journal.offset;
    let mut line_no = journal.line;
    let mut batch: Vec<(u64, proto::Envelope)> = Vec::new();
    let mut buf = String::new();
    loop {
        buf.clear();
        let read = reader.read_line(&mut buf)?;
        if read > 0 {
            offset += read as u64;
            line_no += 1;
            let text = buf.trim();
            if text.is_empty() || text.starts_with('#') {
                continue;
            }
            let parsed = match (format, &header) {
                (Format::Jsonl, _) => envelope_from_json(text),
                (Format::Csv, None) => {
                    header = Some(csv_header(text)?);
                    continue;
                }
                (Format::Csv, Some(columns)) => csv_envelope(columns, text),
            };
            match parsed {
                Ok(mut env) => {
                    if env.message_id.is_empty() {
                        env.message_id = derived_id(line_no, text);
                    }
                    batch.push((line_no, env));
                }
                Err(e) => {
                    let reason = match format {
                        Format::Jsonl => "INVALID_JSON",
                        Format::Csv => "INVALID_ROW",
                    };
                    write_rejected(&mut report, line_no, "", "line", reason, &e)?;
                    journal.rejected += 1;
                }
            }
        }
        let at_end = read == 0;
        if batch.len() >= usize::from(args.batch_size) || (at_end && !batch.is_empty()) {
            let sent = std::mem::take(&mut batch);
            let outcomes = send(&mut client, &sent).await?;
            for ((line, env), outcome) in sent.iter().zip(&outcomes) {
                match proto::PublishStatus::try_from(outcome.status) {
                    Ok(proto::PublishStatus::Accepted) => journal.accepted += 1,
                    Ok(proto::PublishStatus::Duplicate) => journal.duplicates += 1,
                    _ => {
                        journal.rejected += 1;
                        for v in &outcome.violations {
                            // Paths name the field within the line.
                            let field = v
                                .field
                                .split_once("].")
                                .map_or(v.field.as_str(), |(_, rest)| rest);
                            write_rejected(
                                &mut report,
                                *line,
                                &env.message_id,
                                field,
                                &v.reason,
                                &v.description,
                            )?;
                        }
                    }
                }
            }
            report.flush()?;
            journal.offset = offset;
            journal.line = line_no;
            save(&journal_path, &journal)?;
            progress.show(offset, line_no, &journal, false);
        }
        if at_end {
            break;
        }
    }
    progress.show(offset, line_no, &journal, true);
    let _ = fs::remove_file(&journal_path);
    if journal.rejected > 0 {
        eprintln!("rejected lines are listed in {}", report_path.display());
        Ok(2)
    } else {
        let _ = fs::remove_file(&report_path);
        Ok(0)
    }
}

fn csv_record(line: &str) -> Result<csv::StringRecord, String> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(line.as_bytes())
        .records()
        .next()
        .unwrap_or_else(|| Ok(csv::StringRecord::new()))
        .map_err(|e| e.to_string())
}

fn csv_header(line: &str) -> Result<Vec<String>> {
    let columns: Vec<String> = csv_record(line.trim())
        .map_err(anyhow::Error::msg)?
        .iter()
        .map(|c| c.trim().to_string())
        .collect();
    for required in super::csv_rows::REQUIRED {
        if required != "message_id" && !columns.iter().any(|c| c == required) {
            bail!(
                "the CSV header has no {required} column (it has: {})",
                columns.join(", ")
            );
        }
    }
    Ok(columns)
}

fn csv_envelope(header: &[String], line: &str) -> Result<proto::Envelope, String> {
    let record = csv_record(line)?;
    let json = super::csv_rows::envelope_json(&super::csv_rows::Row::new(header, &record))?;
    envelope_from_json(&json)
}

/// An id for a line that has none: the same line at the same place gives
/// the same id, so a rerun is recognised as a duplicate.
fn derived_id(line: u64, text: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let hex: String = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("line-{line}-{hex}")
}

fn write_rejected(
    report: &mut File,
    line: u64,
    message_id: &str,
    field: &str,
    reason: &str,
    description: &str,
) -> Result<()> {
    let entry = RejectedLine {
        line,
        message_id,
        field,
        reason,
        description,
    };
    writeln!(report, "{}", serde_json::to_string(&entry)?)?;
    Ok(())
}

/// Sends one batch, retrying while the server is unavailable (the ids make
/// a retry harmless).
async fn send(
    client: &mut proto::exchange_client::ExchangeClient<tonic::transport::Channel>,
    batch: &[(u64, proto::Envelope)],
) -> Result<Vec<proto::PublishOutcome>> {
    let messages: Vec<_> = batch.iter().map(|(_, e)| e.clone()).collect();
    let mut wait = Duration::from_millis(200);
    let mut attempts = 1;
    loop {
        let status = match client
            .publish(proto::PublishRequest {
                messages: messages.clone(),
            })
            .await
        {
            Ok(response) => {
                let outcomes = response.into_inner().outcomes;
                if outcomes.len() != messages.len() {
                    bail!(
                        "the server answered {} outcomes for {} messages",
                        outcomes.len(),
                        messages.len()
                    );
                }
                return Ok(outcomes);
            }
            Err(status) => status,
        };
        if let Some(delay) = starting(&status) {
            // A server that is starting (preparing its database) says when
            // to come back: as long as it takes, as an import would want.
            eprintln!("\n{}; retrying in {delay:?}", status.message());
            tokio::time::sleep(delay).await;
        } else if matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded)
            && attempts < 8
        {
            eprintln!(
                "\nserver unavailable ({}); retrying in {wait:?}",
                status.message()
            );
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(10));
            attempts += 1;
        } else {
            return Err(status_error(status));
        }
    }
}

/// Progress on stderr: a live line on a terminal, a line every few seconds
/// otherwise.
struct Progress {
    total: u64,
    start_offset: u64,
    started: Instant,
    last: Instant,
    tty: bool,
}

impl Progress {
    fn new(total: u64, start_offset: u64) -> Self {
        let now = Instant::now();
        Self {
            total,
            start_offset,
            started: now,
            last: now,
            tty: std::io::stderr().is_terminal(),
        }
    }

    fn show(&mut self, offset: u64, line: u64, j: &Journal, done: bool) {
        let every = if self.tty {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(2)
        };
        if !done && self.last.elapsed() < every {
            return;
        }
        self.last = Instant::now();
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let sent = j.accepted + j.duplicates + j.rejected;
        let bytes = offset.saturating_sub(self.start_offset) as f64;
        let rate = bytes / secs;
        let eta = if rate > 0.0 {
            (self.total.saturating_sub(offset) as f64 / rate) as u64
        } else {
            0
        };
        let pct = (offset * 100).checked_div(self.total).unwrap_or(100);
        let line = format!(
            "{pct:>3}%  line {}  {:.0} lines/s  ETA {}:{:02}  accepted {}  duplicates {}  rejected {}",
            line,
            (sent as f64 / secs),
            eta / 60,
            eta % 60,
            j.accepted,
            j.duplicates,
            j.rejected
        );
        if self.tty {
            eprint!("\r{line}\x1b[K");
            if done {
                eprintln!();
            }
        } else {
            eprintln!("{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_and_valid() {
        let a = derived_id(7, "{\"x\":1}");
        assert_eq!(a, derived_id(7, "{\"x\":1}"));
        assert_ne!(a, derived_id(8, "{\"x\":1}"));
        assert!(twoplace::domain::MessageId::parse(&a).is_ok());
    }
}
