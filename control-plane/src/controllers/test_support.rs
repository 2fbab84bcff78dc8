//! Test helpers for controller tests: a real [`Store`] in a tempdir behind a full [`ApiState`]
//! (bootstrapped namespaces and RuntimeClasses), so controllers run against real admission.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use serde_json::Value;

use crate::api::admission::services::ServiceAllocator;
use crate::api::handlers::Objects;
use crate::api::resources::{self, ResourceDef};
use crate::api::{ApiConfig, ApiState, Tokens};
use crate::store::Store;

/// A store + API state living as long as the tempdir.
pub struct TestApi {
    pub st: ApiState,
    pub objects: Objects,
    _dir: tempfile::TempDir,
}

impl TestApi {
    pub async fn new() -> TestApi {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("state.redb"))
            .await
            .expect("store");
        let registry =
            crate::registry::Registry::open(&dir.path().join("registry")).expect("registry");
        let (_tx, shutdown) = tokio::sync::watch::channel(false);
        let st = ApiState {
            store,
            config: Arc::new(ApiConfig {
                advertise: "127.0.0.1:6443".into(),
                max_body_bytes: crate::api::request::DEFAULT_MAX_BODY_BYTES,
                limits: crate::api::limits::HttpLimits::default(),
                default_toleration_seconds:
                    crate::controllers::nodelifecycle::DEFAULT_TOLERATION_SECONDS,
                node_monitor_grace: crate::controllers::nodelifecycle::DEFAULT_NODE_MONITOR_GRACE,
                cluster_cidr: crate::controllers::nodeipam::ClusterCidr::parse(
                    crate::controllers::nodeipam::DEFAULT_CLUSTER_CIDR,
                )
                .expect("default cluster CIDR"),
                metrics_resolution: crate::usage::DEFAULT_METRICS_RESOLUTION,
            }),
            tokens: Arc::new(Tokens {
                admin: "admin".into(),
                node: "node".into(),
            }),
            services: Arc::new(
                ServiceAllocator::new("10.43.0.0/16", "30000-32767").expect("allocator"),
            ),
            metrics: Arc::new(crate::api::metrics::Metrics::new()),
            registry: Arc::new(registry),
            shutdown,
            usage: Default::default(),
            requests: Default::default(),
            inflight: Arc::new(crate::api::limits::InFlight::new(
                &crate::api::limits::HttpLimits::default(),
            )),
        };
        crate::bootstrap::run(&st, IpAddr::V4(Ipv4Addr::LOCALHOST), 6443)
            .await
            .expect("bootstrap");
        TestApi {
            objects: Objects::new(st.clone()),
            st,
            _dir: dir,
        }
    }

    pub async fn create(&self, def: &'static ResourceDef, obj: Value) -> Value {
        let ns = crate::api::object::namespace(&obj).to_string();
        self.objects.create(def, &ns, obj).await.expect("create")
    }

    pub async fn get(&self, def: &'static ResourceDef, ns: &str, name: &str) -> Option<Value> {
        self.objects.get(def, ns, name).await.expect("get")
    }

    pub async fn list(&self, def: &'static ResourceDef, ns: &str) -> Vec<Value> {
        self.objects.list(def, ns, None).await.expect("list")
    }
}

pub fn def(group: &str, plural: &str) -> &'static ResourceDef {
    let version = if plural == "horizontalpodautoscalers" {
        "v2"
    } else {
        "v1"
    };
    resources::find(group, version, plural).expect("served resource")
}

pub fn pods() -> &'static ResourceDef {
    def("", "pods")
}

pub fn replicasets() -> &'static ResourceDef {
    def("apps", "replicasets")
}

pub fn deployments() -> &'static ResourceDef {
    def("apps", "deployments")
}
