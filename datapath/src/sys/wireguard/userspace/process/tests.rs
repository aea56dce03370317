//! The control socket end to end, without root: a device process's loop ([`serve`]) in a
//! thread of the test, and the agent's side ([`Remote`]) talking to it. No interface is set
//! up (that needs root and a TUN; `datapath/tests/wireguard_lab.rs` does it).

#![allow(clippy::unwrap_used, reason = "tests")]

use super::*;
use crate::sys::wireguard::userspace::Remote;
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::Instant;

/// A device loop serving `<tmp>/wireguard.sock`, and an agent attached to it.
fn device() -> (tempfile::TempDir, PathBuf, JoinHandle<Result<()>>, Remote) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("wireguard.sock");
    let server = {
        let s = socket.clone();
        std::thread::spawn(move || serve(&s))
    };
    let start = Instant::now();
    loop {
        if let Some(r) = Remote::attach(&socket).unwrap() {
            return (dir, socket, server, r);
        }
        assert!(start.elapsed() < Duration::from_secs(5), "no device");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn an_agent_attaches_detaches_attaches_again_and_shuts_the_device_down() {
    let (_dir, socket, server, remote) = device();
    assert_eq!(remote.pid(), std::process::id(), "the peer's credentials");
    assert_eq!(
        std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let e = remote.read().unwrap_err().to_string();
    assert!(e.contains("no interface yet"), "{e}");
    assert!(remote.alive());
    // An agent that goes away leaves the device serving the next one.
    drop(remote);
    let remote = Remote::attach(&socket).unwrap().unwrap();
    remote.shutdown().unwrap();
    server.join().unwrap().unwrap();
    assert!(!socket.exists(), "the socket goes with the device");
    assert!(Remote::attach(&socket).unwrap().is_none());
    assert!(!remote.alive());
}

#[test]
fn a_device_whose_socket_is_removed_exits_and_its_agent_notices() {
    let (_dir, socket, server, remote) = device();
    std::fs::remove_file(&socket).unwrap();
    server.join().unwrap().unwrap();
    let start = Instant::now();
    while remote.alive() {
        assert!(start.elapsed() < Duration::from_secs(5), "still alive");
        std::thread::sleep(Duration::from_millis(10));
    }
    let e = remote.read().unwrap_err().to_string();
    assert!(e.contains("stopped answering"), "{e}");
}
