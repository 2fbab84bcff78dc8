//! The `/v2/` endpoints of the OCI Distribution API: reads (manifests, blobs, tags, catalog)
//! for node agents, writes (blob uploads, manifest pushes) for `skiff image import`.
//!
//! Mounted inside the API router, so the API's authentication and request logging apply.
//! Upload bodies are streamed to files, never held in memory; manifests (small) are read whole
//! up to [`DEFAULT_MAX_MANIFEST_BYTES`]. Errors answer with the distribution spec's JSON:
//! `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"…","detail":{}}]}`.

use std::path::Path;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use futures::StreamExt;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{
    validate_name, Digest, Reference, Registry, RegistryError, DEFAULT_MAX_MANIFEST_BYTES,
};

type Result<T> = std::result::Result<T, RegistryError>;

/// Size of the pieces a blob is streamed to clients in.
const DEFAULT_STREAM_CHUNK_BYTES: usize = 64 * 1024;

/// The `/v2/` routes, with their own state so they merge into any router.
pub fn router<S>(registry: Arc<Registry>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/v2", any(root))
        .route("/v2/", any(root))
        .route("/v2/{*rest}", any(dispatch))
        .with_state(registry)
}

/// `GET /v2/`: "this is a registry, and you are authenticated".
async fn root(req: Request) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return error_response(&RegistryError::Unsupported(format!(
            "{} is not supported on /v2/; use GET",
            req.method()
        )));
    }
    let mut resp = (StatusCode::OK, axum::Json(json!({}))).into_response();
    resp.headers_mut().insert(
        "Docker-Distribution-API-Version",
        HeaderValue::from_static("registry/2.0"),
    );
    resp
}

/// What a `/v2/…` path addresses.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    Catalog,
    Tags { name: String },
    Manifest { name: String, reference: String },
    Blob { name: String, digest: String },
    Uploads { name: String },
    Upload { name: String, id: String },
}

/// Splits `rest` (after `/v2/`) into a target. Repository names may contain `/`, so the
/// endpoint is recognised from the end of the path.
fn parse_path(rest: &str) -> Option<Target> {
    if rest == "_catalog" {
        return Some(Target::Catalog);
    }
    let segs: Vec<&str> = rest.split('/').collect();
    let n = segs.len();
    let name = |k: usize| segs[..k].join("/");
    if n >= 4 && segs[n - 3] == "blobs" && segs[n - 2] == "uploads" {
        return Some(if segs[n - 1].is_empty() {
            Target::Uploads { name: name(n - 3) }
        } else {
            Target::Upload {
                name: name(n - 3),
                id: segs[n - 1].to_string(),
            }
        });
    }
    if n < 3 {
        return None;
    }
    match (segs[n - 2], segs[n - 1]) {
        ("tags", "list") => Some(Target::Tags { name: name(n - 2) }),
        ("blobs", "uploads") => Some(Target::Uploads { name: name(n - 2) }),
        ("manifests", r) if !r.is_empty() => Some(Target::Manifest {
            name: name(n - 2),
            reference: r.to_string(),
        }),
        ("blobs", d) if !d.is_empty() => Some(Target::Blob {
            name: name(n - 2),
            digest: d.to_string(),
        }),
        _ => None,
    }
}

#[derive(Debug, Default, Deserialize)]
struct Params {
    digest: Option<String>,
    n: Option<usize>,
    last: Option<String>,
    mount: Option<String>,
}

/// Everything under `/v2/` but the root.
pub async fn dispatch(State(reg): State<Arc<Registry>>, req: Request) -> Response {
    let path = req
        .uri()
        .path()
        .strip_prefix("/v2/")
        .unwrap_or_default()
        .to_string();
    match route(reg, &path, req).await {
        Ok(resp) => resp,
        Err(e) => error_response(&e),
    }
}

async fn route(reg: Arc<Registry>, path: &str, req: Request) -> Result<Response> {
    let method = req.method().clone();
    let no_route = || RegistryError::NoRoute {
        method: method.to_string(),
        path: path.to_string(),
    };
    let target = parse_path(path).ok_or_else(no_route)?;
    let params: Params = match req.uri().query() {
        None | Some("") => Params::default(),
        Some(q) => serde_urlencoded::from_str(q)
            .map_err(|e| RegistryError::BadQuery(format!("{q:?}: {e}")))?,
    };
    match &target {
        Target::Catalog => {}
        Target::Tags { name }
        | Target::Manifest { name, .. }
        | Target::Blob { name, .. }
        | Target::Uploads { name }
        | Target::Upload { name, .. } => validate_name(name)?,
    }
    let head = method == Method::HEAD;
    match (method.clone(), target) {
        (Method::GET, Target::Catalog) => {
            let names = blocking(move || reg.catalog()).await?;
            let names = paginate(names, &params);
            Ok(axum::Json(json!({ "repositories": names })).into_response())
        }
        (Method::GET, Target::Tags { name }) => {
            let n = name.clone();
            let tags = blocking(move || reg.tags(&n)).await?;
            let tags = paginate(tags, &params);
            Ok(axum::Json(json!({ "name": name, "tags": tags })).into_response())
        }
        (Method::GET | Method::HEAD, Target::Manifest { name, reference }) => {
            let reference = Reference::parse(&name, &reference)?;
            let (digest, media_type, body) =
                blocking(move || reg.get_manifest(&name, &reference)).await?;
            let mut resp = Response::new(if head {
                Body::empty()
            } else {
                Body::from(body.clone())
            });
            let h = resp.headers_mut();
            h.insert(header::CONTENT_TYPE, header_value(&media_type)?);
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
            h.insert("Docker-Content-Digest", header_value(&digest.to_string())?);
            Ok(resp)
        }
        (Method::PUT, Target::Manifest { name, reference }) => {
            put_manifest(reg, name, reference, req).await
        }
        (Method::GET | Method::HEAD, Target::Blob { name, digest }) => {
            let digest = Digest::parse(&digest)?;
            get_blob(reg, name, digest, head).await
        }
        (Method::POST, Target::Uploads { name }) => start_upload(reg, name, params, req).await,
        (Method::GET, Target::Upload { name, id }) => {
            let (n, i) = (name.clone(), id.clone());
            let len = blocking(move || reg.upload_len(&n, &i)).await?;
            upload_accepted(&name, &id, len, StatusCode::NO_CONTENT)
        }
        (Method::PATCH, Target::Upload { name, id }) => patch_upload(reg, name, id, req).await,
        (Method::PUT, Target::Upload { name, id }) => {
            finish_upload(reg, name, id, params, req).await
        }
        (Method::DELETE, Target::Upload { name, id }) => {
            blocking(move || reg.cancel_upload(&name, &id)).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (Method::DELETE, _) => Err(RegistryError::Unsupported(
            "deleting from the cluster image store is not supported".into(),
        )),
        (m, _) => Err(RegistryError::Unsupported(format!(
            "{m} is not supported on /v2/{path}"
        ))),
    }
}

/// `?n=&last=` pagination over a sorted list.
fn paginate(items: Vec<String>, p: &Params) -> Vec<String> {
    let after = items
        .into_iter()
        .filter(|i| p.last.as_ref().is_none_or(|l| i > l));
    match p.n {
        Some(n) => after.take(n).collect(),
        None => after.collect(),
    }
}

async fn put_manifest(
    reg: Arc<Registry>,
    name: String,
    reference: String,
    req: Request,
) -> Result<Response> {
    let reference = Reference::parse(&name, &reference)?;
    let image = reference.image(&name);
    let too_large = || RegistryError::TooLarge {
        what: format!("the manifest for {image:?}"),
        limit: DEFAULT_MAX_MANIFEST_BYTES as u64,
    };
    if content_length(req.headers()).is_some_and(|l| l > DEFAULT_MAX_MANIFEST_BYTES as u64) {
        return Err(too_large());
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = http_body_util::Limited::new(req.into_body(), DEFAULT_MAX_MANIFEST_BYTES)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                too_large()
            } else {
                RegistryError::Body(e.to_string())
            }
        })?
        .to_bytes();
    let n = name.clone();
    let digest =
        blocking(move || reg.put_manifest(&n, &reference, content_type.as_deref(), &body)).await?;
    let mut resp = StatusCode::CREATED.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::LOCATION,
        header_value(&format!("/v2/{name}/manifests/{digest}"))?,
    );
    h.insert("Docker-Content-Digest", header_value(&digest.to_string())?);
    Ok(resp)
}

async fn get_blob(
    reg: Arc<Registry>,
    name: String,
    digest: Digest,
    head: bool,
) -> Result<Response> {
    let path = reg.blob_path(&digest);
    let unknown = || RegistryError::BlobUnknown {
        name: name.clone(),
        digest: digest.to_string(),
    };
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(unknown()),
        Err(e) => return Err(RegistryError::io(path, e)),
    };
    let len = file
        .metadata()
        .await
        .map_err(|e| RegistryError::io(&path, e))?
        .len();
    let mut resp = Response::new(if head { Body::empty() } else { file_body(file) });
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert("Docker-Content-Digest", header_value(&digest.to_string())?);
    Ok(resp)
}

/// Streams a file in [`DEFAULT_STREAM_CHUNK_BYTES`] pieces.
fn file_body(file: tokio::fs::File) -> Body {
    let stream = futures::stream::unfold(Some(file), |state| async move {
        let mut f = state?;
        let mut buf = vec![0u8; DEFAULT_STREAM_CHUNK_BYTES];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), Some(f)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    Body::from_stream(stream)
}

/// `POST …/blobs/uploads/`: a monolithic upload when `?digest=` is given, a cross-repository
/// mount when `?mount=` names a stored blob (blobs are global here), else a new session.
async fn start_upload(
    reg: Arc<Registry>,
    name: String,
    params: Params,
    req: Request,
) -> Result<Response> {
    if let Some(d) = &params.digest {
        let expected = Digest::parse(d)?;
        let tmp = reg.temp_path();
        let limit = reg.max_upload();
        let what = format!("the blob {expected} pushed to {name:?}");
        let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
        let written = append_body(&tmp, req, 0, limit, &what, Some(&mut hasher)).await;
        if let Err(e) = written {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        let actual = Digest::from_hasher(hasher);
        let e2 = expected.clone();
        blocking(move || reg.commit_blob(&tmp, &e2, &actual)).await?;
        return blob_created(&name, &expected);
    }
    if let Some(m) = &params.mount {
        let digest = Digest::parse(m)?;
        let r = reg.clone();
        let d = digest.clone();
        if blocking(move || r.blob_len(&d)).await?.is_some() {
            return blob_created(&name, &digest);
        }
    }
    let id = blocking(move || reg.start_upload()).await?;
    tracing::debug!(repository = %name, upload = %id, "blob upload started");
    upload_accepted(&name, &id, 0, StatusCode::ACCEPTED)
}

/// `PATCH …/uploads/<id>`: appends a chunk (at the offset `Content-Range` says, if given).
async fn patch_upload(
    reg: Arc<Registry>,
    name: String,
    id: String,
    req: Request,
) -> Result<Response> {
    let (r, n, i) = (reg.clone(), name.clone(), id.clone());
    let path = blocking(move || r.upload_path(&n, &i)).await?;
    let len = file_len(&path).await?;
    if let Some(range) = req.headers().get(header::CONTENT_RANGE) {
        let start = range
            .to_str()
            .ok()
            .and_then(|r| r.trim().trim_start_matches("bytes ").split('-').next())
            .and_then(|s| s.trim().parse::<u64>().ok());
        if start != Some(len) {
            return Err(RegistryError::RangeInvalid {
                name,
                id,
                reason: format!(
                    "Content-Range {range:?} does not continue the {len} bytes received so far"
                ),
            });
        }
    }
    let what = format!("the blob being pushed to {name:?} (upload {id})");
    let written = append_body(&path, req, len, reg.max_upload(), &what, None).await?;
    upload_accepted(&name, &id, len + written, StatusCode::ACCEPTED)
}

/// `PUT …/uploads/<id>?digest=`: the last chunk (if any), then verification and storage.
async fn finish_upload(
    reg: Arc<Registry>,
    name: String,
    id: String,
    params: Params,
    req: Request,
) -> Result<Response> {
    let expected =
        Digest::parse(
            params
                .digest
                .as_deref()
                .ok_or_else(|| RegistryError::DigestInvalid {
                    digest: String::new(),
                    reason: "finishing an upload needs the blob's digest as ?digest=sha256:…"
                        .into(),
                })?,
        )?;
    let (r, n, i) = (reg.clone(), name.clone(), id.clone());
    let path = blocking(move || r.upload_path(&n, &i)).await?;
    let len = file_len(&path).await?;
    let what = format!("the blob {expected} pushed to {name:?}");
    append_body(&path, req, len, reg.max_upload(), &what, None).await?;
    let (n, e) = (name.clone(), expected.clone());
    let size = blocking(move || reg.finish_upload(&n, &id, &e)).await?;
    tracing::info!(repository = %name, digest = %expected, bytes = size, "blob pushed");
    blob_created(&name, &expected)
}

/// Appends the request body to `path` (which holds `offset` bytes), refusing to grow it past
/// `limit`; hashes what it writes if asked. On failure the file is cut back to `offset`.
/// The data is fsynced before returning: an acknowledged chunk survives a crash.
async fn append_body(
    path: &Path,
    req: Request,
    offset: u64,
    limit: u64,
    what: &str,
    mut hasher: Option<&mut sha2::Sha256>,
) -> Result<u64> {
    let too_large = || RegistryError::TooLarge {
        what: what.to_string(),
        limit,
    };
    if content_length(req.headers()).is_some_and(|l| offset.saturating_add(l) > limit) {
        return Err(too_large());
    }
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
        .map_err(|e| RegistryError::io(path, e))?;
    let mut stream = req.into_body().into_data_stream();
    let mut written = 0u64;
    let res: Result<()> = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| RegistryError::Body(e.to_string()))?;
            written += chunk.len() as u64;
            if offset.saturating_add(written) > limit {
                return Err(too_large());
            }
            if let Some(h) = hasher.as_deref_mut() {
                sha2::Digest::update(h, &chunk);
            }
            file.write_all(&chunk)
                .await
                .map_err(|e| RegistryError::io(path, e))?;
        }
        file.flush().await.map_err(|e| RegistryError::io(path, e))?;
        file.sync_data()
            .await
            .map_err(|e| RegistryError::io(path, e))
    }
    .await;
    if let Err(e) = res {
        let _ = file.set_len(offset).await;
        return Err(e);
    }
    Ok(written)
}

async fn file_len(path: &Path) -> Result<u64> {
    tokio::fs::metadata(path)
        .await
        .map(|m| m.len())
        .map_err(|e| RegistryError::io(path, e))
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

fn blob_created(name: &str, digest: &Digest) -> Result<Response> {
    let mut resp = StatusCode::CREATED.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::LOCATION,
        header_value(&format!("/v2/{name}/blobs/{digest}"))?,
    );
    h.insert("Docker-Content-Digest", header_value(&digest.to_string())?);
    Ok(resp)
}

fn upload_accepted(name: &str, id: &str, len: u64, status: StatusCode) -> Result<Response> {
    let mut resp = status.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::LOCATION,
        header_value(&format!("/v2/{name}/blobs/uploads/{id}"))?,
    );
    // "0-<last byte>"; "0-0" before any byte arrived, as registries answer.
    h.insert(
        header::RANGE,
        header_value(&format!("0-{}", len.saturating_sub(1)))?,
    );
    h.insert("Docker-Upload-UUID", header_value(id)?);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    Ok(resp)
}

fn header_value(s: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(s)
        .map_err(|_| RegistryError::Internal(format!("{s:?} is not a valid header value")))
}

/// Runs a blocking store operation on the blocking pool.
async fn blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RegistryError::Internal(format!("store task failed: {e}")))?
}

/// The distribution spec's error body.
pub fn error_response(e: &RegistryError) -> Response {
    let status = e.status();
    if status.is_server_error() {
        tracing::error!(error = %e, "image store request failed");
    } else {
        tracing::debug!(error = %e, code = e.code(), "image store request refused");
    }
    let body = json!({"errors": [{"code": e.code(), "message": e.to_string(), "detail": {}}]});
    (status, axum::Json(body)).into_response()
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        error_response(&self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_split_from_the_end() {
        let t = |p| parse_path(p);
        assert_eq!(t("_catalog"), Some(Target::Catalog));
        assert_eq!(
            t("team/api/tags/list"),
            Some(Target::Tags {
                name: "team/api".into()
            })
        );
        assert_eq!(
            t("x/manifests/manifests/v1"),
            Some(Target::Manifest {
                name: "x/manifests".into(),
                reference: "v1".into()
            })
        );
        assert_eq!(
            t("a/b/blobs/sha256:00"),
            Some(Target::Blob {
                name: "a/b".into(),
                digest: "sha256:00".into()
            })
        );
        assert_eq!(
            t("a/blobs/uploads/"),
            Some(Target::Uploads { name: "a".into() })
        );
        assert_eq!(
            t("a/blobs/uploads"),
            Some(Target::Uploads { name: "a".into() })
        );
        assert_eq!(
            t("a/blobs/uploads/123"),
            Some(Target::Upload {
                name: "a".into(),
                id: "123".into()
            })
        );
        assert_eq!(t("a"), None);
        assert_eq!(t("a/manifests/"), None);
    }
}
