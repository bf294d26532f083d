//! Who is calling: read from the URI SAN of the mTLS client certificate
//! (`urn:twoplace:office:<region code>` or `urn:twoplace:admin:<prefix>`).
//! The TLS layer has already checked the chain against the configured CA.

use std::collections::HashMap;
use std::fmt;
use std::sync::{LazyLock, Mutex};

use tonic::Request;
use x509_parser::extensions::GeneralName;

use super::error::ApiError;
use crate::domain::{RegionCode, RegionPrefix};

pub const OFFICE_URN: &str = "urn:twoplace:office:";
pub const ADMIN_URN: &str = "urn:twoplace:admin:";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Office(RegionCode),
    Admin(RegionPrefix),
}

impl Caller {
    /// The caller named by one URI of the certificate, if it is ours.
    pub fn from_uri(uri: &str) -> Option<Caller> {
        if let Some(code) = uri.strip_prefix(OFFICE_URN) {
            RegionCode::parse(code).ok().map(Caller::Office)
        } else if let Some(prefix) = uri.strip_prefix(ADMIN_URN) {
            RegionPrefix::parse(prefix).ok().map(Caller::Admin)
        } else {
            None
        }
    }

    /// The caller named by a DER certificate's URI SANs: exactly one of ours.
    pub fn from_certificate(der: &[u8]) -> Result<Caller, String> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| format!("unreadable client certificate: {e}"))?;
        let san = cert
            .subject_alternative_name()
            .map_err(|e| format!("unreadable subjectAltName: {e}"))?
            .ok_or("the client certificate has no subjectAltName")?;
        let mut callers = san
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::URI(uri) => Caller::from_uri(uri),
                _ => None,
            });
        match (callers.next(), callers.next()) {
            (Some(caller), None) => Ok(caller),
            (None, _) => Err(format!(
                "the client certificate names no office ({OFFICE_URN}<code>) or \
                 administrator ({ADMIN_URN}<prefix>)"
            )),
            (Some(_), Some(_)) => Err("the client certificate names more than one identity".into()),
        }
    }

    /// The caller of a request: its client certificate's identity, or the
    /// administrator the dashboard authenticated.
    pub fn of<T>(request: &Request<T>) -> Result<Caller, ApiError> {
        if let Some(Authenticated(caller)) = request.extensions().get::<Authenticated>() {
            tracing::Span::current().record("caller", tracing::field::display(caller));
            return Ok(caller.clone());
        }
        let certs = request
            .peer_certs()
            .ok_or_else(|| ApiError::Unauthenticated("no client certificate".into()))?;
        let leaf = certs
            .first()
            .ok_or_else(|| ApiError::Unauthenticated("no client certificate".into()))?;
        let caller = known_caller(leaf).map_err(ApiError::Unauthenticated)?;
        tracing::Span::current().record("caller", tracing::field::display(&caller));
        Ok(caller)
    }

    /// The caller's office; administrators do not take part in cases.
    pub fn office<T>(request: &Request<T>) -> Result<RegionCode, ApiError> {
        match Caller::of(request)? {
            Caller::Office(code) => Ok(code),
            Caller::Admin(_) => Err(ApiError::PermissionDenied(
                "administrators watch the exchange; only offices send and read cases".into(),
            )),
        }
    }
}

/// Certificates seen, by their DER, with whom they name (at most
/// `KNOWN_MAX`): parsing one was a few percent of a single publish, and an
/// office sends thousands of requests with one certificate. What a
/// certificate names depends on its bytes alone; TLS has checked its chain
/// for the connection it came on, whatever is cached here.
static KNOWN: LazyLock<Mutex<HashMap<Vec<u8>, Caller>>> = LazyLock::new(Default::default);
const KNOWN_MAX: usize = 1024;

fn known_caller(der: &[u8]) -> Result<Caller, String> {
    // A panic elsewhere while holding the lock leaves the map whole.
    let known = || {
        KNOWN
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    };
    if let Some(caller) = known().get(der) {
        return Ok(caller.clone());
    }
    let caller = Caller::from_certificate(der)?;
    let mut known = known();
    if known.len() >= KNOWN_MAX {
        known.clear();
    }
    known.insert(der.to_vec(), caller.clone());
    Ok(caller)
}

/// A caller the dashboard's HTTP layer authenticated (by its client
/// certificate or a signed token) and put on a request it built itself.
/// Extensions never come from the wire, so a gRPC client cannot forge one.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Caller);

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Caller::Office(code) => write!(f, "office:{code}"),
            Caller::Admin(prefix) => write!(f, "admin:{prefix}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_name_callers() {
        assert_eq!(
            Caller::from_uri("urn:twoplace:office:341502"),
            Some(Caller::Office(RegionCode::parse("341502").unwrap()))
        );
        assert_eq!(
            Caller::from_uri("urn:twoplace:admin:34"),
            Some(Caller::Admin(RegionPrefix::parse("34").unwrap()))
        );
        assert_eq!(Caller::from_uri("urn:twoplace:office:999999"), None);
        assert_eq!(Caller::from_uri("https://example.org"), None);
    }

    fn certificate_naming(uri: &str) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::default();
        params
            .subject_alt_names
            .push(rcgen::SanType::URI(uri.try_into().unwrap()));
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn certificates_seen_again_name_whom_they_named() {
        let office = certificate_naming("urn:twoplace:office:341502");
        let admin = certificate_naming("urn:twoplace:admin:34");
        let none = certificate_naming("https://example.org");
        for _ in 0..2 {
            assert_eq!(
                known_caller(&office),
                Ok(Caller::Office(RegionCode::parse("341502").unwrap()))
            );
            assert_eq!(
                known_caller(&admin),
                Ok(Caller::Admin(RegionPrefix::parse("34").unwrap()))
            );
            assert!(known_caller(&none).is_err());
        }
    }
}
