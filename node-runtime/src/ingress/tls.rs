//! HTTPS for Ingresses: the certificate for each TLS host comes from the Secret its Ingress
//! names (`kubernetes.io/tls`: `tls.crt`, `tls.key`, PEM), chosen by the client's SNI (an
//! exact host, else a `*.` wildcard of one label); a client without SNI or for a host without
//! a Secret gets the node's own self-signed default certificate (as k3s's Traefik does).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::Secret;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The default certificate's name.
const DEFAULT_CERT_NAME: &str = "skiff-ingress-default";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot make the default Ingress certificate: {0}")]
    DefaultCert(String),
}

#[derive(Debug, Default)]
struct Certs {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` → keyed by `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
}

/// The certificates the node's HTTPS listener serves.
#[derive(Debug)]
pub struct CertStore {
    certs: RwLock<Certs>,
    default: Arc<CertifiedKey>,
}

/// A Secret's `tls.crt` and `tls.key` as a signing certificate chain.
fn certified_key(secret: &Secret) -> Result<CertifiedKey, String> {
    let data = secret.data.as_ref().ok_or("it has no data")?;
    let crt = data.get("tls.crt").ok_or("it has no tls.crt")?;
    let key = data.get("tls.key").ok_or("it has no tls.key")?;
    let chain = rustls_pemfile::certs(&mut crt.0.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls.crt is not PEM: {e}"))?;
    if chain.is_empty() {
        return Err("tls.crt holds no certificate".into());
    }
    let key = rustls_pemfile::private_key(&mut key.0.as_slice())
        .map_err(|e| format!("tls.key is not PEM: {e}"))?
        .ok_or("tls.key holds no private key")?;
    let key = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| format!("tls.key: {e}"))?;
    Ok(CertifiedKey::new(chain, key))
}

fn self_signed() -> Result<CertifiedKey, TlsError> {
    let err = |e: rcgen::Error| TlsError::DefaultCert(e.to_string());
    let key = rcgen::KeyPair::generate().map_err(err)?;
    let params = rcgen::CertificateParams::new(vec![DEFAULT_CERT_NAME.to_string()]).map_err(err)?;
    let cert = params.self_signed(&key).map_err(err)?;
    let der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der())
        .map_err(|e| TlsError::DefaultCert(e.to_string()))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&der)
        .map_err(|e| TlsError::DefaultCert(e.to_string()))?;
    Ok(CertifiedKey::new(vec![cert.der().clone()], signing))
}

impl CertStore {
    pub fn new() -> Result<CertStore, TlsError> {
        Ok(CertStore {
            certs: RwLock::default(),
            default: Arc::new(self_signed()?),
        })
    }

    /// Takes the TLS hosts (host, namespace, Secret) from the Ingresses and the Secrets as
    /// they are now; returns what could not be used, to report.
    pub fn update(&self, tls: &[(String, String, String)], secrets: &[Secret]) -> Vec<String> {
        let by_name = super::by_name(secrets);
        let mut next = Certs::default();
        let mut problems = Vec::new();
        let mut parsed: HashMap<(&str, &str), Arc<CertifiedKey>> = HashMap::new();
        for (host, ns, name) in tls {
            let key = match parsed.get(&(ns.as_str(), name.as_str())) {
                Some(k) => k.clone(),
                None => {
                    let Some(secret) = by_name.get(&(ns.as_str(), name.as_str())) else {
                        problems.push(format!("TLS Secret {ns}/{name} for {host} does not exist"));
                        continue;
                    };
                    match certified_key(secret) {
                        Ok(k) => {
                            let k = Arc::new(k);
                            parsed.insert((ns.as_str(), name.as_str()), k.clone());
                            k
                        }
                        Err(why) => {
                            problems.push(format!("TLS Secret {ns}/{name} for {host}: {why}"));
                            continue;
                        }
                    }
                }
            };
            match host.strip_prefix("*.") {
                Some(domain) => next.wildcard.entry(domain.to_string()).or_insert(key),
                None => next.exact.entry(host.clone()).or_insert(key),
            };
        }
        *self.certs.write().unwrap_or_else(|p| p.into_inner()) = next;
        problems
    }

    fn for_host(&self, host: &str) -> Option<Arc<CertifiedKey>> {
        let certs = self.certs.read().unwrap_or_else(|p| p.into_inner());
        let host = host.to_lowercase();
        certs.exact.get(&host).cloned().or_else(|| {
            let (_, domain) = host.split_once('.')?;
            certs.wildcard.get(domain).cloned()
        })
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        hello
            .server_name()
            .and_then(|host| self.for_host(host))
            .or_else(|| Some(self.default.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    fn tls_secret(name: &str, host: &str) -> Secret {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![host.to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([
                ("tls.crt".to_string(), ByteString(cert.pem().into_bytes())),
                (
                    "tls.key".to_string(),
                    ByteString(key.serialize_pem().into_bytes()),
                ),
            ])),
            type_: Some("kubernetes.io/tls".into()),
            ..Default::default()
        }
    }

    #[test]
    fn picks_certificates_by_host_and_reports_bad_secrets() {
        let store = CertStore::new().unwrap();
        let mut broken = tls_secret("broken", "x");
        broken.data.as_mut().unwrap().remove("tls.key");
        let problems = store.update(
            &[
                ("shop.example".into(), "default".into(), "shop".into()),
                ("*.apps.example".into(), "default".into(), "apps".into()),
                ("b.example".into(), "default".into(), "broken".into()),
                ("c.example".into(), "default".into(), "missing".into()),
            ],
            &[
                tls_secret("shop", "shop.example"),
                tls_secret("apps", "*.apps.example"),
                broken,
            ],
        );
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("no tls.key"), "{problems:?}");
        assert!(problems[1].contains("does not exist"), "{problems:?}");
        assert!(store.for_host("shop.example").is_some());
        assert!(store.for_host("x.apps.example").is_some());
        assert!(store.for_host("b.example").is_none());
    }
}
