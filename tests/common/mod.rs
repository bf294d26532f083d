//! The black-box harness: a real server on an ephemeral port with real mTLS
//! and a real database (a fresh SQLite file, or a fresh PostgreSQL
//! database), driven by the generated tonic client.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::oneshot;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use twoplace::clock::ManualClock;
use twoplace::domain::resident_id::check_char;
use twoplace::domain::{Policy, RegionCode, RegionPrefix};
use twoplace::pki::{self, DevPki};
use twoplace::proto;
use twoplace::proto::admin_client::AdminClient;
use twoplace::proto::exchange_client::ExchangeClient;
use twoplace::server::{self, ServerOptions, TlsFiles};

pub const ORIGIN: &str = "341502"; // 六安市金安区
pub const DESTINATION: &str = "310112"; // 上海市闵行区
pub const NEXT_DESTINATION: &str = "440306"; // 深圳市宝安区
pub const STRANGER: &str = "310114"; // 上海市嘉定区
pub const ADMIN: &str = "34";

/// The test's "now": well after every date the tests send.
pub const NOW: time::OffsetDateTime = time::macros::datetime!(2024-03-01 04:00 UTC);

#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    Postgres { admin_url: String },
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres { .. } => "postgres",
        }
    }

    /// PostgreSQL from TWOPLACE_TEST_DATABASE_URL (default: the local
    /// server). Required under CI or TWOPLACE_REQUIRE_POSTGRES=1; elsewhere
    /// the test says loudly that it was skipped.
    pub async fn postgres() -> Option<Backend> {
        let url = std::env::var("TWOPLACE_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        match sqlx::PgPool::connect(&url).await {
            Ok(pool) => {
                pool.close().await;
                Some(Backend::Postgres { admin_url: url })
            }
            Err(e) => {
                let required = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false")
                    || std::env::var("TWOPLACE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
                if required {
                    panic!("PostgreSQL is required here but unreachable at {url}: {e}");
                }
                eprintln!(
                    "\n!!! SKIPPED: PostgreSQL unreachable at {url} ({e}); \
                     set TWOPLACE_TEST_DATABASE_URL or start it (see README)\n"
                );
                None
            }
        }
    }
}

pub struct TestServer {
    pub addr: std::net::SocketAddr,
    /// Where /metrics and /readyz are served.
    pub metrics_addr: std::net::SocketAddr,
    /// Where the administrators' dashboard is served (HTTPS).
    pub dashboard_addr: std::net::SocketAddr,
    pub pki: DevPki,
    pub clock: Arc<ManualClock>,
    url: String,
    opts: Options,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), server::ServeError>>>,
    _dir: Option<tempfile::TempDir>,
    database: Option<(String, String)>,
}

static DATABASES: AtomicU32 = AtomicU32::new(0);

/// How a test server runs.
#[derive(Clone)]
pub struct Options {
    pub heartbeat: Duration,
    /// The exchange tests keep the sweeper out of their inboxes.
    pub sweep_interval: Duration,
    /// Tests of reading recorded tally changes keep the folder away.
    pub fold_interval: Duration,
    pub policy: Policy,
    /// The system clock instead of the test clock (for paced drills).
    pub real_clock: bool,
    pub shutdown_grace: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            heartbeat: Duration::from_millis(200),
            sweep_interval: Duration::from_secs(3600),
            fold_interval: twoplace::server::FOLD_INTERVAL,
            policy: Policy::default(),
            real_clock: false,
            // Within `shutdown`'s 10 s.
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

impl TestServer {
    pub async fn start(backend: &Backend) -> TestServer {
        Self::start_opts(backend, Options::default()).await
    }

    pub async fn start_with(backend: &Backend, heartbeat: Duration) -> TestServer {
        Self::start_opts(
            backend,
            Options {
                heartbeat,
                ..Options::default()
            },
        )
        .await
    }

    pub async fn start_opts(backend: &Backend, opts: Options) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let offices: Vec<_> = [ORIGIN, DESTINATION, NEXT_DESTINATION, STRANGER]
            .iter()
            .map(|c| RegionCode::parse(c).unwrap())
            .collect();
        let pki = pki::init(
            &dir.path().join("pki"),
            &offices,
            &[RegionPrefix::parse(ADMIN).unwrap()],
            &["localhost".to_string(), "127.0.0.1".to_string()],
        )
        .unwrap();
        let (url, database) = match backend {
            Backend::Sqlite => (
                format!("sqlite:{}", dir.path().join("twoplace.db").display()),
                None,
            ),
            Backend::Postgres { admin_url } => {
                let name = format!(
                    "twoplace_test_{}_{}",
                    std::process::id(),
                    DATABASES.fetch_add(1, Ordering::Relaxed)
                );
                let pool = sqlx::PgPool::connect(admin_url).await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name}"
                )))
                .execute(&pool)
                .await
                .unwrap();
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
                let base = admin_url.rsplit_once('/').unwrap().0;
                (format!("{base}/{name}"), Some((admin_url.clone(), name)))
            }
        };
        let clock = Arc::new(ManualClock::new(NOW));
        let mut server = Self::launch(&url, pki, clock, opts).await;
        server._dir = Some(dir);
        server.database = database;
        server
    }

    /// A server on `url`, once it is ready.
    async fn launch(url: &str, pki: DevPki, clock: Arc<ManualClock>, opts: Options) -> TestServer {
        let server = Self::launch_starting(url, pki, clock, opts).await;
        server.wait_ready().await;
        server
    }

    /// A server on `url` that may still be preparing its database.
    async fn launch_starting(
        url: &str,
        pki: DevPki,
        clock: Arc<ManualClock>,
        opts: Options,
    ) -> TestServer {
        // As `twoplace serve` does: the server prepares the store itself.
        let store = twoplace::store::open(url).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics_addr = metrics.local_addr().unwrap();
        let dashboard = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dashboard_addr = dashboard.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let options = ServerOptions {
            tls: TlsFiles {
                cert: pki.server_cert(),
                key: pki.server_key(),
                client_ca: pki.ca(),
            },
            policy: opts.policy.clone(),
            heartbeat: opts.heartbeat,
            sweep_interval: opts.sweep_interval,
            fold_interval: opts.fold_interval,
            metrics: Some(metrics),
            dashboard: Some(dashboard),
            shutdown_grace: opts.shutdown_grace,
        };
        let server_clock: Arc<dyn twoplace::clock::Clock> = if opts.real_clock {
            Arc::new(twoplace::clock::SystemClock)
        } else {
            clock.clone()
        };
        let task = tokio::spawn(server::serve(
            listener,
            store,
            server_clock,
            options,
            async {
                let _ = stopped.await;
            },
        ));
        TestServer {
            addr,
            metrics_addr,
            dashboard_addr,
            pki,
            clock,
            url: url.to_string(),
            opts,
            stop: Some(stop),
            task: Some(task),
            _dir: None,
            database: None,
        }
    }

    /// The `twoplace` command, pointed at this server as `office`.
    pub fn cli(&self, office: &str) -> std::process::Command {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_twoplace"));
        command
            .env_clear()
            .env("TWOPLACE_SERVER", format!("https://{}", self.addr))
            .env("TWOPLACE_PKI_DIR", &self.pki.dir)
            .env("TWOPLACE_AS", office);
        command
    }

    /// A plain HTTP GET on the metrics listener: (status, body).
    pub async fn http_get(&self, path: &str) -> (u16, String) {
        let stream = tokio::net::TcpStream::connect(self.metrics_addr)
            .await
            .unwrap();
        http_exchange(stream, path, "").await
    }

    /// An HTTPS GET on the dashboard listener, with a bearer token and/or a
    /// client certificate: (status, body).
    pub async fn https_get(
        &self,
        path: &str,
        bearer: Option<&str>,
        identity: Option<(PathBuf, PathBuf)>,
    ) -> (u16, String) {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(self.pki.ca()).unwrap())
            .unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        let config = match identity {
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    vec![CertificateDer::from_pem_file(cert).unwrap()],
                    PrivateKeyDer::from_pem_file(key).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        let tcp = tokio::net::TcpStream::connect(self.dashboard_addr)
            .await
            .unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect("localhost".try_into().unwrap(), tcp)
            .await
            .unwrap();
        let headers = bearer
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        http_exchange(tls, path, &headers).await
    }

    /// The database the server uses.
    pub fn database_url(&self) -> &str {
        &self.url
    }

    /// A second server on the same database, certificates and clock, as a
    /// replica would be. Finish it before the first.
    pub async fn replica(&self) -> TestServer {
        let replica = self.replica_starting().await;
        replica.wait_ready().await;
        replica
    }

    /// A second server on the same database that may still be preparing
    /// it (`wait_ready`).
    pub async fn replica_starting(&self) -> TestServer {
        Self::launch_starting(
            &self.url,
            self.pki.clone(),
            self.clock.clone(),
            self.opts.clone(),
        )
        .await
    }

    /// Waits until `/readyz` says ready, as an orchestrator would.
    pub async fn wait_ready(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while self.http_get("/readyz").await.0 != 200 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the server is ready within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn tls(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(std::fs::read(self.pki.ca()).unwrap()))
            .domain_name("localhost")
    }

    pub async fn channel_as(
        &self,
        cert: PathBuf,
        key: PathBuf,
    ) -> Result<Channel, tonic::transport::Error> {
        let identity =
            Identity::from_pem(std::fs::read(cert).unwrap(), std::fs::read(key).unwrap());
        Channel::from_shared(format!("https://{}", self.addr))
            .unwrap()
            .tls_config(self.tls().identity(identity))
            .unwrap()
            .connect()
            .await
    }

    /// A client for an office.
    /// A channel with an office's certificate.
    pub async fn office_channel(&self, office: &str) -> Channel {
        self.channel_as(self.pki.office_cert(office), self.pki.office_key(office))
            .await
            .unwrap()
    }

    pub async fn office(&self, office: &str) -> ExchangeClient<Channel> {
        ExchangeClient::new(self.office_channel(office).await)
    }

    pub async fn admin(&self) -> ExchangeClient<Channel> {
        ExchangeClient::new(
            self.channel_as(self.pki.admin_cert(ADMIN), self.pki.admin_key(ADMIN))
                .await
                .unwrap(),
        )
    }

    /// A client of the Admin service, as the administrator of [`ADMIN`].
    pub async fn admin_service(&self) -> AdminClient<Channel> {
        AdminClient::new(
            self.channel_as(self.pki.admin_cert(ADMIN), self.pki.admin_key(ADMIN))
                .await
                .unwrap(),
        )
    }

    /// A channel that presents no client certificate.
    pub async fn anonymous(&self) -> Result<Channel, tonic::transport::Error> {
        Channel::from_shared(format!("https://{}", self.addr))
            .unwrap()
            .tls_config(self.tls())
            .unwrap()
            .connect()
            .await
    }

    /// Asks the server to shut down gracefully, without waiting.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Begins a graceful shutdown and waits for the server to stop.
    pub async fn shutdown(&mut self) {
        self.begin_shutdown();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("the server stops within 10 s")
                .unwrap()
                .unwrap();
        }
    }

    /// The error the server stopped with on its own (it was not asked
    /// to); drops its PostgreSQL database without checking it.
    pub async fn failure(mut self) -> server::ServeError {
        let task = self.task.take().expect("a running server");
        let stopped = tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("the server stops on its own within 30 s")
            .unwrap();
        self.drop_database().await;
        stopped.expect_err("the server stops with an error")
    }

    /// Stops the server and drops its PostgreSQL database without checking
    /// it (for a test that broke it on purpose).
    pub async fn discard(mut self) {
        self.shutdown().await;
        self.drop_database().await;
    }

    async fn drop_database(&mut self) {
        if let Some((admin_url, name)) = self.database.take() {
            let pool = sqlx::PgPool::connect(&admin_url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&pool)
            .await
            .unwrap();
            pool.close().await;
        }
    }

    /// Stops the server and drops its PostgreSQL database.
    pub async fn finish(mut self) {
        self.shutdown().await;
        // Whatever the test did, the backlog tallies must equal a recount:
        // with the changes the tally folder left (readers add them), and
        // once it has added them all.
        let store = twoplace::store::connect(&self.url).await.unwrap();
        if let Some(difference) = store.check_tallies().await.unwrap() {
            panic!("the tallies differ from a recount:\n{difference}");
        }
        store.fold_tallies().await.unwrap();
        if let Some(difference) = store.check_tallies().await.unwrap() {
            panic!("the folded tallies differ from a recount:\n{difference}");
        }
        drop(store);
        // PostgreSQL does not check these references (migration 0005).
        let dangling = dangling_references(&self.url).await;
        assert_eq!(dangling, 0, "rows refer to rows that do not exist");
        self.drop_database().await;
    }
}

/// A transaction that has the backlog tallies counted again at the next
/// start, as on a database from before they existed, and holds that count
/// off until it ends: SQLite's write lock (a server waits for it up to its
/// busy timeout, 10 s, then stops), the PostgreSQL table's lock.
pub enum TalliesForgotten {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl TalliesForgotten {
    pub async fn hold(url: &str) -> Self {
        use sqlx::Connection as _;
        const FORGET: &str = "DELETE FROM tallies_built";
        if url.starts_with("sqlite:") {
            let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("BEGIN IMMEDIATE; {FORGET}")))
                .execute(&mut c)
                .await
                .unwrap();
            TalliesForgotten::Sqlite(c)
        } else {
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "BEGIN; LOCK TABLE tallies_built IN ACCESS EXCLUSIVE MODE; {FORGET}"
            )))
            .execute(&mut c)
            .await
            .unwrap();
            TalliesForgotten::Postgres(c)
        }
    }

    pub async fn release(self) {
        match self {
            TalliesForgotten::Sqlite(mut c) => {
                sqlx::raw_sql("COMMIT").execute(&mut c).await.unwrap();
            }
            TalliesForgotten::Postgres(mut c) => {
                sqlx::raw_sql("COMMIT").execute(&mut c).await.unwrap();
            }
        }
    }
}

/// Messages, deliveries and obligations whose case or message does not
/// exist, and receipts owed for no delivery.
async fn dangling_references(url: &str) -> i64 {
    const SQL: &str = "SELECT \
        (SELECT COUNT(*) FROM messages m WHERE NOT EXISTS \
            (SELECT 1 FROM cases c WHERE c.id = m.case_id)) \
        + (SELECT COUNT(*) FROM deliveries d WHERE NOT EXISTS \
            (SELECT 1 FROM messages m WHERE m.id = d.message)) \
        + (SELECT COUNT(*) FROM obligations o WHERE NOT EXISTS \
            (SELECT 1 FROM cases c WHERE c.id = o.case_id)) \
        + (SELECT COUNT(*) FROM obligations o WHERE o.kind = 'RECEIPT' AND NOT EXISTS \
            (SELECT 1 FROM messages m JOIN deliveries d ON d.message = m.id \
             WHERE m.case_id = o.case_id \
             AND 'RECEIPT:' || d.recipient || ':' || m.sender || ':' || m.message_id = o.key))";
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let n = sqlx::query_scalar(SQL).fetch_one(&pool).await.unwrap();
        pool.close().await;
        n
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let n = sqlx::query_scalar(SQL).fetch_one(&pool).await.unwrap();
        pool.close().await;
        n
    }
}

/// A valid resident ID from its first 17 digits.
pub fn resident(first17: &str) -> String {
    format!("{first17}{}", check_char(first17.as_bytes()) as char)
}

/// 张三, female, born 1985-06-15, registered in 金安区.
pub fn zhang() -> String {
    resident("34150219850615002")
}

pub fn date(year: i32, month: i32, day: i32) -> Option<proto::Date> {
    Some(proto::Date { year, month, day })
}

pub fn envelope(
    id: &str,
    recipient: &str,
    resident_id: &str,
    body: proto::envelope::Body,
) -> proto::Envelope {
    proto::Envelope {
        message_id: id.into(),
        sender_office: String::new(),
        recipient_office: recipient.into(),
        case_ref: Some(proto::CaseRef {
            resident_id: resident_id.into(),
            origin_office: ORIGIN.into(),
        }),
        sent_at: None,
        body: Some(body),
    }
}

pub fn person(name: &str) -> proto::Person {
    proto::Person {
        name: name.into(),
        sex: proto::Sex::Female as i32,
        birth_date: date(1985, 6, 15),
        marital_status: proto::MaritalStatus::FirstMarriage as i32,
        children: Some(1),
    }
}

pub fn registration(id: &str, to: &str, resident_id: &str) -> proto::Envelope {
    envelope(
        id,
        to,
        resident_id,
        proto::envelope::Body::Registration(proto::Registration {
            person: Some(person("张三")),
            left_on: date(2023, 3, 1),
            destination_address: "上海市闵行区莘庄镇".into(),
            destination_phone: "13800000000".into(),
            periodic_checks: true,
            note: String::new(),
        }),
    )
}

/// The person moves to `to`, which becomes the case's destination.
pub fn transfer(
    id: &str,
    to: &str,
    resident_id: &str,
    moved_on: Option<proto::Date>,
) -> proto::Envelope {
    envelope(
        id,
        to,
        resident_id,
        proto::envelope::Body::Transfer(proto::Transfer {
            new_destination_office: to.into(),
            moved_on,
            new_address: String::new(),
        }),
    )
}

/// A live feed's next event, within 5 s.
pub async fn next_event(
    stream: &mut tonic::Streaming<proto::InboxEvent>,
) -> proto::inbox_event::Event {
    use tokio_stream::StreamExt;
    tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("an event within 5 s")
        .expect("the stream is open")
        .expect("an event, not an error")
        .event
        .expect("an event with a body")
}

pub fn reminder(id: &str, to: &str, resident_id: &str) -> proto::Envelope {
    envelope(
        id,
        to,
        resident_id,
        proto::envelope::Body::Reminder(proto::Reminder {
            about_message_id: String::new(),
            note: "请尽快反馈".into(),
        }),
    )
}

pub async fn publish(
    client: &mut ExchangeClient<Channel>,
    messages: Vec<proto::Envelope>,
) -> Vec<proto::PublishOutcome> {
    client
        .publish(proto::PublishRequest { messages })
        .await
        .expect("publish answers")
        .into_inner()
        .outcomes
}

/// A case as its office sees it.
pub async fn get_case(client: &mut ExchangeClient<Channel>, resident_id: &str) -> proto::Case {
    client
        .get_case(proto::GetCaseRequest {
            resident_id: resident_id.into(),
            origin_office: String::new(),
            purpose: "test".into(),
        })
        .await
        .expect("the case")
        .into_inner()
}

pub fn status_of(o: &proto::PublishOutcome) -> proto::PublishStatus {
    proto::PublishStatus::try_from(o.status).unwrap()
}

/// Every delivery in the caller's inbox, page by page.
pub async fn inbox_all(client: &mut ExchangeClient<Channel>) -> Vec<proto::Delivery> {
    let mut all = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = client
            .inbox(proto::InboxRequest {
                after_cursor: cursor,
                page_size: 500,
            })
            .await
            .unwrap()
            .into_inner();
        if page.deliveries.is_empty() {
            return all;
        }
        all.extend(page.deliveries);
        cursor = page.next_cursor;
    }
}

/// Declares each test once per backend: `backend_tests!(a, b)` makes
/// `sqlite::a`, `postgres::a`, … calling `a(Backend)`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(backend) = super::common::Backend::postgres().await {
                        super::$name(backend).await
                    }
                }
            )*
        }
    };
}

/// One HTTP/1.1 GET over `stream`: (status, body).
async fn http_exchange(
    mut stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    path: &str,
    headers: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{headers}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    // A TLS peer may close without close_notify after the body: keep what came.
    let _ = stream.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response).to_string();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}
