//! The `twoplace` command: the server, its operator tools, and the
//! offices' client.

mod cli;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

use twoplace::clock::SystemClock;
use twoplace::domain::{Policy, RegionCode, RegionPrefix};
use twoplace::pki::{self, DevPki};
use twoplace::server::{self, ServerOptions, TlsFiles};
use twoplace::store;

/// twoplace — the exchange between the origin and destination offices of
/// two-place co-management (两地协管).
///
/// Origin offices publish registrations and certificates; destination offices
/// read their inbox, confirm, verify and send feedback; both read the
/// reconciled case. Every caller is identified by its mTLS client certificate.
#[derive(Parser)]
#[command(name = "twoplace", version, propagate_version = true)]
struct Cli {
    /// Log format: human-readable text, or one JSON object per line.
    #[arg(
        long,
        value_enum,
        env = "TWOPLACE_LOG_FORMAT",
        default_value = "text",
        global = true
    )]
    log_format: LogFormat,

    #[command(flatten)]
    connect: cli::Connect,

    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the exchange server.
    ///
    /// With no flags: SQLite at ./data/twoplace.db, listening on
    /// 127.0.0.1:50051, with a development PKI created under ./data/pki on
    /// first start (client certificates for offices 341502 and 310112 and
    /// administrator 34).
    Serve(ServeArgs),
    /// Publish a file of messages (JSON Lines), in batches, resumable.
    ///
    /// Exit code 0: all accepted (or already there); 2: some lines were
    /// rejected (see the report); 1: failure (rerun to resume).
    Publish(cli::publish::PublishArgs),
    /// Read your inbox: a page, or --follow to print deliveries as they come.
    Inbox(cli::inbox::InboxArgs),
    /// Answer what your office owes: confirm, verify, feedback, answer.
    Reply(cli::reply::ReplyArgs),
    /// Acknowledge receipt of deliveries.
    Ack(cli::inbox::AckArgs),
    /// Read a case.
    Case(cli::case::CaseArgs),
    /// What your office owes (or is owed), oldest due first.
    Obligations(cli::case::ObligationsArgs),
    /// A region's backlog and KPIs by child region (administrators:
    /// --as admin:34).
    Backlog(cli::backlog::BacklogArgs),
    /// Simulate a population and the traffic of both sides, against a
    /// server (--target) or into files (--out), and print what the
    /// reconciled result should be.
    Simulate(cli::simulate::SimulateArgs),
    /// Administrators' tools: `admin token` signs a token for the dashboard.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Measure ingest, transport, fan-out and backlog queries against their
    /// ceilings, on SQLite and PostgreSQL (see BENCHMARKS.md). --quick for a
    /// smoke run.
    Bench(cli::bench::BenchArgs),
    /// Show the built-in policy (a starting point for --policy FILE).
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Manage certificates.
    Pki {
        #[command(subcommand)]
        command: PkiCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Sign a token for the dashboard with your administrator certificate
    /// (--as admin:34, or --cert/--key), for a browser that has no client
    /// certificate. Open the dashboard at https://HOST:9443/#token=TOKEN
    /// (--url prints that address).
    Token(cli::admin::TokenArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "TWOPLACE_LISTEN", default_value = "127.0.0.1:50051")]
    listen: SocketAddr,

    /// Where /metrics (Prometheus), /readyz and /healthz are served over
    /// plain HTTP, or `off`.
    #[arg(
        long,
        env = "TWOPLACE_METRICS_LISTEN",
        default_value = "127.0.0.1:9464"
    )]
    metrics_listen: String,

    /// Where the administrators' dashboard is served over HTTPS (the
    /// server's certificate; sign in with an administrator's client
    /// certificate or `twoplace admin token`), or `off`.
    #[arg(
        long,
        env = "TWOPLACE_DASHBOARD_LISTEN",
        default_value = "127.0.0.1:9443"
    )]
    dashboard_listen: String,

    /// Directory for the embedded database and the development PKI.
    #[arg(long, env = "TWOPLACE_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,

    /// Database URL: sqlite:PATH or postgres://USER@HOST/DB.
    /// [default: sqlite:<data-dir>/twoplace.db]
    #[arg(long, env = "TWOPLACE_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,

    /// Server certificate (PEM). Without --tls-cert, --tls-key and
    /// --client-ca a development PKI under <data-dir>/pki is used.
    #[arg(long, env = "TWOPLACE_TLS_CERT", requires_all = ["tls_key", "client_ca"])]
    tls_cert: Option<PathBuf>,

    /// Server private key (PEM).
    #[arg(long, env = "TWOPLACE_TLS_KEY", requires_all = ["tls_cert", "client_ca"])]
    tls_key: Option<PathBuf>,

    /// CA certificate (PEM) that client certificates must chain to.
    #[arg(long, env = "TWOPLACE_CLIENT_CA", requires_all = ["tls_cert", "tls_key"])]
    client_ca: Option<PathBuf>,

    /// Heartbeat interval of live feeds (e.g. 15s, 500ms, 1m).
    #[arg(long, env = "TWOPLACE_HEARTBEAT", default_value = "15s", value_parser = parse_duration)]
    heartbeat: Duration,

    /// On SIGTERM or Ctrl-C, how long calls still open may take to finish
    /// before they are cut (a cut publish is unanswered; its caller resends).
    // Under Kubernetes' default 30 s between SIGTERM and SIGKILL, so the
    // server closes what is left itself.
    #[arg(long, env = "TWOPLACE_SHUTDOWN_GRACE", default_value = "20s", value_parser = parse_duration)]
    shutdown_grace: Duration,

    /// How often the sweeper looks for new feedback periods and due reminders.
    #[arg(long, env = "TWOPLACE_SWEEP_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    sweep_interval: Duration,

    /// Policy file (TOML): deadlines, working-day calendar, feedback period.
    /// [default: the built-in policy, `twoplace policy show`]
    #[arg(long, env = "TWOPLACE_POLICY")]
    policy: Option<PathBuf>,

    /// Accept resident IDs whose check digit does not hold (default: reject).
    #[arg(long, env = "TWOPLACE_ACCEPT_BAD_CHECK_DIGITS")]
    accept_bad_check_digits: bool,

    /// Accept region codes that are not in GB/T 2260 (default: reject).
    #[arg(long, env = "TWOPLACE_ACCEPT_UNKNOWN_REGIONS")]
    accept_unknown_regions: bool,
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Print the built-in policy file.
    Show,
    /// Check a policy file and say what is wrong, with the line.
    Check { file: PathBuf },
}

#[derive(Subcommand)]
enum PkiCommand {
    /// Write a development CA, a server certificate and one client
    /// certificate per office and administrator. Reuses the CA in --out.
    Init {
        /// Directory to write to.
        #[arg(long, default_value = "data/pki")]
        out: PathBuf,
        /// An office (6- or 9-digit region code); repeat for more.
        #[arg(long = "office", value_name = "CODE")]
        offices: Vec<String>,
        /// An administrator's region prefix (34, 3415, 341502); repeat for more.
        #[arg(long = "admin", value_name = "PREFIX")]
        admins: Vec<String>,
        /// A name or address the server certificate is valid for; repeat.
        #[arg(long = "server-name", default_values = ["localhost", "127.0.0.1", "::1"])]
        server_names: Vec<String>,
    },
}

pub(crate) fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let split = raw
        .find(|c: char| !c.is_ascii_digit())
        .ok_or("give a unit: ms, s, m or h")?;
    let (number, unit) = raw.split_at(split);
    let n: u64 = number.parse().map_err(|_| "must start with a number")?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(format!("unknown unit {unit:?}: use ms, s, m or h")),
    };
    if d.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(d)
}

fn init_logging(format: LogFormat, bench: bool) {
    // The bench generates millions of rows in single statements on
    // purpose: sqlx's slow-statement warnings would drown its report.
    let default = if bench {
        "info,sqlx=error,h2=warn,tower=warn,hyper=warn"
    } else {
        "info,sqlx=warn,h2=warn,tower=warn,hyper=warn"
    };
    let filter =
        EnvFilter::try_from_env("TWOPLACE_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    // Logs go to stderr: stdout is for what a command prints (JSON, tables).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn main() {
    let cli = Cli::parse();
    init_logging(cli.log_format, matches!(cli.command, Command::Bench(_)));
    match run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Runs a client command; Ctrl-C ends it, saying so.
fn client<F: std::future::Future<Output = Result<i32>>>(command: F) -> Result<i32> {
    runtime()?.block_on(async {
        tokio::select! {
            result = command => result,
            _ = tokio::signal::ctrl_c() => {
                eprintln!("\ninterrupted; a rerun of publish resumes where this one stopped");
                Ok(130)
            }
        }
    })
}

fn run(cli: Cli) -> Result<i32> {
    let connect = cli.connect;
    match cli.command {
        Command::Serve(args) => runtime()?.block_on(serve(args)).map(|()| 0),
        Command::Publish(args) => client(cli::publish::run(&connect, args)),
        Command::Inbox(args) => client(cli::inbox::run(&connect, args)),
        Command::Ack(args) => client(cli::inbox::ack(&connect, args)),
        Command::Reply(args) => client(cli::reply::run(&connect, args)),
        Command::Case(args) => client(cli::case::show(&connect, args)),
        Command::Obligations(args) => client(cli::case::obligations(&connect, args)),
        Command::Simulate(args) => client(cli::simulate::run(&connect, args)),
        Command::Backlog(args) => client(cli::backlog::run(&connect, args)),
        Command::Bench(args) => client(cli::bench::run(args)),
        Command::Admin {
            command: AdminCommand::Token(args),
        } => cli::admin::token(&connect, args).map(|()| 0),
        Command::Policy {
            command: PolicyCommand::Show,
        } => {
            print!("{}", twoplace::domain::policy::DEFAULT_POLICY);
            Ok(0)
        }
        Command::Policy {
            command: PolicyCommand::Check { file },
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            Policy::from_toml(&text).with_context(|| format!("in {}", file.display()))?;
            println!("{}: a valid policy", file.display());
            Ok(0)
        }
        Command::Pki {
            command:
                PkiCommand::Init {
                    out,
                    offices,
                    admins,
                    server_names,
                },
        } => {
            let offices = offices
                .iter()
                .map(|o| RegionCode::parse(o).with_context(|| format!("--office {o}")))
                .collect::<Result<Vec<_>>>()?;
            let admins = admins
                .iter()
                .map(|a| RegionPrefix::parse(a).with_context(|| format!("--admin {a}")))
                .collect::<Result<Vec<_>>>()?;
            if offices.is_empty() && admins.is_empty() {
                bail!("name at least one --office or --admin");
            }
            let pki = pki::init(&out, &offices, &admins, &server_names)?;
            print_pki(&pki, &offices, &admins);
            Ok(0)
        }
    }
}

fn print_pki(pki: &DevPki, offices: &[RegionCode], admins: &[RegionPrefix]) {
    println!("CA certificate:      {}", pki.ca().display());
    println!(
        "server certificate:  {} (key {})",
        pki.server_cert().display(),
        pki.server_key().display()
    );
    for o in offices {
        println!(
            "office {o:<12} {} (key {})",
            pki.office_cert(o.as_str()).display(),
            pki.office_key(o.as_str()).display()
        );
    }
    for a in admins {
        println!(
            "admin {a:<13} {} (key {})",
            pki.admin_cert(a.as_str()).display(),
            pki.admin_key(a.as_str()).display()
        );
    }
}

async fn serve(args: ServeArgs) -> Result<()> {
    // The policy first: a bad file stops us before anything is touched.
    let mut policy = match &args.policy {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the policy {}", path.display()))?;
            Policy::from_toml(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => Policy::default(),
    };
    policy.accept_bad_check_digits |= args.accept_bad_check_digits;
    policy.accept_unknown_regions |= args.accept_unknown_regions;
    let tls = match (args.tls_cert, args.tls_key, args.client_ca) {
        (Some(cert), Some(key), Some(client_ca)) => TlsFiles {
            cert,
            key,
            client_ca,
        },
        _ => dev_pki(&args.data_dir)?,
    };
    let url = args
        .database_url
        .unwrap_or_else(|| format!("sqlite:{}", args.data_dir.join("twoplace.db").display()));
    let store = store::open(&url)
        .await
        .with_context(|| format!("opening the database at {}", store::redact_url(&url)))?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    tracing::info!(
        listen = %listener.local_addr()?,
        database = %store::redact_url(&url),
        "twoplace is listening (mTLS); ready once the database is prepared"
    );
    let metrics = optional_listener(&args.metrics_listen, "--metrics-listen").await?;
    if let Some(l) = &metrics {
        tracing::info!(listen = %l.local_addr()?, "metrics at /metrics, readiness at /readyz");
    }
    let dashboard = optional_listener(&args.dashboard_listen, "--dashboard-listen").await?;
    if let Some(l) = &dashboard {
        tracing::info!(
            url = %format!("https://{}/", l.local_addr()?),
            "administrators' dashboard (token: twoplace admin token --as admin:PREFIX)"
        );
    }
    let options = ServerOptions {
        tls,
        policy,
        heartbeat: args.heartbeat,
        sweep_interval: args.sweep_interval,
        fold_interval: server::FOLD_INTERVAL,
        metrics,
        dashboard,
        shutdown_grace: args.shutdown_grace,
    };
    server::serve(
        listener,
        store,
        Arc::new(SystemClock),
        options,
        shutdown_signal(),
    )
    .await?;
    tracing::info!("stopped");
    Ok(())
}

/// A listener for an optional HTTP side: HOST:PORT, or `off`.
async fn optional_listener(address: &str, flag: &str) -> Result<Option<tokio::net::TcpListener>> {
    if address == "off" {
        return Ok(None);
    }
    let address: SocketAddr = address
        .parse()
        .with_context(|| format!("{flag} {address}: give HOST:PORT or off"))?;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("{flag}: listening on {address}"))?;
    Ok(Some(listener))
}

/// The development PKI under `<data-dir>/pki`, created on first start.
fn dev_pki(data_dir: &std::path::Path) -> Result<TlsFiles> {
    let dir = data_dir.join("pki");
    let pki = DevPki { dir: dir.clone() };
    if !pki.server_cert().exists() {
        let offices = ["341502", "310112"].map(|o| RegionCode::parse(o).expect("real codes"));
        let admins = [RegionPrefix::parse("34").expect("a real province")];
        let names = ["localhost", "127.0.0.1", "::1"].map(String::from);
        pki::init(&dir, &offices, &admins, &names).context("creating the development PKI")?;
        println!("Created a development PKI (for trying twoplace out, not for production):");
        print_pki(&pki, &offices, &admins);
        println!(
            "More offices: twoplace pki init --out {} --office CODE",
            dir.display()
        );
    } else {
        tracing::info!(dir = %dir.display(), "using the development PKI");
    }
    Ok(TlsFiles {
        cert: pki.server_cert(),
        key: pki.server_key(),
        client_ca: pki.ca(),
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("15").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
