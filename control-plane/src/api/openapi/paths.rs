//! The paths of the OpenAPI documents: each kind's collection, item, all-namespaces and
//! subresource paths with their operations (`x-kubernetes-action`,
//! `x-kubernetes-group-version-kind`, query parameters, request and response bodies), as one
//! model that `render.rs` writes in OpenAPI 3 or Swagger 2.0 form.

use super::schemas::{Gvk, KindDoc, SubDoc, DELETE_OPTIONS, STATUS};

#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    /// `path` or `query`.
    pub loc: &'static str,
    pub ty: &'static str,
    pub description: &'static str,
}

const fn query(name: &'static str, ty: &'static str, description: &'static str) -> Param {
    Param {
        name,
        loc: "query",
        ty,
        description,
    }
}

const fn path(name: &'static str, description: &'static str) -> Param {
    Param {
        name,
        loc: "path",
        ty: "string",
        description,
    }
}

const NAME: Param = path("name", "name of the object");
const NAMESPACE: Param = path(
    "namespace",
    "object name and auth scope, such as for teams and projects",
);
const PROXY_PATH: Param = path("path", "path to the resource");
const PRETTY: Param = query(
    "pretty",
    "string",
    "If 'true', then the output is pretty printed.",
);
const DRY_RUN: Param = query(
    "dryRun",
    "string",
    "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed",
);
const FIELD_MANAGER: Param = query(
    "fieldManager",
    "string",
    "fieldManager is a name associated with the actor or entity that is making these changes.",
);
const FIELD_VALIDATION: Param = query(
    "fieldValidation",
    "string",
    "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: Ignore, Warn (the default), Strict.",
);
const FORCE: Param = query(
    "force",
    "boolean",
    "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.",
);
const LIST: &[Param] = &[
    query("allowWatchBookmarks", "boolean", "allowWatchBookmarks requests watch events with type \"BOOKMARK\"."),
    query("continue", "string", "The continue option should be set when retrieving more results from the server."),
    query("fieldSelector", "string", "A selector to restrict the list of returned objects by their fields. Defaults to everything."),
    query("labelSelector", "string", "A selector to restrict the list of returned objects by their labels. Defaults to everything."),
    query("limit", "integer", "limit is a maximum number of responses to return for a list call."),
    query("resourceVersion", "string", "resourceVersion sets a constraint on what resource versions a request may be served from."),
    query("resourceVersionMatch", "string", "resourceVersionMatch determines how resourceVersion is applied to list calls."),
    query("sendInitialEvents", "boolean", "`sendInitialEvents=true` may be set together with `watch=true`: the stream begins with synthetic events of the current state."),
    query("timeoutSeconds", "integer", "Timeout for the list/watch call."),
    query("watch", "boolean", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications."),
];
const DELETE: &[Param] = &[
    DRY_RUN,
    query(
        "gracePeriodSeconds",
        "integer",
        "The duration in seconds before the object should be deleted.",
    ),
    query(
        "orphanDependents",
        "boolean",
        "Deprecated: please use the PropagationPolicy. Should the dependent objects be orphaned.",
    ),
    query(
        "propagationPolicy",
        "string",
        "Whether and how garbage collection will be performed: Orphan, Background or Foreground.",
    ),
];
const LOG: &[Param] = &[
    query("container", "string", "The container for which to stream logs. Defaults to only container if there is one container in the pod."),
    query("follow", "boolean", "Follow the log stream of the pod."),
    query("limitBytes", "integer", "If set, the number of bytes to read from the server before terminating the log output."),
    query("previous", "boolean", "Return previous terminated container logs."),
    query("sinceSeconds", "integer", "A relative time in seconds before the current time from which to show logs."),
    query("tailLines", "integer", "If set, the number of lines from the end of the logs to show."),
    query("timestamps", "boolean", "If true, add an RFC3339 timestamp at the beginning of every line of log output."),
];
const STREAMS: &[Param] = &[
    query(
        "container",
        "string",
        "The container in which to execute the command, or to attach to.",
    ),
    query(
        "stderr",
        "boolean",
        "Redirect the standard error stream of the pod for this call.",
    ),
    query(
        "stdin",
        "boolean",
        "Redirect the standard input stream of the pod for this call.",
    ),
    query(
        "stdout",
        "boolean",
        "Redirect the standard output stream of the pod for this call.",
    ),
    query(
        "tty",
        "boolean",
        "TTY if true indicates that a tty will be allocated for the call.",
    ),
];
const COMMAND: Param = query(
    "command",
    "string",
    "Command is the remote command to execute. argv array.",
);
const PORTS: Param = query("ports", "integer", "List of ports to forward.");

/// What a request carries.
#[derive(Debug, Clone)]
pub enum ReqBody {
    Schema(String),
    /// The patch media types, with or without strategic merge patch.
    Patch {
        strategic: bool,
    },
}

/// What a response carries.
#[derive(Debug, Clone)]
pub enum Resp {
    Schema(String),
    /// A list (also served as a watch stream).
    List(String),
    Text,
    Stream,
}

#[derive(Debug, Clone)]
pub struct Op {
    pub method: &'static str,
    pub action: &'static str,
    pub id: String,
    pub description: String,
    pub gvk: Gvk,
    pub params: Vec<Param>,
    pub body: Option<ReqBody>,
    pub codes: &'static [u16],
    pub resp: Resp,
}

#[derive(Debug, Clone)]
pub struct PathDoc {
    pub path: String,
    pub params: Vec<Param>,
    pub ops: Vec<Op>,
}

/// `/api/v1` or `/apis/G/V`.
pub fn base(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    }
}

/// Kubernetes' operation-id infix of a group/version: `CoreV1`, `AppsV1`, `NetworkingV1`.
fn id_prefix(group: &str, version: &str) -> String {
    let group = if group.is_empty() { "core" } else { group };
    let words = group
        .strip_suffix(".k8s.io")
        .unwrap_or(group)
        .split(['.', '-']);
    let mut out: String = words.map(capitalize).collect();
    out.push_str(&capitalize(version));
    out
}

/// The operation tag of a group/version: `core_v1`, `apps_v1`.
pub(super) fn tag(group: &str, version: &str) -> String {
    let prefix = id_prefix(group, version);
    let group_part = &prefix[..prefix.len() - version.len()];
    let mut first = group_part.chars();
    let lowered = match first.next() {
        Some(c) => c.to_lowercase().chain(first).collect::<String>(),
        None => String::new(),
    };
    format!("{lowered}_{version}")
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

const WRITE_CODES: &[u16] = &[200, 201];
const CREATE_CODES: &[u16] = &[200, 201, 202];
const DELETE_CODES: &[u16] = &[200, 202];
const OK: &[u16] = &[200];

/// Every path of one kind with its operations.
pub fn for_kind(k: &KindDoc) -> Vec<PathDoc> {
    let gvk = &k.gvk;
    let prefix = id_prefix(&gvk.group, &gvk.version);
    let ns = if k.namespaced { "Namespaced" } else { "" };
    let kind = &gvk.kind;
    let base = base(&gvk.group, &gvk.version);
    let (collection, mut scope) = if k.namespaced {
        (
            format!("{base}/namespaces/{{namespace}}/{}", k.plural),
            vec![NAMESPACE, PRETTY],
        )
    } else {
        (format!("{base}/{}", k.plural), vec![PRETTY])
    };
    let op = |method, action, id: String, description: String, gvk: &Gvk| Op {
        method,
        action,
        id,
        description,
        gvk: gvk.clone(),
        params: Vec::new(),
        body: None,
        codes: OK,
        resp: Resp::Schema(k.schema.clone()),
    };
    let writes = vec![DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION];
    let patches = vec![DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION, FORCE];
    let patch_body = ReqBody::Patch {
        strategic: k.strategic_merge,
    };
    // get, put, patch of `schema` at `path` (an item, `status`, `scale`).
    let rwp = |suffix: &str, what: &str, schema: &str, gvk: &Gvk| {
        vec![
            Op {
                resp: Resp::Schema(schema.into()),
                ..op(
                    "get",
                    "get",
                    format!("read{prefix}{ns}{kind}{suffix}"),
                    format!("read {what}the specified {kind}"),
                    gvk,
                )
            },
            Op {
                params: writes.clone(),
                body: Some(ReqBody::Schema(schema.into())),
                codes: WRITE_CODES,
                resp: Resp::Schema(schema.into()),
                ..op(
                    "put",
                    "put",
                    format!("replace{prefix}{ns}{kind}{suffix}"),
                    format!("replace {what}the specified {kind}"),
                    gvk,
                )
            },
            Op {
                params: patches.clone(),
                body: Some(patch_body.clone()),
                codes: WRITE_CODES,
                resp: Resp::Schema(schema.into()),
                ..op(
                    "patch",
                    "patch",
                    format!("patch{prefix}{ns}{kind}{suffix}"),
                    format!("partially update {what}the specified {kind}"),
                    gvk,
                )
            },
        ]
    };

    let list_params = LIST.to_vec();
    let mut out = vec![PathDoc {
        path: collection.clone(),
        params: scope.clone(),
        ops: vec![
            Op {
                params: list_params.clone(),
                resp: Resp::List(k.list_schema.clone()),
                ..op(
                    "get",
                    "list",
                    format!("list{prefix}{ns}{kind}"),
                    format!("list or watch objects of kind {kind}"),
                    gvk,
                )
            },
            Op {
                params: writes.clone(),
                body: Some(ReqBody::Schema(k.schema.clone())),
                codes: CREATE_CODES,
                ..op(
                    "post",
                    "post",
                    format!("create{prefix}{ns}{kind}"),
                    format!("create a {kind}"),
                    gvk,
                )
            },
            Op {
                params: DELETE.iter().chain(LIST).copied().collect(),
                body: Some(ReqBody::Schema(DELETE_OPTIONS.into())),
                resp: Resp::Schema(STATUS.into()),
                ..op(
                    "delete",
                    "deletecollection",
                    format!("delete{prefix}Collection{ns}{kind}"),
                    format!("delete collection of {kind}"),
                    gvk,
                )
            },
        ],
    }];
    if k.namespaced {
        out.push(PathDoc {
            path: format!("{base}/{}", k.plural),
            params: vec![PRETTY],
            ops: vec![Op {
                params: list_params,
                resp: Resp::List(k.list_schema.clone()),
                ..op(
                    "get",
                    "list",
                    format!("list{prefix}{kind}ForAllNamespaces"),
                    format!("list or watch objects of kind {kind}"),
                    gvk,
                )
            }],
        });
    }
    scope.insert(0, NAME);
    let item = format!("{collection}/{{name}}");
    let mut item_ops = rwp("", "", &k.schema, gvk);
    item_ops.push(Op {
        params: DELETE.to_vec(),
        body: Some(ReqBody::Schema(DELETE_OPTIONS.into())),
        codes: DELETE_CODES,
        resp: Resp::Schema(STATUS.into()),
        ..op(
            "delete",
            "delete",
            format!("delete{prefix}{ns}{kind}"),
            format!("delete a {kind}"),
            gvk,
        )
    });
    out.push(PathDoc {
        path: item.clone(),
        params: scope.clone(),
        ops: item_ops,
    });

    for sub in &k.subresources {
        let (name, ops) = match sub {
            SubDoc::Status => (
                "status".to_string(),
                rwp("Status", "status of ", &k.schema, gvk),
            ),
            SubDoc::Scale(body) => (
                "scale".to_string(),
                rwp("Scale", "scale of ", &body.schema, &body.gvk),
            ),
            SubDoc::Create { name, body } => (
                name.clone(),
                vec![Op {
                    params: writes.clone(),
                    body: Some(ReqBody::Schema(body.schema.clone())),
                    codes: CREATE_CODES,
                    resp: Resp::Schema(body.schema.clone()),
                    ..op(
                        "post",
                        "post",
                        format!("create{prefix}{ns}{kind}{}", capitalize(name)),
                        format!("create {name} of a {kind}"),
                        &body.gvk,
                    )
                }],
            ),
            SubDoc::Replace { name } => (
                name.clone(),
                vec![Op {
                    params: writes.clone(),
                    body: Some(ReqBody::Schema(k.schema.clone())),
                    codes: WRITE_CODES,
                    ..op(
                        "put",
                        "put",
                        format!("replace{prefix}{ns}{kind}{}", capitalize(name)),
                        format!("replace {name} of the specified {kind}"),
                        gvk,
                    )
                }],
            ),
            SubDoc::Text { name } => (
                name.clone(),
                vec![Op {
                    params: LOG.to_vec(),
                    resp: Resp::Text,
                    ..op(
                        "get",
                        "get",
                        format!("read{prefix}{ns}{kind}{}", capitalize(name)),
                        format!("read {name} of the specified {kind}"),
                        gvk,
                    )
                }],
            ),
            SubDoc::Connect {
                name,
                gvk: options,
                get,
                post,
                with_path,
            } => {
                let mut params = match name.as_str() {
                    "exec" => STREAMS.to_vec(),
                    "attach" => STREAMS.to_vec(),
                    "portforward" => vec![PORTS],
                    _ => Vec::new(),
                };
                if name == "exec" {
                    params.insert(0, COMMAND);
                }
                let connect = |method: &'static str, verb: &str, suffix: &str| Op {
                    params: params.clone(),
                    resp: Resp::Stream,
                    ..op(
                        method,
                        "connect",
                        format!(
                            "connect{prefix}{verb}{ns}{kind}{}{suffix}",
                            capitalize(name)
                        ),
                        format!("connect {method} requests to {name} of {kind}"),
                        options,
                    )
                };
                let mut ops = Vec::new();
                let mut with_path_ops = Vec::new();
                for (wanted, method, verb) in [(*get, "get", "Get"), (*post, "post", "Post")] {
                    if wanted {
                        ops.push(connect(method, verb, ""));
                        with_path_ops.push(connect(method, verb, "WithPath"));
                    }
                }
                if *with_path {
                    let mut params = scope.clone();
                    params.insert(1, PROXY_PATH);
                    out.push(PathDoc {
                        path: format!("{item}/{name}/{{path}}"),
                        params,
                        ops: with_path_ops,
                    });
                }
                (name.clone(), ops)
            }
        };
        out.push(PathDoc {
            path: format!("{item}/{name}"),
            params: scope.clone(),
            ops,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_tags_follow_kubernetes() {
        assert_eq!(id_prefix("", "v1"), "CoreV1");
        assert_eq!(id_prefix("networking.k8s.io", "v1"), "NetworkingV1");
        assert_eq!(id_prefix("autoscaling", "v2"), "AutoscalingV2");
        assert_eq!(tag("", "v1"), "core_v1");
        assert_eq!(tag("discovery.k8s.io", "v1"), "discovery_v1");
    }
}
