//! The connection to a cluster: a kube-rs client and the tokio runtime it runs on, shared by
//! the kube target, the WardSync recorder and the controller's Lease.

use anyhow::{Context, Result, anyhow};
use kube::Client;
use tokio::runtime::Runtime;

/// A cluster reached through kube-rs, with the runtime its calls run on.
pub struct Cluster {
    rt: Runtime,
    client: Client,
    server: String,
    sync_cache: super::record::SyncCache,
}

impl Cluster {
    /// Connects as kubectl would with `--kubeconfig`, `--context`, `--as` and `--as-group`.
    pub fn connect(opts: &super::KubeOptions) -> Result<Cluster> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let mut config = rt.block_on(client_config(
            opts.kubeconfig.as_deref(),
            opts.context.as_deref(),
        ))?;
        impersonate(&mut config, opts)?;
        let server = config.cluster_url.to_string();
        let client = rt
            .block_on(async { Client::try_from(config) })
            .context("cannot build a Kubernetes client")?;
        Ok(Cluster {
            rt,
            client,
            server,
            sync_cache: super::record::SyncCache::default(),
        })
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The `WardSync` last read or written through this connection.
    pub(super) fn sync_cache(&self) -> &super::record::SyncCache {
        &self.sync_cache
    }

    /// The API server's URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Runs `f` in the background on the runtime.
    pub fn spawn(&self, f: impl std::future::Future<Output = ()> + Send + 'static) {
        drop(self.rt.spawn(f));
    }

    /// Runs `f` on the runtime and waits for it.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// The runtime, for work on other threads (the Lease renewed during a reconcile).
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.rt.handle().clone()
    }
}

/// Acts as `--as` and `--as-group` say, as kubectl does: the requests carry the
/// `Impersonate-User` and `Impersonate-Group` headers, and the cluster's RBAC for that user
/// decides (the kubeconfig's own user needs the `impersonate` verb).
fn impersonate(config: &mut kube::Config, opts: &super::KubeOptions) -> Result<()> {
    match &opts.impersonate {
        Some(user) => {
            config.auth_info.impersonate = Some(user.clone());
            if !opts.impersonate_groups.is_empty() {
                config.auth_info.impersonate_groups = Some(opts.impersonate_groups.clone());
            }
            Ok(())
        }
        None if !opts.impersonate_groups.is_empty() => Err(anyhow!(
            "--as-group needs --as (the user to act as), as with kubectl"
        )),
        None => Ok(()),
    }
}

/// The client configuration kubectl would use with `--kubeconfig` and `--context`: neither
/// given, the pod's service account when there is one, else `KUBECONFIG` or `~/.kube/config`.
/// (`ward-agent` connects the same way; it cannot share this function, because the agent
/// does not link the reconciler and the `ward` CLI need not link the agent.)
pub(crate) async fn client_config(
    kubeconfig: Option<&std::path::Path>,
    context: Option<&str>,
) -> Result<kube::Config> {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let kopts = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..KubeConfigOptions::default()
    };
    match kubeconfig {
        None if context.is_none() => kube::Config::infer()
            .await
            .context("no in-cluster service account and no usable kubeconfig; pass --kubeconfig"),
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &kopts)
                .await
                .with_context(|| format!("kubeconfig {}", path.display()))
        }
        None => kube::Config::from_kubeconfig(&kopts)
            .await
            .context("no usable kubeconfig (KUBECONFIG or ~/.kube/config); pass --kubeconfig"),
    }
}

/// A kube-rs error as a message a user can act on.
pub(crate) fn api_error(e: kube::Error, what: &str) -> anyhow::Error {
    match e {
        kube::Error::Api(s) if s.code == 409 && s.message.contains("conflict") => {
            anyhow!(
                "{what}: {} (another field manager owns these fields; `--force-conflicts` takes them over)",
                s.message
            )
        }
        kube::Error::Api(s) if s.code == 403 => anyhow!(
            "{what}: forbidden: {} (the cluster's RBAC does not allow it for this user: the kubeconfig's, or the one --as names; ask for a Role that allows it)",
            s.message
        ),
        kube::Error::Api(s) => anyhow!("{what}: {} ({})", s.message, s.reason),
        other => anyhow!("{what}: {other} (is the API server reachable?)"),
    }
}
