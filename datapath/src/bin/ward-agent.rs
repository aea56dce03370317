//! `ward-agent`: the node agent. `run` enforces the desired state on one node's pods;
//! `status` shows what the node's maps hold and its WireGuard mesh; `rotate-key` asks the
//! running agent to rotate the node's WireGuard key now; `device` is the userspace WireGuard
//! device, which `run` starts and configures itself and which outlives it.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use ward_datapath::agent::dns::cache::TtlBounds;
use ward_datapath::agent::kube::KubeOptions;
use ward_datapath::agent::run::{Agent, AgentConfig, Source};
use ward_datapath::agent::status;

/// ward's node agent: policies from the local target or the API server, enforced by eBPF on
/// this node's pods.
#[derive(Debug, Parser)]
#[command(name = "ward-agent", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Attach to the node's pods and keep the BPF maps equal to the desired state.
    Run {
        /// This node's name in the topology.
        #[arg(long)]
        node: String,
        /// The lab topology (endpoints), in files mode.
        #[arg(long, default_value = "cluster-config/lab.yaml")]
        topology: PathBuf,
        /// The local target's state directory (what `ward apply` writes), in files mode.
        #[arg(long, default_value = ".ward")]
        state: PathBuf,
        /// Kube mode: pods, nodes, namespaces, CNPs, CCNPs and the CiliumConfig from the API
        /// server; the WireGuard public key is published on this node's Node object.
        #[arg(long, conflicts_with_all = ["topology", "state"])]
        kube: bool,
        /// Kube mode: a kubeconfig (default: the pod's service account, else as kubectl).
        #[arg(long, requires = "kube")]
        kubeconfig: Option<PathBuf>,
        /// Kube mode: the kubeconfig context.
        #[arg(long, requires = "kube")]
        context: Option<String>,
        /// Kube mode: the namespace of the ConfigMap holding the CiliumConfig.
        #[arg(long, default_value = "kube-system", requires = "kube")]
        config_namespace: String,
        /// Kube mode: the node's network namespace (default: the agent's own, hostNetwork).
        #[arg(long, requires = "kube")]
        netns: Option<PathBuf>,
        /// Where to write status and rule names.
        #[arg(long)]
        run_dir: Option<PathBuf>,
        /// Where the WireGuard private key is kept (default: the run directory).
        #[arg(long)]
        key_dir: Option<PathBuf>,
        /// Sync once and exit (the maps stay pinned and enforced; the DNS proxy runs only
        /// while the agent does, so queries under rules.dns are then dropped).
        #[arg(long)]
        once: bool,
        /// Full resync interval in seconds.
        #[arg(long, default_value_t = 30)]
        resync_seconds: u64,
        /// The shortest time, in seconds, the DNS proxy keeps an answer's addresses for
        /// `toFQDNs` rules, whatever its TTL (Cilium's --tofqdns-min-ttl; 0: the answer's own).
        #[arg(long, default_value_t = 0)]
        dns_min_ttl: u64,
        /// The longest time, in seconds, it keeps them.
        #[arg(long, default_value_t = 86_400)]
        dns_max_ttl: u64,
    },
    /// Endpoints, identities, map sizes and counters of a node (from the pinned maps), and its
    /// WireGuard interface, public key, peers and next rotation.
    Status {
        /// The node.
        #[arg(long)]
        node: String,
        /// The agent's run directory (as given to `run`).
        #[arg(long)]
        run_dir: Option<PathBuf>,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Rotates the node's WireGuard key now (make before break) and waits until it is done.
    RotateKey {
        /// The node.
        #[arg(long)]
        node: String,
        /// The agent's run directory (as given to `run`).
        #[arg(long)]
        run_dir: Option<PathBuf>,
        /// How long to wait for the rotation, in seconds.
        #[arg(long, default_value_t = 30)]
        timeout_seconds: u64,
    },
    /// The userspace WireGuard device (TUN and UDP socket), for kernels without WireGuard.
    /// `run` starts it when it finds none and hands it its configuration, private key
    /// included, over the control socket only; it keeps the tunnel up while the agent
    /// restarts, and exits on the agent's request, on a signal, or when its socket is removed.
    Device {
        /// The control socket (`<run dir>/wireguard.sock`).
        #[arg(long)]
        socket: PathBuf,
    },
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WARD_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person: never into a pipe, a file or a pod's log.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match Cli::parse().command {
        Command::Run {
            node,
            topology,
            state,
            kube,
            kubeconfig,
            context,
            config_namespace,
            netns,
            run_dir,
            key_dir,
            once,
            resync_seconds,
            dns_min_ttl,
            dns_max_ttl,
        } => {
            let run_dir = run_dir.unwrap_or_else(|| AgentConfig::default_run_dir(&node));
            let source = if kube {
                Source::Kube {
                    options: KubeOptions {
                        kubeconfig,
                        context,
                        config_namespace,
                    },
                    netns,
                }
            } else {
                Source::Files {
                    topology,
                    state_dir: state,
                }
            };
            run(
                AgentConfig {
                    node,
                    source,
                    run_dir,
                    key_dir,
                    dns_ttl: TtlBounds {
                        min: Duration::from_secs(dns_min_ttl),
                        max: Duration::from_secs(dns_max_ttl),
                    },
                },
                once,
                Duration::from_secs(resync_seconds),
            )
        }
        Command::Status {
            node,
            run_dir,
            json,
        } => {
            let run_dir = run_dir.unwrap_or_else(|| AgentConfig::locate_run_dir(&node));
            status::print(&node, &run_dir, json)
        }
        Command::RotateKey {
            node,
            run_dir,
            timeout_seconds,
        } => {
            let run_dir = run_dir.unwrap_or_else(|| AgentConfig::locate_run_dir(&node));
            status::rotate_key(&node, &run_dir, Duration::from_secs(timeout_seconds))
        }
        Command::Device { socket } => ward_datapath::sys::wireguard::userspace::serve(&socket),
    };
    if let Err(e) = result {
        eprintln!("ward-agent: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cfg: AgentConfig, once: bool, resync: Duration) -> anyhow::Result<()> {
    // Blocked before the agent starts any thread (its DNS proxy's), which inherit the mask:
    // a signal must reach the waiting thread, not end the process from another one.
    let stop = Arc::new(AtomicBool::new(false));
    // The handler only sets a flag; the loop notices within 200 ms.
    signal_flag(
        &[
            nix::sys::signal::Signal::SIGTERM,
            nix::sys::signal::Signal::SIGINT,
        ],
        Arc::clone(&stop),
    )?;
    let mut agent = Agent::start(cfg)?;
    if once {
        agent.sync()?;
        return Ok(());
    }
    agent.run(&stop, resync)?;
    tracing::info!(
        "stopping; the programs and maps stay pinned and keep enforcing, a userspace WireGuard device keeps running"
    );
    Ok(())
}

/// Sets `flag` when one of `signals` arrives, from a thread that waits for them (no unsafe
/// handler). They are blocked in the calling thread first, so every thread started after
/// this (the waiter included) leaves them to the waiter.
fn signal_flag(signals: &[nix::sys::signal::Signal], flag: Arc<AtomicBool>) -> anyhow::Result<()> {
    let mut set = nix::sys::signal::SigSet::empty();
    for sig in signals {
        set.add(*sig);
    }
    set.thread_block()?;
    std::thread::spawn(move || {
        if set.wait().is_ok() {
            flag.store(true, Ordering::Relaxed);
        }
    });
    Ok(())
}
