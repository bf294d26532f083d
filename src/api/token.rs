//! Signed administrator tokens, for the dashboard in a browser that holds no
//! client certificate. The administrator signs a short claim with the key of
//! their own certificate (`twoplace admin token`) and the token carries that
//! certificate, so the server checks it exactly as it checks a TLS client:
//! the chain against the client CA, then the signature, then the expiry. No
//! shared secret exists to leak.
//!
//! Format: `tpa1.<claims>.<certificate DER>.<ECDSA P-256 signature>`, each
//! part unpadded base64url; the signature covers everything before it.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::identity::Caller;

const VERSION: &str = "tpa1";
/// The longest life a token may claim.
pub const MAX_TTL: time::Duration = time::Duration::days(7);
/// Tolerated clock difference between the signer and the server.
const SKEW: time::Duration = time::Duration::minutes(5);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("not a twoplace admin token")]
    Malformed,
    #[error("the token's certificate is not trusted: {0}")]
    Untrusted(String),
    #[error("the token's certificate names no administrator")]
    NotAdmin,
    #[error("the token's signature does not match its certificate")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token claims a life longer than {} days or starts in the future", MAX_TTL.whole_days())]
    BadLifetime,
    #[error("cannot sign: {0}")]
    Signing(String),
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The administrator, as `admin:<prefix>`.
    sub: String,
    /// Issued and expiry times, seconds since the epoch.
    iat: i64,
    exp: i64,
}

/// A token for the administrator of `cert_der`, signed with `key_pkcs8`
/// (an ECDSA P-256 key, as `twoplace pki init` issues).
pub fn sign(
    cert_der: &[u8],
    key_pkcs8: &[u8],
    now: OffsetDateTime,
    ttl: time::Duration,
) -> Result<String, TokenError> {
    if ttl <= time::Duration::ZERO || ttl > MAX_TTL {
        return Err(TokenError::BadLifetime);
    }
    let caller = Caller::from_certificate(cert_der).map_err(TokenError::Signing)?;
    let Caller::Admin(_) = caller else {
        return Err(TokenError::NotAdmin);
    };
    let claims = Claims {
        sub: caller.to_string(),
        iat: now.unix_timestamp(),
        exp: (now + ttl).unix_timestamp(),
    };
    let claims = serde_json::to_vec(&claims).map_err(|e| TokenError::Signing(e.to_string()))?;
    let signed = format!("{VERSION}.{}.{}", B64.encode(claims), B64.encode(cert_der));
    let rng = SystemRandom::new();
    let key = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, key_pkcs8, &rng)
        .map_err(|e| TokenError::Signing(format!("the key is not ECDSA P-256 ({e})")))?;
    let sig = key
        .sign(&rng, signed.as_bytes())
        .map_err(|e| TokenError::Signing(e.to_string()))?;
    Ok(format!("{signed}.{}", B64.encode(sig.as_ref())))
}

/// The administrator a token speaks for, if `verifier` trusts its
/// certificate, the signature holds and it is live at `now`.
pub fn verify(
    token: &str,
    verifier: &Arc<dyn ClientCertVerifier>,
    now: OffsetDateTime,
) -> Result<Caller, TokenError> {
    let mut parts = token.trim().split('.');
    let (Some(VERSION), Some(claims), Some(cert), Some(sig), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(TokenError::Malformed);
    };
    let signed = &token.trim()[..VERSION.len() + claims.len() + cert.len() + 2];
    let claims_json = B64.decode(claims).map_err(|_| TokenError::Malformed)?;
    let cert_der = B64.decode(cert).map_err(|_| TokenError::Malformed)?;
    let sig = B64.decode(sig).map_err(|_| TokenError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&claims_json).map_err(|_| TokenError::Malformed)?;

    let seconds = u64::try_from(now.unix_timestamp()).unwrap_or(0);
    verifier
        .verify_client_cert(
            &CertificateDer::from(cert_der.as_slice()),
            &[],
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(seconds)),
        )
        .map_err(|e| TokenError::Untrusted(e.to_string()))?;
    let (_, parsed) =
        x509_parser::parse_x509_certificate(&cert_der).map_err(|_| TokenError::Malformed)?;
    signature::UnparsedPublicKey::new(
        &signature::ECDSA_P256_SHA256_ASN1,
        &parsed.public_key().subject_public_key.data,
    )
    .verify(signed.as_bytes(), &sig)
    .map_err(|_| TokenError::BadSignature)?;

    let caller = Caller::from_certificate(&cert_der).map_err(|_| TokenError::NotAdmin)?;
    if !matches!(caller, Caller::Admin(_)) || caller.to_string() != claims.sub {
        return Err(TokenError::NotAdmin);
    }
    let now = now.unix_timestamp();
    if claims.iat > now + SKEW.whole_seconds() || claims.exp - claims.iat > MAX_TTL.whole_seconds()
    {
        return Err(TokenError::BadLifetime);
    }
    if claims.exp <= now {
        return Err(TokenError::Expired);
    }
    Ok(caller)
}

#[cfg(test)]
mod tests {
    use rustls::RootCertStore;
    use rustls::pki_types::pem::PemObject;
    use rustls::server::WebPkiClientVerifier;

    use super::*;
    use crate::domain::{RegionCode, RegionPrefix};
    use crate::pki::DevPki;

    fn setup() -> (tempfile::TempDir, DevPki, Arc<dyn ClientCertVerifier>) {
        let dir = tempfile::tempdir().unwrap();
        let pki = crate::pki::init(
            dir.path(),
            &[RegionCode::parse("341502").unwrap()],
            &[RegionPrefix::parse("34").unwrap()],
            &["localhost".to_string()],
        )
        .unwrap();
        let verifier = verifier_for(&pki.ca());
        (dir, pki, verifier)
    }

    fn verifier_for(ca: &std::path::Path) -> Arc<dyn ClientCertVerifier> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap()
    }

    fn der(path: &std::path::Path) -> Vec<u8> {
        CertificateDer::from_pem_file(path).unwrap().to_vec()
    }

    fn key(path: &std::path::Path) -> Vec<u8> {
        rustls::pki_types::PrivateKeyDer::from_pem_file(path)
            .unwrap()
            .secret_der()
            .to_vec()
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    #[test]
    fn a_signed_token_names_its_administrator() {
        let (_dir, pki, verifier) = setup();
        let token = sign(
            &der(&pki.admin_cert("34")),
            &key(&pki.admin_key("34")),
            now(),
            time::Duration::hours(8),
        )
        .unwrap();
        assert_eq!(
            verify(&token, &verifier, now()),
            Ok(Caller::Admin(RegionPrefix::parse("34").unwrap()))
        );
        assert_eq!(
            verify(&token, &verifier, now() + time::Duration::hours(9)),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn tampered_foreign_and_office_tokens_are_refused() {
        let (_dir, pki, verifier) = setup();
        let cert = der(&pki.admin_cert("34"));
        let token = sign(
            &cert,
            &key(&pki.admin_key("34")),
            now(),
            time::Duration::hours(1),
        )
        .unwrap();
        // Another claim under the same signature.
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        parts[1] = B64.encode(format!(
            r#"{{"sub":"admin:34","iat":{},"exp":{}}}"#,
            now().unix_timestamp(),
            now().unix_timestamp() + 86_400
        ));
        assert_eq!(
            verify(&parts.join("."), &verifier, now()),
            Err(TokenError::BadSignature)
        );
        // Signed with another key than the certificate's.
        let other = sign(
            &cert,
            &key(&pki.office_key("341502")),
            now(),
            time::Duration::hours(1),
        )
        .unwrap();
        assert_eq!(
            verify(&other, &verifier, now()),
            Err(TokenError::BadSignature)
        );
        // An office cannot have one.
        assert_eq!(
            sign(
                &der(&pki.office_cert("341502")),
                &key(&pki.office_key("341502")),
                now(),
                time::Duration::hours(1)
            ),
            Err(TokenError::NotAdmin)
        );
        // A certificate from another CA.
        let (_other_dir, other_pki, _) = setup();
        let foreign = sign(
            &der(&other_pki.admin_cert("34")),
            &key(&other_pki.admin_key("34")),
            now(),
            time::Duration::hours(1),
        )
        .unwrap();
        assert!(matches!(
            verify(&foreign, &verifier, now()),
            Err(TokenError::Untrusted(_))
        ));
        for junk in ["", "tpa1", "tpa1.a.b.c", "tpa1.a.b.c.d", "Bearer x"] {
            assert_eq!(verify(junk, &verifier, now()), Err(TokenError::Malformed));
        }
        assert_eq!(
            sign(
                &cert,
                &key(&pki.admin_key("34")),
                now(),
                time::Duration::days(8)
            ),
            Err(TokenError::BadLifetime)
        );
    }
}
