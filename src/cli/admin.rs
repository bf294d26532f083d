//! `twoplace admin token`: a signed token for the dashboard, for a browser
//! that holds no client certificate.

use anyhow::{Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::Connect;

#[derive(clap::Args)]
pub struct TokenArgs {
    /// How long the token works (at most 7d).
    #[arg(long, default_value = "12h", value_parser = crate::parse_duration)]
    ttl: std::time::Duration,
    /// Print the dashboard's address with the token instead of the bare token.
    #[arg(long)]
    url: bool,
    /// The dashboard's address, for --url.
    #[arg(
        long,
        env = "TWOPLACE_DASHBOARD",
        default_value = "https://localhost:9443/"
    )]
    dashboard: String,
}

pub fn token(connect: &Connect, args: TokenArgs) -> Result<()> {
    let (cert, key) = connect.identity_files()?;
    let cert_der = CertificateDer::from_pem_file(&cert)
        .with_context(|| format!("reading the certificate {}", cert.display()))?;
    let key_der = PrivateKeyDer::from_pem_file(&key)
        .with_context(|| format!("reading the key {}", key.display()))?;
    let ttl = time::Duration::try_from(args.ttl).context("--ttl is too long")?;
    let token = twoplace::api::token::sign(
        &cert_der,
        key_der.secret_der(),
        time::OffsetDateTime::now_utc(),
        ttl,
    )?;
    if args.url {
        // In the fragment: a browser never sends it to a server.
        println!("{}#token={token}", args.dashboard);
    } else {
        println!("{token}");
    }
    Ok(())
}
