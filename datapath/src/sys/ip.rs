//! Running `ip` (iproute2): what the kernel seam keeps as commands (see the
//! [module documentation](super) for which and why). Nothing outside `sys/` and the lab's
//! builder uses it.

use anyhow::{Context, Result, bail};
use std::process::{Command, Stdio};

/// Runs `ip <args>`; a failure names the command and carries its stderr.
pub(crate) fn ip(args: &[&str]) -> Result<String> {
    let shown = format!("ip {}", args.join(" "));
    tracing::debug!(command = %shown, "sys");
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
