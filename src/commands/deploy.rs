//! `skiff deploy`: build the project if a source changed, import its component into the
//! cluster image store under a content-derived tag, server-side apply the project's manifests
//! with that image, wait until what they run is ready, and say how to reach it.

mod apply;
mod manifests;
mod reach;
mod wait;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::image;
use super::project::{human_size, Project};

/// How long `skiff deploy` waits for the API server to answer before saying it is unreachable:
/// a local or LAN server answers in milliseconds, so seconds mean it is down.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long it waits for the workloads by default: a cold Wasm start is well under a second,
/// a container image pull from the cluster store a few seconds; two minutes leaves room for a
/// busy node without hiding a pod that will never start.
const DEFAULT_TIMEOUT: &str = "120s";
/// The field manager of `skiff deploy`'s server-side applies (`kubectl get -o yaml
/// --show-managed-fields` shows it).
const FIELD_MANAGER: &str = "skiff-deploy";

#[derive(Args, Debug)]
pub struct DeployArgs {
    /// The project directory (holding skiff.toml). Default: the current directory.
    #[arg(long)]
    project: Option<PathBuf>,
    /// Kubeconfig of the cluster. Default: $KUBECONFIG, then ~/.kube/config, then
    /// ~/.local/share/skiff/kubeconfig.yaml.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Namespace for objects that name none. Default: the kubeconfig context's, else default.
    #[arg(long, short = 'n')]
    namespace: Option<String>,
    /// How long to wait for the workloads to be ready (e.g. 90s, 5m).
    #[arg(long, default_value = DEFAULT_TIMEOUT, value_parser = super::server::parse_duration)]
    timeout: Duration,
}

/// The cluster as the kubeconfig reaches it.
pub struct Cluster {
    pub client: kube::Client,
    pub kubeconfig: PathBuf,
    pub namespace: String,
}

/// Where the kubeconfig path came from, for messages.
fn kubeconfig_source(flag: Option<&Path>) -> &'static str {
    if flag.is_some() {
        "from --kubeconfig"
    } else if std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty()) {
        "from $KUBECONFIG"
    } else {
        "the default location"
    }
}

async fn connect(kubeconfig: Option<&Path>, namespace: Option<&str>) -> Result<Cluster> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let path = image::kubeconfig_path(kubeconfig)?;
    let kc = kube::config::Kubeconfig::read_from(&path).with_context(|| {
        format!(
            "cannot read the kubeconfig {} ({}); is this the cluster you meant? \
                 `skiff server` writes ~/.local/share/skiff/kubeconfig.yaml",
            path.display(),
            kubeconfig_source(kubeconfig)
        )
    })?;
    let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .with_context(|| format!("the kubeconfig {} is not usable", path.display()))?;
    config.connect_timeout = Some(DEFAULT_CONNECT_TIMEOUT);
    let server = config.cluster_url.to_string();
    let ns = namespace
        .map(str::to_string)
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = kube::Client::try_from(config).with_context(|| {
        format!(
            "cannot make a client for {server} (kubeconfig {})",
            path.display()
        )
    })?;
    match tokio::time::timeout(DEFAULT_CONNECT_TIMEOUT, client.apiserver_version()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => bail!(
            "cannot reach the cluster at {server} (from the kubeconfig {}): {e}. Is `skiff server` running, and is this the kubeconfig it wrote? (--kubeconfig or $KUBECONFIG choose another)",
            path.display()
        ),
        Err(_) => bail!(
            "the cluster at {server} (from the kubeconfig {}) did not answer within {}s. Is `skiff server` running? (--kubeconfig or $KUBECONFIG choose another)",
            path.display(),
            DEFAULT_CONNECT_TIMEOUT.as_secs()
        ),
    }
    Ok(Cluster {
        client,
        kubeconfig: path,
        namespace: ns,
    })
}

pub async fn run(args: DeployArgs) -> Result<()> {
    let project = Project::open(args.project.as_deref())?;
    let name = project.manifest.name.clone();
    // Read the manifests and reach the cluster before a build that may take minutes.
    let mut objects = manifests::load(&project)?;
    let cluster = connect(args.kubeconfig.as_deref(), args.namespace.as_deref()).await?;

    let component = if project.is_stale()? {
        let p = project.clone();
        let (component, size) = tokio::task::spawn_blocking(move || p.build())
            .await
            .context("the build task failed")??;
        eprintln!("built {} ({})", component.display(), human_size(size));
        component
    } else {
        let component = project.component();
        eprintln!("{} is up to date", component.display());
        component
    };

    let bytes = tokio::fs::read(&component)
        .await
        .with_context(|| format!("cannot read {}", component.display()))?;
    let digest = image::sha256_digest(&bytes);
    let tag = format!("sha256-{}", &digest["sha256:".len().."sha256:".len() + 12]);
    let reference = format!("{name}:{tag}");
    let store = image::Store::connect(Some(&cluster.kubeconfig))?;
    image::import(&store, &component, Some(&reference))
        .await
        .with_context(|| format!("importing {} as {reference}", component.display()))?;
    eprintln!("imported {reference}");

    let replaced = manifests::set_image(&mut objects, &name, &reference);
    if replaced == 0 && !objects.is_empty() {
        eprintln!(
            "note: no container in {} uses the image {name} (any tag), so none runs the new component",
            project.manifest.manifests.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    let applied = apply::apply_all(&cluster, &objects).await?;
    eprintln!(
        "applied {} (namespace {})",
        applied
            .iter()
            .map(apply::Applied::display)
            .collect::<Vec<_>>()
            .join(", "),
        cluster.namespace
    );
    let deadline = tokio::time::Instant::now() + args.timeout;
    for obj in &applied {
        wait::ready(&cluster, obj, deadline, args.timeout).await?;
    }
    print!("{}", reach::describe(&cluster, &applied).await?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::server::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3d").unwrap_err().contains("unit"));
    }
}
