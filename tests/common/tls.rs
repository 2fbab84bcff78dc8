//! Requests written by hand over TLS to a test server (tokio-rustls, trusting the cluster CA
//! from its kubeconfig), so that no client library fixes them up.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine as _;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::Skiff;

/// An answer must be complete within this.
pub const ANSWER_BOUND: Duration = Duration::from_secs(40);

pub struct Endpoint {
    pub addr: SocketAddr,
    pub token: String,
    tls: TlsConnector,
}

impl Endpoint {
    /// The API's address, the admin token and the cluster CA, from `s`'s kubeconfig.
    pub fn of(s: &Skiff) -> Result<Endpoint> {
        let kc: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(s.kubeconfig())?)?;
        let cluster = &kc["clusters"][0]["cluster"];
        let server = cluster["server"].as_str().context("kubeconfig server")?;
        let addr: SocketAddr = server.trim_start_matches("https://").parse()?;
        let ca = base64::engine::general_purpose::STANDARD.decode(
            cluster["certificate-authority-data"]
                .as_str()
                .context("kubeconfig CA")?,
        )?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut ca.as_slice()) {
            roots.add(cert?)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let token = kc["users"][0]["user"]["token"]
            .as_str()
            .context("kubeconfig token")?
            .to_string();
        Ok(Endpoint {
            addr,
            token,
            tls: TlsConnector::from(Arc::new(config)),
        })
    }

    pub async fn connect(&self) -> Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(self.addr).await?;
        let name = ServerName::IpAddress(self.addr.ip().into());
        Ok(self.tls.connect(name, tcp).await?)
    }

    /// Sends `head` (request line and headers, without the blank line; the token and
    /// `Connection: close` are added) and `body`, and reads the answer to the end.
    pub async fn request(&self, head: &str, body: &[u8]) -> Result<(u16, String)> {
        parse_answer(self.raw_request(head, body).await?.as_bytes())
    }

    /// As [`Endpoint::request`], returning the whole answer (status line, headers, body).
    pub async fn raw_request(&self, head: &str, body: &[u8]) -> Result<String> {
        let mut conn = self.connect().await?;
        let mut raw = format!(
            "{head}\r\nHost: skiff\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            self.token
        )
        .into_bytes();
        raw.extend_from_slice(body);
        conn.write_all(&raw).await?;
        let mut answer = Vec::new();
        tokio::time::timeout(ANSWER_BOUND, conn.read_to_end(&mut answer))
            .await
            .context("no complete answer")??;
        Ok(String::from_utf8_lossy(&answer).into_owned())
    }
}

pub fn parse_answer(answer: &[u8]) -> Result<(u16, String)> {
    let text = String::from_utf8_lossy(answer);
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("not an HTTP answer: {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}
