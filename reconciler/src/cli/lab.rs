//! `ward lab up|down|status`: the network-namespace lab of `ward_datapath::lab`.

use super::args::LabCommand;
use super::{EXIT_ERROR, EXIT_OK, Settings, emit_findings, write_stdout};
use anyhow::{Result, bail};
use std::path::Path;
use ward_datapath::lab::{Lab, Topology, require_root};

/// Runs one `ward lab` command.
pub(super) fn run(settings: &Settings, command: LabCommand) -> Result<i32> {
    match command {
        LabCommand::Up {
            topology, replace, ..
        } => {
            let Some(t) = load(settings, &topology)? else {
                return Ok(EXIT_ERROR);
            };
            require_root()?;
            let mut out = String::new();
            let lab = if replace {
                // A replaced lab starts clean: the old nodes' pinned datapaths (conntrack,
                // events, policy) go with it, and so do pins left under the new nodes' names.
                let mut nodes = lab_nodes(&t.name)?;
                nodes.extend(t.nodes.iter().map(|n| n.name.clone()));
                nodes.sort();
                nodes.dedup();
                out.push_str(&remove_node_pins(&nodes)?);
                Lab::up_replacing(&t)?
            } else {
                Lab::up(&t)?
            };
            write_stdout(&format!("{out}{lab}\n"))?;
            Ok(EXIT_OK)
        }
        LabCommand::Down { topology, name, .. } => {
            let name = match (topology, name) {
                (_, Some(name)) => name,
                (Some(file), None) => match load(settings, &file)? {
                    Some(t) => t.name,
                    None => return Ok(EXIT_ERROR),
                },
                (None, None) => {
                    let labs = Lab::status()?;
                    match labs.as_slice() {
                        [] => {
                            write_stdout("no lab found; nothing to remove\n")?;
                            return Ok(EXIT_OK);
                        }
                        [one] => one.name.clone(),
                        many => {
                            let names: Vec<&str> = many.iter().map(|l| l.name.as_str()).collect();
                            bail!(
                                "there are {} labs ({}); say which with --name",
                                many.len(),
                                names.join(", ")
                            );
                        }
                    }
                }
            };
            require_root()?;
            // The nodes' pinned datapaths (ward-agent's) go with the lab: without its
            // interfaces they enforce nothing and only hold memory.
            let nodes = lab_nodes(&name)?;
            let teardown = Lab::down(&name)?;
            let out = format!("{teardown}\n{}", remove_node_pins(&nodes)?);
            write_stdout(&out)?;
            Ok(EXIT_OK)
        }
        LabCommand::Status => {
            let labs = Lab::status()?;
            let mut out = String::new();
            if labs.is_empty() {
                out.push_str("no lab found\n");
            }
            for l in &labs {
                let health = if l.missing.is_empty() && l.state.is_some() {
                    "up"
                } else {
                    "incomplete"
                };
                out.push_str(&format!(
                    "lab {}: {health}, {} network namespace(s)",
                    l.name,
                    l.present.len()
                ));
                match &l.state {
                    Some(s) => out.push_str(&format!(
                        ", {} node(s), {} pod(s), world {} (from {})\n",
                        s.topology.nodes.len(),
                        s.topology.pods.len(),
                        s.topology.world.ip,
                        s.topology.source
                    )),
                    None => out.push_str(", no state file\n"),
                }
                if !l.missing.is_empty() {
                    out.push_str(&format!("  missing: {}\n", l.missing.join(", ")));
                }
            }
            write_stdout(&out)?;
            Ok(EXIT_OK)
        }
    }
}

/// The topology in `file`, or `None` once its findings are printed like `ward validate`'s.
fn load(settings: &Settings, file: &Path) -> Result<Option<Topology>> {
    match Topology::load(file) {
        Ok(t) => Ok(Some(t)),
        Err(diagnostics) => {
            let files = [file.display().to_string()];
            emit_findings(settings, "lab", &files, 1, &diagnostics)?;
            Ok(None)
        }
    }
}

/// The nodes of the lab `name` as its state file records them (none when it is not up).
fn lab_nodes(name: &str) -> Result<Vec<String>> {
    Ok(Lab::status()?
        .into_iter()
        .filter(|l| l.name == name)
        .filter_map(|l| l.state)
        .flat_map(|s| s.topology.nodes.into_iter().map(|n| n.name))
        .collect())
}

/// Removes the pinned datapaths of `nodes`; one line per node that had one.
fn remove_node_pins(nodes: &[String]) -> Result<String> {
    let mut out = String::new();
    for node in nodes {
        let pins = ward_datapath::bpf::pin_dir(node)?;
        if pins.exists() {
            ward_datapath::bpf::remove_pins(node)?;
            out.push_str(&format!(
                "removed the pinned datapath of node {node} ({})\n",
                pins.display()
            ));
        }
    }
    Ok(out)
}
