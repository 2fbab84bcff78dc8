//! [`Router`]: dispatches requests to handlers by method and path, with path parameters.

use std::fmt;

use crate::handler::IntoResponse;
use crate::http::{decode_path_segment, Request, Response};
use crate::Error;

type BoxedHandler = Box<dyn Fn(Request) -> Response + Send + Sync>;

/// Routes requests by method and path pattern to handlers.
///
/// A pattern is a path whose segments are literal (`/items`), a parameter (`:id`, read in the
/// handler with [`Request::param`]) or, last, a wildcard (`*rest`, the rest of the path, maybe
/// empty). Empty segments are ignored, so `/items/` matches `/items`. When several patterns
/// match, the most specific wins (literal before parameter before wildcard, segment by
/// segment). A path no pattern matches answers `404`; a path that matches only under other
/// methods answers `405` with an `allow` header listing them. `HEAD` is served by the `GET`
/// handler when no `HEAD` route exists. Handlers return anything that implements
/// [`IntoResponse`], e.g. `Response` or `Result<Response, skiff_sdk::Error>`.
///
/// Skiff gives every request a fresh instance of the component, so building the router in the
/// handler costs next to nothing:
///
/// ```
/// use skiff_sdk::{http::{Request, Response}, Error, Router};
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Item { id: u32, name: String }
///
/// fn list(_req: Request) -> Response {
///     Response::json(200, &[Item { id: 1, name: "tea".into() }])
/// }
///
/// fn show(req: Request) -> Result<Response, Error> {
///     let id: u32 = req.param("id").unwrap_or_default().parse()
///         .map_err(|_| Error::bad_request("id must be a number"))?;
///     if id != 1 {
///         return Err(Error::not_found(format!("no item {id}")));
///     }
///     Ok(Response::json(200, &Item { id, name: "tea".into() }))
/// }
///
/// fn create(req: Request) -> Result<Response, Error> {
///     let item: Item = req.json()?;
///     Ok(Response::json(201, &item))
/// }
///
/// fn routes() -> Router {
///     Router::new().get("/items", list).post("/items", create).get("/items/:id", show)
/// }
///
/// fn handle(req: Request) -> Response {
///     routes().handle(req)
/// }
/// // In the component: skiff_sdk::http_handler!(handle);
///
/// assert_eq!(handle(Request::new("GET", "/items/1")).status, 200);
/// assert_eq!(handle(Request::new("GET", "/items/2")).status, 404);
/// assert_eq!(handle(Request::new("POST", "/items").with_body("{")).status, 400);
/// let not_allowed = handle(Request::new("DELETE", "/items"));
/// assert_eq!(not_allowed.status, 405);
/// assert_eq!(not_allowed.header("allow"), Some("GET, HEAD, POST"));
/// ```
#[derive(Default)]
pub struct Router {
    routes: Vec<Route>,
}

struct Route {
    method: String,
    pattern: String,
    segments: Vec<Segment>,
    handler: BoxedHandler,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
    Rest(String),
}

impl Segment {
    /// Literal beats parameter beats wildcard.
    fn rank(&self) -> u8 {
        match self {
            Segment::Literal(_) => 2,
            Segment::Param(_) => 1,
            Segment::Rest(_) => 0,
        }
    }
}

impl Router {
    /// A router with no routes (every request answers `404`).
    ///
    /// ```
    /// let resp = skiff_sdk::Router::new().handle(skiff_sdk::http::Request::new("GET", "/"));
    /// assert_eq!(resp.status, 404);
    /// ```
    pub fn new() -> Self {
        Router::default()
    }

    /// Adds a route for `method` (case-insensitive) and `pattern`.
    ///
    /// ```
    /// use skiff_sdk::http::{Request, Response};
    /// let router = skiff_sdk::Router::new()
    ///     .route("OPTIONS", "/items", |_req: Request| Response::new(204));
    /// assert_eq!(router.handle(Request::new("OPTIONS", "/items")).status, 204);
    /// ```
    pub fn route<H, R>(mut self, method: &str, pattern: &str, handler: H) -> Self
    where
        H: Fn(Request) -> R + Send + Sync + 'static,
        R: IntoResponse,
    {
        self.routes.push(Route {
            method: method.to_ascii_uppercase(),
            pattern: pattern.to_string(),
            segments: parse_pattern(pattern),
            handler: Box::new(move |req| handler(req).into_response()),
        });
        self
    }

    /// Adds a `GET` route (which also serves `HEAD`).
    ///
    /// ```
    /// use skiff_sdk::http::{Request, Response};
    /// let router = skiff_sdk::Router::new().get("/healthz", |_req: Request| "ok");
    /// assert_eq!(router.handle(Request::new("GET", "/healthz")).body, b"ok");
    /// ```
    pub fn get<H, R>(self, pattern: &str, handler: H) -> Self
    where
        H: Fn(Request) -> R + Send + Sync + 'static,
        R: IntoResponse,
    {
        self.route("GET", pattern, handler)
    }

    /// Adds a `POST` route.
    ///
    /// ```
    /// use skiff_sdk::http::{Request, Response};
    /// let router = skiff_sdk::Router::new().post("/echo", |req: Request| req.body_text());
    /// let resp = router.handle(Request::new("POST", "/echo").with_body("hi"));
    /// assert_eq!(resp.body, b"hi");
    /// ```
    pub fn post<H, R>(self, pattern: &str, handler: H) -> Self
    where
        H: Fn(Request) -> R + Send + Sync + 'static,
        R: IntoResponse,
    {
        self.route("POST", pattern, handler)
    }

    /// Adds a `PUT` route.
    ///
    /// ```
    /// use skiff_sdk::http::{Request, Response};
    /// let router = skiff_sdk::Router::new()
    ///     .put("/items/:id", |req: Request| format!("replaced {}", req.param("id").unwrap_or("")));
    /// assert_eq!(router.handle(Request::new("PUT", "/items/4")).body, b"replaced 4");
    /// ```
    pub fn put<H, R>(self, pattern: &str, handler: H) -> Self
    where
        H: Fn(Request) -> R + Send + Sync + 'static,
        R: IntoResponse,
    {
        self.route("PUT", pattern, handler)
    }

    /// Adds a `PATCH` route.
    ///
    /// ```
    /// use skiff_sdk::http::{Request, Response};
    /// let router = skiff_sdk::Router::new().patch("/items/:id", |_req: Request| Response::new(204));
    /// assert_eq!(router.handle(Request::new("PATCH", "/items/4")).status, 204);
    /// ```
    pub fn patch<H, R>(self, pattern: &str, handler: H) -> Self
    where
        H: Fn(Request) -> R + Send + Sync + 'static,
        R: IntoResponse,
    {
        self.route("PATCH", pattern, handler)
    }

    /// Adds a `DELETE` route.
    ///
    /// ```
    /// use skiff_sdk::http::{Request, Response};
    /// let router = skiff_sdk::Router::new().delete("/items/:id", |_req: Request| Response::new(204));
    /// assert_eq!(router.handle(Request::new("DELETE", "/items/4")).status, 204);
    /// ```
    pub fn delete<H, R>(self, pattern: &str, handler: H) -> Self
    where
        H: Fn(Request) -> R + Send + Sync + 'static,
        R: IntoResponse,
    {
        self.route("DELETE", pattern, handler)
    }

    /// Answers `req` with the handler of the most specific matching route, binding its path
    /// parameters; `404` when no pattern matches the path, `405` (with `allow`) when patterns
    /// match only under other methods.
    ///
    /// ```
    /// use skiff_sdk::http::{Request, Response};
    /// let router = skiff_sdk::Router::new()
    ///     .get("/files/*path", |req: Request| req.param("path").unwrap_or("").to_string());
    /// assert_eq!(router.handle(Request::new("GET", "/files/a/b%20c.txt")).body, b"a/b c.txt");
    /// assert_eq!(router.handle(Request::new("GET", "/nope")).status, 404);
    /// ```
    pub fn handle(&self, mut req: Request) -> Response {
        let path: Vec<&str> = split_path(req.path_only());
        let method = req.method.to_ascii_uppercase();
        let matching: Vec<(&Route, Vec<(String, String)>)> = self
            .routes
            .iter()
            .filter_map(|route| Some((route, match_segments(&route.segments, &path)?)))
            .collect();
        if matching.is_empty() {
            return Error::not_found(format!("no route for {}", req.path_only())).into_response();
        }
        let best = |method: &str| {
            matching
                .iter()
                .filter(|(route, _)| route.method == method)
                .max_by(|(a, _), (b, _)| specificity(a).cmp(&specificity(b)))
        };
        let chosen = best(&method).or_else(|| (method == "HEAD").then(|| best("GET")).flatten());
        match chosen {
            Some((route, params)) => {
                req.set_params(params.clone());
                (route.handler)(req)
            }
            None => {
                let mut allowed: Vec<&str> =
                    matching.iter().map(|(r, _)| r.method.as_str()).collect();
                if allowed.contains(&"GET") {
                    allowed.push("HEAD");
                }
                allowed.sort_unstable();
                allowed.dedup();
                let allow = allowed.join(", ");
                Response::text(
                    405,
                    format!(
                        "method {method} is not allowed for {}; allowed: {allow}\n",
                        req.path_only()
                    ),
                )
                .with_header("allow", allow)
            }
        }
    }
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.routes
                    .iter()
                    .map(|r| format!("{} {}", r.method, r.pattern)),
            )
            .finish()
    }
}

fn split_path(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

fn parse_pattern(pattern: &str) -> Vec<Segment> {
    split_path(pattern)
        .into_iter()
        .map(|segment| {
            if let Some(name) = segment.strip_prefix(':') {
                Segment::Param(name.to_string())
            } else if let Some(name) = segment.strip_prefix('*') {
                Segment::Rest(name.to_string())
            } else {
                Segment::Literal(segment.to_string())
            }
        })
        .collect()
}

/// The parameters bound when `segments` match `path`, or `None`.
fn match_segments(segments: &[Segment], path: &[&str]) -> Option<Vec<(String, String)>> {
    let mut params = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        match segment {
            Segment::Rest(name) => {
                let rest: Vec<String> = path
                    .get(i..)
                    .unwrap_or_default()
                    .iter()
                    .map(|s| decode_path_segment(s))
                    .collect();
                params.push((name.clone(), rest.join("/")));
                return Some(params);
            }
            Segment::Literal(literal) => {
                if decode_path_segment(path.get(i)?) != *literal {
                    return None;
                }
            }
            Segment::Param(name) => params.push((name.clone(), decode_path_segment(path.get(i)?))),
        }
    }
    (segments.len() == path.len()).then_some(params)
}

fn specificity(route: &Route) -> Vec<u8> {
    route.segments.iter().map(Segment::rank).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo(label: &'static str) -> impl Fn(Request) -> Response + Send + Sync {
        move |req: Request| {
            let id = req.param("id").unwrap_or("-").to_string();
            Response::text(200, format!("{label} {id}"))
        }
    }

    fn body(resp: Response) -> String {
        resp.body_text()
    }

    #[test]
    fn most_specific_route_wins() {
        let router = Router::new()
            .get("/items/:id", echo("show"))
            .get("/items/new", echo("form"))
            .get("/items/*rest", echo("rest"))
            .get("/", echo("root"));
        assert_eq!(
            body(router.handle(Request::new("GET", "/items/new"))),
            "form -"
        );
        assert_eq!(
            body(router.handle(Request::new("GET", "/items/a%2Fb?x=1"))),
            "show a/b"
        );
        assert_eq!(
            body(router.handle(Request::new("GET", "/items/1/2"))),
            "rest -"
        );
        assert_eq!(
            body(router.handle(Request::new("GET", "/items/"))),
            "rest -"
        );
        assert_eq!(body(router.handle(Request::new("GET", "/"))), "root -");
        assert_eq!(
            body(router.handle(Request::new("HEAD", "/items/3"))),
            "show 3"
        );
    }

    #[test]
    fn unknown_paths_and_methods() {
        let router = Router::new()
            .get("/items", echo("list"))
            .post("/items", echo("create"))
            .delete("/items/:id", echo("delete"));
        let resp = router.handle(Request::new("GET", "/other"));
        assert_eq!(
            (resp.status, body(resp)),
            (404, "no route for /other\n".to_string())
        );
        let resp = router.handle(Request::new("PUT", "/items"));
        assert_eq!(resp.status, 405);
        assert_eq!(resp.header("allow"), Some("GET, HEAD, POST"));
        let resp = router.handle(Request::new("get", "/items/9"));
        assert_eq!(resp.header("allow"), Some("DELETE"));
        assert_eq!(
            body(router.handle(Request::new("post", "/items"))),
            "create -"
        );
    }

    #[test]
    fn result_handlers_map_errors() {
        let router = Router::new().post("/items", |req: Request| -> Result<Response, Error> {
            let value: serde_json::Value = req.json()?;
            Ok(Response::json(201, &value))
        });
        let resp = router.handle(Request::new("POST", "/items").with_body("{\"a\":1"));
        assert_eq!(resp.status, 400);
        assert!(body(resp).starts_with("invalid JSON body: EOF while parsing"));
        let resp = router.handle(Request::new("POST", "/items").with_body("{\"a\":1}"));
        assert_eq!((resp.status, body(resp)), (201, "{\"a\":1}".to_string()));
    }
}
