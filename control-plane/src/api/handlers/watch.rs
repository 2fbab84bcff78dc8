//! Watch streams: newline-delimited JSON events over a chunked response, as kubectl and
//! client-go expect (ADDED/MODIFIED/DELETED/BOOKMARK, ERROR with a 410 Status when too old).

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::read::{include_object, list_matching, Filter};
use super::Ctx;
use crate::api::object;
use crate::api::request::{is_true, wants_table};
use crate::api::status::{ApiError, ApiResult};
use crate::api::table;
use crate::store::{EventType, ListScope, StoreError, StoreEvent};

/// Watches without `timeoutSeconds` end after between this and twice this, picked at random
/// per watch so that clients re-watching from their last resourceVersion spread out
/// (kube-apiserver's `--min-request-timeout`, 1800 s, used the same way).
pub const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);
/// How often a watch that asked for bookmarks gets one, so it can resume cheaply.
pub const DEFAULT_BOOKMARK_INTERVAL: Duration = Duration::from_secs(30);
/// Events buffered per watch before the producer waits on a slow client.
const WATCH_CHANNEL: usize = 64;

struct Encoder {
    def: &'static crate::api::resources::ResourceDef,
    kind: &'static str,
    api_version: String,
    table: Option<table::IncludeObject>,
}

impl Encoder {
    fn line(&self, kind: &str, obj: &Value) -> Bytes {
        let obj = match self.table {
            Some(include) if kind != "BOOKMARK" && kind != "ERROR" => table::table_for_def(
                self.def,
                std::slice::from_ref(obj),
                jiff::Timestamp::now(),
                include,
                json!({"resourceVersion": object::meta_str(obj, "resourceVersion").unwrap_or("")}),
            ),
            _ => return Self::plain_line(kind, obj),
        };
        Self::plain_line(kind, &obj)
    }

    fn plain_line(kind: &str, obj: &Value) -> Bytes {
        #[derive(serde::Serialize)]
        struct Line<'a> {
            #[serde(rename = "type")]
            kind: &'a str,
            object: &'a Value,
        }
        let mut line = serde_json::to_vec(&Line { kind, object: obj }).unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    }

    /// A stored change as the watch's lines: as a Table row, or the object's JSON (encoded
    /// once per change, however many watchers send it) between the event's own head and tail.
    fn event(&self, kind: &'static str, ev: &StoreEvent) -> Vec<Bytes> {
        if self.table.is_some() {
            return vec![self.line(kind, &ev.object)];
        }
        vec![
            Bytes::from(format!("{{\"type\":\"{kind}\",\"object\":")),
            ev.object_json(),
            Bytes::from_static(b"}\n"),
        ]
    }

    fn bookmark(&self, revision: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": revision.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        self.line(
            "BOOKMARK",
            &json!({"kind": self.kind, "apiVersion": self.api_version, "metadata": meta}),
        )
    }

    fn error(&self, e: &ApiError) -> Bytes {
        self.line("ERROR", &e.status_body())
    }
}

/// The event type a filtered watch shows for a change, if any: objects moving into the
/// selection appear as ADDED, moving out as DELETED.
fn classify(filter: &Filter, name: Option<&str>, ev: &StoreEvent) -> Option<&'static str> {
    let m = |o: &Value| filter.matches(o) && name.is_none_or(|n| object::name(o) == n);
    let now = m(&ev.object);
    let before = ev.prev.as_ref().is_some_and(m);
    match ev.kind {
        EventType::Added => now.then_some("ADDED"),
        EventType::Modified => match (before, now) {
            (true, true) => Some("MODIFIED"),
            (false, true) => Some("ADDED"),
            (true, false) => Some("DELETED"),
            (false, false) => None,
        },
        EventType::Deleted => (before || now).then_some("DELETED"),
    }
}

pub async fn watch(ctx: Ctx, name: Option<String>) -> ApiResult<Response> {
    let filter = Filter::from_ctx(&ctx)?;
    let timeout = match ctx.q.int_param("timeoutSeconds", &ctx.q.timeout_seconds)? {
        Some(s) if s > 0 => Duration::from_secs(s as u64),
        _ => DEFAULT_WATCH_TIMEOUT.mul_f64(1.0 + rand::random::<f64>()),
    };
    let bookmarks = is_true(&ctx.q.allow_watch_bookmarks);
    let send_initial = is_true(&ctx.q.send_initial_events);
    let encoder = Encoder {
        def: ctx.rp.def,
        kind: ctx.rp.def.kind,
        api_version: ctx.rp.def.api_version(),
        table: wants_table(&ctx.headers).then(|| include_object(&ctx)),
    };
    // Where to start: no version (or "0") means "current state as ADDED events, then changes".
    let rv = ctx.q.resource_version.as_deref().unwrap_or("");
    let (initial, from) = if rv.is_empty() || rv == "0" || send_initial {
        let (items, revision) = list_matching(&ctx).await?;
        let items: Vec<Value> = items
            .into_iter()
            .filter(|o| name.as_deref().is_none_or(|n| object::name(o) == n))
            .collect();
        (items, revision)
    } else {
        let from = rv.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!(
                "resourceVersion: Invalid value: \"{rv}\": must be an integer revision from a list or an object"
            ))
        })?;
        (Vec::new(), from)
    };
    let scope = ListScope::new(&ctx.rp.def.store_resource(), ctx.rp.namespace.as_deref());
    let started = ctx.st.store.watch(scope, from).await;
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(WATCH_CHANNEL);
    let metrics = ctx.st.metrics.clone();
    let mut shutdown = ctx.st.shutdown.clone();
    tokio::spawn(async move {
        metrics.watches.inc();
        let deadline = tokio::time::Instant::now() + timeout;
        let mut watcher = match started {
            Ok(w) => w,
            Err(e) => {
                let err = match e {
                    StoreError::Gone { .. } => {
                        ApiError::gone(format!("too old resource version: {from}"))
                    }
                    other => ApiError::internal(other.to_string()),
                };
                let _ = tx.send(Ok(encoder.error(&err))).await;
                metrics.watches.dec();
                return;
            }
        };
        for obj in &initial {
            if tx.send(Ok(encoder.line("ADDED", obj))).await.is_err() {
                metrics.watches.dec();
                return;
            }
        }
        if send_initial && tx.send(Ok(encoder.bookmark(from, true))).await.is_err() {
            metrics.watches.dec();
            return;
        }
        let mut tick = tokio::time::interval(DEFAULT_BOOKMARK_INTERVAL);
        tick.tick().await;
        loop {
            tokio::select! {
                ev = watcher.next() => match ev {
                    Ok(ev) => {
                        if let Some(kind) = classify(&filter, name.as_deref(), &ev) {
                            let mut gone = false;
                            for part in encoder.event(kind, &ev) {
                                gone = tx.send(Ok(part)).await.is_err();
                                if gone {
                                    break;
                                }
                            }
                            if gone {
                                break;
                            }
                        }
                    }
                    Err(StoreError::Gone { .. }) => {
                        let err = ApiError::gone("the watch fell too far behind; list again and re-watch");
                        let _ = tx.send(Ok(encoder.error(&err))).await;
                        break;
                    }
                    Err(_) => break,
                },
                _ = tick.tick(), if bookmarks => {
                    if tx.send(Ok(encoder.bookmark(watcher.last_revision(), false))).await.is_err() {
                        break;
                    }
                }
                _ = tokio::time::sleep_until(deadline) => break,
                _ = shutdown.changed() => break,
                _ = tx.closed() => break,
            }
        }
        metrics.watches.dec();
    });
    let mut resp = Response::new(Body::from_stream(ReceiverStream::new(rx)));
    let ct = if encoder_is_table(&ctx) {
        "application/json;as=Table;v=v1;g=meta.k8s.io"
    } else {
        "application/json"
    };
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(ct),
    );
    Ok(resp)
}

fn encoder_is_table(ctx: &Ctx) -> bool {
    wants_table(&ctx.headers)
}
