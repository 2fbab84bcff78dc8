//! Image pulls against a small in-process registry on 127.0.0.1 (plain HTTP, bearer token):
//! reference resolution, verification, pull policies offline, sharing of concurrent pulls,
//! and the error messages a pod's events show.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{json, Value};
use sha2::Digest as _;
use skiff_node_runtime::images::reference::Source;
use skiff_node_runtime::images::{
    ImageKind, ImagePuller, ImageRef, PullError, PullPolicy, RegistryTarget,
};

const TOKEN: &str = "node-token";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn digest(b: &[u8]) -> String {
    let h = sha2::Sha256::digest(b);
    format!(
        "sha256:{}",
        h.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// Content type and body served at a path.
type Routes = HashMap<String, (String, Vec<u8>)>;

/// A registry holding fixed responses by path; counts blob downloads.
#[derive(Clone, Default)]
struct Fake {
    routes: Arc<Mutex<Routes>>,
    blob_gets: Arc<AtomicUsize>,
}

impl Fake {
    fn put(&self, path: String, content_type: &str, body: Vec<u8>) {
        self.routes
            .lock()
            .unwrap()
            .insert(path, (content_type.to_string(), body));
    }

    /// Stores `bytes` under `digest_of` (normally their own digest); returns a descriptor.
    fn blob_as(&self, repo: &str, media_type: &str, bytes: &[u8], digest_of: &[u8]) -> Value {
        let d = digest(digest_of);
        self.put(
            format!("/v2/{repo}/blobs/{d}"),
            "application/octet-stream",
            bytes.to_vec(),
        );
        json!({"mediaType": media_type, "digest": d, "size": bytes.len()})
    }

    fn blob(&self, repo: &str, media_type: &str, bytes: &[u8]) -> Value {
        self.blob_as(repo, media_type, bytes, bytes)
    }

    fn manifest(&self, repo: &str, tag: &str, media_type: &str, m: &Value) -> String {
        let body = serde_json::to_vec(m).unwrap();
        let d = digest(&body);
        self.put(
            format!("/v2/{repo}/manifests/{tag}"),
            media_type,
            body.clone(),
        );
        self.put(format!("/v2/{repo}/manifests/{d}"), media_type, body);
        d
    }

    /// A Wasm artifact `repo:tag` whose component is `component`.
    fn wasm(&self, repo: &str, tag: &str, component: &[u8]) -> String {
        let config = self.blob(
            repo,
            "application/vnd.wasm.config.v0+json",
            br#"{"architecture":"wasm","os":"wasip2"}"#,
        );
        let layer = self.blob(repo, "application/wasm", component);
        self.manifest(repo, tag, OCI_MANIFEST, &json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer]}))
    }

    fn blob_gets(&self) -> usize {
        self.blob_gets.load(Ordering::SeqCst)
    }
}

async fn handle(State(f): State<Fake>, req: Request) -> Response {
    let authorized = req
        .headers()
        .get("authorization")
        .is_some_and(|v| v == format!("Bearer {TOKEN}").as_str());
    if !authorized {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(
                json!({"errors": [{"code": "UNAUTHORIZED", "message": "bearer token required"}]}),
            ),
        )
            .into_response();
    }
    let path = req.uri().path().to_string();
    if path == "/v2/" {
        return axum::Json(json!({})).into_response();
    }
    let Some((ct, body)) = f.routes.lock().unwrap().get(&path).cloned() else {
        let code = if path.contains("/blobs/") {
            "BLOB_UNKNOWN"
        } else {
            "MANIFEST_UNKNOWN"
        };
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"errors": [{"code": code, "message": format!("{path} unknown")}]})),
        )
            .into_response();
    };
    if path.contains("/blobs/") && req.method() == http::Method::GET {
        f.blob_gets.fetch_add(1, Ordering::SeqCst);
        // Slow enough that concurrent pulls overlap.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let len = body.len();
    let mut resp = Response::new(if req.method() == http::Method::HEAD {
        Body::empty()
    } else {
        Body::from(body.clone())
    });
    let h = resp.headers_mut();
    h.insert("content-type", ct.parse().unwrap());
    h.insert("content-length", len.into());
    if path.contains("/manifests/") {
        h.insert("docker-content-digest", digest(&body).parse().unwrap());
    }
    resp
}

async fn serve(f: &Fake) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new().fallback(handle).with_state(f.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, task)
}

fn puller(dir: &std::path::Path, addr: SocketAddr, token: &str) -> ImagePuller {
    ImagePuller::new(
        dir,
        RegistryTarget {
            base_url: format!("http://{addr}"),
            ca_pem: String::new(),
            token: token.to_string(),
        },
    )
    .unwrap()
}

fn component(kind: &ImageKind) -> Vec<u8> {
    match kind {
        ImageKind::Wasm { component_path } => std::fs::read(component_path).unwrap(),
        other => panic!("expected a Wasm image, got {other:?}"),
    }
}

#[test]
fn references_resolve_to_the_cluster_or_their_registry() {
    let r = ImageRef::parse("hello-wasm:v1").unwrap();
    assert_eq!(
        (r.source, r.repository.as_str(), r.tag.as_deref()),
        (Source::Cluster, "hello-wasm", Some("v1"))
    );
    let r = ImageRef::parse("team/api").unwrap();
    assert_eq!(
        (r.source.clone(), r.tag.as_deref()),
        (Source::Cluster, Some("latest"))
    );
    assert_eq!(r.key(), ImageRef::parse("team/api:latest").unwrap().key());
    let d = digest(b"x");
    let r = ImageRef::parse(&format!("hello@{d}")).unwrap();
    assert_eq!(
        (r.source.clone(), r.tag.clone(), r.digest.clone()),
        (Source::Cluster, None, Some(d.clone()))
    );
    assert_eq!(r.short_name(), format!("hello@{d}"));
    let r = ImageRef::parse("ghcr.io/x/y:1").unwrap();
    assert_eq!(
        (r.source, r.repository.as_str()),
        (Source::Registry("ghcr.io".into()), "x/y")
    );
    let r = ImageRef::parse("localhost:5000/x").unwrap();
    assert_eq!(
        (r.source.clone(), r.tag.as_deref()),
        (Source::Registry("localhost:5000".into()), Some("latest"))
    );
    assert_eq!(
        r.to_oci("127.0.0.1:6443").whole(),
        "localhost:5000/x:latest"
    );
    let r = ImageRef::parse("docker.io/nginx:1.27").unwrap();
    assert_eq!(r.repository, "library/nginx");
    let r = ImageRef::parse("team/api:2").unwrap();
    assert_eq!(
        r.to_oci("127.0.0.1:6443").whole(),
        "127.0.0.1:6443/team/api:2"
    );
    for bad in ["", "Hello:v1", "a:b:c", "x@sha256:abc"] {
        let e = ImageRef::parse(bad).unwrap_err();
        assert!(
            matches!(e, PullError::InvalidReference { .. }),
            "{bad}: {e}"
        );
        assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
    }
}

#[tokio::test]
async fn wasm_pull_is_cached_and_works_offline() {
    let f = Fake::default();
    let wasm = b"\0asm\x0d\0\x01\0component bytes".to_vec();
    let d = f.wasm("hello-wasm", "v1", &wasm);
    let (addr, server) = serve(&f).await;
    let dir = tempfile::tempdir().unwrap();
    let p = puller(dir.path(), addr, TOKEN);

    let img = p
        .pull("hello-wasm:v1", PullPolicy::IfNotPresent)
        .await
        .unwrap();
    assert_eq!(
        (img.digest.as_str(), img.from_cache, img.reference.as_str()),
        (d.as_str(), false, "hello-wasm:v1")
    );
    assert_eq!(component(&img.kind), wasm);
    assert_eq!(f.blob_gets(), 2);

    let again = p
        .pull("hello-wasm:v1", PullPolicy::IfNotPresent)
        .await
        .unwrap();
    assert!(again.from_cache);
    let always = p.pull("hello-wasm:v1", PullPolicy::Always).await.unwrap();
    assert!(always.from_cache, "an unchanged digest downloads nothing");
    assert_eq!(f.blob_gets(), 2);

    // The registry changes the tag: Always follows, IfNotPresent keeps what it has.
    let new = b"\0asm\x0d\0\x01\0version two".to_vec();
    let d2 = f.wasm("hello-wasm", "v1", &new);
    let kept = p
        .pull("hello-wasm:v1", PullPolicy::IfNotPresent)
        .await
        .unwrap();
    assert_eq!(kept.digest, d);
    let moved = p.pull("hello-wasm:v1", PullPolicy::Always).await.unwrap();
    assert_eq!(
        (moved.digest.as_str(), moved.from_cache),
        (d2.as_str(), false)
    );
    assert_eq!(component(&moved.kind), new);

    // Registry gone, agent restarted: the local refs still serve IfNotPresent and Never.
    server.abort();
    drop(p);
    let p = puller(dir.path(), addr, TOKEN);
    for policy in [PullPolicy::IfNotPresent, PullPolicy::Never] {
        let img = p.pull("hello-wasm:v1", policy).await.unwrap();
        assert_eq!((img.digest.as_str(), img.from_cache), (d2.as_str(), true));
    }
    let pinned = p
        .pull(&format!("hello-wasm@{d}"), PullPolicy::Never)
        .await
        .unwrap();
    assert_eq!(component(&pinned.kind), wasm);
    let e = p
        .pull("hello-wasm:v1", PullPolicy::Always)
        .await
        .unwrap_err();
    assert!(matches!(e, PullError::Unreachable { .. }), "{e}");
    assert!(e.to_string().contains("\"hello-wasm:v1\""), "{e}");
    let e = p.pull("other:v1", PullPolicy::Never).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "image \"other:v1\" is not present on this node and its imagePullPolicy is Never"
    );
}

#[tokio::test]
async fn missing_images_and_bad_tokens_are_explained() {
    let f = Fake::default();
    let (addr, _server) = serve(&f).await;
    let dir = tempfile::tempdir().unwrap();
    let p = puller(dir.path(), addr, TOKEN);
    let e = p.pull("x:v1", PullPolicy::IfNotPresent).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "image \"x:v1\" not found in the cluster image store; import it with `skiff image import FILE --name x:v1`"
    );
    let e = p.pull("team/x", PullPolicy::Always).await.unwrap_err();
    assert!(e.to_string().contains("--name team/x:latest"), "{e}");

    f.wasm("hello", "v1", b"\0asm");
    let bad = puller(tempfile::tempdir().unwrap().path(), addr, "wrong");
    let e = bad
        .pull("hello:v1", PullPolicy::IfNotPresent)
        .await
        .unwrap_err();
    assert!(matches!(e, PullError::Unauthorized { .. }), "{e}");
    assert!(e.to_string().contains("\"hello:v1\""), "{e}");

    // A registry nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let gone = puller(tempfile::tempdir().unwrap().path(), port, TOKEN);
    let e = gone
        .pull("hello:v1", PullPolicy::IfNotPresent)
        .await
        .unwrap_err();
    assert!(matches!(e, PullError::Unreachable { .. }), "{e}");
    assert!(e.to_string().contains(&format!("http://{port}")), "{e}");
}

#[tokio::test]
async fn blobs_that_do_not_match_their_digest_are_refused() {
    let f = Fake::default();
    let config = f.blob("evil", "application/vnd.wasm.config.v0+json", b"{}");
    // The layer's descriptor promises sha256("good") but the registry serves "evil".
    let layer = f.blob_as("evil", "application/wasm", b"evil", b"good");
    f.manifest("evil", "v1", OCI_MANIFEST, &json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer]}));
    let (addr, _server) = serve(&f).await;
    let dir = tempfile::tempdir().unwrap();
    let p = puller(dir.path(), addr, TOKEN);
    let e = p
        .pull("evil:v1", PullPolicy::IfNotPresent)
        .await
        .unwrap_err();
    assert!(matches!(e, PullError::DigestMismatch { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("\"evil:v1\"")
            && msg.contains(&digest(b"good"))
            && msg.contains(&digest(b"evil")),
        "{msg}"
    );
    let stored = dir
        .path()
        .join("blobs/sha256")
        .join(&digest(b"good")["sha256:".len()..]);
    assert!(
        !stored.exists(),
        "an unverified blob must not become visible"
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0
    );
    // Nothing half-pulled counts as present.
    let e = p.pull("evil:v1", PullPolicy::Never).await.unwrap_err();
    assert!(matches!(e, PullError::NotPresent { .. }), "{e}");
}

#[tokio::test]
async fn indexes_oci_images_and_unsupported_artifacts() {
    let f = Fake::default();
    let oci_cfg = f.blob(
        "app",
        "application/vnd.oci.image.config.v1+json",
        br#"{"architecture":"amd64","os":"linux"}"#,
    );
    let oci_layer = f.blob(
        "app",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        b"layer-bytes",
    );
    let oci = f.manifest("app", "linux", OCI_MANIFEST, &json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": oci_cfg, "layers": [oci_layer]}));
    let wasm = f.wasm("app", "wasm", b"\0asm component");
    let host = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    let entry = |d: &str, os: &str, arch: &str| json!({"mediaType": OCI_MANIFEST, "digest": d, "size": 1, "platform": {"os": os, "architecture": arch}});
    let index = f.manifest("app", "both", OCI_INDEX, &json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry(&oci, "linux", host), entry(&wasm, "wasip2", "wasm")]}));
    f.manifest("app", "linux-only", OCI_INDEX, &json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry(&oci, "linux", host)]}));
    f.manifest("app", "windows", OCI_INDEX, &json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry(&oci, "windows", "amd64")]}));
    let helm_cfg = f.blob("chart", "application/vnd.cncf.helm.config.v1+json", b"{}");
    let helm_layer = f.blob(
        "chart",
        "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
        b"chart",
    );
    f.manifest("chart", "1", OCI_MANIFEST, &json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": helm_cfg, "layers": [helm_layer]}));
    let (addr, _server) = serve(&f).await;
    let dir = tempfile::tempdir().unwrap();
    let p = puller(dir.path(), addr, TOKEN);

    let img = p.pull("app:both", PullPolicy::IfNotPresent).await.unwrap();
    assert_eq!(
        img.digest, index,
        "the digest is the one the reference resolved to"
    );
    assert_eq!(component(&img.kind), b"\0asm component");
    let cached = p.pull("app:both", PullPolicy::Never).await.unwrap();
    assert!(matches!(cached.kind, ImageKind::Wasm { .. }));

    let img = p
        .pull("app:linux-only", PullPolicy::IfNotPresent)
        .await
        .unwrap();
    let ImageKind::Oci {
        manifest_path,
        config_path,
        layer_paths,
    } = &img.kind
    else {
        panic!("expected an OCI image, got {:?}", img.kind);
    };
    assert!(manifest_path.ends_with(&oci["sha256:".len()..]));
    assert!(std::fs::read(config_path)
        .unwrap()
        .starts_with(b"{\"architecture\""));
    assert_eq!(std::fs::read(&layer_paths[0]).unwrap(), b"layer-bytes");

    let e = p
        .pull("app:windows", PullPolicy::IfNotPresent)
        .await
        .unwrap_err();
    assert!(matches!(e, PullError::NoMatchingPlatform { .. }), "{e}");
    assert!(e.to_string().contains("windows/amd64"), "{e}");
    let e = p
        .pull("chart:1", PullPolicy::IfNotPresent)
        .await
        .unwrap_err();
    assert!(matches!(e, PullError::UnsupportedMediaType { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("application/vnd.cncf.helm.config.v1+json")
            && e.to_string().contains("\"chart:1\""),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pulls_of_one_reference_share_the_download() {
    let f = Fake::default();
    f.wasm("shared", "v1", b"\0asm shared");
    let (addr, _server) = serve(&f).await;
    let dir = tempfile::tempdir().unwrap();
    let p = Arc::new(puller(dir.path(), addr, TOKEN));
    let pulls: Vec<_> = (0..6)
        .map(|i| {
            let p = p.clone();
            let policy = if i % 2 == 0 {
                PullPolicy::IfNotPresent
            } else {
                PullPolicy::Always
            };
            tokio::spawn(async move { p.pull("shared:v1", policy).await })
        })
        .collect();
    let mut digests = HashSet::new();
    for t in pulls {
        digests.insert(t.await.unwrap().unwrap().digest);
    }
    assert_eq!(digests.len(), 1);
    assert_eq!(f.blob_gets(), 2, "config and layer are downloaded once");
}
