//! Tests of the image store on disk, and of its routes through a real HTTP/1.1 server on
//! 127.0.0.1 (without the API's authentication, which the end-to-end tests cover).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::body::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};

use super::*;

fn open(dir: &Path) -> Registry {
    Registry::open(&dir.join("registry")).unwrap()
}

fn manifest(config: &[u8], layers: &[&[u8]], layer_type: &str) -> Vec<u8> {
    let d = |b: &[u8], mt: &str| json!({"mediaType": mt, "digest": Digest::of(b).to_string(), "size": b.len()});
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": d(config, "application/vnd.wasm.config.v0+json"),
        "layers": layers.iter().map(|l| d(l, layer_type)).collect::<Vec<_>>(),
    }))
    .unwrap()
}

fn tmp_is_empty(reg: &Registry) -> bool {
    std::fs::read_dir(reg.root().join("tmp"))
        .unwrap()
        .next()
        .is_none()
}

#[test]
fn blobs_are_content_addressed_and_verified() {
    let dir = tempfile::tempdir().unwrap();
    let reg = open(dir.path());
    let d = reg.put_blob(b"hello").unwrap();
    assert_eq!(d, Digest::of(b"hello"));
    assert_eq!(reg.read_blob(&d).unwrap().unwrap(), b"hello");
    assert_eq!(reg.blob_len(&d).unwrap(), Some(5));
    assert!(reg
        .blob_path(&d)
        .ends_with(format!("blobs/sha256/{}", d.hex())));

    // A file whose content does not match the claimed digest never becomes a blob.
    let tmp = reg.temp_path();
    std::fs::write(&tmp, b"evil").unwrap();
    let claimed = Digest::of(b"good");
    let err = reg
        .commit_blob(&tmp, &claimed, &Digest::of(b"evil"))
        .unwrap_err();
    assert_eq!(err.code(), "DIGEST_INVALID");
    assert!(err.to_string().contains(&Digest::of(b"evil").to_string()));
    assert_eq!(reg.blob_len(&claimed).unwrap(), None);
    assert!(!tmp.exists());
    assert!(tmp_is_empty(&reg));
}

#[test]
fn upload_sessions_verify_on_finish() {
    let dir = tempfile::tempdir().unwrap();
    let reg = open(dir.path());
    let id = reg.start_upload().unwrap();
    std::fs::write(reg.upload_path("a", &id).unwrap(), b"chunked data").unwrap();
    assert_eq!(reg.upload_len("a", &id).unwrap(), 12);
    let err = reg
        .finish_upload("a", &id, &Digest::of(b"other"))
        .unwrap_err();
    assert_eq!(err.code(), "DIGEST_INVALID");
    // The failed session is gone, and nothing was stored.
    assert_eq!(
        reg.upload_len("a", &id).unwrap_err().code(),
        "BLOB_UPLOAD_UNKNOWN"
    );
    assert_eq!(reg.blob_len(&Digest::of(b"other")).unwrap(), None);

    let id = reg.start_upload().unwrap();
    std::fs::write(reg.upload_path("a", &id).unwrap(), b"chunked data").unwrap();
    assert_eq!(
        reg.finish_upload("a", &id, &Digest::of(b"chunked data"))
            .unwrap(),
        12
    );
    assert_eq!(
        reg.blob_len(&Digest::of(b"chunked data")).unwrap(),
        Some(12)
    );
    assert_eq!(
        reg.upload_path("a", "../../etc/passwd").unwrap_err().code(),
        "BLOB_UPLOAD_UNKNOWN"
    );
}

#[test]
fn manifests_need_their_blobs_and_are_tagged_durably() {
    let dir = tempfile::tempdir().unwrap();
    let reg = open(dir.path());
    let m = manifest(b"{}", &[b"\0asm\x0d\0\x01\0"], "application/wasm");
    let tag = Reference::Tag("v1".into());
    let err = reg.put_manifest("team/hello", &tag, None, &m).unwrap_err();
    assert_eq!(err.code(), "MANIFEST_BLOB_UNKNOWN");
    assert!(err.to_string().contains("team/hello:v1"), "{err}");

    reg.put_blob(b"{}").unwrap();
    reg.put_blob(b"\0asm\x0d\0\x01\0").unwrap();
    let digest = reg
        .put_manifest("team/hello", &tag, Some(OCI_MANIFEST), &m)
        .unwrap();
    assert_eq!(digest, Digest::of(&m));
    let (d, mt, body) = reg.get_manifest("team/hello", &tag).unwrap();
    assert_eq!(
        (d.clone(), mt.as_str(), body),
        (digest.clone(), OCI_MANIFEST, m.clone())
    );
    let (d2, _) = reg
        .resolve("team/hello", &Reference::Digest(digest.clone()))
        .unwrap();
    assert_eq!(d2, digest);
    assert!(tmp_is_empty(&reg));

    // Another repository does not have it; an unknown tag is MANIFEST_UNKNOWN naming both.
    let err = reg.resolve("other", &tag).unwrap_err();
    assert_eq!(
        (err.code(), err.status()),
        ("MANIFEST_UNKNOWN", StatusCode::NOT_FOUND)
    );
    let err = reg
        .resolve("team/hello", &Reference::Tag("v9".into()))
        .unwrap_err();
    assert!(err.to_string().contains("team/hello:v9"), "{err}");

    // A digest reference must match the content.
    let err = reg
        .put_manifest("x", &Reference::Digest(Digest::of(b"nope")), None, &m)
        .unwrap_err();
    assert_eq!(err.code(), "DIGEST_INVALID");

    // Retagging moves the tag; both survive reopening the store.
    reg.put_manifest("hello", &Reference::Tag("latest".into()), None, &m)
        .unwrap();
    reg.put_manifest("hello", &Reference::Tag("v1".into()), None, &m)
        .unwrap();
    std::fs::write(reg.root().join("tmp/leftover"), b"x").unwrap();
    drop(reg);
    let reg = open(dir.path());
    assert!(tmp_is_empty(&reg));
    assert_eq!(reg.tags("hello").unwrap(), vec!["latest", "v1"]);
    assert_eq!(reg.tags("team/hello").unwrap(), vec!["v1"]);
    assert_eq!(reg.catalog().unwrap(), vec!["hello", "team/hello"]);
    assert_eq!(reg.tags("nothing").unwrap_err().code(), "NAME_UNKNOWN");
}

#[test]
fn invalid_manifests_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let reg = open(dir.path());
    let tag = Reference::Tag("v1".into());
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"not json".to_vec(), "not a JSON"),
        (br#"{"schemaVersion":1}"#.to_vec(), "schemaVersion must be 2"),
        (
            br#"{"schemaVersion":2,"mediaType":"application/vnd.example+json"}"#.to_vec(),
            "unsupported manifest media type",
        ),
        (
            br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}"#
                .to_vec(),
            "needs a config",
        ),
    ];
    for (body, want) in cases {
        let err = reg.put_manifest("a", &tag, None, &body).unwrap_err();
        assert_eq!(err.code(), "MANIFEST_INVALID");
        assert!(err.to_string().contains(want), "{err} should say {want}");
    }
    // Declared size must match the stored blob.
    reg.put_blob(b"cfg").unwrap();
    let bad = json!({"schemaVersion":2,"mediaType":OCI_MANIFEST,"config":{"mediaType":"x","digest":Digest::of(b"cfg").to_string(),"size":99},"layers":[]});
    let err = reg
        .put_manifest("a", &tag, None, bad.to_string().as_bytes())
        .unwrap_err();
    assert!(err.to_string().contains("declared as 99 bytes"), "{err}");
    // An index may only list manifests of the same repository.
    let index = json!({"schemaVersion":2,"mediaType":OCI_INDEX,"manifests":[{"mediaType":OCI_MANIFEST,"digest":Digest::of(b"cfg").to_string(),"size":3}]});
    let err = reg
        .put_manifest("a", &tag, None, index.to_string().as_bytes())
        .unwrap_err();
    assert_eq!(err.code(), "MANIFEST_BLOB_UNKNOWN");
    // Content-Type and mediaType must agree.
    let err = reg
        .put_manifest("a", &tag, Some(OCI_INDEX), bad.to_string().as_bytes())
        .unwrap_err();
    assert!(err.to_string().contains("differs"), "{err}");
}

#[test]
fn names_tags_and_digests_follow_the_spec() {
    for ok in [
        "a",
        "hello-wasm",
        "team/api",
        "a.b_c__d---e/f0",
        "x/manifests",
    ] {
        assert!(validate_name(ok).is_ok(), "{ok}");
    }
    for bad in [
        "",
        "Hello",
        "a//b",
        "/a",
        "a/",
        "-a",
        "a-",
        "a..b",
        "a___b",
        "_tags",
        "a/_manifests",
    ] {
        assert_eq!(
            validate_name(bad).unwrap_err().code(),
            "NAME_INVALID",
            "{bad}"
        );
    }
    assert!(validate_name(&"a".repeat(256)).is_err());
    for ok in ["v1", "latest", "_x", "1.0-rc.1", &"a".repeat(128)] {
        assert!(valid_tag(ok), "{ok}");
    }
    for bad in ["", ".", "..", "-x", ".hidden", "a/b", &"a".repeat(129)] {
        assert!(!valid_tag(bad), "{bad}");
    }
    assert!(Digest::parse(&format!("sha256:{}", "a".repeat(64))).is_ok());
    for bad in [
        "sha256:abc",
        "md5:00",
        "sha256",
        &format!("sha256:{}", "A".repeat(64)),
    ] {
        assert_eq!(
            Digest::parse(bad).unwrap_err().code(),
            "DIGEST_INVALID",
            "{bad}"
        );
    }
}

// ---- routes, through a real server ----

async fn serve(reg: Registry) -> SocketAddr {
    let app: axum::Router = routes::router(Arc::new(reg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Resp {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "registry.test");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(http_body_util::Full::new(Bytes::copy_from_slice(body)))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Resp {
        status,
        headers,
        body,
    }
}

#[tokio::test]
async fn push_and_pull_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let addr = serve(open(dir.path()).with_max_upload(64)).await;
    let r = send(addr, Method::GET, "/v2/", &[], b"").await;
    assert_eq!((r.status, r.json()), (StatusCode::OK, json!({})));

    // Monolithic upload of the config.
    let cfg = b"{}";
    let url = format!("/v2/team/app/blobs/uploads/?digest={}", Digest::of(cfg));
    let r = send(addr, Method::POST, &url, &[], cfg).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(
        r.header("location"),
        format!("/v2/team/app/blobs/{}", Digest::of(cfg))
    );

    // Chunked upload of the layer: session, two PATCHes (one out of order), PUT.
    let layer = b"0123456789abcdef";
    let r = send(addr, Method::POST, "/v2/team/app/blobs/uploads/", &[], b"").await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let loc = r.header("location").to_string();
    assert!(loc.starts_with("/v2/team/app/blobs/uploads/"), "{loc}");
    let r = send(
        addr,
        Method::PATCH,
        &loc,
        &[("content-range", "0-7")],
        &layer[..8],
    )
    .await;
    assert_eq!((r.status, r.header("range")), (StatusCode::ACCEPTED, "0-7"));
    let r = send(
        addr,
        Method::PATCH,
        &loc,
        &[("content-range", "0-7")],
        &layer[..8],
    )
    .await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.json()["errors"][0]["code"], "BLOB_UPLOAD_INVALID");
    let r = send(
        addr,
        Method::PATCH,
        &loc,
        &[("content-range", "8-15")],
        &layer[8..],
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = send(
        addr,
        Method::PUT,
        &format!("{loc}?digest={}", Digest::of(layer)),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(
        r.header("docker-content-digest"),
        Digest::of(layer).to_string()
    );

    // Blobs: HEAD and GET.
    let blob_url = format!("/v2/team/app/blobs/{}", Digest::of(layer));
    let r = send(addr, Method::HEAD, &blob_url, &[], b"").await;
    assert_eq!(
        (r.status, r.header("content-length")),
        (StatusCode::OK, "16")
    );
    let r = send(addr, Method::GET, &blob_url, &[], b"").await;
    assert_eq!(&r.body[..], layer);
    let missing = format!("/v2/team/app/blobs/{}", Digest::of(b"missing"));
    let r = send(addr, Method::HEAD, &missing, &[], b"").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Manifest push and pull.
    let m = manifest(cfg, &[layer], "application/wasm");
    let r = send(
        addr,
        Method::PUT,
        "/v2/team/app/manifests/v1",
        &[("content-type", OCI_MANIFEST)],
        &m,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let digest = Digest::of(&m).to_string();
    assert_eq!(r.header("docker-content-digest"), digest);
    for path in [
        "/v2/team/app/manifests/v1".to_string(),
        format!("/v2/team/app/manifests/{digest}"),
    ] {
        let r = send(addr, Method::GET, &path, &[], b"").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("content-type"), OCI_MANIFEST);
        assert_eq!(r.header("docker-content-digest"), digest);
        assert_eq!(&r.body[..], &m[..]);
    }
    let r = send(addr, Method::HEAD, "/v2/team/app/manifests/v1", &[], b"").await;
    assert_eq!(r.header("content-length"), m.len().to_string());
    assert!(r.body.is_empty());

    let r = send(addr, Method::GET, "/v2/team/app/manifests/v2", &[], b"").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let e = &r.json()["errors"][0];
    assert_eq!(e["code"], "MANIFEST_UNKNOWN");
    assert!(
        e["message"].as_str().unwrap().contains("team/app:v2"),
        "{e}"
    );

    let r = send(addr, Method::GET, "/v2/team/app/tags/list", &[], b"").await;
    assert_eq!(r.json(), json!({"name": "team/app", "tags": ["v1"]}));
    let r = send(addr, Method::GET, "/v2/_catalog", &[], b"").await;
    assert_eq!(r.json(), json!({"repositories": ["team/app"]}));
}

#[tokio::test]
async fn bad_uploads_are_refused_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let addr = serve(open(dir.path()).with_max_upload(64)).await;
    // Digest mismatch on a monolithic upload.
    let url = format!("/v2/a/blobs/uploads/?digest={}", Digest::of(b"x"));
    let r = send(addr, Method::POST, &url, &[], b"y").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["errors"][0]["code"], "DIGEST_INVALID");
    // Too large, announced and streamed.
    let big = vec![7u8; 65];
    let url = format!("/v2/a/blobs/uploads/?digest={}", Digest::of(&big));
    let r = send(addr, Method::POST, &url, &[], &big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.json()["errors"][0]["code"], "SIZE_INVALID");
    let r = send(addr, Method::POST, "/v2/a/blobs/uploads/", &[], b"").await;
    let loc = r.header("location").to_string();
    let r = send(addr, Method::PATCH, &loc, &[], &big[..40]).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = send(addr, Method::PATCH, &loc, &[], &big[..40]).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    // The refused chunk was not kept: the session still holds 40 bytes.
    let r = send(addr, Method::GET, &loc, &[], b"").await;
    assert_eq!(
        (r.status, r.header("range")),
        (StatusCode::NO_CONTENT, "0-39")
    );
    // Finishing without a digest, unknown sessions, bad names, unknown endpoints.
    let r = send(addr, Method::PUT, &loc, &[], b"").await;
    assert_eq!(r.json()["errors"][0]["code"], "DIGEST_INVALID");
    let r = send(
        addr,
        Method::PATCH,
        "/v2/a/blobs/uploads/not-a-uuid",
        &[],
        b"x",
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["errors"][0]["code"], "BLOB_UPLOAD_UNKNOWN");
    let r = send(addr, Method::GET, "/v2/Bad_Name/tags/list", &[], b"").await;
    assert_eq!(r.json()["errors"][0]["code"], "NAME_INVALID");
    let r = send(addr, Method::GET, "/v2/nothing/here", &[], b"").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = send(addr, Method::DELETE, "/v2/a/manifests/v1", &[], b"").await;
    assert_eq!(r.json()["errors"][0]["code"], "UNSUPPORTED");
    let r = send(addr, Method::PUT, "/v2/a/manifests/v1", &[], b"{").await;
    assert_eq!(r.json()["errors"][0]["code"], "MANIFEST_INVALID");
    let r = send(addr, Method::GET, "/v2/nope/tags/list", &[], b"").await;
    assert_eq!(r.json()["errors"][0]["code"], "NAME_UNKNOWN");
}
