//! The offices' command-line client: the same `twoplace` binary, talking to
//! a server over mTLS like any other client.

pub mod admin;
pub mod backlog;
pub mod bench;
pub mod bench_load;
pub mod case;
pub mod csv_rows;
pub mod inbox;
pub mod publish;
pub mod reply;
pub mod simulate;

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic_types::StatusExt;

use twoplace::proto::exchange_client::ExchangeClient;

/// Who the client is and where the server is.
#[derive(clap::Args, Clone)]
pub struct Connect {
    /// The server's address.
    #[arg(
        long,
        env = "TWOPLACE_SERVER",
        default_value = "https://localhost:50051",
        global = true
    )]
    server: String,
    /// Directory of a PKI made by `twoplace pki init` (or `serve`'s dev PKI).
    #[arg(
        long,
        env = "TWOPLACE_PKI_DIR",
        default_value = "data/pki",
        global = true
    )]
    pki_dir: PathBuf,
    /// The office to act as (`341502`), or `admin:<prefix>`: picks its
    /// certificate from --pki-dir.
    #[arg(long = "as", env = "TWOPLACE_AS", value_name = "OFFICE", global = true)]
    as_office: Option<String>,
    /// Client certificate (PEM), instead of --as.
    #[arg(long, env = "TWOPLACE_CERT", requires = "key", global = true)]
    cert: Option<PathBuf>,
    /// Client key (PEM).
    #[arg(long, env = "TWOPLACE_KEY", requires = "cert", global = true)]
    key: Option<PathBuf>,
    /// CA certificate (PEM) the server's certificate chains to.
    /// [default: <pki-dir>/ca.pem]
    #[arg(long, env = "TWOPLACE_CA", global = true)]
    ca: Option<PathBuf>,
}

impl Connect {
    /// The office this client acts as, when named by --as.
    pub fn office(&self) -> Option<String> {
        self.as_office
            .clone()
            .filter(|o| self.cert.is_none() && !o.starts_with("admin:"))
    }

    /// This connection, or acting as `office` when no identity was given.
    pub fn or_as(&self, office: &str) -> Connect {
        if self.as_office.is_none() && self.cert.is_none() {
            self.acting_as(office)
        } else {
            self.clone()
        }
    }

    /// The same server and PKI, acting as another office.
    pub fn acting_as(&self, office: &str) -> Connect {
        Connect {
            as_office: Some(office.to_string()),
            cert: None,
            key: None,
            ..self.clone()
        }
    }

    /// The PKI directory, when it holds the CA's key (a development PKI that
    /// may issue more office certificates).
    pub fn pki_dir_with_ca(&self) -> Option<PathBuf> {
        self.pki_dir
            .join("ca.key")
            .exists()
            .then(|| self.pki_dir.clone())
    }

    fn files(&self) -> Result<(PathBuf, PathBuf, PathBuf)> {
        let ca = self
            .ca
            .clone()
            .unwrap_or_else(|| self.pki_dir.join("ca.pem"));
        let (cert, key) = match (&self.cert, &self.key, &self.as_office) {
            (Some(c), Some(k), _) => (c.clone(), k.clone()),
            (_, _, Some(who)) => {
                let stem = match who.strip_prefix("admin:") {
                    Some(prefix) => format!("admin-{prefix}"),
                    None => format!("office-{who}"),
                };
                (
                    self.pki_dir.join(format!("{stem}.pem")),
                    self.pki_dir.join(format!("{stem}.key")),
                )
            }
            _ => bail!(
                "say who you are: --as <office> (certificates from --pki-dir {}) or --cert/--key",
                self.pki_dir.display()
            ),
        };
        Ok((ca, cert, key))
    }

    /// The client certificate and key this connection would present.
    pub fn identity_files(&self) -> Result<(PathBuf, PathBuf)> {
        let (_, cert, key) = self.files()?;
        Ok((cert, key))
    }

    pub async fn channel(&self) -> Result<Channel> {
        let (ca, cert, key) = self.files()?;
        let read =
            |p: &PathBuf| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
        let uri: tonic::transport::Uri = self
            .server
            .parse()
            .with_context(|| format!("--server {} is not a URL", self.server))?;
        let host = uri
            .host()
            .unwrap_or("localhost")
            .trim_matches(['[', ']'])
            .to_string();
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read(&ca)?))
            .identity(Identity::from_pem(read(&cert)?, read(&key)?))
            .domain_name(host);
        Channel::builder(uri)
            .tls_config(tls)?
            .connect()
            .await
            .map_err(|e| anyhow!("cannot reach {}: {e}; is the server running?", self.server))
    }

    pub async fn exchange(&self) -> Result<ExchangeClient<Channel>> {
        Ok(ExchangeClient::new(self.channel().await?).max_decoding_message_size(64 * 1024 * 1024))
    }
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Output {
    /// Readable tables.
    #[default]
    Table,
    /// One JSON object per line (protobuf JSON mapping).
    Json,
}

/// A gRPC error as one clear line: what, which field, what to do.
pub fn status_error(status: tonic::Status) -> anyhow::Error {
    let mut line = format!("{:?}: {}", status.code(), status.message());
    if let Some(bad) = status.get_details_bad_request() {
        for v in bad.field_violations {
            line.push_str(&format!(
                "\n  {}: {} ({})",
                v.field, v.description, v.reason
            ));
        }
    }
    anyhow!(line)
}

/// How long a server that is starting asks its callers to wait.
pub fn starting(status: &tonic::Status) -> Option<std::time::Duration> {
    if status.code() != tonic::Code::Unavailable {
        return None;
    }
    status.get_details_retry_info()?.retry_delay
}

/// Whether asking again can change the answer: a server that is down,
/// restarting or busy will answer later; a refusal of who the caller is or
/// of what it asked will not.
pub fn worth_retrying(status: &tonic::Status) -> bool {
    use tonic::Code;
    !matches!(
        status.code(),
        Code::InvalidArgument
            | Code::PermissionDenied
            | Code::Unauthenticated
            | Code::NotFound
            | Code::AlreadyExists
            | Code::FailedPrecondition
            | Code::OutOfRange
            | Code::Unimplemented
    )
}

pub use twoplace::json::{envelope_from_json, to_json};

/// A timestamp as Shanghai local time, to the minute.
pub fn local_time(t: Option<&prost_types::Timestamp>) -> String {
    t.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t.seconds).ok())
        .map(|t| {
            let t = t.to_offset(twoplace::domain::SHANGHAI);
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}",
                t.year(),
                t.month() as u8,
                t.day(),
                t.hour(),
                t.minute()
            )
        })
        .unwrap_or_else(|| "-".into())
}

pub use twoplace::api::exchange::wire_kind as kind_of;
