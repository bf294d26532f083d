//! Assembles the gRPC server: mTLS, the Exchange service, health,
//! reflection, a span per RPC, readiness (while the database is prepared
//! at start, and from then on whether it answers), and graceful shutdown
//! (stop accepting, end live feeds, finish in-flight calls).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;

use crate::api::admin::AdminService;
use crate::api::{ExchangeService, Readiness};
use crate::clock::Clock;
use crate::domain::Policy;
use crate::metrics::{Metrics, RpcLayer};
use crate::proto;
use crate::proto::admin_server::AdminServer;
use crate::proto::exchange_server::ExchangeServer;
use crate::store::Store;

/// The PEM files of the server's identity and the CA its clients must have.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("TLS setup failed")]
    Tls(#[source] tonic::transport::Error),
    #[error("reflection setup failed")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("the server failed")]
    Transport(#[source] tonic::transport::Error),
    #[error(transparent)]
    Dashboard(#[from] crate::dashboard::DashboardError),
    #[error("preparing the database failed")]
    Prepare(#[source] crate::store::StoreError),
}

pub struct ServerOptions {
    pub tls: TlsFiles,
    pub policy: Policy,
    /// How often live feeds send a heartbeat.
    pub heartbeat: Duration,
    /// How often the sweeper looks for new periods and due reminders.
    pub sweep_interval: Duration,
    /// How often recorded tally changes are folded into the stored tallies
    /// ([`FOLD_INTERVAL`] unless a test wants them left recorded).
    pub fold_interval: Duration,
    /// Where `/metrics`, `/readyz` and `/healthz` are served over HTTP.
    pub metrics: Option<TcpListener>,
    /// Where the administrators' dashboard is served over HTTPS.
    pub dashboard: Option<TcpListener>,
    /// How long calls still open at shutdown may take to finish before
    /// they are cut. A cut publish was not answered, so its caller sends
    /// it again (message ids make that safe).
    pub shutdown_grace: Duration,
}

fn read(path: &PathBuf) -> Result<Vec<u8>, ServeError> {
    std::fs::read(path).map_err(|source| ServeError::Read {
        path: path.clone(),
        source,
    })
}

/// Serves on `listener` until `shutdown` resolves, then drains. The store
/// is prepared (`store::prepare`) while the server already listens: until
/// it is, health reports NOT_SERVING, `/readyz` 503, and the exchange's
/// and administrators' calls UNAVAILABLE; the sweeper, the tally folder
/// and the other background tasks start after it. If preparing fails, the
/// server stops with that error.
pub async fn serve(
    listener: TcpListener,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    options: ServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(
            read(&options.tls.cert)?,
            read(&options.tls.key)?,
        ))
        .client_ca_root(Certificate::from_pem(read(&options.tls.client_ca)?));

    let (stopping_tx, stopping) = watch::channel(false);
    let (make_ready, readiness) = Readiness::starting();
    let policy = Arc::new(options.policy);
    let feed = Arc::new(crate::api::Feed::default());
    let metrics = Arc::new(Metrics::new());
    if let Some(listener) = options.metrics {
        let mut stop = stopping.clone();
        let http = crate::metrics::serve(
            listener,
            metrics.clone(),
            store.clone(),
            clock.clone(),
            readiness.clone(),
            async move {
                let _ = stop.wait_for(|s| *s).await;
            },
        );
        tokio::spawn(async move {
            if let Err(e) = http.await {
                tracing::error!(error = %e, "the metrics listener failed");
            }
        });
    }
    let exchange = ExchangeService::new(
        store.clone(),
        clock.clone(),
        policy.clone(),
        feed.clone(),
        options.heartbeat,
        stopping.clone(),
    )
    .with_metrics(metrics.clone());
    let admin = AdminService::new(store.clone(), clock.clone());
    if let Some(listener) = options.dashboard {
        let tls = crate::dashboard::DashboardTls::load(&options.tls)?;
        tokio::spawn(crate::dashboard::serve(
            listener,
            tls,
            admin.clone(),
            readiness.clone(),
            stopping.clone(),
        ));
    }

    let (health, health_service) = tonic_health::server::health_reporter();
    report_health(&health, ServingStatus::NotServing).await;
    // Stops the server when preparing fails.
    let (give_up, given_up) = tokio::sync::oneshot::channel::<()>();
    let background = Background {
        store,
        clock,
        policy,
        feed,
        metrics: metrics.clone(),
        sweep_interval: options.sweep_interval,
        fold_interval: options.fold_interval,
        stopping: stopping.clone(),
    };
    // Polled beside the server below, not spawned: it ends with the
    // server (a count cut short by shutdown is rolled back), and it runs
    // on the caller's thread, so only that thread's allocator arena grows
    // with the rows a count reads. Spawned, it moved between the workers
    // and grew each one's: peak RSS 219–224 MiB against 128 MiB, counting
    // 2 M obligations on PostgreSQL.
    let preparing = {
        let health = health.clone();
        async move {
            let started = std::time::Instant::now();
            crate::store::prepare(background.store.as_ref()).await?;
            if *background.stopping.borrow() {
                // Prepared while draining: stay NOT_SERVING, start nothing.
                return Ok(());
            }
            background.start(health.clone());
            report_health(&health, ServingStatus::Serving).await;
            make_ready.ready();
            tracing::info!(
                millis = started.elapsed().as_millis() as u64,
                "ready: the database is prepared"
            );
            Ok::<_, crate::store::StoreError>(())
        }
    };

    // Both reflection versions: grpcurl and buf curl ask for v1, older
    // clients for v1alpha. google.rpc is included so they can decode the
    // BadRequest details of an error.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    let incoming = TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(Duration::from_secs(60)));
    let signal = async move {
        tokio::select! {
            () = shutdown => tracing::info!(
                "shutting down: no new connections, live feeds end, in-flight calls finish"
            ),
            Ok(()) = given_up => {}
        }
        // The server as a whole too: a balancer watching "" drains it.
        report_health(&health, ServingStatus::NotServing).await;
        // From here the database watch and the preparation leave health
        // alone.
        let _ = stopping_tx.send(true);
        // Then health watches end (having said NOT_SERVING): left open,
        // they would hold the shutdown until the grace ran out.
        let mut health = health;
        for service in HEALTH_SERVICES {
            health.clear_service_status(service).await;
        }
    };
    let grace_over = {
        let mut stopping = stopping.clone();
        let grace = options.shutdown_grace;
        async move {
            let _ = stopping.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
            tracing::warn!(
                grace_secs = grace.as_secs_f64(),
                "calls still open after the shutdown grace: cutting them"
            );
        }
    };
    let serving = Server::builder()
        .tls_config(tls)
        .map_err(ServeError::Tls)?
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .layer(RpcLayer(metrics))
        .trace_fn(|req| {
            tracing::info_span!(
                "rpc",
                method = %req.uri().path(),
                caller = tracing::field::Empty,
            )
        })
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(InterceptedService::new(
            ExchangeServer::new(exchange),
            readiness.clone(),
        ))
        .add_service(InterceptedService::new(AdminServer::new(admin), readiness))
        .serve_with_incoming_shutdown(incoming, signal);
    let serving = async move {
        tokio::select! {
            served = serving => served,
            () = grace_over => Ok(()),
        }
    };
    let mut serving = std::pin::pin!(serving);
    tokio::select! {
        served = &mut serving => served.map_err(ServeError::Transport),
        prepared = preparing => match prepared {
            Ok(()) => serving.await.map_err(ServeError::Transport),
            Err(e) => {
                tracing::error!(error = %e, "preparing the database failed: shutting down");
                let _ = give_up.send(());
                serving.await.map_err(ServeError::Transport)?;
                Err(ServeError::Prepare(e))
            }
        },
    }
}

/// The server's work besides answering calls, which starts once the
/// store is prepared.
struct Background {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    policy: Arc<Policy>,
    feed: Arc<crate::api::Feed>,
    metrics: Arc<Metrics>,
    sweep_interval: Duration,
    fold_interval: Duration,
    stopping: watch::Receiver<bool>,
}

impl Background {
    fn start(self, health: tonic_health::server::HealthReporter) {
        tokio::spawn(sweep(
            self.store.clone(),
            self.clock,
            self.policy,
            self.feed,
            self.sweep_interval,
            self.stopping.clone(),
            self.metrics,
        ));
        tokio::spawn(fold_tallies(
            self.store.clone(),
            self.fold_interval,
            self.stopping.clone(),
        ));
        tokio::spawn(analyze_grown_tables(
            self.store.clone(),
            self.stopping.clone(),
        ));
        tokio::spawn(watch_database(self.store, health, self.stopping));
    }
}

/// The names health reports on: the server as a whole and the Exchange.
const HEALTH_SERVICES: [&str; 2] = [
    "",
    <ExchangeServer<ExchangeService> as tonic::server::NamedService>::NAME,
];

async fn report_health(health: &tonic_health::server::HealthReporter, status: ServingStatus) {
    for service in HEALTH_SERVICES {
        health.set_service_status(service, status).await;
    }
}

/// At most this many cases and reminders of each kind per sweep; a sweep
/// that hits the limit is followed by another at once.
const SWEEP_LIMIT: u32 = 500;

/// The sweeper: reconciles cases as feedback periods start and delivers
/// overdue and escalation reminders. Every server runs one; the store makes
/// each piece of work happen once.
async fn sweep(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    policy: Arc<Policy>,
    feed: Arc<crate::api::Feed>,
    interval: Duration,
    mut stopping: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
) {
    let mut busy = false;
    loop {
        if !busy {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stopping.wait_for(|s| *s) => return,
            }
        }
        let started = std::time::Instant::now();
        let report = store
            .sweep(
                &policy,
                clock.now(),
                SWEEP_LIMIT,
                &crate::api::exchange::reminder_envelope,
            )
            .await;
        busy = match report {
            Ok(r) => {
                metrics.swept();
                let reminders = r.overdue_reminders + r.escalation_reminders;
                if reminders > 0 {
                    // Reminders go to many offices; rare enough to wake all.
                    feed.delivered_to_all();
                }
                if reminders > 0 || r.cases_reconciled > 0 {
                    tracing::info!(
                        cases = r.cases_reconciled,
                        overdue = r.overdue_reminders,
                        escalated = r.escalation_reminders,
                        millis = started.elapsed().as_millis() as u64,
                        "swept"
                    );
                }
                [
                    r.cases_reconciled,
                    r.overdue_reminders,
                    r.escalation_reminders,
                ]
                .contains(&u64::from(SWEEP_LIMIT))
            }
            Err(e) => {
                tracing::warn!(error = %e, "sweep failed; retrying at the next interval");
                false
            }
        };
    }
}

/// How often the tally folder adds recorded changes to the stored tallies.
/// Readers add the rest themselves, so this bounds their work, not their
/// accuracy: about a hundred changes at full ingest.
pub const FOLD_INTERVAL: Duration = Duration::from_millis(100);

/// The tally folder: adds the changes writers recorded to the stored
/// tallies. Every server runs one; the store makes folds take turns.
async fn fold_tallies(
    store: Arc<dyn Store>,
    interval: Duration,
    mut stopping: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
        if let Err(e) = store.fold_tallies().await {
            tracing::warn!(error = %e, "folding tally changes failed; retrying at the next interval");
        }
    }
}

/// How often the store is asked whether a table has outgrown its planner
/// statistics: a cheap read of the database's counters.
const STATISTICS_INTERVAL: Duration = Duration::from_secs(1);

/// Keeps the planner's statistics of a growing database current
/// (`Store::analyze_grown_tables`), so that publishes' cached plans are
/// made again as the tables grow.
async fn analyze_grown_tables(store: Arc<dyn Store>, mut stopping: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(STATISTICS_INTERVAL) => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
        match store.analyze_grown_tables().await {
            Ok(0) => {}
            Ok(tables) => tracing::debug!(tables, "analyzed grown tables"),
            Err(e) => tracing::warn!(error = %e, "analyzing grown tables failed; retrying later"),
        }
    }
}

/// Readiness follows the database: NOT_SERVING while it does not answer.
async fn watch_database(
    store: Arc<dyn Store>,
    health: tonic_health::server::HealthReporter,
    mut stopping: watch::Receiver<bool>,
) {
    let mut serving = true;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
        let ok = store.ping().await.is_ok();
        // Once stopping, health stays NOT_SERVING (and its watches ended).
        if ok != serving && !*stopping.borrow() {
            serving = ok;
            let status = if ok {
                tracing::info!("database reachable again");
                ServingStatus::Serving
            } else {
                tracing::warn!("database unreachable: reporting NOT_SERVING");
                ServingStatus::NotServing
            };
            report_health(&health, status).await;
        }
    }
}
