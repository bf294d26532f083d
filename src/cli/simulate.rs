//! `twoplace simulate`: a population moving from 六安's counties to the cities
//! of the east coast, and the full traffic of both sides over some periods,
//! with the imperfections the exchange exists for: answers that never come,
//! duplicates, replies before their requests, disagreeing facts, transfers,
//! closures. Deterministic for a seed. It drives a running server (one
//! client per office, concurrently) or writes one JSON Lines file per
//! sending office, and prints what the reconciled result should be,
//! computed with the service's own pure reconciliation.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use time::{Date, Duration, OffsetDateTime};

use super::{Connect, status_error, to_json};
use twoplace::domain::policy::PeriodLength;
use twoplace::domain::reconcile::{ObligationState, Recorded, reconcile};
use twoplace::domain::{CaseKey, Policy, RegionCode, ResidentId, SHANGHAI, today};
use twoplace::proto::{self, envelope::Body};

#[derive(clap::Args)]
pub struct SimulateArgs {
    /// How many people.
    #[arg(long, default_value_t = 1000)]
    cases: usize,
    /// How many feedback periods (quarters) back people may have left.
    #[arg(long, default_value_t = 4)]
    periods: u32,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write one JSON Lines file per sending office into this directory
    /// (for `twoplace publish`) instead of sending to the server.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The instant taken as now, RFC 3339 (for drills against a test
    /// clock). [default: the system clock]
    #[arg(long)]
    now: Option<String>,
    /// Messages per request.
    #[arg(long, default_value_t = 200)]
    batch_size: usize,
    /// For drills: send answers over time, each after a long-tailed delay
    /// with this median (e.g. 2s, against a server whose policy has
    /// deadlines of seconds), so some come late. Without it everything is
    /// sent at once.
    #[arg(long, value_parser = crate::parse_duration)]
    pace: Option<std::time::Duration>,
}

/// Origin counties (六安市) and destination offices, with weights.
const ORIGINS: [(&str, u32); 7] = [
    ("341502", 4), // 金安区
    ("341503", 4), // 裕安区
    ("341504", 1), // 叶集区
    ("341522", 5), // 霍邱县
    ("341523", 3), // 舒城县
    ("341524", 3), // 金寨县
    ("341525", 2), // 霍山县
];
const DESTINATIONS: [(&str, u32); 10] = [
    ("310112", 4), // 上海 闵行区
    ("310114", 2), // 上海 嘉定区
    ("310115", 4), // 上海 浦东新区
    ("310117", 2), // 上海 松江区
    ("320583", 3), // 苏州 昆山市
    ("330109", 2), // 杭州 萧山区
    ("440106", 1), // 广州 天河区
    ("440306", 2), // 深圳 宝安区
    ("440307", 2), // 深圳 龙岗区
    ("441900", 1), // 东莞市
];
/// Every office the simulation acts for.
pub const OFFICES: [&str; 17] = [
    "341502", "341503", "341504", "341522", "341523", "341524", "341525", "310112", "310114",
    "310115", "310117", "320583", "330109", "440106", "440306", "440307", "441900",
];

const SURNAMES: [&str; 12] = [
    "张", "王", "李", "赵", "刘", "陈", "杨", "黄", "周", "吴", "徐", "孙",
];
const GIVEN: [&str; 14] = [
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "洋", "艳", "勇", "军", "秀英", "桂兰",
];

/// splitmix64: small, fast, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Self {
        let mut r = Rng(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        r.next();
        r
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    fn weighted<'a>(&mut self, items: &[(&'a str, u32)]) -> &'a str {
        let total: u32 = items.iter().map(|(_, w)| w).sum();
        let mut pick = self.below(u64::from(total)) as u32;
        for (item, w) in items {
            if pick < *w {
                return item;
            }
            pick -= w;
        }
        items[0].0
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

fn date(d: Date) -> Option<proto::Date> {
    Some(proto::Date {
        year: d.year(),
        month: i32::from(d.month() as u8),
        day: i32::from(d.day()),
    })
}

/// One message of the simulation: who sends it, when (after the start),
/// and the envelope.
struct Sent {
    sender: String,
    delay: std::time::Duration,
    envelope: proto::Envelope,
}

/// When each kind of message goes out in a paced drill: openings at once,
/// answers after a long-tailed delay, moves and closures after most
/// answers.
#[derive(Clone, Copy)]
enum When {
    Opening,
    Answer,
    Later,
}

impl Rng {
    /// A Pareto delay (shape 1.5) with the given median, capped at twenty
    /// medians: most answers come soon, a few very late.
    fn long_tail(&mut self, median: std::time::Duration) -> std::time::Duration {
        let shape = 1.5_f64;
        let u = ((self.next() >> 11) as f64 / (1u64 << 53) as f64).max(1e-9);
        let x = (u.powf(-1.0 / shape) - 1.0) / (2f64.powf(1.0 / shape) - 1.0);
        median.mul_f64(x.min(20.0))
    }
}

/// The reconciled totals the service should arrive at (RECEIPT obligations
/// aside: they depend on when offices acknowledge).
#[derive(Serialize, Default, Debug, PartialEq)]
pub struct Expected {
    pub obligations: u64,
    pub open: u64,
    pub overdue: u64,
    pub escalated: u64,
    pub fulfilled_on_time: u64,
    pub fulfilled_late: u64,
    pub cancelled: u64,
    pub open_discrepancies: u64,
    pub orphans: u64,
    /// Answers given on time, of those given or overdue.
    pub on_time_rate: Option<f64>,
}

#[derive(Serialize)]
struct Summary {
    cases: usize,
    messages: usize,
    duplicates_sent: usize,
    offices: usize,
    now: String,
    expected: Expected,
}

/// A person's whole story, as the messages both sides send.
fn story(
    i: usize,
    seed: u64,
    now: OffsetDateTime,
    periods: u32,
    pace: Option<std::time::Duration>,
    taken: &mut HashSet<String>,
) -> (CaseKey, Vec<Sent>) {
    let mut rng = Rng::new(seed, i as u64);
    let origin = rng.weighted(&ORIGINS).to_string();
    let mut destination = rng.weighted(&DESTINATIONS).to_string();
    let today = today(now);
    // A resident ID of the origin county: born 1975–1999, unique here.
    let (resident, female) = loop {
        let born = Date::from_calendar_date(1975, time::Month::January, 1).expect("a date")
            + Duration::days(rng.below(9000) as i64);
        let sequence = rng.below(1000);
        let body = format!(
            "{origin}{:04}{:02}{:02}{sequence:03}",
            born.year(),
            born.month() as u8,
            born.day()
        );
        let id = format!(
            "{body}{}",
            twoplace::domain::resident_id::check_char(body.as_bytes()) as char
        );
        if taken.insert(id.clone()) {
            // The 17th digit is even for women.
            break (id, sequence.is_multiple_of(2));
        }
    };
    let key = CaseKey {
        resident: ResidentId::parse(&resident).expect("generated IDs are valid"),
        origin: RegionCode::parse(&origin).expect("a real county"),
    };
    let name = format!("{}{}", rng.pick(&SURNAMES), rng.pick(&GIVEN));
    // Names are drawn before anything else of the person so that a seed
    // always gives the same people.
    let children = rng.below(3) as u32;
    let married = rng.chance(0.7);
    let person = proto::Person {
        name,
        sex: if female {
            proto::Sex::Female
        } else {
            proto::Sex::Male
        } as i32,
        birth_date: date(key.resident.birth_date()),
        marital_status: if married {
            proto::MaritalStatus::FirstMarriage
        } else {
            proto::MaritalStatus::Unmarried
        } as i32,
        children: Some(children),
    };
    let left_on = today - Duration::days(1 + rng.below(u64::from(periods.max(1)) * 91) as i64);
    let case_ref = Some(proto::CaseRef {
        resident_id: resident.clone(),
        origin_office: origin.clone(),
    });
    let mut out = Vec::new();
    // Delays come from their own stream, so pacing never changes who the
    // people are or what they send.
    let mut clock = Rng::new(seed ^ 0x7061_6365, i as u64);
    let mut send = |sender: &str, recipient: &str, id: &str, when: When, body: Body| {
        let delay = match (pace, when) {
            (None, _) | (_, When::Opening) => std::time::Duration::ZERO,
            (Some(median), When::Answer) => clock.long_tail(median),
            (Some(median), When::Later) => median * 6,
        };
        out.push(Sent {
            sender: sender.to_string(),
            delay,
            envelope: proto::Envelope {
                message_id: format!("sim{seed}-{i}-{id}"),
                sender_office: String::new(),
                recipient_office: recipient.to_string(),
                case_ref: case_ref.clone(),
                sent_at: None,
                body: Some(body),
            },
        });
    };
    send(
        &origin,
        &destination,
        "reg",
        When::Opening,
        Body::Registration(proto::Registration {
            person: Some(person.clone()),
            left_on: date(left_on),
            destination_address: String::new(),
            destination_phone: String::new(),
            periodic_checks: rng.chance(0.85),
            note: String::new(),
        }),
    );
    if rng.chance(0.9) {
        // One in ten destinations sees the family differently.
        let observed = if rng.chance(0.1) {
            proto::Person {
                children: Some(children + 1),
                ..person.clone()
            }
        } else {
            person.clone()
        };
        send(
            &destination,
            &origin,
            "conf",
            When::Answer,
            Body::RegistrationConfirmation(proto::RegistrationConfirmation {
                finding: proto::Finding::Found as i32,
                observed: Some(observed),
                ..Default::default()
            }),
        );
    }
    if rng.chance(0.6) {
        let number = format!("LA{seed}-{i:07}");
        send(
            &origin,
            &destination,
            "cert",
            When::Opening,
            Body::CertificateIssued(proto::CertificateIssued {
                certificate_number: number.clone(),
                issued_on: date(left_on),
                valid_until: None,
            }),
        );
        if rng.chance(0.85) {
            let valid = rng.chance(0.95);
            send(
                &destination,
                &origin,
                "verify",
                When::Answer,
                Body::CertificateVerification(proto::CertificateVerification {
                    certificate_number: number,
                    result: if valid {
                        proto::VerificationResult::Valid
                    } else {
                        proto::VerificationResult::Mismatch
                    } as i32,
                    mismatched_fields: if valid { vec![] } else { vec!["name".into()] },
                    checked_on: None,
                    note: String::new(),
                }),
            );
        }
    }
    // Feedback for most periods since the person left.
    let mut period = PeriodLength::Quarter.containing(left_on);
    while period.start() <= today {
        if rng.chance(0.8) {
            let result = if rng.chance(0.9) {
                proto::pregnancy_check_feedback::Result::Checked(
                    proto::pregnancy_check_feedback::Checked {
                        checked_on: date(period.start().max(left_on).min(today)),
                        outcome: proto::CheckOutcome::Normal as i32,
                    },
                )
            } else {
                proto::pregnancy_check_feedback::Result::NotChecked(
                    proto::pregnancy_check_feedback::NotChecked {
                        reason: proto::NotCheckedReason::NotReached as i32,
                        note: String::new(),
                    },
                )
            };
            send(
                &destination,
                &origin,
                &format!("fb-{period}"),
                When::Answer,
                Body::PregnancyCheckFeedback(proto::PregnancyCheckFeedback {
                    period: period.to_string(),
                    result: Some(result),
                }),
            );
        }
        period = PeriodLength::Quarter.containing(period.end());
    }
    if rng.chance(0.2) {
        let urgency = if rng.chance(0.3) {
            proto::Urgency::Urgent
        } else {
            proto::Urgency::Normal
        };
        send(
            &origin,
            &destination,
            "ask",
            When::Opening,
            Body::VerificationRequest(proto::VerificationRequest {
                urgency: urgency as i32,
                question: "请核实现居住地址".into(),
                certificate_mismatch: false,
            }),
        );
        if rng.chance(0.7) {
            send(
                &destination,
                &origin,
                "answer",
                When::Answer,
                Body::VerificationReply(proto::VerificationReply {
                    request_message_id: format!("sim{seed}-{i}-ask"),
                    answer: "地址属实".into(),
                }),
            );
        }
    }
    if rng.chance(0.05) {
        let next = loop {
            let d = rng.weighted(&DESTINATIONS);
            if d != destination {
                break d.to_string();
            }
        };
        send(
            &origin,
            &next,
            "move",
            When::Later,
            Body::Transfer(proto::Transfer {
                new_destination_office: next.clone(),
                moved_on: date(today),
                new_address: String::new(),
            }),
        );
        if rng.chance(0.8) {
            send(
                &next,
                &origin,
                "conf-next",
                When::Later,
                Body::RegistrationConfirmation(proto::RegistrationConfirmation {
                    finding: proto::Finding::Found as i32,
                    observed: Some(person.clone()),
                    ..Default::default()
                }),
            );
        }
        destination = next;
    }
    if rng.chance(0.03) {
        send(
            &origin,
            &destination,
            "close",
            When::Later,
            Body::Closure(proto::Closure {
                reason: proto::ClosureReason::ReturnedHome as i32,
                closed_on: date(today),
                note: String::new(),
            }),
        );
    }
    (key, out)
}

/// The totals of reconciling every case at `now`, as if all its messages
/// were accepted at `now`.
fn expected(
    cases: &[(CaseKey, Vec<Sent>)],
    policy: &Policy,
    now: OffsetDateTime,
) -> Result<Expected> {
    let mut e = Expected::default();
    // Judged once everything has been sent.
    let end = now
        + cases
            .iter()
            .flat_map(|(_, m)| m.iter().map(|m| m.delay))
            .max()
            .unwrap_or_default();
    for (key, messages) in cases {
        let recorded: Vec<Recorded> = messages
            .iter()
            .map(|m| {
                let message = twoplace::api::decode::envelope(
                    &m.envelope,
                    &RegionCode::parse_format(&m.sender)?,
                )
                .map_err(|v| anyhow::anyhow!("a simulated message is invalid: {v:?}"))?;
                Ok(Recorded::new(&message, now + m.delay))
            })
            .collect::<Result<_>>()?;
        let r = reconcile(key, &recorded, policy, end);
        for o in &r.obligations {
            e.obligations += 1;
            match o.state {
                ObligationState::Open => {
                    e.open += 1;
                    e.overdue += u64::from(o.is_overdue(end));
                    e.escalated += u64::from(o.is_escalated(end));
                }
                ObligationState::FulfilledOnTime => e.fulfilled_on_time += 1,
                ObligationState::FulfilledLate => e.fulfilled_late += 1,
                ObligationState::Cancelled => e.cancelled += 1,
            }
        }
        e.open_discrepancies += r
            .discrepancies
            .iter()
            .filter(|d| d.resolved_at.is_none())
            .count() as u64;
        e.orphans += r.orphans.len() as u64;
    }
    let answered_or_due = e.fulfilled_on_time + e.fulfilled_late + e.overdue;
    e.on_time_rate =
        (answered_or_due > 0).then(|| e.fulfilled_on_time as f64 / answered_or_due as f64);
    Ok(e)
}

pub async fn run(connect: &Connect, args: SimulateArgs) -> Result<i32> {
    let now = match &args.now {
        Some(raw) => OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
            .with_context(|| {
                format!("--now {raw}: give an RFC 3339 time like 2024-03-01T12:00:00+08:00")
            })?,
        None => OffsetDateTime::now_utc(),
    };
    let mut taken = HashSet::new();
    let cases: Vec<(CaseKey, Vec<Sent>)> = (0..args.cases)
        .map(|i| story(i, args.seed, now, args.periods, args.pace, &mut taken))
        .collect();
    // Against a server, judge by its policy (a drill's deadlines may be
    // seconds).
    let policy = match &args.out {
        Some(_) => Policy::default(),
        None => {
            // The simulation acts for every office; reading the policy, as
            // the first origin unless told otherwise.
            let offices: Vec<RegionCode> = ORIGINS
                .iter()
                .chain(DESTINATIONS.iter())
                .map(|(o, _)| RegionCode::parse(o).expect("simulated offices are real"))
                .collect();
            if let Some(dir) = connect.pki_dir_with_ca() {
                let added = twoplace::pki::add_offices(&dir, &offices)?;
                if !added.is_empty() {
                    eprintln!(
                        "issued certificates in {} for {} offices",
                        dir.display(),
                        added.len()
                    );
                }
            }
            let toml = connect
                .or_as(ORIGINS[0].0)
                .exchange()
                .await?
                .get_policy(proto::GetPolicyRequest {})
                .await
                .map_err(status_error)?
                .into_inner()
                .toml;
            Policy::from_toml(&toml)?
        }
    };
    let expected = expected(&cases, &policy, now)?;

    let (by_office, messages, duplicates) = queues(&cases, args.seed);
    let summary = Summary {
        cases: cases.len(),
        messages,
        duplicates_sent: duplicates,
        offices: by_office.len(),
        now: now
            .to_offset(SHANGHAI)
            .format(&time::format_description::well_known::Rfc3339)?,
        expected,
    };

    match &args.out {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            for (office, queue) in &by_office {
                let path = dir.join(format!("{office}.jsonl"));
                let mut text = String::new();
                for (_, env) in queue {
                    text.push_str(&to_json("twoplace.v1.Envelope", env));
                    text.push('\n');
                }
                std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            eprintln!(
                "wrote {} files to {}: publish each as its office, e.g. twoplace publish {}/341502.jsonl --as 341502",
                by_office.len(),
                dir.display(),
                dir.display()
            );
        }
        None => send_all(connect, by_office, args.batch_size).await?,
    }
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(0)
}

/// What each office sends, in its own order; a few messages twice, and
/// some cases' answers ahead of their questions. Also the number of
/// messages and of duplicates.
#[allow(clippy::type_complexity)]
fn queues(
    cases: &[(CaseKey, Vec<Sent>)],
    seed: u64,
) -> (
    BTreeMap<String, Vec<(std::time::Duration, proto::Envelope)>>,
    usize,
    usize,
) {
    let mut rng = Rng::new(seed, u64::MAX);
    let mut by_office: BTreeMap<String, Vec<(std::time::Duration, proto::Envelope)>> =
        BTreeMap::new();
    let mut messages = 0;
    let mut duplicates = 0;
    for (_, story) in cases {
        for m in story {
            messages += 1;
            let queue = by_office.entry(m.sender.clone()).or_default();
            queue.push((m.delay, m.envelope.clone()));
            if rng.chance(0.02) {
                queue.push((m.delay, m.envelope.clone()));
                duplicates += 1;
            }
        }
    }
    for queue in by_office.values_mut() {
        // Local reordering: swap neighbours now and then; a paced drill
        // then sends in the order of the delays.
        for i in 1..queue.len() {
            if rng.chance(0.1) {
                queue.swap(i - 1, i);
            }
        }
        queue.sort_by_key(|(delay, _)| *delay);
    }
    (by_office, messages, duplicates)
}

/// The simulated traffic of `cases` people, per sending office, without
/// pacing: what `twoplace bench` publishes.
pub fn traffic(
    cases: usize,
    seed: u64,
    now: OffsetDateTime,
) -> BTreeMap<String, Vec<proto::Envelope>> {
    let mut taken = HashSet::new();
    let stories: Vec<(CaseKey, Vec<Sent>)> = (0..cases)
        .map(|i| story(i, seed, now, 4, None, &mut taken))
        .collect();
    queues(&stories, seed)
        .0
        .into_iter()
        .map(|(office, queue)| (office, queue.into_iter().map(|(_, e)| e).collect()))
        .collect()
}

/// One client per office, all at once.
async fn send_all(
    connect: &Connect,
    by_office: BTreeMap<String, Vec<(std::time::Duration, proto::Envelope)>>,
    batch_size: usize,
) -> Result<()> {
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for (office, queue) in by_office {
        let connect = connect.acting_as(&office);
        tasks.push(tokio::spawn(async move {
            let mut client = connect.exchange().await?;
            let mut rejected = 0usize;
            let mut rest = queue.as_slice();
            while let Some((first_delay, _)) = rest.first() {
                // Wait for the next message's time, then send what is due.
                tokio::time::sleep_until(tokio::time::Instant::from_std(started) + *first_delay)
                    .await;
                let due = started.elapsed();
                let n = rest
                    .iter()
                    .take(batch_size.clamp(1, 1000))
                    .take_while(|(delay, _)| *delay <= due)
                    .count()
                    .max(1);
                let (chunk, later) = rest.split_at(n);
                rest = later;
                let outcomes = client
                    .publish(proto::PublishRequest {
                        messages: chunk.iter().map(|(_, e)| e.clone()).collect(),
                    })
                    .await
                    .map_err(status_error)?
                    .into_inner()
                    .outcomes;
                rejected += outcomes
                    .iter()
                    .filter(|o| o.status == proto::PublishStatus::Rejected as i32)
                    .count();
            }
            anyhow::Ok((office, queue.len(), rejected))
        }));
    }
    let mut sent = 0;
    for task in tasks {
        let (office, count, rejected) = task.await??;
        sent += count;
        if rejected > 0 {
            bail!("{rejected} simulated messages from {office} were rejected");
        }
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "sent {sent} messages in {secs:.1} s ({:.0}/s)",
        sent as f64 / secs.max(0.001)
    );
    Ok(())
}
