//! Prometheus metrics on a separate HTTP listener: per-RPC requests, errors
//! by code and latency; publish outcomes by kind; open and overdue
//! obligations; sweeper lag; database pool use. Labels are method names,
//! codes, kinds and outcomes from fixed sets: never anything a caller
//! sends, and never personal data.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::api::Readiness;
use crate::clock::Clock;
use crate::store::Store;

/// Latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Every RPC the server answers; anything else is counted as `unknown`.
const METHODS: [&str; 16] = [
    "/twoplace.v1.Exchange/Publish",
    "/twoplace.v1.Exchange/Inbox",
    "/twoplace.v1.Exchange/Subscribe",
    "/twoplace.v1.Exchange/Acknowledge",
    "/twoplace.v1.Exchange/GetCase",
    "/twoplace.v1.Exchange/ListCases",
    "/twoplace.v1.Exchange/ListObligations",
    "/twoplace.v1.Exchange/GetPolicy",
    "/twoplace.v1.Admin/Backlog",
    "/twoplace.v1.Admin/ListOverdue",
    "/twoplace.v1.Admin/Trend",
    "/twoplace.v1.Admin/UpsertOffice",
    "/twoplace.v1.Admin/ListOffices",
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
];

/// The canonical names of gRPC codes, by number.
const CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The canonical name of a gRPC code (`PERMISSION_DENIED`).
pub fn code_name(code: tonic::Code) -> &'static str {
    CODES.get(code as usize).copied().unwrap_or("UNKNOWN")
}

#[derive(Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Counts {
    /// (method, code) → requests.
    requests: BTreeMap<(&'static str, &'static str), u64>,
    latency: BTreeMap<&'static str, Histogram>,
    /// (kind, outcome) → messages.
    published: BTreeMap<(&'static str, &'static str), u64>,
    last_sweep: Option<Instant>,
}

/// The server's counters, shared by the RPC layer, the handlers and the
/// sweeper.
#[derive(Default)]
pub struct Metrics {
    counts: Mutex<Counts>,
    started: Option<Instant>,
}

impl Metrics {
    pub fn new() -> Self {
        Self {
            counts: Mutex::default(),
            started: Some(Instant::now()),
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn rpc(&self, path: &str, grpc_status: u16, elapsed: Duration) {
        let method = METHODS
            .iter()
            .find(|m| **m == path)
            .copied()
            .unwrap_or("unknown");
        let code = CODES
            .get(usize::from(grpc_status))
            .copied()
            .unwrap_or("UNKNOWN");
        let mut counts = self.counts();
        *counts.requests.entry((method, code)).or_default() += 1;
        let h = counts.latency.entry(method).or_default();
        let secs = elapsed.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.buckets[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    /// `kind` and `outcome` are from fixed sets (message kinds, ACCEPTED…).
    pub fn published(&self, kind: &'static str, outcome: &'static str) {
        *self.counts().published.entry((kind, outcome)).or_default() += 1;
    }

    pub fn swept(&self) {
        self.counts().last_sweep = Some(Instant::now());
    }

    /// The exposition, with the gauges read now.
    pub fn render(&self, gauges: &Gauges) -> String {
        let counts = self.counts();
        let mut out = String::new();
        out.push_str(
            "# HELP twoplace_rpc_requests_total RPCs answered, by method and gRPC code.\n",
        );
        out.push_str("# TYPE twoplace_rpc_requests_total counter\n");
        for ((method, code), n) in &counts.requests {
            let _ = writeln!(
                out,
                "twoplace_rpc_requests_total{{method=\"{method}\",code=\"{code}\"}} {n}"
            );
        }
        out.push_str("# HELP twoplace_rpc_errors_total RPCs answered with an error, by method and gRPC code.\n");
        out.push_str("# TYPE twoplace_rpc_errors_total counter\n");
        for ((method, code), n) in counts.requests.iter().filter(|((_, c), _)| *c != "OK") {
            let _ = writeln!(
                out,
                "twoplace_rpc_errors_total{{method=\"{method}\",code=\"{code}\"}} {n}"
            );
        }
        out.push_str("# HELP twoplace_rpc_duration_seconds Time to answer (to the first response for streams).\n");
        out.push_str("# TYPE twoplace_rpc_duration_seconds histogram\n");
        for (method, h) in &counts.latency {
            for (bound, n) in BUCKETS.iter().zip(h.buckets) {
                let _ = writeln!(
                    out,
                    "twoplace_rpc_duration_seconds_bucket{{method=\"{method}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "twoplace_rpc_duration_seconds_bucket{{method=\"{method}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "twoplace_rpc_duration_seconds_sum{{method=\"{method}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "twoplace_rpc_duration_seconds_count{{method=\"{method}\"}} {}",
                h.count
            );
        }
        out.push_str(
            "# HELP twoplace_published_messages_total Published messages, by kind and outcome.\n",
        );
        out.push_str("# TYPE twoplace_published_messages_total counter\n");
        for ((kind, outcome), n) in &counts.published {
            let _ = writeln!(
                out,
                "twoplace_published_messages_total{{kind=\"{kind}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        let lag = counts
            .last_sweep
            .or(self.started)
            .map_or(0.0, |t| t.elapsed().as_secs_f64());
        drop(counts);
        let gauge = |out: &mut String, name: &str, help: &str, value: f64| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
            );
        };
        gauge(
            &mut out,
            "twoplace_sweeper_lag_seconds",
            "Seconds since the sweeper last finished a sweep.",
            lag,
        );
        if let Some((open, overdue)) = gauges.obligations {
            gauge(
                &mut out,
                "twoplace_obligations_open",
                "Open obligations.",
                open as f64,
            );
            gauge(
                &mut out,
                "twoplace_obligations_overdue",
                "Open obligations past due.",
                overdue as f64,
            );
        }
        gauge(
            &mut out,
            "twoplace_db_pool_connections",
            "Database connections open.",
            gauges.pool.0 as f64,
        );
        gauge(
            &mut out,
            "twoplace_db_pool_idle",
            "Database connections idle.",
            gauges.pool.1 as f64,
        );
        gauge(
            &mut out,
            "twoplace_db_up",
            "1 when the database answers.",
            f64::from(u8::from(gauges.database_up)),
        );
        gauge(
            &mut out,
            "twoplace_ready",
            "1 once the database is prepared at start (the backlog tallies counted).",
            f64::from(u8::from(gauges.ready)),
        );
        out
    }
}

/// What is read from the store at each scrape.
pub struct Gauges {
    pub obligations: Option<(i64, i64)>,
    pub pool: (u32, u32),
    pub database_up: bool,
    pub ready: bool,
}

/// Counts every RPC the gRPC server answers, by its path and the code in
/// the response headers (a trailers-only answer is an error; a stream's
/// later trailers are not seen, so a stream counts by how it started).
#[derive(Clone)]
pub struct RpcLayer(pub Arc<Metrics>);

impl<S> tower::Layer<S> for RpcLayer {
    type Service = RpcService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RpcService {
            inner,
            metrics: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RpcService<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B, R> tower::Service<axum::http::Request<B>> for RpcService<S>
where
    S: tower::Service<axum::http::Request<B>, Response = axum::http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        let path = request.uri().path().to_string();
        let started = Instant::now();
        let metrics = self.metrics.clone();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await;
            if let Ok(r) = &response {
                let code = r
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                metrics.rpc(&path, code, started.elapsed());
            }
            response
        })
    }
}

#[derive(Clone)]
struct Http {
    metrics: Arc<Metrics>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    readiness: Readiness,
}

async fn scrape(State(http): State<Http>) -> impl IntoResponse {
    let (up, ready) = (http.store.ping().await.is_ok(), http.readiness.is_ready());
    let gauges = Gauges {
        // Not while the tallies they are read from are being counted.
        obligations: if up && ready {
            http.store.open_obligations(http.clock.now()).await.ok()
        } else {
            None
        },
        pool: http.store.pool_use(),
        database_up: up,
        ready,
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        http.metrics.render(&gauges),
    )
}

/// Ready once the database is prepared, while it answers.
async fn ready(State(http): State<Http>) -> impl IntoResponse {
    if !http.readiness.is_ready() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: the database is being prepared\n",
        );
    }
    match http.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready\n"),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the database does not answer\n",
        ),
    }
}

/// Serves `/metrics`, `/readyz` and `/healthz` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    readiness: Readiness,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(scrape))
        .route("/readyz", get(ready))
        .route("/healthz", get(|| async { "alive\n" }))
        .with_state(Http {
            metrics,
            store,
            clock,
            readiness,
        });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_fixed_sets() {
        let m = Metrics::new();
        m.rpc("/twoplace.v1.Exchange/Publish", 0, Duration::from_millis(3));
        m.rpc("/341502198506150029/evil", 3, Duration::from_millis(1));
        m.published("REGISTRATION", "ACCEPTED");
        let text = m.render(&Gauges {
            obligations: Some((5, 2)),
            pool: (3, 1),
            database_up: true,
            ready: true,
        });
        assert!(text.contains(
            "twoplace_rpc_requests_total{method=\"/twoplace.v1.Exchange/Publish\",code=\"OK\"} 1"
        ));
        assert!(
            text.contains(
                "twoplace_rpc_errors_total{method=\"unknown\",code=\"INVALID_ARGUMENT\"} 1"
            )
        );
        assert!(!text.contains("341502198506150029"));
        assert!(text.contains(
            "twoplace_rpc_duration_seconds_bucket{method=\"/twoplace.v1.Exchange/Publish\",le=\"0.005\"} 1"
        ));
        assert!(text.contains("twoplace_obligations_overdue 2"));
        assert!(text.contains(
            "twoplace_published_messages_total{kind=\"REGISTRATION\",outcome=\"ACCEPTED\"} 1"
        ));
    }
}
