//! `twoplace bench`: the service measured against its ceilings, each in the
//! same run, as ratios (shared machines drift; ratios hold). Per backend:
//!
//! 1. Transport: health-check round trips over mTLS, ours against a bare
//!    tonic server with only the health service (the same binary, hidden
//!    `--baseline-server`), both in their own process.
//! 2. Ingest: office clients publishing the simulator's traffic in batches
//!    of 100 and one by one, against the same messages' rows written
//!    straight through sqlx: the rows batched ingest stored, in batched
//!    transactions of multi-row statements, right after it; and single-row
//!    transactions, taking turns with the single publishes a third of the
//!    messages at a time. (For comparison, also the batched messages alone,
//!    multi-row and a statement per row.)
//! 3. Fan-out: publish → a subscribed destination receives it, with 100
//!    destinations subscribed.
//! 4. Backlog at scale: N obligations generated straight into the database,
//!    then Backlog (province), Trend (province, 30 days), ListOverdue
//!    (county, first page) and GetCase,
//!    against a health check on the same connection.
//! 5. The server's peak RSS (VmHWM) after 1–3 and after 4.
//!
//! Nothing here asserts a time; `--quick` is the CI smoke run.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use tokio::sync::Mutex;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::bench_load::CeilingRow;
use twoplace::domain::region::counties_within;
use twoplace::domain::{RegionCode, RegionPrefix};
use twoplace::pki::{self, DevPki};
use twoplace::proto::{self, admin_client::AdminClient, exchange_client::ExchangeClient};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// A run of about a minute per backend with small sizes: a smoke test,
    /// not a measurement.
    #[arg(long)]
    quick: bool,
    /// Which backends, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    backends: Vec<String>,
    /// A PostgreSQL server the bench may create databases on.
    #[arg(
        long,
        env = "TWOPLACE_BENCH_POSTGRES",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres: String,
    /// Concurrent office clients for ingest and transport.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Obligations generated for the backlog phase [default: 10000000, or
    /// 200000 with --quick].
    #[arg(long)]
    obligations: Option<u64>,
    /// Simulated people whose messages the batched ingest publishes
    /// [default: 3000, or 300 with --quick]. More makes a longer phase to
    /// profile.
    #[arg(long)]
    ingest_people: Option<usize>,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Internal: serve only gRPC health on this address (the transport
    /// baseline), with the TLS files under --baseline-pki.
    #[arg(long, hide = true, requires = "baseline_pki")]
    baseline_server: Option<SocketAddr>,
    #[arg(long, hide = true)]
    baseline_pki: Option<PathBuf>,
}

/// Turns that single publishes and their ceiling take (`measure`).
const SINGLE_TURNS: usize = 3;

struct Sizes {
    ingest_cases: usize,
    single_messages: usize,
    transport: Duration,
    fanout_messages: usize,
    subscribers: usize,
    obligations: u64,
    samples: usize,
}

/// Latencies of one kind of call.
#[derive(Default)]
struct Latencies(Vec<Duration>);

impl Latencies {
    fn extend(&mut self, other: Latencies) {
        self.0.extend(other.0);
    }

    fn ms(&self, q: f64) -> f64 {
        let mut v = self.0.clone();
        v.sort_unstable();
        if v.is_empty() {
            return f64::NAN;
        }
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        v[rank - 1].as_secs_f64() * 1000.0
    }
}

#[derive(Serialize, Default)]
struct Figures {
    backend: String,
    transport_ours_rps: f64,
    transport_baseline_rps: f64,
    transport_ours_p50_ms: f64,
    transport_baseline_p50_ms: f64,
    /// The machine's CPU a round trip, client and server (`MachineCpu`):
    /// what any RPC costs here before its own work.
    transport_ours_cpu_us: f64,
    transport_baseline_cpu_us: f64,
    ingest_batched_msgs: usize,
    ingest_batched_mps: f64,
    ingest_batched_p50_ms: f64,
    ingest_batched_p99_ms: f64,
    /// The machine's CPU time a message (server, database and clients
    /// together, from /proc/stat) and how busy its cores were.
    ingest_batched_cpu_us: f64,
    ingest_batched_busy: f64,
    /// Batched ingest's ceiling: every row it stored, written again.
    ceiling_stored_rows_mps: f64,
    ceiling_stored_rows_cpu_us: f64,
    ceiling_stored_rows_busy: f64,
    /// Only a message and a delivery row per message, multi-row statements
    /// (the ceiling of 5d605b7), and a statement per row (before it).
    ceiling_batched_mps: f64,
    ceiling_batched_per_row_mps: f64,
    rows_per_message: f64,
    ingest_single_msgs: usize,
    ingest_single_mps: f64,
    ingest_single_p50_ms: f64,
    ingest_single_p99_ms: f64,
    ingest_single_cpu_us: f64,
    ingest_single_busy: f64,
    ceiling_single_mps: f64,
    ceiling_single_cpu_us: f64,
    ceiling_single_busy: f64,
    fanout_subscribers: usize,
    fanout_p50_ms: f64,
    fanout_p99_ms: f64,
    rss_ingest_mib: f64,
    obligations: u64,
    load_seconds: f64,
    tally_build_seconds: f64,
    backlog_p50_ms: f64,
    backlog_p99_ms: f64,
    trend_p50_ms: f64,
    trend_p99_ms: f64,
    overdue_p50_ms: f64,
    overdue_p99_ms: f64,
    get_case_p50_ms: f64,
    get_case_p99_ms: f64,
    health_p50_ms: f64,
    health_p99_ms: f64,
    rss_backlog_mib: f64,
    #[serde(skip)]
    plans: String,
}

pub async fn run(args: BenchArgs) -> Result<i32> {
    if let (Some(addr), Some(dir)) = (args.baseline_server, &args.baseline_pki) {
        return baseline_server(addr, &DevPki { dir: dir.clone() }).await;
    }
    let sizes = if args.quick {
        Sizes {
            ingest_cases: args.ingest_people.unwrap_or(300),
            single_messages: 400,
            transport: Duration::from_secs(2),
            fanout_messages: 300,
            subscribers: 100,
            obligations: args.obligations.unwrap_or(200_000),
            samples: 20,
        }
    } else {
        Sizes {
            ingest_cases: args.ingest_people.unwrap_or(3_000),
            // Four seconds or so: a one-second phase (3,000) moved its
            // ratio by ten points between back-to-back runs.
            single_messages: 12_000,
            transport: Duration::from_secs(10),
            fanout_messages: 3_000,
            subscribers: 100,
            obligations: args.obligations.unwrap_or(10_000_000),
            samples: 200,
        }
    };
    let work = Scratch::new()?;
    let pki = bench_pki(work.path(), sizes.subscribers)?;
    let mut all = Vec::new();
    for backend in &args.backends {
        let figures = match backend.as_str() {
            "sqlite" | "postgres" => {
                eprintln!("== {backend}");
                measure(backend, &args, &sizes, &pki, work.path()).await?
            }
            other => bail!("--backends: {other} is not sqlite or postgres"),
        };
        all.push(figures);
    }
    if args.backends.iter().any(|b| b == "postgres") {
        drop_databases(&args).await;
    }
    report(&all, &args, &sizes);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&all)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(0)
}

/// The machine's CPU time so far, all processes (`/proc/stat`, Linux):
/// server, database and clients share the cores, so a phase's CPU a
/// message is theirs together. NaN elsewhere.
pub(super) struct MachineCpu {
    /// Busy and all ticks (USER_HZ, 100 a second), or None.
    ticks: Option<(u64, u64)>,
}

impl MachineCpu {
    pub(super) fn now() -> Self {
        let ticks = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
            // cpu user nice system idle iowait irq softirq steal …
            let line = s.lines().next()?.strip_prefix("cpu ")?;
            let v: Vec<u64> = line
                .split_whitespace()
                .take(8)
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            let [user, nice, system, idle, iowait, irq, softirq, steal] = v[..] else {
                return None;
            };
            let busy = user + nice + system + irq + softirq;
            Some((busy, busy + idle + iowait + steal))
        });
        MachineCpu { ticks }
    }

    /// The stretch of work from `self` and `started` to now: `messages`,
    /// the seconds, and the machine's CPU ticks meanwhile.
    pub(super) fn stretch(&self, started: Instant, messages: usize) -> Stretch {
        Stretch {
            messages,
            secs: started.elapsed().as_secs_f64(),
            ticks: match (self.ticks, MachineCpu::now().ticks) {
                (Some((b0, t0)), Some((b1, t1))) => Some((b1 - b0, t1 - t0)),
                _ => None,
            },
        }
    }
}

/// Work measured over a stretch of time. Stretches of one kind add up: a
/// phase measured in turns with its ceiling reports one figure per side.
#[derive(Clone, Copy, Default)]
pub(super) struct Stretch {
    messages: usize,
    secs: f64,
    /// Busy and all ticks (`MachineCpu`), or None where unreadable.
    ticks: Option<(u64, u64)>,
}

impl Stretch {
    /// Messages a second.
    pub(super) fn rate(&self) -> f64 {
        self.messages as f64 / self.secs
    }

    /// The machine's CPU µs a message, and the share of the cores busy.
    pub(super) fn cpu(&self) -> (f64, f64) {
        match self.ticks {
            Some((busy, all)) if self.messages > 0 && all > 0 => (
                busy as f64 * 10_000.0 / self.messages as f64,
                busy as f64 / all as f64,
            ),
            _ => (f64::NAN, f64::NAN),
        }
    }

    fn add(&mut self, other: Stretch) {
        self.ticks = match (self.ticks, other.ticks) {
            (Some((b0, t0)), Some((b1, t1))) => Some((b0 + b1, t0 + t1)),
            // Nothing added yet.
            (None, ticks) if self.messages == 0 => ticks,
            _ => None,
        };
        self.messages += other.messages;
        self.secs += other.secs;
    }
}

/// A scratch directory, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch> {
        let dir = std::env::temp_dir().join(format!("twoplace-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Scratch(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // TWOPLACE_BENCH_KEEP=1 keeps the databases for a closer look.
        if std::env::var_os("TWOPLACE_BENCH_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Offices of the simulator, the fan-out's destinations, and an admin.
fn bench_pki(dir: &Path, subscribers: usize) -> Result<DevPki> {
    let mut offices: Vec<RegionCode> = super::simulate::OFFICES
        .iter()
        .map(|o| RegionCode::parse(o).expect("real codes"))
        .collect();
    offices.extend(fanout_destinations(subscribers));
    let pki = pki::init(
        &dir.join("pki"),
        &offices,
        &[RegionPrefix::parse("34").expect("a province")],
        &["localhost".to_string()],
    )?;
    Ok(pki)
}

/// Destinations for the fan-out: counties of the east coast.
fn fanout_destinations(n: usize) -> Vec<RegionCode> {
    ["31", "32", "33", "44"]
        .iter()
        .flat_map(|p| counties_within(p))
        .take(n)
        .map(|c| RegionCode::parse(c).expect("a county of the tables"))
        .collect()
}

/// A fresh database of the backend: (URL for the server, dropper).
async fn fresh_database(backend: &str, args: &BenchArgs, dir: &Path, name: &str) -> Result<String> {
    match backend {
        "sqlite" => Ok(format!(
            "sqlite:{}",
            dir.join(format!("{name}.db")).display()
        )),
        _ => {
            let admin = sqlx::PgPool::connect(&args.postgres)
                .await
                .with_context(|| {
                    format!(
                        "PostgreSQL at {}",
                        twoplace::store::redact_url(&args.postgres)
                    )
                })?;
            let db = format!("twoplace_bench_{name}");
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
            )))
            .execute(&admin)
            .await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
                .execute(&admin)
                .await?;
            admin.close().await;
            let base = args
                .postgres
                .rsplit_once('/')
                .map_or(args.postgres.as_str(), |(b, _)| b);
            Ok(format!("{base}/{db}"))
        }
    }
}

/// Drops the PostgreSQL databases the bench made (`fresh_database`), as
/// the scratch directory goes with SQLite's: the scale phase's alone is
/// gigabytes. TWOPLACE_BENCH_KEEP=1 keeps them too. A database that will
/// not go is left with a warning: the figures are what the run is for.
async fn drop_databases(args: &BenchArgs) {
    if std::env::var_os("TWOPLACE_BENCH_KEEP").is_some() {
        eprintln!("  kept the PostgreSQL databases twoplace_bench_* (TWOPLACE_BENCH_KEEP)");
        return;
    }
    let dropped = async {
        let admin = sqlx::PgPool::connect(&args.postgres).await?;
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT datname FROM pg_database WHERE datname LIKE 'twoplace\\_bench\\_%'",
        )
        .fetch_all(&admin)
        .await?;
        for db in names {
            // Quoted: the pattern matches ours (`fresh_database`), but
            // whoever else made a database may have named it anything.
            let db = db.replace('"', "\"\"");
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"
            )))
            .execute(&admin)
            .await?;
        }
        admin.close().await;
        Ok::<_, sqlx::Error>(())
    };
    if let Err(e) = dropped.await {
        eprintln!("  warning: could not drop the bench's PostgreSQL databases: {e}");
    }
}

/// The server under test, in its own process.
struct ServerProcess {
    child: tokio::process::Child,
    addr: SocketAddr,
}

impl ServerProcess {
    async fn start(url: &str, pki: &DevPki, dir: &Path) -> Result<ServerProcess> {
        let addr = free_addr()?;
        let child = tokio::process::Command::new(std::env::current_exe()?)
            .args([
                "serve",
                "--metrics-listen",
                "off",
                "--dashboard-listen",
                "off",
            ])
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(dir)
            .arg("--database-url")
            .arg(url)
            .arg("--tls-cert")
            .arg(pki.server_cert())
            .arg("--tls-key")
            .arg(pki.server_key())
            .arg("--client-ca")
            .arg(pki.ca())
            // TWOPLACE_BENCH_SERVER_LOG: the server's log filter, to
            // profile (e.g. "warn,twoplace::store::intake=debug").
            .env(
                "TWOPLACE_LOG",
                std::env::var("TWOPLACE_BENCH_SERVER_LOG").unwrap_or("warn".into()),
            )
            .kill_on_drop(true)
            .spawn()
            .context("starting twoplace serve")?;
        let mut server = ServerProcess { child, addr };
        server.wait_ready(pki).await?;
        Ok(server)
    }

    /// Waits until health says SERVING: the server listens at once, and
    /// is ready once it has prepared the database (counting the tallies of
    /// millions of generated rows takes minutes).
    async fn wait_ready(&mut self, pki: &DevPki) -> Result<()> {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(1800) {
            if let Some(status) = self.child.try_wait()? {
                bail!("the server exited while starting ({status})");
            }
            if let Ok(channel) = channel(self.addr, pki, "341502").await
                && let Ok(answer) = HealthClient::new(channel)
                    .check(HealthCheckRequest::default())
                    .await
                && answer.into_inner().status() == ServingStatus::Serving
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("the server did not become ready")
    }

    /// Peak resident memory so far, in MiB.
    fn peak_rss_mib(&self) -> f64 {
        let Some(pid) = self.child.id() else {
            return f64::NAN;
        };
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            })
            .map_or(f64::NAN, |kib| kib / 1024.0)
    }

    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = tokio::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await;
        let _ = self.child.kill().await;
    }
}

fn free_addr() -> Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// An mTLS channel to `addr` as `who` (an office code or `admin:34`).
async fn channel(addr: SocketAddr, pki: &DevPki, who: &str) -> Result<Channel> {
    let (cert, key) = match who.strip_prefix("admin:") {
        Some(prefix) => (pki.admin_cert(prefix), pki.admin_key(prefix)),
        None => (pki.office_cert(who), pki.office_key(who)),
    };
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(pki.ca())?))
        .identity(Identity::from_pem(
            std::fs::read(cert)?,
            std::fs::read(key)?,
        ))
        .domain_name("localhost");
    Ok(Channel::from_shared(format!("https://{addr}"))?
        .tls_config(tls)?
        .connect()
        .await?)
}

async fn measure(
    backend: &str,
    args: &BenchArgs,
    sizes: &Sizes,
    pki: &DevPki,
    dir: &Path,
) -> Result<Figures> {
    let mut f = Figures {
        backend: backend.to_string(),
        ..Figures::default()
    };
    let offices = busiest_offices(sizes, args.clients);

    // 1–3 on one server.
    let url = fresh_database(backend, args, dir, &format!("{backend}_main")).await?;
    let server = ServerProcess::start(&url, pki, &dir.join(format!("{backend}-data"))).await?;
    let baseline = baseline_process(pki).await?;
    for (target, rps, p50, cpu_us) in [
        (
            server.addr,
            &mut f.transport_ours_rps,
            &mut f.transport_ours_p50_ms,
            &mut f.transport_ours_cpu_us,
        ),
        (
            baseline.0,
            &mut f.transport_baseline_rps,
            &mut f.transport_baseline_p50_ms,
            &mut f.transport_baseline_cpu_us,
        ),
    ] {
        let (cpu, started) = (MachineCpu::now(), Instant::now());
        let (n, lat) = health_load(target, pki, &offices, sizes.transport).await?;
        *rps = n as f64 / sizes.transport.as_secs_f64();
        *p50 = lat.ms(0.5);
        (*cpu_us, _) = cpu.stretch(started, n as usize).cpu();
    }
    let mut baseline = baseline.1;
    let _ = baseline.kill().await;
    eprintln!("  transport done");

    let now = time::OffsetDateTime::now_utc();
    let traffic = super::simulate::traffic(sizes.ingest_cases, 7, now);
    let batched: BTreeMap<String, Vec<proto::Envelope>> = traffic
        .into_iter()
        .filter(|(o, _)| offices.contains(o))
        .collect();
    eprintln!("  batched ingest starts");
    let (ours, lat) = publish_all(server.addr, pki, &batched, 100).await?;
    (f.ingest_batched_cpu_us, f.ingest_batched_busy) = ours.cpu();
    f.ingest_batched_msgs = ours.messages;
    f.ingest_batched_mps = ours.rate();
    f.ingest_batched_p50_ms = lat.ms(0.5);
    f.ingest_batched_p99_ms = lat.ms(0.99);
    // Its ceiling: what ingest stored, written again at once, so that the
    // machine's drift between phases falls on neither alone (BENCHMARKS.md,
    // fifteenth round).
    let stored = Arc::new(super::bench_load::StoredRows::read(&url).await?);
    f.rows_per_message = stored.len() as f64 / ours.messages as f64;
    let ceiling_url =
        fresh_database(backend, args, dir, &format!("{backend}_ceiling_stored")).await?;
    let ceiling =
        super::bench_load::ceiling_stored_rows(&ceiling_url, stored, 100, args.clients).await?;
    f.ceiling_stored_rows_mps = ceiling.rate();
    (f.ceiling_stored_rows_cpu_us, f.ceiling_stored_rows_busy) = ceiling.cpu();
    eprintln!("  batched ingest done");

    let single: BTreeMap<String, Vec<proto::Envelope>> =
        super::simulate::traffic(sizes.single_messages / 2, 8, now)
            .into_iter()
            .filter(|(o, _)| offices.contains(o))
            .map(|(o, mut q)| {
                q.truncate(sizes.single_messages / offices.len().max(1));
                (o, q)
            })
            .collect();
    // Single publishes and their ceiling take turns, a slice of the
    // messages each, so that the machine's drift falls on both alike (the
    // ceiling's own CPU a message moved by a quarter between runs of one
    // binary: BENCHMARKS.md, fifteenth round).
    let ceiling_url =
        fresh_database(backend, args, dir, &format!("{backend}_ceiling_single")).await?;
    use super::bench_load::Statements::{MultiRow, PerRow};
    let (mut ours, mut ceiling_single, mut lat) = Default::default();
    for turn in 0..SINGLE_TURNS {
        let slice: BTreeMap<String, Vec<proto::Envelope>> = single
            .iter()
            .map(|(office, queue)| {
                let share = |k: usize| k * queue.len() / SINGLE_TURNS;
                (office.clone(), queue[share(turn)..share(turn + 1)].to_vec())
            })
            .collect();
        let (stretch, latencies) = publish_all(server.addr, pki, &slice, 1).await?;
        Stretch::add(&mut ours, stretch);
        Latencies::extend(&mut lat, latencies);
        let stretch = ceiling_of(&ceiling_url, &slice, 1, args.clients, PerRow).await?;
        Stretch::add(&mut ceiling_single, stretch);
    }
    (f.ingest_single_cpu_us, f.ingest_single_busy) = ours.cpu();
    f.ingest_single_msgs = ours.messages;
    f.ingest_single_mps = ours.rate();
    f.ingest_single_p50_ms = lat.ms(0.5);
    f.ingest_single_p99_ms = lat.ms(0.99);
    f.ceiling_single_mps = ceiling_single.rate();
    (f.ceiling_single_cpu_us, f.ceiling_single_busy) = ceiling_single.cpu();
    eprintln!("  single ingest done");
    f.rss_ingest_mib = server.peak_rss_mib();

    let lat = fanout(server.addr, pki, sizes).await?;
    f.fanout_subscribers = sizes.subscribers;
    f.fanout_p50_ms = lat.ms(0.5);
    f.fanout_p99_ms = lat.ms(0.99);
    eprintln!("  fan-out done");
    server.stop().await;

    // For comparison, only the batched messages' rows, each way, each on a
    // fresh database of the same schema.
    for (name, statements, mps) in [
        ("batched", MultiRow, &mut f.ceiling_batched_mps),
        ("per_row", PerRow, &mut f.ceiling_batched_per_row_mps),
    ] {
        let url = fresh_database(backend, args, dir, &format!("{backend}_ceiling_{name}")).await?;
        *mps = ceiling_of(&url, &batched, 100, args.clients, statements)
            .await?
            .rate();
    }
    eprintln!("  ceilings done");

    // 4: backlog at scale.
    let url = fresh_database(backend, args, dir, &format!("{backend}_scale")).await?;
    let started = Instant::now();
    super::bench_load::load(&url, sizes.obligations).await?;
    f.obligations = sizes.obligations;
    f.load_seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "  loaded {} obligations in {:.0} s",
        sizes.obligations, f.load_seconds
    );
    let started = Instant::now();
    let server = ServerProcess::start(&url, pki, &dir.join(format!("{backend}-scale"))).await?;
    f.tally_build_seconds = started.elapsed().as_secs_f64();
    backlog_calls(&server, pki, sizes, &mut f).await?;
    f.rss_backlog_mib = server.peak_rss_mib();
    server.stop().await;
    if backend == "postgres" {
        f.plans = super::bench_load::plans(&url).await?;
    }
    Ok(f)
}

/// The `clients` offices that send the most in the simulated traffic.
fn busiest_offices(sizes: &Sizes, clients: usize) -> Vec<String> {
    let traffic = super::simulate::traffic(
        sizes.ingest_cases.min(300),
        7,
        time::OffsetDateTime::now_utc(),
    );
    let mut by_volume: Vec<(usize, String)> =
        traffic.into_iter().map(|(o, q)| (q.len(), o)).collect();
    by_volume.sort_by(|a, b| b.cmp(a));
    by_volume
        .into_iter()
        .take(clients.max(1))
        .map(|(_, o)| o)
        .collect()
}

/// The bare tonic server with only the health service, in its own process.
async fn baseline_process(pki: &DevPki) -> Result<(SocketAddr, tokio::process::Child)> {
    let addr = free_addr()?;
    let child = tokio::process::Command::new(std::env::current_exe()?)
        .args(["bench", "--baseline-server"])
        .arg(addr.to_string())
        .arg("--baseline-pki")
        .arg(&pki.dir)
        .kill_on_drop(true)
        .spawn()?;
    let started = Instant::now();
    loop {
        if let Ok(c) = channel(addr, pki, "341502").await
            && HealthClient::new(c)
                .check(HealthCheckRequest::default())
                .await
                .is_ok()
        {
            return Ok((addr, child));
        }
        if started.elapsed() > Duration::from_secs(20) {
            bail!("the baseline server did not start");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// tonic's own server: the health service and nothing else, same mTLS.
async fn baseline_server(addr: SocketAddr, pki: &DevPki) -> Result<i32> {
    let (_reporter, health) = tonic_health::server::health_reporter();
    let tls = tonic::transport::ServerTlsConfig::new()
        .identity(Identity::from_pem(
            std::fs::read(pki.server_cert())?,
            std::fs::read(pki.server_key())?,
        ))
        .client_ca_root(Certificate::from_pem(std::fs::read(pki.ca())?));
    tonic::transport::Server::builder()
        .tls_config(tls)?
        .add_service(health)
        .serve(addr)
        .await?;
    Ok(0)
}

/// Health checks from one connection per office for `duration`.
async fn health_load(
    addr: SocketAddr,
    pki: &DevPki,
    offices: &[String],
    duration: Duration,
) -> Result<(u64, Latencies)> {
    let mut tasks = Vec::new();
    for office in offices {
        let mut client = HealthClient::new(channel(addr, pki, office).await?);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let started = Instant::now();
            while started.elapsed() < duration {
                let t = Instant::now();
                client.check(HealthCheckRequest::default()).await?;
                lat.push(t.elapsed());
            }
            anyhow::Ok(lat)
        }));
    }
    let mut all = Latencies::default();
    for t in tasks {
        all.0.extend(t.await??);
    }
    Ok((all.0.len() as u64, all))
}

/// Each office publishes its queue in batches of `batch`, all at once:
/// (messages, seconds, latency per call).
async fn publish_all(
    addr: SocketAddr,
    pki: &DevPki,
    traffic: &BTreeMap<String, Vec<proto::Envelope>>,
    batch: usize,
) -> Result<(Stretch, Latencies)> {
    let mut clients = Vec::new();
    for office in traffic.keys() {
        clients.push(ExchangeClient::new(channel(addr, pki, office).await?));
    }
    let (cpu, started) = (MachineCpu::now(), Instant::now());
    let mut tasks = Vec::new();
    for (mut client, queue) in clients.into_iter().zip(traffic.values().cloned()) {
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for chunk in queue.chunks(batch) {
                let t = Instant::now();
                let outcomes = client
                    .publish(proto::PublishRequest {
                        messages: chunk.to_vec(),
                    })
                    .await?
                    .into_inner()
                    .outcomes;
                lat.push(t.elapsed());
                if let Some(bad) = outcomes
                    .iter()
                    .find(|o| o.status == proto::PublishStatus::Rejected as i32)
                {
                    bail!("a simulated message was rejected: {:?}", bad.violations);
                }
            }
            Ok(lat)
        }));
    }
    let mut all = Latencies::default();
    for t in tasks {
        all.0.extend(t.await??);
    }
    let messages = traffic.values().map(Vec::len).sum();
    Ok((cpu.stretch(started, messages), all))
}

/// The same messages written straight through sqlx: a message row and a
/// delivery row each, `batch` messages per transaction, from `clients`
/// tasks.
async fn ceiling_of(
    url: &str,
    traffic: &BTreeMap<String, Vec<proto::Envelope>>,
    batch: usize,
    clients: usize,
    statements: super::bench_load::Statements,
) -> Result<Stretch> {
    use prost::Message as _;
    let rows: Vec<CeilingRow> = traffic
        .iter()
        .flat_map(|(office, queue)| {
            queue.iter().map(move |e| {
                (
                    office.clone(),
                    e.message_id.clone(),
                    e.encode_to_vec(),
                    twoplace::json::to_json("twoplace.v1.Envelope", e),
                )
            })
        })
        .collect();
    let chunks: Vec<Vec<CeilingRow>> = rows.chunks(batch).map(<[_]>::to_vec).collect();
    let queue = Arc::new(Mutex::new(chunks));
    let n = rows.len();
    super::bench_load::ceiling_writes(url, queue, clients, n, statements).await
}

/// Publish → delivery on a live feed, with `subscribers` destinations
/// subscribed.
async fn fanout(addr: SocketAddr, pki: &DevPki, sizes: &Sizes) -> Result<Latencies> {
    use tokio_stream::StreamExt as _;
    let destinations = fanout_destinations(sizes.subscribers);
    let sent: Arc<std::sync::Mutex<std::collections::HashMap<String, Instant>>> = Arc::default();
    let received = Arc::new(std::sync::Mutex::new(Latencies::default()));
    let mut feeds = Vec::new();
    for d in &destinations {
        let mut client = ExchangeClient::new(channel(addr, pki, d.as_str()).await?);
        let mut stream = client
            .subscribe(proto::SubscribeRequest::default())
            .await?
            .into_inner();
        let (sent, received) = (sent.clone(), received.clone());
        feeds.push(tokio::spawn(async move {
            while let Some(Ok(event)) = stream.next().await {
                if let Some(proto::inbox_event::Event::Delivery(d)) = event.event
                    && let Some(e) = d.envelope
                    && let Some(t) = sent.lock().expect("not poisoned").get(&e.message_id)
                {
                    received.lock().expect("not poisoned").0.push(t.elapsed());
                }
            }
        }));
    }
    // Registrations from the simulator, readdressed round-robin.
    let now = time::OffsetDateTime::now_utc();
    let mut registrations: Vec<(String, proto::Envelope)> =
        super::simulate::traffic(sizes.fanout_messages, 9, now)
            .into_iter()
            .flat_map(|(office, q)| q.into_iter().map(move |e| (office.clone(), e)))
            .filter(|(_, e)| matches!(e.body, Some(proto::envelope::Body::Registration(_))))
            .collect();
    registrations.sort_by(|a, b| a.1.message_id.cmp(&b.1.message_id));
    registrations.dedup_by(|a, b| a.1.message_id == b.1.message_id && a.0 == b.0);
    registrations.truncate(sizes.fanout_messages);
    let mut senders: BTreeMap<String, ExchangeClient<Channel>> = BTreeMap::new();
    // A steady 100 messages a second, one at a time.
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    for (i, (office, mut e)) in registrations.into_iter().enumerate() {
        e.recipient_office = destinations[i % destinations.len()].to_string();
        e.message_id = format!("fanout-{i}");
        if !senders.contains_key(&office) {
            senders.insert(
                office.clone(),
                ExchangeClient::new(channel(addr, pki, &office).await?),
            );
        }
        let client = senders.get_mut(&office).expect("just added");
        tick.tick().await;
        sent.lock()
            .expect("not poisoned")
            .insert(e.message_id.clone(), Instant::now());
        client
            .publish(proto::PublishRequest { messages: vec![e] })
            .await?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for f in feeds {
        f.abort();
    }
    let lat = std::mem::take(&mut *received.lock().expect("not poisoned"));
    Ok(lat)
}

/// Backlog for the province, ListOverdue's first page for a county,
/// GetCase, and a health check as the floor, each `samples` times.
async fn backlog_calls(
    server: &ServerProcess,
    pki: &DevPki,
    sizes: &Sizes,
    f: &mut Figures,
) -> Result<()> {
    let admin_channel = channel(server.addr, pki, "admin:34").await?;
    let mut admin = AdminClient::new(admin_channel.clone());
    let mut health = HealthClient::new(admin_channel);
    let mut office = ExchangeClient::new(channel(server.addr, pki, "341502").await?);
    // A real case to read, published through the API.
    let now = time::OffsetDateTime::now_utc();
    let registration = super::simulate::traffic(20, 11, now)
        .remove("341502")
        .unwrap_or_default()
        .into_iter()
        .find(|e| matches!(e.body, Some(proto::envelope::Body::Registration(_))));
    let resident = registration
        .as_ref()
        .and_then(|e| e.case_ref.as_ref())
        .map(|c| c.resident_id.clone());
    if let Some(e) = registration {
        office
            .publish(proto::PublishRequest { messages: vec![e] })
            .await?;
    }
    let (mut b, mut t30, mut o, mut g, mut h) = Default::default();
    for _ in 0..sizes.samples {
        let t = Instant::now();
        health.check(HealthCheckRequest::default()).await?;
        Latencies::push(&mut h, t);
        let t = Instant::now();
        admin
            .backlog(proto::BacklogRequest {
                region: "34".into(),
                ..Default::default()
            })
            .await?;
        Latencies::push(&mut b, t);
        // The dashboard's chart: 30 days of the province.
        let t = Instant::now();
        admin
            .trend(proto::TrendRequest {
                region: "34".into(),
                ..Default::default()
            })
            .await?;
        Latencies::push(&mut t30, t);
        let t = Instant::now();
        admin
            .list_overdue(proto::ListOverdueRequest {
                region: "341502".into(),
                page_size: 50,
                ..Default::default()
            })
            .await?;
        Latencies::push(&mut o, t);
        if let Some(resident) = &resident {
            let t = Instant::now();
            office
                .get_case(proto::GetCaseRequest {
                    resident_id: resident.clone(),
                    origin_office: "341502".into(),
                    ..Default::default()
                })
                .await?;
            Latencies::push(&mut g, t);
        }
    }
    (f.backlog_p50_ms, f.backlog_p99_ms) = (b.ms(0.5), b.ms(0.99));
    (f.trend_p50_ms, f.trend_p99_ms) = (t30.ms(0.5), t30.ms(0.99));
    (f.overdue_p50_ms, f.overdue_p99_ms) = (o.ms(0.5), o.ms(0.99));
    (f.get_case_p50_ms, f.get_case_p99_ms) = (g.ms(0.5), g.ms(0.99));
    (f.health_p50_ms, f.health_p99_ms) = (h.ms(0.5), h.ms(0.99));
    Ok(())
}

impl Latencies {
    fn push(&mut self, since: Instant) {
        self.0.push(since.elapsed());
    }
}

/// The machine's CPU a message, ours against the ceiling's: what bounds
/// the ratio when the cores are busy (ours can reach at most the
/// ceiling's CPU a message over ours, times how much busier the machine
/// could be).
fn cpu_line((ours, ours_busy): (f64, f64), (ceiling, ceiling_busy): (f64, f64)) {
    if ours.is_nan() || ceiling.is_nan() {
        return;
    }
    println!(
        "            machine CPU a message {ours:.0} µs vs the ceiling's {ceiling:.0} µs = {:.1} %; cores busy {:.0} % vs {:.0} %",
        ceiling / ours * 100.0,
        ours_busy * 100.0,
        ceiling_busy * 100.0
    );
}

fn report(all: &[Figures], args: &BenchArgs, sizes: &Sizes) {
    println!(
        "twoplace bench{} — {} clients; ratios are against a ceiling measured in the same run",
        if args.quick {
            " --quick (smoke run: sizes too small to judge by)"
        } else {
            ""
        },
        args.clients
    );
    for f in all {
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b * 100.0 } else { f64::NAN };
        println!("\n[{}]", f.backend);
        println!(
            "transport   health RPC {:>9.0}/s  vs bare tonic {:>9.0}/s  = {:>5.1} %   (p50 {:.2} vs {:.2} ms)",
            f.transport_ours_rps,
            f.transport_baseline_rps,
            ratio(f.transport_ours_rps, f.transport_baseline_rps),
            f.transport_ours_p50_ms,
            f.transport_baseline_p50_ms
        );
        if !f.transport_ours_cpu_us.is_nan() {
            println!(
                "            machine CPU a round trip {:.0} µs vs bare tonic's {:.0} µs (client and server)",
                f.transport_ours_cpu_us, f.transport_baseline_cpu_us
            );
        }
        println!(
            "ingest      batched  {:>9.0} msg/s  vs sqlx ceiling {:>9.0} msg/s = {:>5.1} %   (the same {:.1} rows a message; p50 {:.1} ms, p99 {:.1} ms per 100; {} messages)",
            f.ingest_batched_mps,
            f.ceiling_stored_rows_mps,
            ratio(f.ingest_batched_mps, f.ceiling_stored_rows_mps),
            f.rows_per_message,
            f.ingest_batched_p50_ms,
            f.ingest_batched_p99_ms,
            f.ingest_batched_msgs
        );
        cpu_line(
            (f.ingest_batched_cpu_us, f.ingest_batched_busy),
            (f.ceiling_stored_rows_cpu_us, f.ceiling_stored_rows_busy),
        );
        println!(
            "            against only the messages (2 rows a message): {:.0} msg/s = {:.1} % multi-row, {:.0} msg/s = {:.1} % a statement per row",
            f.ceiling_batched_mps,
            ratio(f.ingest_batched_mps, f.ceiling_batched_mps),
            f.ceiling_batched_per_row_mps,
            ratio(f.ingest_batched_mps, f.ceiling_batched_per_row_mps),
        );
        println!(
            "ingest      single   {:>9.0} msg/s  vs sqlx ceiling {:>9.0} msg/s = {:>5.1} %   (p50 {:.1} ms, p99 {:.1} ms; {} messages)",
            f.ingest_single_mps,
            f.ceiling_single_mps,
            ratio(f.ingest_single_mps, f.ceiling_single_mps),
            f.ingest_single_p50_ms,
            f.ingest_single_p99_ms,
            f.ingest_single_msgs
        );
        cpu_line(
            (f.ingest_single_cpu_us, f.ingest_single_busy),
            (f.ceiling_single_cpu_us, f.ceiling_single_busy),
        );
        println!(
            "fan-out     {} subscribers: p50 {:.1} ms, p99 {:.1} ms",
            f.fanout_subscribers, f.fanout_p50_ms, f.fanout_p99_ms
        );
        println!(
            "scale       {} obligations loaded in {:.0} s; server up (tallies built) in {:.1} s",
            f.obligations, f.load_seconds, f.tally_build_seconds
        );
        for (name, p50, p99) in [
            ("Backlog 34", f.backlog_p50_ms, f.backlog_p99_ms),
            ("Trend 34, 30 days", f.trend_p50_ms, f.trend_p99_ms),
            ("ListOverdue 341502", f.overdue_p50_ms, f.overdue_p99_ms),
            ("GetCase", f.get_case_p50_ms, f.get_case_p99_ms),
        ] {
            println!(
                "            {name:<20} p50 {p50:>7.2} ms  p99 {p99:>7.2} ms  = {:>5.1}x a health check's p99 ({:.2} ms)",
                p99 / f.health_p99_ms,
                f.health_p99_ms
            );
        }
        println!(
            "memory      peak RSS {:.0} MiB during ingest and fan-out, {:.0} MiB at scale",
            f.rss_ingest_mib, f.rss_backlog_mib
        );
        if !f.plans.is_empty() {
            println!(
                "\nPostgreSQL plans of the backlog's statements:\n{}",
                f.plans
            );
        }
    }
    let _ = sizes;
}
