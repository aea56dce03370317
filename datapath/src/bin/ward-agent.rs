//! `ward-agent`: the node agent. `run` enforces the desired state on one node's pods;
//! `status` shows what the node's maps hold; `rotate-key` is reserved for the WireGuard mesh.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use ward_datapath::agent::run::{Agent, AgentConfig};
use ward_datapath::agent::status;

/// ward's node agent: policies from the local target, enforced by eBPF on this node's pods.
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
        /// The lab topology (endpoints).
        #[arg(long, default_value = "cluster-config/lab.yaml")]
        topology: PathBuf,
        /// The local target's state directory (what `ward apply` writes).
        #[arg(long, default_value = ".ward")]
        state: PathBuf,
        /// Where to write status and rule names.
        #[arg(long)]
        run_dir: Option<PathBuf>,
        /// Sync once and exit (the maps stay pinned and enforced).
        #[arg(long)]
        once: bool,
        /// Full resync interval in seconds.
        #[arg(long, default_value_t = 30)]
        resync_seconds: u64,
    },
    /// Endpoints, identities, map sizes and counters of a node (from the pinned maps).
    Status {
        /// The node.
        #[arg(long)]
        node: String,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("WARD_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let result = match Cli::parse().command {
        Command::Run { node, topology, state, run_dir, once, resync_seconds } => {
            let run_dir = run_dir.unwrap_or_else(|| AgentConfig::default_run_dir(&node));
            run(AgentConfig { node, topology, state_dir: state, run_dir }, once, Duration::from_secs(resync_seconds))
        }
        Command::Status { node, json } => status::print(&node, json),
    };
    if let Err(e) = result {
        eprintln!("ward-agent: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cfg: AgentConfig, once: bool, resync: Duration) -> anyhow::Result<()> {
    let mut agent = Agent::start(cfg)?;
    if once {
        agent.sync()?;
        return Ok(());
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [nix::sys::signal::Signal::SIGTERM, nix::sys::signal::Signal::SIGINT] {
        let stop = Arc::clone(&stop);
        // The handler only sets a flag; the loop notices within 200 ms.
        signal_flag(sig, stop)?;
    }
    agent.run(&stop, resync)?;
    tracing::info!("stopping; the programs and maps stay pinned and keep enforcing");
    Ok(())
}

/// Sets `flag` when `sig` arrives, from a thread that waits for it (no unsafe handler).
fn signal_flag(sig: nix::sys::signal::Signal, flag: Arc<AtomicBool>) -> anyhow::Result<()> {
    let mut set = nix::sys::signal::SigSet::empty();
    set.add(sig);
    set.thread_block()?;
    std::thread::spawn(move || {
        if set.wait().is_ok() {
            flag.store(true, Ordering::Relaxed);
        }
    });
    Ok(())
}
