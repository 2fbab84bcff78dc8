//! A `kube` client for the agent: the cluster URL, the cluster CA and the node token.

use super::AgentError;

pub fn client(server: &str, ca_pem: &str, token: &str) -> Result<kube::Client, AgentError> {
    let url: http::Uri = server
        .parse()
        .map_err(|e| AgentError::Config(format!("--server {server:?} is not a URL: {e}")))?;
    let certs: Vec<Vec<u8>> = rustls_pemfile::certs(&mut ca_pem.as_bytes())
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<_, _>>()
        .map_err(|e| AgentError::Config(format!("the CA file is not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(AgentError::Config(
            "the CA file holds no certificate".into(),
        ));
    }
    let mut config = kube::Config::new(url);
    config.root_cert = Some(certs);
    config.auth_info.token = Some(token.to_string().into());
    config.connect_timeout = Some(std::time::Duration::from_secs(10));
    config.read_timeout = None;
    kube::Client::try_from(config)
        .map_err(|e| AgentError::Config(format!("cannot build the API client: {e}")))
}
