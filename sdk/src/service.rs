//! Calling another Service of the cluster by name: [`service`]`("orders").get("/items")`.

use serde::Serialize;

use crate::client;
use crate::http::Response;
use crate::Error;

/// Where Kubernetes mounts a pod's service-account namespace.
const NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// A client for the Service `name` in this pod's namespace: requests go to
/// `http://NAME.NAMESPACE.svc.cluster.local` (see [`namespace`]), resolved by the cluster DNS
/// and balanced over the Service's ready pods.
///
/// ```no_run
/// use skiff_sdk::{http::{Request, Response}, Error};
///
/// fn handle(_req: Request) -> Result<Response, Error> {
///     let items = skiff_sdk::service("orders").get("/items")?;
///     Ok(Response::new(items.status).with_body(items.body))
/// }
/// ```
pub fn service(name: &str) -> Service {
    Service {
        name: name.to_string(),
        namespace: None,
        port: None,
        headers: Vec::new(),
    }
}

/// This pod's namespace: the `POD_NAMESPACE` environment variable (set with the downward API,
/// `fieldRef: metadata.namespace`, as Skiff's templates do), else the service-account
/// namespace file if it is mounted, else `default`.
///
/// ```no_run
/// let ns = skiff_sdk::namespace();
/// skiff_sdk::info!("starting", namespace = ns);
/// ```
pub fn namespace() -> String {
    resolve_namespace(
        std::env::var("POD_NAMESPACE").ok(),
        std::fs::read_to_string(NAMESPACE_FILE).ok(),
    )
}

fn resolve_namespace(env: Option<String>, file: Option<String>) -> String {
    [env, file]
        .into_iter()
        .flatten()
        .map(|ns| ns.trim().to_string())
        .find(|ns| !ns.is_empty())
        .unwrap_or_else(|| "default".to_string())
}

/// A client for one Service, made by [`service`]. Any answer, whatever its status, is an
/// `Ok(Response)`; an `Err` ([`Error::Upstream`], a `502` if a handler returns it) says why no
/// answer arrived.
///
/// Blocking calls ([`get`](Service::get), [`post_json`](Service::post_json),
/// [`send`](Service::send)) fit a sync handler; the `_async` variants fit an async handler
/// (`http_handler!(async handle)`), where they wait on the reactor instead of blocking it:
///
/// ```no_run
/// use skiff_sdk::{http::{Request, Response}, Error};
///
/// async fn handle(_req: Request) -> Result<Response, Error> {
///     let orders = skiff_sdk::service("orders").get_async("/count").await?;
///     let stock = skiff_sdk::service("stock").port(8080).get_async("/count").await?;
///     Ok(Response::text(200, format!("{} {}", orders.body_text(), stock.body_text())))
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    name: String,
    namespace: Option<String>,
    port: Option<u16>,
    headers: Vec<(String, String)>,
}

impl Service {
    /// Calls the Service in `namespace` instead of this pod's.
    ///
    /// ```
    /// let svc = skiff_sdk::service("orders").namespace("shop");
    /// assert_eq!(svc.url("/items"), "http://orders.shop.svc.cluster.local/items");
    /// ```
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = Some(namespace.to_string());
        self
    }

    /// Calls the Service's `port` (default 80).
    ///
    /// ```
    /// let svc = skiff_sdk::service("orders").namespace("shop").port(8080);
    /// assert_eq!(svc.url("/"), "http://orders.shop.svc.cluster.local:8080/");
    /// ```
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Sends header `name: value` with every request of this client.
    ///
    /// ```
    /// let svc = skiff_sdk::service("orders").header("x-request-id", "abc");
    /// ```
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The URL of `path` (with its query, if any) on this Service.
    ///
    /// ```
    /// let svc = skiff_sdk::service("orders").namespace("shop");
    /// assert_eq!(svc.url("items?limit=2"), "http://orders.shop.svc.cluster.local/items?limit=2");
    /// ```
    pub fn url(&self, path: &str) -> String {
        let namespace = self.namespace.clone().unwrap_or_else(namespace);
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        let slash = if path.starts_with('/') { "" } else { "/" };
        format!(
            "http://{}.{namespace}.svc.cluster.local{port}{slash}{path}",
            self.name
        )
    }

    /// `GET path`.
    ///
    /// ```no_run
    /// let resp = skiff_sdk::service("orders").get("/items")?;
    /// let items: Vec<String> = resp.body_json()?;
    /// # Ok::<(), skiff_sdk::Error>(())
    /// ```
    pub fn get(&self, path: &str) -> Result<Response, Error> {
        self.send("GET", path, &[], &[])
    }

    /// `POST path` with `value` as a JSON body (`content-type: application/json`).
    ///
    /// ```no_run
    /// #[derive(serde::Serialize)]
    /// struct NewOrder { item: String }
    ///
    /// let resp = skiff_sdk::service("orders").post_json("/orders", &NewOrder { item: "tea".into() })?;
    /// assert_eq!(resp.status, 201);
    /// # Ok::<(), skiff_sdk::Error>(())
    /// ```
    pub fn post_json<T: Serialize + ?Sized>(
        &self,
        path: &str,
        value: &T,
    ) -> Result<Response, Error> {
        let body = json_body(value)?;
        self.send("POST", path, &[("content-type", "application/json")], &body)
    }

    /// Sends `method path` with `headers` (after the client's own) and `body`.
    ///
    /// ```no_run
    /// let resp = skiff_sdk::service("orders").send("DELETE", "/orders/7", &[("x-reason", "test")], b"")?;
    /// # Ok::<(), skiff_sdk::Error>(())
    /// ```
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, Error> {
        let url = self.url(path);
        let headers = self.all_headers(headers);
        client::send(method, &url, &headers, body).map_err(|e| Error::upstream(url, e))
    }

    /// `GET path`, awaiting the answer on the async handler's reactor.
    ///
    /// ```no_run
    /// async fn count() -> Result<String, skiff_sdk::Error> {
    ///     Ok(skiff_sdk::service("orders").get_async("/count").await?.body_text())
    /// }
    /// ```
    pub async fn get_async(&self, path: &str) -> Result<Response, Error> {
        self.send_async("GET", path, &[], &[]).await
    }

    /// `POST path` with `value` as a JSON body, awaiting the answer.
    ///
    /// ```no_run
    /// async fn order() -> Result<u16, skiff_sdk::Error> {
    ///     let resp = skiff_sdk::service("orders").post_json_async("/orders", &["tea"]).await?;
    ///     Ok(resp.status)
    /// }
    /// ```
    pub async fn post_json_async<T: Serialize + ?Sized>(
        &self,
        path: &str,
        value: &T,
    ) -> Result<Response, Error> {
        let body = json_body(value)?;
        self.send_async("POST", path, &[("content-type", "application/json")], &body)
            .await
    }

    /// Sends `method path` with `headers` and `body`, awaiting the answer.
    ///
    /// ```no_run
    /// async fn remove() -> Result<u16, skiff_sdk::Error> {
    ///     let resp = skiff_sdk::service("orders").send_async("DELETE", "/orders/7", &[], b"").await?;
    ///     Ok(resp.status)
    /// }
    /// ```
    pub async fn send_async(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, Error> {
        let url = self.url(path);
        let headers = self.all_headers(headers);
        client::send_async(method, &url, &headers, body)
            .await
            .map_err(|e| Error::upstream(url, e))
    }

    fn all_headers<'a>(&'a self, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        self.headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .chain(extra.iter().copied())
            .collect()
    }
}

fn json_body<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value)
        .map_err(|e| Error::internal(format!("serializing the request body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_falls_back_from_env_to_file_to_default() {
        let some = |s: &str| Some(s.to_string());
        assert_eq!(resolve_namespace(some("shop"), some("other\n")), "shop");
        assert_eq!(resolve_namespace(None, some("other\n")), "other");
        assert_eq!(resolve_namespace(some(" "), None), "default");
        assert_eq!(resolve_namespace(None, None), "default");
    }

    #[test]
    fn urls_name_the_service_in_its_namespace() {
        let svc = service("orders").namespace("shop");
        assert_eq!(
            svc.url("/a?b=1"),
            "http://orders.shop.svc.cluster.local/a?b=1"
        );
        assert_eq!(
            svc.clone().port(9000).url(""),
            "http://orders.shop.svc.cluster.local:9000/"
        );
        let svc = svc.header("x-a", "1");
        assert_eq!(
            svc.all_headers(&[("x-b", "2")]),
            vec![("x-a", "1"), ("x-b", "2")]
        );
    }
}
