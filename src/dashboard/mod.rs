//! The administrators' dashboard: a small static page and the JSON it reads,
//! over HTTPS on its own listener. Behind the same identity as the Admin
//! service: a client certificate naming an administrator, or a token that
//! administrator signed (`twoplace admin token`, see [`crate::api::token`]).
//! Every number comes from the Admin service's own handlers, so the page
//! and gRPC cannot disagree.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::Request;
use tonic_types::StatusExt;

use crate::api::admin::AdminService;
use crate::api::identity::{Authenticated, Caller};
use crate::api::{ApiError, Readiness, token};
use crate::domain::region::name_of_prefix;
use crate::json::to_json;
use crate::proto;
use crate::server::TlsFiles;

const PAGE: &str = include_str!("page.html");
const SCRIPT: &str = include_str!("app.js");
const STYLE: &str = include_str!("style.css");
const ICON: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\">\
<circle cx=\"5\" cy=\"8\" r=\"4\" fill=\"#1b6e3a\"/><circle cx=\"11\" cy=\"8\" r=\"4\" fill=\"#b3261e\"/></svg>";

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("cannot read {path}")]
    Read {
        path: std::path::PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("the dashboard's TLS setup failed: {0}")]
    Tls(String),
}

/// The TLS side of the dashboard: the server's identity, client
/// certificates asked for but optional (a browser may bring a token
/// instead), and the verifier tokens are checked with.
pub struct DashboardTls {
    config: Arc<ServerConfig>,
    verifier: Arc<dyn ClientCertVerifier>,
}

impl DashboardTls {
    pub fn load(files: &TlsFiles) -> Result<DashboardTls, DashboardError> {
        let read = |path: &std::path::Path, e| DashboardError::Read {
            path: path.to_path_buf(),
            source: e,
        };
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&files.client_ca)
            .map_err(|e| read(&files.client_ca, e))?
        {
            roots
                .add(cert.map_err(|e| read(&files.client_ca, e))?)
                .map_err(|e| DashboardError::Tls(e.to_string()))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|e| DashboardError::Tls(e.to_string()))?;
        let chain = CertificateDer::pem_file_iter(&files.cert)
            .map_err(|e| read(&files.cert, e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| read(&files.cert, e))?;
        let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| read(&files.key, e))?;
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| DashboardError::Tls(e.to_string()))?
            .with_client_cert_verifier(verifier.clone())
            .with_single_cert(chain, key)
            .map_err(|e| DashboardError::Tls(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(DashboardTls {
            config: Arc::new(config),
            verifier,
        })
    }
}

#[derive(Clone)]
struct Dashboard {
    admin: AdminService,
    verifier: Arc<dyn ClientCertVerifier>,
}

/// The client certificate of the connection, if the browser sent one (the
/// TLS layer has verified it).
#[derive(Clone)]
struct PeerCertificate(Option<Vec<u8>>);

/// Serves the dashboard on `listener` until `stopping` turns true; open
/// connections are then closed gracefully.
pub async fn serve(
    listener: TcpListener,
    tls: DashboardTls,
    admin: AdminService,
    readiness: Readiness,
    mut stopping: watch::Receiver<bool>,
) {
    let app = router(
        Dashboard {
            admin,
            verifier: tls.verifier,
        },
        readiness,
    );
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopping.wait_for(|s| *s) => return,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                tracing::warn!(error = %e, "dashboard: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let mut stop = stopping.clone();
        tokio::spawn(async move {
            let Ok(Ok(tls)) =
                tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
            else {
                return;
            };
            let peer = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.to_vec());
            let service = TowerToHyperService::new(app.layer(Extension(PeerCertificate(peer))));
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service);
            tokio::pin!(conn);
            let stopped = tokio::select! {
                _ = conn.as_mut() => false,
                _ = stop.wait_for(|s| *s) => true,
            };
            if stopped {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
        });
    }
}

fn router(dashboard: Dashboard, readiness: Readiness) -> Router {
    Router::new()
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/backlog", get(backlog))
        .route("/api/v1/trend", get(trend))
        .route("/api/v1/overdue", get(overdue))
        // The API only: the page loads, and says what its calls are told.
        .route_layer(axum::middleware::from_fn_with_state(readiness, until_ready))
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", PAGE) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .route(
            "/favicon.svg",
            get(|| async { asset("image/svg+xml", ICON) }),
        )
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(dashboard)
}

/// Answers 503, as gRPC answers UNAVAILABLE, until the server is ready.
async fn until_ready(
    State(readiness): State<Readiness>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match readiness.check() {
        Ok(()) => next.run(request).await,
        Err(e) => HttpError::from(e).into_response(),
    }
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// The page loads only its own script and style, and never in a frame.
async fn secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// An administrator, by client certificate or by bearer token.
struct Admin(Caller);

impl FromRequestParts<Dashboard> for Admin {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, d: &Dashboard) -> Result<Self, HttpError> {
        if let Some(PeerCertificate(Some(der))) = parts.extensions.get::<PeerCertificate>()
            && let Ok(caller @ Caller::Admin(_)) = Caller::from_certificate(der)
        {
            return Ok(Admin(caller));
        }
        let Some(token) = bearer(&parts.headers) else {
            return Err(HttpError::from(ApiError::Unauthenticated(
                "present an administrator's client certificate or a token from \
                 `twoplace admin token`"
                    .into(),
            )));
        };
        // Tokens live in real time, whatever clock the exchange runs on.
        token::verify(token, &d.verifier, time::OffsetDateTime::now_utc())
            .map(Admin)
            .map_err(|e| HttpError::from(ApiError::Unauthenticated(e.to_string())))
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// An error as JSON, with the HTTP status of its gRPC code: the same
/// message and field violations a gRPC client would get.
struct HttpError(tonic::Status);

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> Self {
        HttpError(e.into())
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        use tonic::Code;
        let status = match self.0.code() {
            Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let violations: Vec<serde_json::Value> = self
            .0
            .get_details_bad_request()
            .map(|b| b.field_violations)
            .unwrap_or_default()
            .into_iter()
            .map(|v| {
                serde_json::json!({
                    "field": v.field, "reason": v.reason, "description": v.description
                })
            })
            .collect();
        let body = serde_json::json!({
            "code": crate::metrics::code_name(self.0.code()),
            "message": self.0.message(),
            "violations": violations,
        });
        let mut response = (status, json(body.to_string())).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(delay) = self.0.get_details_retry_info().and_then(|r| r.retry_delay) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(delay.as_secs()));
        }
        response
    }
}

fn json(body: String) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
}

/// A request to the Admin service on behalf of `caller`.
fn as_admin<T>(caller: Caller, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.extensions_mut().insert(Authenticated(caller));
    request
}

type Params = Query<HashMap<String, String>>;

fn param(q: &Params, name: &str) -> String {
    q.get(name).cloned().unwrap_or_default()
}

fn number(q: &Params, name: &str) -> Result<i32, ApiError> {
    match q.get(name).map(String::as_str) {
        None | Some("") => Ok(0),
        Some(raw) => raw
            .parse()
            .map_err(|_| ApiError::invalid_field(name, "NOT_A_NUMBER", "must be a whole number")),
    }
}

async fn whoami(Admin(caller): Admin) -> impl IntoResponse {
    let region = match &caller {
        Caller::Admin(prefix) => prefix.as_str().to_string(),
        Caller::Office(code) => code.as_str().to_string(),
    };
    json(
        serde_json::json!({
            "caller": caller.to_string(),
            "region": region,
            "name": name_of_prefix(&region).unwrap_or_default(),
        })
        .to_string(),
    )
}

async fn backlog(
    State(d): State<Dashboard>,
    Admin(caller): Admin,
    q: Params,
) -> Result<impl IntoResponse, HttpError> {
    let request = proto::BacklogRequest {
        region: param(&q, "region"),
        window_days: number(&q, "window_days")?,
        ..Default::default()
    };
    let response = d.admin.backlog_of(as_admin(caller, request)).await?;
    Ok(json(to_json("twoplace.v1.BacklogResponse", &response)))
}

async fn trend(
    State(d): State<Dashboard>,
    Admin(caller): Admin,
    q: Params,
) -> Result<impl IntoResponse, HttpError> {
    let bucket = match param(&q, "bucket").as_str() {
        "" | "day" => proto::TrendBucket::Day,
        "week" => proto::TrendBucket::Week,
        _ => {
            return Err(ApiError::invalid_field("bucket", "INVALID_ENUM", "day or week").into());
        }
    };
    let request = proto::TrendRequest {
        region: param(&q, "region"),
        bucket: bucket as i32,
        ..Default::default()
    };
    let response = d.admin.trend_of(as_admin(caller, request)).await?;
    Ok(json(to_json("twoplace.v1.TrendResponse", &response)))
}

async fn overdue(
    State(d): State<Dashboard>,
    Admin(caller): Admin,
    q: Params,
) -> Result<impl IntoResponse, HttpError> {
    let request = proto::ListOverdueRequest {
        region: param(&q, "region"),
        page_size: number(&q, "page_size")?,
        page_token: param(&q, "page_token"),
    };
    let response = d.admin.overdue(as_admin(caller, request)).await?;
    Ok(json(to_json("twoplace.v1.ListOverdueResponse", &response)))
}
