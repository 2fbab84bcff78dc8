//! Careless and hostile clients: connections that stall in the TLS handshake, the headers or
//! the body are closed by the server within its timeouts while other clients are served, and
//! malformed requests (query values, bodies, patches, paths, oversized heads and bodies) are
//! refused with a `metav1.Status` naming the problem. Requests are written by hand over TLS
//! (tokio-rustls, trusting the cluster CA from the kubeconfig) so that nothing in between
//! fixes them up.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use common::tls::Endpoint;
use common::Skiff;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The server's timeouts in these tests: short, so the test is quick, and the same for each.
const TIMEOUT: &str = "3s";
/// How long a stalled connection may stay open at most: its timeout and generous slack for a
/// busy machine. Reaching it means the server never closed the connection.
const CLOSE_BOUND: Duration = Duration::from_secs(40);
/// Stalled connections, of the four kinds in turn.
const STALLS: usize = 1000;

/// Reads until the server closes `conn` (what it sent, and when), or fails at the bound.
async fn until_closed<S: tokio::io::AsyncRead + Unpin>(mut conn: S) -> Result<(Vec<u8>, Duration)> {
    let start = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((start + CLOSE_BOUND).into(), conn.read(&mut buf)).await {
            Err(_) => bail!("still open after {CLOSE_BOUND:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok((seen, start.elapsed())),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_connections_are_closed_while_others_are_served() -> Result<()> {
    let s = Skiff::start_with(&[
        "--no-agent",
        "--tls-handshake-timeout",
        TIMEOUT,
        "--request-header-timeout",
        TIMEOUT,
        "--request-body-timeout",
        TIMEOUT,
        // Every stalled body is held, not refused as one write too many.
        "--max-mutating-requests-inflight",
        "1000",
    ])?;
    let ep = Arc::new(Endpoint::of(&s)?);
    let mut stalls = Vec::new();
    // Opened in small batches so the handshakes themselves are not what times out.
    for batch in 0..STALLS / 25 {
        for i in 0..25 {
            let ep = ep.clone();
            let kind = (batch * 25 + i) % 4;
            stalls.push(tokio::spawn(async move { stall(&ep, kind).await }));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Meanwhile, a client that behaves is served.
    let mut served = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let (code, body) = ep.request("GET /api/v1/namespaces HTTP/1.1", b"").await?;
        assert_eq!(code, 200, "{body}");
        served.push(start.elapsed());
    }
    eprintln!("a well-behaved client's GETs while {STALLS} connections stall: {served:?}");
    let mut closed = [Duration::ZERO; 4];
    for task in stalls {
        let (kind, took) = task.await??;
        closed[kind] = closed[kind].max(took);
    }
    eprintln!("the slowest close per kind (tcp, headers, body, idle): {closed:?}");
    Ok(())
}

/// One stalled connection of `kind`: 0 says nothing (no TLS ClientHello), 1 stops halfway
/// through its headers, 2 announces a body and sends two bytes of it, 3 is idle after a
/// request. Returns the kind and how long the server took to close it.
async fn stall(ep: &Endpoint, kind: usize) -> Result<(usize, Duration)> {
    if kind == 0 {
        let tcp = TcpStream::connect(ep.addr).await?;
        let (_, took) = until_closed(tcp).await?;
        return Ok((kind, took));
    }
    let mut conn = ep.connect().await.context("TLS handshake")?;
    let auth = format!("Authorization: Bearer {}\r\n", ep.token);
    match kind {
        1 => {
            conn.write_all(b"GET /api/v1/namespaces HTTP/1.1\r\nHost: skiff\r\nX-Half: ")
                .await?
        }
        2 => {
            let head = format!(
                "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: skiff\r\n{auth}\
                 Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\""
            );
            conn.write_all(head.as_bytes()).await?
        }
        _ => {
            let head = format!("GET /version HTTP/1.1\r\nHost: skiff\r\n{auth}\r\n");
            conn.write_all(head.as_bytes()).await?
        }
    }
    let (seen, took) = until_closed(conn).await?;
    let text = String::from_utf8_lossy(&seen);
    match kind {
        2 => assert!(
            text.starts_with("HTTP/1.1 408") && text.contains("\"kind\":\"Status\""),
            "a stalled body is answered 408 with a Status: {text}"
        ),
        3 => assert!(text.starts_with("HTTP/1.1 200"), "{text}"),
        _ => {}
    }
    Ok((kind, took))
}

/// `(what, head, body, expected code, a phrase the Status message must contain)`.
type Case = (&'static str, String, Vec<u8>, u16, &'static str);

fn malformed_requests() -> Vec<Case> {
    let cms = "/api/v1/namespaces/default/configmaps";
    let json = |s: &str| s.as_bytes().to_vec();
    // `{LEN}` becomes the body's length when the request is sent.
    let post = |ct: &str, len: &str| {
        format!("POST {cms} HTTP/1.1\r\nContent-Type: {ct}\r\nContent-Length: {len}")
    };
    let patch = |ct: &str| {
        format!("PATCH {cms}/target HTTP/1.1\r\nContent-Type: {ct}\r\nContent-Length: {{LEN}}")
    };
    let mut cases: Vec<Case> = vec![
        (
            "watch=abc",
            format!("GET {cms}?watch=abc HTTP/1.1"),
            vec![],
            400,
            "must be a boolean",
        ),
        (
            "negative timeoutSeconds on a watch",
            format!("GET {cms}?watch=true&timeoutSeconds=-5 HTTP/1.1"),
            vec![],
            400,
            "greater than or equal to 0",
        ),
        (
            "limit=abc",
            format!("GET {cms}?limit=abc HTTP/1.1"),
            vec![],
            400,
            "must be an integer",
        ),
        (
            "a broken selector on a watch",
            format!("GET {cms}?watch=true&labelSelector=a%20in%20(b HTTP/1.1"),
            vec![],
            400,
            "",
        ),
        (
            "'..' as a namespace",
            "GET /api/v1/namespaces/../configmaps HTTP/1.1".to_string(),
            vec![],
            400,
            "may not be",
        ),
        (
            "a URI over the limit",
            format!("GET {cms}?labelSelector={} HTTP/1.1", "a".repeat(40 * 1024)),
            vec![],
            414,
            "over the limit",
        ),
        (
            "a body declared over the limit and never sent",
            post("application/json", &(64 << 20).to_string()),
            vec![],
            413,
            "too large",
        ),
        (
            "kind as a number",
            post("application/json", "{LEN}"),
            json(r#"{"kind":5,"apiVersion":"v1","metadata":{"name":"n5"}}"#),
            400,
            "must be a string",
        ),
        (
            "a JSON patch removing metadata",
            patch("application/json-patch+json"),
            json(r#"[{"op":"remove","path":"/metadata"}]"#),
            400,
            "metadata",
        ),
        (
            "a merge patch nulling metadata",
            patch("application/merge-patch+json"),
            json(r#"{"metadata":null}"#),
            400,
            "metadata",
        ),
        (
            "a JSON patch setting a garbage resourceVersion",
            patch("application/json-patch+json"),
            json(r#"[{"op":"replace","path":"/metadata/resourceVersion","value":"garbage"}]"#),
            400,
            "resourceVersion",
        ),
        (
            "a JSON patch setting a stale resourceVersion",
            patch("application/json-patch+json"),
            json(r#"[{"op":"replace","path":"/metadata/resourceVersion","value":"1"}]"#),
            409,
            "has been modified",
        ),
    ];
    let big_header = format!(
        "GET {cms} HTTP/1.1\r\nX-Big: {}",
        "h".repeat(1024 * 1024 + 16)
    );
    cases.push((
        "a header block over the limit",
        big_header,
        vec![],
        431,
        "over the limit",
    ));
    // Refused by the HTTP layer before the API sees them: the same Status body.
    cases.extend([
        (
            "a header line without a colon",
            format!("GET {cms} HTTP/1.1\r\nThis is not a header"),
            vec![],
            400,
            "malformed",
        ),
        (
            "a NUL byte in a header value",
            format!("GET {cms} HTTP/1.1\r\nX-Token: abc\0def"),
            vec![],
            400,
            "malformed",
        ),
        (
            "a request line with two spaces",
            format!("GET  {cms} HTTP/1.1"),
            vec![],
            400,
            "malformed",
        ),
        (
            "a URI over what the HTTP layer reads",
            format!("GET {cms}?labelSelector={} HTTP/1.1", "a".repeat(70 * 1024)),
            vec![],
            414,
            "longer than",
        ),
        // Just over the HTTP layer's buffer: refused there ("larger than the ... bytes the
        // HTTP layer reads") or, when one read took it whole, by the API ("over the limit").
        (
            "a head over what the HTTP layer buffers",
            format!("GET {cms} HTTP/1.1\r\nX-Big: {}", "h".repeat(1200 * 1024)),
            vec![],
            431,
            "bytes",
        ),
    ]);
    cases
}

#[tokio::test]
async fn malformed_requests_are_refused_with_a_status_naming_the_problem() -> Result<()> {
    // A refused body's connection stays open while what the client still sends is dropped.
    let s = Skiff::start_with(&["--no-agent", "--request-body-timeout", TIMEOUT])?;
    s.ok(&["create", "configmap", "target", "--from-literal=a=1"])?;
    let ep = Endpoint::of(&s)?;
    let before = s.json(&["get", "configmap", "target"])?;
    for (what, head, body, code, phrase) in malformed_requests() {
        let head = head.replace("{LEN}", &body.len().to_string());
        let (got, answer) = ep.request(&head, &body).await.context(what)?;
        let status: Value = serde_json::from_str(&answer)
            .with_context(|| format!("{what}: not a Status: {answer:?}"))?;
        assert_eq!(got, code, "{what}: {answer}");
        assert_eq!(status["kind"], "Status", "{what}: {answer}");
        assert_eq!(status["code"], code, "{what}: {answer}");
        let message = status["message"].as_str().unwrap_or_default();
        assert!(message.contains(phrase), "{what}: {message}");
    }
    // Refused patches wrote nothing; a patch that changes nothing writes nothing either.
    let after = s.json(&["get", "configmap", "target"])?;
    assert_eq!(before["metadata"], after["metadata"]);
    s.ok(&[
        "patch",
        "configmap",
        "target",
        "--type=merge",
        "-p",
        r#"{"data":{"a":"1"}}"#,
    ])?;
    let same = s.json(&["get", "configmap", "target"])?;
    assert_eq!(
        before["metadata"]["resourceVersion"], same["metadata"]["resourceVersion"],
        "a no-op patch keeps the resourceVersion"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_beyond_the_in_flight_limit_get_429_with_retry_after() -> Result<()> {
    let s = Skiff::start_with(&["--no-agent", "--max-mutating-requests-inflight", "2"])?;
    let ep = Endpoint::of(&s)?;
    // Two writes held in flight: their bodies are announced and do not come.
    let mut held = Vec::new();
    for i in 0..2 {
        let mut conn = ep.connect().await?;
        let head = format!(
            "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: skiff\r\n\
             Authorization: Bearer {}\r\nContent-Type: application/json\r\n\
             Content-Length: 1000\r\n\r\n{{\"metadata\":",
            ep.token
        );
        conn.write_all(head.as_bytes()).await?;
        held.push(conn);
        eprintln!("write {i} held");
    }
    let body = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"third"}}"#;
    let post = format!(
        "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {}",
        body.len()
    );
    // The third is refused at once, with a Status and Retry-After; reads still go through.
    let refused = common::wait_for("a third write refused", || {
        let answer = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(ep.raw_request(&post, body))
        })?;
        Ok(answer.starts_with("HTTP/1.1 429").then_some(answer))
    })?;
    assert!(
        refused.to_ascii_lowercase().contains("retry-after: 1"),
        "{refused}"
    );
    assert!(
        refused.contains("\"reason\":\"TooManyRequests\""),
        "{refused}"
    );
    assert!(
        refused.contains("--max-mutating-requests-inflight"),
        "{refused}"
    );
    let (code, _) = ep.request("GET /api/v1/namespaces HTTP/1.1", b"").await?;
    assert_eq!(code, 200, "reads have their own limit");
    // The held writes go away: writes are served again.
    drop(held);
    let (code, answer) = common::wait_for("the write served again", || {
        let (code, answer) = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(ep.request(&post, body))
        })?;
        Ok((code != 429).then_some((code, answer)))
    })?;
    assert_eq!(code, 201, "{answer}");
    Ok(())
}
