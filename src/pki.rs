//! A development PKI: one CA, a server certificate for localhost, and one
//! client certificate per office and administrator, each naming its holder
//! in a URI SAN. Real mTLS for the quickstart and the tests; production
//! brings its own CA.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use crate::api::identity::{ADMIN_URN, OFFICE_URN};
use crate::domain::{RegionCode, RegionPrefix};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot write {path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("certificate generation failed")]
    Generate(#[from] rcgen::Error),
}

/// Where `init` put things.
#[derive(Debug, Clone)]
pub struct DevPki {
    pub dir: PathBuf,
}

impl DevPki {
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }
    pub fn office_cert(&self, office: &str) -> PathBuf {
        self.dir.join(format!("office-{office}.pem"))
    }
    pub fn office_key(&self, office: &str) -> PathBuf {
        self.dir.join(format!("office-{office}.key"))
    }
    pub fn admin_cert(&self, prefix: &str) -> PathBuf {
        self.dir.join(format!("admin-{prefix}.pem"))
    }
    pub fn admin_key(&self, prefix: &str) -> PathBuf {
        self.dir.join(format!("admin-{prefix}.key"))
    }
}

/// Writes a CA (reused if `dir` has one), a server certificate for
/// `server_names`, and a certificate and key per office and administrator.
/// Existing identity files are replaced.
pub fn init(
    dir: &Path,
    offices: &[RegionCode],
    admins: &[RegionPrefix],
    server_names: &[String],
) -> Result<DevPki, PkiError> {
    let (pki, issuer) = open_ca(dir)?;
    let mut server = leaf_params("twoplace server", ExtendedKeyUsagePurpose::ServerAuth);
    for name in server_names {
        server.subject_alt_names.push(match name.parse() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(name.as_str().try_into()?),
        });
    }
    issue(&server, &issuer, &pki.server_cert(), &pki.server_key())?;
    issue_clients(&pki, &issuer, offices, admins)?;
    Ok(pki)
}

/// Adds client certificates for offices that have none yet, signed by the
/// CA already in `dir`; returns the offices it added.
pub fn add_offices(dir: &Path, offices: &[RegionCode]) -> Result<Vec<RegionCode>, PkiError> {
    let (pki, issuer) = open_ca(dir)?;
    let missing: Vec<RegionCode> = offices
        .iter()
        .filter(|o| !pki.office_cert(o.as_str()).exists())
        .cloned()
        .collect();
    issue_clients(&pki, &issuer, &missing, &[])?;
    Ok(missing)
}

/// The CA in `dir`, created if there is none.
fn open_ca(dir: &Path) -> Result<(DevPki, Issuer<'static, KeyPair>), PkiError> {
    let pki = DevPki {
        dir: dir.to_path_buf(),
    };
    fs::create_dir_all(dir).map_err(|source| PkiError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let ca_key_path = dir.join("ca.key");
    let ca_key = match fs::read_to_string(&ca_key_path) {
        Ok(pem) if pki.ca().exists() => KeyPair::from_pem(&pem)?,
        _ => {
            let key = KeyPair::generate()?;
            let cert = ca_params().self_signed(&key)?;
            write(&pki.ca(), &cert.pem(), false)?;
            write(&ca_key_path, &key.serialize_pem(), true)?;
            key
        }
    };
    Ok((pki, Issuer::new(ca_params(), ca_key)))
}

fn issue_clients(
    pki: &DevPki,
    issuer: &Issuer<'_, KeyPair>,
    offices: &[RegionCode],
    admins: &[RegionPrefix],
) -> Result<(), PkiError> {
    let clients = offices
        .iter()
        .map(|o| {
            (
                format!("office {o}"),
                format!("{OFFICE_URN}{o}"),
                pki.office_cert(o.as_str()),
                pki.office_key(o.as_str()),
            )
        })
        .chain(admins.iter().map(|a| {
            (
                format!("administrator {a}"),
                format!("{ADMIN_URN}{a}"),
                pki.admin_cert(a.as_str()),
                pki.admin_key(a.as_str()),
            )
        }));
    for (common_name, uri, cert, key) in clients {
        let mut params = leaf_params(&common_name, ExtendedKeyUsagePurpose::ClientAuth);
        params.subject_alt_names.push(SanType::URI(uri.try_into()?));
        issue(&params, issuer, &cert, &key)?;
    }
    Ok(())
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "twoplace development CA");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(3650);
    params
}

fn leaf_params(common_name: &str, usage: ExtendedKeyUsagePurpose) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(825);
    params
}

fn issue(
    params: &CertificateParams,
    issuer: &Issuer<'_, KeyPair>,
    cert_path: &Path,
    key_path: &Path,
) -> Result<(), PkiError> {
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    write(cert_path, &cert.pem(), false)?;
    write(key_path, &key.serialize_pem(), true)
}

fn write(path: &Path, contents: &str, secret: bool) -> Result<(), PkiError> {
    let io = |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    };
    fs::write(path, contents).map_err(io)?;
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    #[cfg(not(unix))]
    let _ = secret;
    Ok(())
}
