//! The API for in-process callers (controllers): the same admission, defaulting, validation,
//! preconditions and deletion semantics as a kubectl request, without HTTP. Controllers use
//! this rather than writing to the store directly, so an object a controller creates is
//! indistinguishable from one a user created.

use http::HeaderMap;
use serde_json::Value;

use super::delete::{delete_one, DeleteOpts};
use super::read::list_matching;
use super::write::{create_value, write_loop, Subresource, Track};
use super::Ctx;
use crate::api::object;
use crate::api::path::ResourcePath;
use crate::api::request::Query;
use crate::api::resources::ResourceDef;
use crate::api::status::{ApiError, ApiResult};
use crate::api::ApiState;

/// How to delete an object (the DeleteOptions fields controllers use).
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// Grace period for pods; `None` = the pod's own `terminationGracePeriodSeconds`.
    pub grace_seconds: Option<i64>,
    /// Only delete the object with this uid (not a newer one of the same name).
    pub uid: Option<String>,
    /// `Background`, `Foreground` or `Orphan`; `None` = the kind's default.
    pub propagation_policy: Option<String>,
}

/// In-process access to the API. Cheap to clone.
#[derive(Clone)]
pub struct Objects {
    st: ApiState,
}

impl Objects {
    pub fn new(st: ApiState) -> Self {
        Objects { st }
    }

    pub fn state(&self) -> &ApiState {
        &self.st
    }

    fn ctx(
        &self,
        def: &'static ResourceDef,
        namespace: &str,
        name: Option<&str>,
        query: Query,
    ) -> Ctx {
        Ctx {
            st: self.st.clone(),
            rp: ResourcePath {
                def,
                namespace: (def.namespaced && !namespace.is_empty()).then(|| namespace.to_string()),
                name: name.map(str::to_string),
                subresource: None,
                proxy_path: None,
            },
            q: query,
            headers: controller_headers(),
            served: None,
        }
    }

    /// The object, or `None` when it does not exist.
    pub async fn get(
        &self,
        def: &'static ResourceDef,
        namespace: &str,
        name: &str,
    ) -> ApiResult<Option<Value>> {
        let ctx = self.ctx(def, namespace, Some(name), Query::default());
        match ctx.current().await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.code == http::StatusCode::NOT_FOUND => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Objects of a kind in a namespace (`""` = all namespaces / cluster-scoped), optionally
    /// filtered by a label selector in kubectl's syntax.
    pub async fn list(
        &self,
        def: &'static ResourceDef,
        namespace: &str,
        label_selector: Option<&str>,
    ) -> ApiResult<Vec<Value>> {
        let q = Query {
            label_selector: label_selector.map(str::to_string),
            ..Query::default()
        };
        let ctx = self.ctx(def, namespace, None, q);
        Ok(list_matching(&ctx).await?.0)
    }

    /// Creates an object through admission (generateName, defaults, validation).
    pub async fn create(
        &self,
        def: &'static ResourceDef,
        namespace: &str,
        obj: Value,
    ) -> ApiResult<Value> {
        let ctx = self.ctx(def, namespace, None, Query::default());
        Ok(create_value(&ctx, obj).await?.1)
    }

    /// Replaces an object (`sub` = the main resource or its status). The object's
    /// `metadata.resourceVersion`, when set, is a precondition: a stale read gets 409.
    pub async fn replace(
        &self,
        def: &'static ResourceDef,
        obj: Value,
        sub: Subresource,
    ) -> ApiResult<Value> {
        let namespace = object::namespace(&obj).to_string();
        let name = object::name(&obj).to_string();
        if name.is_empty() {
            return Err(ApiError::bad_request("metadata.name: Required value"));
        }
        let ctx = self.ctx(def, &namespace, Some(&name), Query::default());
        let rv = object::meta_str(&obj, "resourceVersion")
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        Ok(
            write_loop(&ctx, sub, rv, &Track::Update, |_| Ok(obj.clone()))
                .await?
                .0,
        )
    }

    /// Reads the latest object, changes it with `change`, and writes it back, retrying on
    /// concurrent writes. Returns `None` when the object does not exist.
    pub async fn modify<F>(
        &self,
        def: &'static ResourceDef,
        namespace: &str,
        name: &str,
        sub: Subresource,
        change: F,
    ) -> ApiResult<Option<Value>>
    where
        F: Fn(&mut Value) -> ApiResult<()>,
    {
        let ctx = self.ctx(def, namespace, Some(name), Query::default());
        let result = write_loop(&ctx, sub, None, &Track::Update, |current| {
            let mut next = current.clone();
            change(&mut next)?;
            Ok(next)
        })
        .await;
        match result {
            Ok((v, _)) => Ok(Some(v)),
            Err(e) if e.code == http::StatusCode::NOT_FOUND => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes an object as `DELETE` does (graceful pods, finalizers). Returns its last state,
    /// or `None` when it was already gone.
    pub async fn delete(
        &self,
        def: &'static ResourceDef,
        namespace: &str,
        name: &str,
        opts: DeleteOptions,
    ) -> ApiResult<Option<Value>> {
        let q = Query {
            propagation_policy: opts.propagation_policy.clone(),
            ..Query::default()
        };
        let ctx = self.ctx(def, namespace, Some(name), q);
        let body = serde_json::json!({
            "gracePeriodSeconds": opts.grace_seconds,
            "preconditions": {"uid": opts.uid},
        });
        let del = DeleteOpts::from_value(&ctx, Some(body))?;
        match delete_one(&ctx, name, &del).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.code == http::StatusCode::NOT_FOUND => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// In-process writers (controllers, bootstrap) own their fields as this manager.
const CONTROLLER_MANAGER: &str = "skiff-controller-manager";

fn controller_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::USER_AGENT,
        http::HeaderValue::from_static(CONTROLLER_MANAGER),
    );
    h
}
