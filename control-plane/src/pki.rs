//! The cluster's credentials: a CA, the API server's certificate, bearer tokens and the admin
//! kubeconfig. Created on first start in the data dir and reused after.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("certificate generation failed: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("{path} is not a valid key or token ({why}); remove it to have a new one made")]
    Invalid { path: PathBuf, why: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Makes the entries of directory `dir` durable (fsync of the directory): a file created or
/// renamed in it survives a power cut only then.
fn sync_dir(dir: &Path) -> Result<(), PkiError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

/// Writes a file readable by its owner only, atomically and durably: temp file, fsync, rename,
/// fsync of the directory (without it a power cut can take the rename back).
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), PkiError> {
    let tmp = path.with_extension("tmp");
    {
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(io(&tmp))?;
        f.write_all(contents).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(io(path))?;
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir),
        _ => sync_dir(Path::new(".")),
    }
}

fn random_token() -> String {
    use rand::Rng;
    let bytes: [u8; 24] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn load_or_create_token(path: &Path) -> Result<String, PkiError> {
    if path.exists() {
        let t = fs::read_to_string(path)
            .map_err(io(path))?
            .trim()
            .to_string();
        if t.len() < 16 || t.contains(char::is_whitespace) {
            return Err(PkiError::Invalid {
                path: path.into(),
                why: "a token is at least 16 characters, no spaces".into(),
            });
        }
        return Ok(t);
    }
    let t = random_token();
    write_private(path, t.as_bytes())?;
    Ok(t)
}

fn ca_params() -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "skiff-ca");
    dn.push(DnType::OrganizationName, "skiff");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2124, 1, 1);
    Ok(params)
}

/// Everything the API server needs to serve TLS and check tokens.
pub struct Credentials {
    pub ca_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    pub admin_token: String,
    pub node_token: String,
    /// The HMAC key list continue tokens are signed with, so a client can neither forge nor
    /// alter one, and tokens stay valid across restarts.
    pub continue_key: [u8; 32],
}

/// Loads the CA and tokens from `dir` (creating them the first time) and issues a fresh server
/// certificate for `sans` (DNS names and IP addresses) signed by that CA.
pub fn load_or_create(dir: &Path, sans: &[String]) -> Result<Credentials, PkiError> {
    let pki = dir.join("pki");
    if !pki.is_dir() {
        fs::create_dir_all(&pki).map_err(io(&pki))?;
        // The new directory's own entry, durable before anything is written in it.
        sync_dir(dir)?;
    }
    let ca_key_path = pki.join("ca.key");
    let ca_cert_path = pki.join("ca.crt");
    let (ca_key, ca_pem) = if ca_key_path.exists() && ca_cert_path.exists() {
        let key_pem = fs::read_to_string(&ca_key_path).map_err(io(&ca_key_path))?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| PkiError::Invalid {
            path: ca_key_path.clone(),
            why: e.to_string(),
        })?;
        let pem = fs::read_to_string(&ca_cert_path).map_err(io(&ca_cert_path))?;
        (key, pem)
    } else {
        let key = KeyPair::generate()?;
        let cert = ca_params()?.self_signed(&key)?;
        write_private(&ca_key_path, key.serialize_pem().as_bytes())?;
        write_private(&ca_cert_path, cert.pem().as_bytes())?;
        (key, cert.pem())
    };
    let issuer = Issuer::new(ca_params()?, ca_key);
    let mut params = CertificateParams::new(sans.to_vec())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "skiff-apiserver");
    params.distinguished_name = dn;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate()?;
    let server_cert = params.signed_by(&server_key, &issuer)?;
    let server_cert_pem = server_cert.pem();
    let server_key_pem = server_key.serialize_pem();
    write_private(&pki.join("server.crt"), server_cert_pem.as_bytes())?;
    write_private(&pki.join("server.key"), server_key_pem.as_bytes())?;
    Ok(Credentials {
        ca_pem,
        server_cert_pem,
        server_key_pem,
        admin_token: load_or_create_token(&dir.join("admin-token"))?,
        node_token: load_or_create_token(&dir.join("node-token"))?,
        continue_key: load_or_create_key(&pki.join("continue-token.key"))?,
    })
}

/// A 32-byte secret key kept hex-encoded in `path`, made the first time.
fn load_or_create_key(path: &Path) -> Result<[u8; 32], PkiError> {
    if path.exists() {
        let text = fs::read_to_string(path).map_err(io(path))?;
        let text = text.trim();
        let invalid = || PkiError::Invalid {
            path: path.into(),
            why: "a key is 64 hexadecimal digits".into(),
        };
        if text.len() != 64 || !text.is_ascii() {
            return Err(invalid());
        }
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| invalid())?;
        }
        return Ok(key);
    }
    use rand::Rng;
    let key: [u8; 32] = rand::rng().random();
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    write_private(path, hex.as_bytes())?;
    Ok(key)
}

/// The admin kubeconfig for `server_url` (`https://host:port`).
pub fn kubeconfig(server_url: &str, ca_pem: &str, token: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem.as_bytes());
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: skiff
  cluster:
    server: {server_url}
    certificate-authority-data: {ca}
users:
- name: skiff-admin
  user:
    token: {token}
contexts:
- name: skiff
  context:
    cluster: skiff
    user: skiff-admin
    namespace: default
current-context: skiff
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let sans = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let a = load_or_create(dir.path(), &sans).unwrap();
        let b = load_or_create(dir.path(), &sans).unwrap();
        assert_eq!(a.ca_pem, b.ca_pem);
        assert_eq!(a.admin_token, b.admin_token);
        assert_ne!(a.admin_token, a.node_token);
        assert_eq!(
            a.continue_key, b.continue_key,
            "continue tokens outlive restarts"
        );
        assert_ne!(a.continue_key, [0; 32]);
        assert!(a.server_cert_pem.contains("BEGIN CERTIFICATE"));
        let kc = kubeconfig("https://127.0.0.1:1", &a.ca_pem, &a.admin_token);
        assert!(kc.contains(&a.admin_token));
        fs::write(dir.path().join("pki/continue-token.key"), "zz").unwrap();
        assert!(load_or_create(dir.path(), &sans).is_err());
        fs::remove_file(dir.path().join("pki/continue-token.key")).unwrap();
        fs::write(dir.path().join("admin-token"), "x").unwrap();
        assert!(load_or_create(dir.path(), &sans).is_err());
    }
}
