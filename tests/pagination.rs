//! Paged lists (`limit` + `continue`) as Kubernetes serves them: consistent at the first page's
//! revision while writes go on, `remainingItemCount`, tamper-evident tokens, 410 when the
//! revision has left the change log, and `kubectl get --chunk-size` over Tables.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use common::Skiff;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::Status;
use serde_json::{json, Value};

const TOTAL: usize = 5_000;
const LIMIT: usize = 500;
const NS: &str = "paging";

/// The kubectl/Python message when a continue token's revision left the change log.
const INCONSISTENT_CONTINUE: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

fn name(i: usize) -> String {
    format!("cm-{i:05}")
}

fn configmap(name: &str, version: &str, parity: usize) -> Result<ConfigMap> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"parity": if parity.is_multiple_of(2) { "even" } else { "odd" }}},
        "data": {"v": version},
    }))?)
}

async fn namespace(client: &kube::Client, ns: &str) -> Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": ns}}))?,
    )
    .await?;
    Ok(())
}

/// Creates `count` ConfigMaps `cm-00000…` in `ns`, 32 requests in flight.
async fn create_many(client: &kube::Client, ns: &str, count: usize) -> Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    futures::stream::iter(0..count)
        .map(|i| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &configmap(&name(i), "original", i)?)
                    .await
                    .with_context(|| format!("creating {}", name(i)))?;
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// GET `uri` as JSON (or as a Table when `table`).
async fn get(client: &kube::Client, uri: &str, table: bool) -> Result<Value, kube::Error> {
    let mut req = http::Request::get(uri);
    if table {
        req = req.header(
            http::header::ACCEPT,
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        );
    }
    client
        .request::<Value>(req.body(Vec::new()).expect("a request"))
        .await
}

/// `token` with its start key moved 5 items on and re-encoded as the server encodes tokens
/// (base64url of a 32-byte MAC and JSON): what a client editing its token would send.
fn forge(token: &str) -> Result<String> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut raw = b64.decode(token)?;
    let mut payload: Value = serde_json::from_slice(&raw[32..]).context("the token's format")?;
    let start = payload["start"].as_str().context("a start key")?;
    let moved = start.replace("cm-00009", "cm-00014");
    ensure!(moved != start, "start key {start:?}");
    payload["start"] = json!(moved);
    raw.truncate(32);
    raw.extend(serde_json::to_vec(&payload)?);
    Ok(b64.encode(raw))
}

/// A client that does not retry 5xx answers (kube's default retries a 504 for minutes).
async fn client_without_retries(s: &Skiff) -> Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(s.kubeconfig())?;
    let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    config.default_retry = false;
    Ok(kube::Client::try_from(config)?)
}

/// The Status of a GET that must fail.
async fn get_fails(client: &kube::Client, uri: &str) -> Result<Box<Status>> {
    match get(client, uri, false).await {
        Err(kube::Error::Api(status)) => Ok(status),
        Ok(v) => bail!("GET {uri} succeeded: {}", v["metadata"]),
        Err(e) => Err(e.into()),
    }
}

fn meta_str<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v["metadata"][field].as_str()
}

fn item_names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|o| o["metadata"]["name"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Writes that keep going during the paging: new ConfigMaps whose names fall between the
/// listed ones, updates and deletions of listed ones, in every page's range.
struct Churn {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<Result<[usize; 3]>>,
}

impl Churn {
    fn start(client: &kube::Client) -> Churn {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let (s, d) = (stop.clone(), done.clone());
        let task = tokio::spawn(async move {
            let mut counts = [0usize; 3];
            let mut n: usize = 0;
            while !s.load(Ordering::Relaxed) {
                n += 1;
                // Spread over the whole range (a multiplicative step co-prime with TOTAL).
                let i = (n * 2_654_435_761) % TOTAL;
                let target = name(i);
                let op = n % 3;
                let result = match op {
                    0 => api
                        .create(
                            &PostParams::default(),
                            &configmap(&format!("{target}-new"), "created", i)?,
                        )
                        .await
                        .map(|_| ()),
                    1 => api
                        .patch(
                            &target,
                            &PatchParams::default(),
                            &Patch::Merge(json!({"data": {"v": "changed"}})),
                        )
                        .await
                        .map(|_| ()),
                    _ => api
                        .delete(&target, &DeleteParams::default())
                        .await
                        .map(|_| ()),
                };
                match result {
                    Ok(()) => counts[op] += 1,
                    // Already deleted or already created: another op on the same name.
                    Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                    Err(e) => return Err(e.into()),
                }
                d.fetch_add(1, Ordering::Relaxed);
            }
            Ok(counts)
        });
        Churn { stop, done, task }
    }

    /// Waits until `more` further writes have been made.
    async fn advance(&self, more: usize) -> Result<()> {
        let target = self.done.load(Ordering::Relaxed) + more;
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.done.load(Ordering::Relaxed) < target {
            ensure!(!self.task.is_finished(), "the writer stopped early");
            ensure!(Instant::now() < deadline, "the writer made no progress");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    async fn stop(self) -> Result<[usize; 3]> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await?
    }
}

/// Issue 18's acceptance: 5,000 ConfigMaps listed with limit=500 are 10 pages, without
/// duplicates or gaps, equal to the list at the first page's revision while creates, updates
/// and deletes go on; then `kubectl get --chunk-size` (Tables) shows every one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_thousand_configmaps_page_consistently_while_writes_continue() -> Result<()> {
    let s = Skiff::control_plane()?;
    let client = s.client().await?;
    namespace(&client, NS).await?;
    let started = Instant::now();
    create_many(&client, NS, TOTAL).await?;
    eprintln!("created {TOTAL} ConfigMaps in {:?}", started.elapsed());

    let base = format!("/api/v1/namespaces/{NS}/configmaps?limit={LIMIT}");
    let first = get(&client, &base, false).await?;
    let revision: u64 = meta_str(&first, "resourceVersion")
        .context("resourceVersion")?
        .parse()?;
    let churn = Churn::start(&client);
    let mut pages = vec![first];
    while let Some(token) = meta_str(pages.last().unwrap(), "continue").map(str::to_string) {
        ensure!(pages.len() < 20, "the pages do not end");
        // Writes land between every two pages, all over the range.
        churn.advance(30).await?;
        pages.push(get(&client, &format!("{base}&continue={token}"), false).await?);
    }
    let counts = churn.stop().await?;
    eprintln!("paged while the writer made {counts:?} creates/updates/deletes");
    ensure!(
        counts.iter().all(|c| *c > 0),
        "the writer created, updated and deleted: {counts:?}"
    );

    ensure!(pages.len() == 10, "{} pages, not 10", pages.len());
    let mut names = Vec::new();
    for (n, page) in pages.iter().enumerate() {
        ensure!(
            meta_str(page, "resourceVersion") == Some(revision.to_string().as_str()),
            "page {n} is read at the first page's revision {revision}: {}",
            page["metadata"]
        );
        let items = page["items"].as_array().context("items")?;
        ensure!(items.len() == LIMIT, "page {n} has {} items", items.len());
        let remaining = page["metadata"]["remainingItemCount"].as_u64();
        let want = (TOTAL - LIMIT * (n + 1)) as u64;
        if want > 0 {
            ensure!(
                remaining == Some(want),
                "page {n}: remainingItemCount {remaining:?}, want {want}"
            );
        } else {
            ensure!(
                remaining.is_none() && meta_str(page, "continue").is_none(),
                "the last page ends the list"
            );
        }
        for item in items {
            ensure!(
                item["data"]["v"] == "original",
                "{} as it was at the first page, not {}",
                item["metadata"]["name"],
                item["data"]
            );
            let rv: u64 = item["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or("")
                .parse()?;
            ensure!(
                rv <= revision,
                "an item newer than the list: {rv} > {revision}"
            );
        }
        names.extend(item_names(page));
    }
    let want: Vec<String> = (0..TOTAL).map(name).collect();
    ensure!(names == want, "every ConfigMap exactly once, in key order");

    // The writes did land: a fresh list sees them.
    let now: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let now = now.list(&ListParams::default()).await?;
    ensure!(
        now.items.len() == TOTAL + counts[0] - counts[2],
        "fresh list: {} items",
        now.items.len()
    );
    ensure!(now
        .items
        .iter()
        .any(|c| c.data.as_ref().and_then(|d| d.get("v")).map(String::as_str) == Some("changed")));

    // kubectl asks for Tables with limit=500 and follows `continue` (and with --chunk-size).
    let expected = now.items.len();
    for args in [
        vec!["get", "cm", "-n", NS, "--no-headers"],
        vec!["get", "cm", "-n", NS, "--no-headers", "--chunk-size=100"],
    ] {
        let out = s.ok(&args)?;
        let rows: BTreeSet<&str> = out
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        ensure!(
            out.lines().count() == expected && rows.len() == expected,
            "kubectl {}: {} rows, {} names, want {expected}",
            args.join(" "),
            out.lines().count(),
            rows.len()
        );
    }
    // All namespaces: kubectl chains the pages of the cluster-wide list.
    let all = s.ok(&["get", "cm", "-A", "--no-headers", "--chunk-size=700"])?;
    let unpaged = get(&client, "/api/v1/configmaps", false).await?;
    ensure!(
        all.lines().count() == unpaged["items"].as_array().map_or(0, Vec::len),
        "kubectl get cm -A: {} rows",
        all.lines().count()
    );

    // A label selector keeps scanning until the page is full; no remainingItemCount then.
    let even = format!("/api/v1/namespaces/{NS}/configmaps?limit=300&labelSelector=parity%3Deven");
    let mut page = get(&client, &even, false).await?;
    let mut seen = item_names(&page);
    ensure!(seen.len() == 300, "a filtered page is full: {}", seen.len());
    ensure!(page["metadata"]["remainingItemCount"].is_null());
    while let Some(token) = meta_str(&page, "continue").map(str::to_string) {
        page = get(&client, &format!("{even}&continue={token}"), false).await?;
        seen.extend(item_names(&page));
    }
    let evens = now
        .items
        .iter()
        .filter(|c| {
            c.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("parity"))
                .map(String::as_str)
                == Some("even")
        })
        .count();
    ensure!(
        seen.len() == evens,
        "{} even ConfigMaps paged, {evens} exist",
        seen.len()
    );
    Ok(())
}

/// Tokens: garbage, altered, or another list's → 400; resourceVersion with continue → 400;
/// they survive a restart; once the log has moved past their revision → 410 Expired with a
/// token for the rest; rv=0 ignores limit; Tables page too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continue_tokens_are_checked_survive_restarts_and_expire() -> Result<()> {
    let mut s = Skiff::start_with(&["--no-agent", "--watch-history", "60"])?;
    let client = s.client().await?;
    namespace(&client, NS).await?;
    namespace(&client, "other").await?;
    create_many(&client, NS, 30).await?;
    create_many(&client, "other", 3).await?;

    let base = format!("/api/v1/namespaces/{NS}/configmaps?limit=10");
    let first = get(&client, &base, false).await?;
    ensure!(item_names(&first) == (0..10).map(name).collect::<Vec<_>>());
    ensure!(first["metadata"]["remainingItemCount"] == 20);
    let revision = meta_str(&first, "resourceVersion")
        .context("rv")?
        .to_string();
    let token = meta_str(&first, "continue")
        .context("continue")?
        .to_string();

    // Bad tokens: 400 BadRequest, in Kubernetes' words.
    let mid = token.len() / 2;
    let mut altered = token.clone().into_bytes();
    altered[mid] = if altered[mid] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered)?;
    let forged = forge(&token)?;
    for (what, uri) in [
        ("garbage", format!("{base}&continue=garbage-token")),
        ("altered", format!("{base}&continue={altered}")),
        ("forged", format!("{base}&continue={forged}")),
        (
            "another namespace's",
            format!("/api/v1/namespaces/other/configmaps?limit=10&continue={token}"),
        ),
        (
            "a namespace's for all namespaces",
            format!("/api/v1/configmaps?limit=10&continue={token}"),
        ),
        (
            "a ConfigMap list's for Secrets",
            format!("/api/v1/namespaces/{NS}/secrets?limit=10&continue={token}"),
        ),
    ] {
        let st = get_fails(&client, &uri).await?;
        ensure!(
            st.code == 400
                && st.reason == "BadRequest"
                && st.message.contains("continue key is not valid"),
            "{what} token: {} {} {}",
            st.code,
            st.reason,
            st.message
        );
    }
    let st = get_fails(
        &client,
        &format!("{base}&continue={token}&resourceVersion={revision}"),
    )
    .await?;
    ensure!(
        st.code == 400
            && st.message == "specifying resource version is not allowed when using continue",
        "{} {}",
        st.code,
        st.message
    );
    let st = get_fails(
        &client,
        &format!(
            "{base}&continue={token}&resourceVersion={revision}&resourceVersionMatch=NotOlderThan"
        ),
    )
    .await?;
    ensure!(
        st.code == 422
            && st
                .message
                .contains("resourceVersionMatch is forbidden when continue is provided"),
        "{}",
        st.message
    );

    // resourceVersion=0 is served as Kubernetes' watch cache serves it: limit ignored.
    let rv0 = get(&client, &format!("{base}&resourceVersion=0"), false).await?;
    ensure!(item_names(&rv0).len() == 30 && meta_str(&rv0, "continue").is_none());
    // A revision the store has not reached: 504 Timeout "Too large resource version".
    let st = get_fails(
        &client_without_retries(&s).await?,
        &format!("{base}&resourceVersion=999999&resourceVersionMatch=Exact"),
    )
    .await?;
    ensure!(
        st.code == 504 && st.message.contains("Too large resource version"),
        "{}",
        st.message
    );

    // Tables page too.
    let table = get(&client, &base, true).await?;
    ensure!(table["kind"] == "Table" && table["rows"].as_array().map_or(0, Vec::len) == 10);
    ensure!(
        meta_str(&table, "continue").is_some() && table["metadata"]["remainingItemCount"] == 20
    );

    // Changes after the first page, then a restart: the token still reads the list as it was.
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    api.delete(&name(15), &DeleteParams::default()).await?;
    api.create(
        &PostParams::default(),
        &configmap("cm-00012-new", "created", 0)?,
    )
    .await?;
    s.restart()?;
    let client = s.client().await?;
    let second = get(&client, &format!("{base}&continue={token}"), false).await?;
    ensure!(
        item_names(&second) == (10..20).map(name).collect::<Vec<_>>(),
        "{:?}",
        item_names(&second)
    );
    ensure!(meta_str(&second, "resourceVersion") == Some(revision.as_str()));
    // An exact revision reads the same past.
    let exact = get(
        &client,
        &format!("{base}&resourceVersion={revision}&resourceVersionMatch=Exact"),
        false,
    )
    .await?;
    ensure!(item_names(&exact) == item_names(&first));
    let token2 = meta_str(&second, "continue")
        .context("continue")?
        .to_string();

    // More changes than the log keeps: the token's revision is gone.
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "other");
    for n in 0..70 {
        api.patch(
            &name(0),
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"n": n.to_string()}})),
        )
        .await?;
    }
    let st = get_fails(&client, &format!("{base}&continue={token2}")).await?;
    ensure!(
        st.code == 410 && st.reason == "Expired",
        "{} {}",
        st.code,
        st.reason
    );
    ensure!(st.message == INCONSISTENT_CONTINUE, "{}", st.message);
    let restart = st
        .metadata
        .as_ref()
        .and_then(|m| m.continue_.clone())
        .context("the 410 carries a token for the rest")?;
    // It continues from the same key at the newest revision.
    let rest = get(
        &client,
        &format!("/api/v1/namespaces/{NS}/configmaps?continue={restart}"),
        false,
    )
    .await?;
    ensure!(
        item_names(&rest) == (20..30).map(name).collect::<Vec<_>>(),
        "{:?}",
        item_names(&rest)
    );
    ensure!(meta_str(&rest, "resourceVersion") != Some(revision.as_str()));
    let st = get_fails(
        &client,
        &format!("{base}&resourceVersion={revision}&resourceVersionMatch=Exact"),
    )
    .await?;
    ensure!(
        st.code == 410 && st.message == "The resourceVersion for the provided list is too old.",
        "{}",
        st.message
    );
    Ok(())
}
