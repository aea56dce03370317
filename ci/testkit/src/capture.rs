//! Packet captures with tcpdump, for tests that check what crosses a wire (an underlay that
//! must carry only WireGuard, a packet that must arrive).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// tcpdump on one interface, writing a pcap file; stopped on drop.
pub struct Capture {
    child: Child,
    file: PathBuf,
}

impl Capture {
    /// Starts capturing on `iface` (in the network namespace named `netns`, or the test's
    /// own) the packets that match the BPF `filter` ("" for all) into `file`, and waits
    /// until tcpdump listens. Panics when tcpdump cannot start.
    pub fn start(netns: Option<&str>, iface: &str, filter: &str, file: PathBuf) -> Capture {
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "tcpdump"]);
                c
            }
            None => Command::new("tcpdump"),
        };
        cmd.args(["--immediate-mode", "-i", iface, "-n", "-U", "-s", "0", "-w"])
            .arg(&file);
        if !filter.is_empty() {
            cmd.arg(filter);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tcpdump (apt-get install tcpdump)");
        // tcpdump writes the pcap header once it listens.
        let end = Instant::now() + Duration::from_secs(10);
        while !std::fs::metadata(&file).is_ok_and(|m| m.len() >= 24) {
            assert!(
                Instant::now() < end,
                "tcpdump did not start on {iface} in 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Capture { child, file }
    }

    /// Stops the capture; the pcap file's bytes.
    pub fn stop(mut self) -> Vec<u8> {
        // A grace period, not a wait for a condition: tcpdump says nothing when it has
        // written a packet, and the capture does not know which packets are still in flight
        // (it is stopped after the traffic, whose last packets may be on their way).
        std::thread::sleep(Duration::from_millis(200));
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        std::fs::read(&self.file).unwrap_or_else(|e| panic!("{}: {e}", self.file.display()))
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tcpdump -r` of the pcap `file` with `filter` ("" for all): one line per packet.
pub fn pcap_lines(file: &Path, filter: &str) -> Vec<String> {
    let mut cmd = Command::new("tcpdump");
    cmd.args(["-n", "-r"]).arg(file);
    if !filter.is_empty() {
        cmd.arg(filter);
    }
    let out = cmd.output().expect("tcpdump (apt-get install tcpdump)");
    assert!(
        out.status.success(),
        "tcpdump -r {filter:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Whether `needle` occurs in `haystack` (a marker in a capture).
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
