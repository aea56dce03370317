//! Running `ip` (iproute2) and setting per-namespace sysctls.

use super::in_netns;
use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs `ip <args>`; a failure names the command and carries its stderr.
pub(crate) fn ip(args: &[&str]) -> Result<String> {
    let shown = format!("ip {}", args.join(" "));
    tracing::debug!(command = %shown, "lab");
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run `{shown}` (is iproute2 installed?)"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        bail!("`{shown}` failed ({}): {}", out.status, stderr.trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip -n <netns> <command>`, the command split on whitespace (every name and address the
/// lab uses is free of it).
pub(crate) fn ip_in(netns: &str, command: &str) -> Result<String> {
    let mut all = vec!["-n", netns];
    all.extend(command.split_whitespace());
    ip(&all)
}

/// `ip <args>` inside the network namespace at path `netns` (the child is started from a
/// thread that joined it, so any namespace path works, not only names under /run/netns).
pub(crate) fn ip_at(netns: &Path, args: &[&str]) -> Result<String> {
    in_netns(netns, || ip(args))?
        .with_context(|| format!("in network namespace {}", netns.display()))
}

/// The namespaces `ip netns list` shows (names only).
pub(crate) fn netns_list() -> Result<Vec<String>> {
    Ok(ip(&["netns", "list"])?
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// Sets `/proc/sys/<key>` (dots become slashes) to `value` inside `netns`. Keys under
/// `net/ipv6` are skipped when the kernel has no IPv6 at all.
pub(crate) fn sysctls(netns: &Path, settings: &[(&str, &str)]) -> Result<()> {
    let owned: Vec<(String, String)> = settings
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    in_netns(netns, move || -> Result<()> {
        for (key, value) in &owned {
            let path = Path::new("/proc/sys").join(key.replace('.', "/"));
            match std::fs::write(&path, value) {
                Ok(()) => {}
                Err(e)
                    if e.kind() == std::io::ErrorKind::NotFound
                        && key.starts_with("net.ipv6.")
                        && !Path::new("/proc/sys/net/ipv6").exists() => {}
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("cannot set {key}={value} ({})", path.display()));
                }
            }
        }
        Ok(())
    })?
    .with_context(|| format!("in network namespace {}", netns.display()))
}
