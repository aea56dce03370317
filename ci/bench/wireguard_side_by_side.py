#!/usr/bin/env python3
"""ward's userspace WireGuard device side by side with wireguard-go, on one machine.

    sudo python3 ci/bench/wireguard_side_by_side.py

Two node namespaces joined by a veth pair (the underlay), a pod namespace behind each, and in
each node both devices: ward's (`ward-agent device`, configured over its control socket as
ward-agent configures it) and wireguard-go (configured over its UAPI socket, as `wg` does).
Then interleaved turns of one iperf3 stream from pod to pod: through ward's device, through
wireguard-go, and in clear over the underlay (the node routes to the other pod switched for
each turn), so every figure meets the same machine at nearly the same moment. Per turn:
Gbit/s received, the machine's CPU (share of all cores) and the two devices' CPU (share of
one core, both nodes' processes together); then medians per path.

Steps
  1. build wireguard-go from its Go module into ~/.cache/ward/bin (skipped when the cached
     binary already is that version), and ward-agent with `cargo build --release` (skipped
     with WARD_AGENT);
  2. set up the namespaces (prefix `wgsb-`, replaced when left over) and start the devices;
  3. TURNS turns of TURN_SECONDS each per path; print each turn and the medians.

Environment
  TURNS                  turns per path (default 5)
  TURN_SECONDS           iperf3 seconds per turn (default 5)
  WIREGUARD_GO_VERSION   module version of golang.zx2c4.com/wireguard (default the one below)
  WARD_AGENT             a built ward-agent (default: build it; CARGO_TARGET_DIR honoured)
  WARD_BIN_DIR           where built tools are cached (default ~/.cache/ward/bin)

Needs root, iperf3 and wireguard-tools (`wg`, for keys; both installed with apt when
missing), Go and cargo. Exit status: 0 after a complete run, 1 when a turn failed, 2 on
setup problems.
"""

import base64
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WIREGUARD_GO_VERSION = os.environ.get("WIREGUARD_GO_VERSION", "v0.0.0-20260522210424-ecfc5a8d5446")
BIN_DIR = Path(os.environ.get("WARD_BIN_DIR", Path.home() / ".cache/ward/bin"))
TURNS = int(os.environ.get("TURNS", "5"))
SECONDS = int(os.environ.get("TURN_SECONDS", "5"))
PREFIX = "wgsb"
NODES = (1, 2)
RUN = Path(f"/run/{PREFIX}")
MTU = 1420


def sh(*args, check=True, **kw):
    """Runs a command, its output captured; with `check`, a failure ends the run (status 2)
    with the command and what it printed."""
    r = subprocess.run(args, check=False, text=True, capture_output=True, **kw)
    if check and r.returncode != 0:
        setup_fail(f"`{' '.join(args)}` failed ({r.returncode}): {(r.stderr or r.stdout).strip()}")
    return r


def netns(name, *args, **kw):
    return sh("ip", "netns", "exec", f"{PREFIX}-{name}", *args, **kw)


def setup_fail(msg):
    print(f"wireguard_side_by_side: {msg}", file=sys.stderr)
    sys.exit(2)


def tools():
    """The wireguard-go and ward-agent binaries, built when needed."""
    for tool, pkg in (("iperf3", "iperf3"), ("wg", "wireguard-tools")):
        if shutil.which(tool) is None:
            sh("apt-get", "update", "-qq")
            sh("apt-get", "install", "-y", "--no-install-recommends", pkg)
    BIN_DIR.mkdir(parents=True, exist_ok=True)
    wggo = BIN_DIR / "wireguard-go"
    have = sh("go", "version", "-m", str(wggo), check=False).stdout if wggo.exists() else ""
    if WIREGUARD_GO_VERSION not in have:
        build = BIN_DIR / "wireguard-go.build"
        build.mkdir(exist_ok=True)
        env = dict(os.environ, GOBIN=str(build))
        r = subprocess.run(
            ["go", "install", f"golang.zx2c4.com/wireguard@{WIREGUARD_GO_VERSION}"], env=env
        )
        if r.returncode != 0:
            setup_fail("cannot build wireguard-go (is Go installed, the module proxy reachable?)")
        (build / "wireguard").rename(wggo)
    agent = os.environ.get("WARD_AGENT")
    if agent is None:
        r = subprocess.run(
            ["cargo", "build", "--release", "-p", "ward-datapath", "--bin", "ward-agent"],
            cwd=ROOT,
        )
        if r.returncode != 0:
            setup_fail("cannot build ward-agent")
        target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
        agent = target / "release/ward-agent"
    return wggo, Path(agent)


def teardown():
    for pidfile in RUN.glob("*.pid") if RUN.exists() else []:
        try:
            os.kill(int(pidfile.read_text()), signal.SIGTERM)
        except (ProcessLookupError, ValueError):
            pass
    for n in ("c", "s", *(f"n{i}" for i in NODES)):
        sh("ip", "netns", "del", f"{PREFIX}-{n}", check=False)
    shutil.rmtree(RUN, ignore_errors=True)


def lab():
    """Nodes n1, n2 on underlay 172.29.0.0/24; client pod 10.221.1.10 behind n1, server pod
    10.221.2.10 behind n2; the nodes route to their own pod and forward."""
    for n in ("n1", "n2", "c", "s"):
        sh("ip", "netns", "add", f"{PREFIX}-{n}")
        sh("ip", "-n", f"{PREFIX}-{n}", "link", "set", "lo", "up")
    sh("ip", "link", "add", "ul", "netns", f"{PREFIX}-n1", "type", "veth",
       "peer", "name", "ul", "netns", f"{PREFIX}-n2")
    for i, pod in ((1, "c"), (2, "s")):
        node = f"{PREFIX}-n{i}"
        sh("ip", "-n", node, "addr", "add", f"172.29.0.{i}/24", "dev", "ul")
        sh("ip", "-n", node, "link", "set", "ul", "up")
        sh("ip", "link", "add", "eth0", "netns", f"{PREFIX}-{pod}", "type", "veth",
           "peer", "name", "pod", "netns", node)
        sh("ip", "-n", f"{PREFIX}-{pod}", "addr", "add", f"10.221.{i}.10/24", "dev", "eth0")
        sh("ip", "-n", f"{PREFIX}-{pod}", "link", "set", "eth0", "up")
        sh("ip", "-n", f"{PREFIX}-{pod}", "route", "add", "default", "dev", "eth0")
        sh("ip", "-n", node, "link", "set", "pod", "up")
        sh("ip", "-n", node, "route", "add", f"10.221.{i}.10/32", "dev", "pod")
        netns(f"n{i}", "sysctl", "-qw", "net.ipv4.ip_forward=1",
              "net.ipv4.conf.pod.proxy_arp=1")


def hexkey(b64):
    """A key as `wg` prints it (base64), as the UAPI wants it (hex)."""
    return base64.b64decode(b64).hex()


def keypair():
    private = sh("wg", "genkey").stdout.strip()
    public = sh("wg", "pubkey", input=private + "\n").stdout.strip()
    return private, public


def spawn(node, name, argv, env=None):
    log = open(RUN / f"{name}.log", "w")
    p = subprocess.Popen(["ip", "netns", "exec", f"{PREFIX}-n{node}", *argv],
                         stdout=log, stderr=log, env=env)
    (RUN / f"{name}.pid").write_text(str(p.pid))
    return p


def wait_for(path, what):
    for _ in range(100):
        if path.exists():
            return
        time.sleep(0.05)
    setup_fail(f"{what} did not open {path}")


def request(f, sock, msg):
    sock.sendall((json.dumps(msg) + "\n").encode())
    reply = json.loads(f.readline())
    if isinstance(reply, dict) and "error" in reply:
        setup_fail(f"ward's device refused {msg['op']}: {reply['error']}")


def start_ward(agent, keys):
    """ward's device in each node: interface `ward`, port 51872."""
    procs = []
    for i in NODES:
        path = RUN / f"ward{i}.sock"
        procs.append(spawn(i, f"ward{i}", [str(agent), "device", "--socket", str(path)]))
        wait_for(path, "ward's device")
        peer = 3 - i
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(path))
        f = s.makefile()
        f.readline()  # the greeting
        secret = list(base64.b64decode(keys[i][0]))
        request(f, s, {"op": "setup", "netns": f"/run/netns/{PREFIX}-n{i}", "ifname": "ward",
                       "port": 51872, "mtu": MTU, "key": secret})
        request(f, s, {"op": "addPeer", "key": keys[peer][1],
                       "endpoint": f"172.29.0.{peer}:51872",
                       "allowed": [{"address": f"10.221.{peer}.0", "cidr": 24}],
                       "keepalive": None})
        s.close()
        sh("ip", "-n", f"{PREFIX}-n{i}", "link", "set", "ward", "mtu", str(MTU), "up")
    return procs


def start_wggo(wggo, keys):
    """wireguard-go in each node: interface `wgsb-go<i>` (its UAPI socket's name is global),
    port 51871."""
    procs = []
    for i in NODES:
        ifname = f"{PREFIX}-go{i}"
        env = dict(os.environ, LOG_LEVEL="error", WG_PROCESS_FOREGROUND="1")
        uapi = Path(f"/var/run/wireguard/{ifname}.sock")
        uapi.unlink(missing_ok=True)  # left by a run that was killed
        procs.append(spawn(i, f"go{i}", [str(wggo), ifname], env=env))
        wait_for(uapi, "wireguard-go")
        peer = 3 - i
        conf = (f"set=1\nprivate_key={hexkey(keys[i][0])}\nlisten_port=51871\n"
                f"public_key={hexkey(keys[peer][1])}\nendpoint=172.29.0.{peer}:51871\n"
                f"replace_allowed_ips=true\nallowed_ip=10.221.{peer}.0/24\n\n")
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(uapi))
        s.sendall(conf.encode())
        answer = s.makefile().readline().strip()
        s.close()
        if answer != "errno=0":
            setup_fail(f"wireguard-go refused its configuration: {answer}")
        sh("ip", "-n", f"{PREFIX}-n{i}", "link", "set", ifname, "mtu", str(MTU), "up")
    return procs


def route(path):
    for i in NODES:
        peer = 3 - i
        via = {"ward": ["dev", "ward"], "wireguard-go": ["dev", f"{PREFIX}-go{i}"],
               "clear": ["via", f"172.29.0.{peer}"]}[path]
        sh("ip", "-n", f"{PREFIX}-n{i}", "route", "replace", f"10.221.{peer}.0/24", *via)


def machine_ticks():
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields[:8]) - idle, sum(fields[:8])


def process_ticks(procs):
    total = 0
    for p in procs:
        stat = Path(f"/proc/{p.pid}/stat").read_text()
        rest = stat[stat.rindex(")") + 2:].split()
        total += int(rest[11]) + int(rest[12])  # utime, stime
    return total


def turn(path, devices):
    route(path)
    time.sleep(0.3)
    (b0, t0), d0, w0 = machine_ticks(), process_ticks(devices), time.monotonic()
    r = netns("c", "iperf3", "-c", "10.221.2.10", "-J", "-t", str(SECONDS), check=False)
    (b1, t1), d1, w1 = machine_ticks(), process_ticks(devices), time.monotonic()
    try:
        gbit = json.loads(r.stdout)["end"]["sum_received"]["bits_per_second"] / 1e9
    except (ValueError, KeyError):
        print(f"{path}: iperf3 failed: {r.stdout[-300:]} {r.stderr[-300:]}", file=sys.stderr)
        return None
    hz = os.sysconf("SC_CLK_TCK")
    return gbit, 100 * (b1 - b0) / (t1 - t0), 100 * (d1 - d0) / hz / (w1 - w0)


def main():
    if os.geteuid() != 0:
        setup_fail("needs root (network namespaces)")
    wggo, agent = tools()
    teardown()
    RUN.mkdir(parents=True)
    try:
        lab()
        keys = {i: keypair() for i in NODES}
        devices = {"ward": start_ward(agent, keys), "wireguard-go": start_wggo(wggo, keys),
                   "clear": []}
        netns("s", "iperf3", "-s", "-D", "-B", "10.221.2.10")
        time.sleep(0.5)
        cores = os.cpu_count()
        print(f"machine: {cores} cores, {os.uname().release}; wireguard-go "
              f"{WIREGUARD_GO_VERSION}; {TURNS} turns of {SECONDS} s per path, interleaved")
        results = {p: [] for p in devices}
        failed = False
        for t in range(TURNS):
            for path, procs in devices.items():
                r = turn(path, procs)
                if r is None:
                    failed = True
                    continue
                results[path].append(r)
                cpu = f", devices {r[2]:4.0f}% of one core" if procs else ""
                print(f"turn {t + 1} {path:<13} {r[0]:7.3f} Gbit/s, machine {r[1]:3.0f}%{cpu}",
                      flush=True)
        for path, rs in results.items():
            if not rs:
                continue
            g = [r[0] for r in rs]
            med = statistics.median(g)
            line = (f"{path:<13} median {med:7.3f} Gbit/s ({min(g):.3f}-{max(g):.3f}), "
                    f"machine {statistics.median(r[1] for r in rs):3.0f}%")
            if path != "clear":
                cpu = statistics.median(r[2] for r in rs)
                line += f", devices {cpu:.0f}% of one core, {cpu / 100 / med:.2f} core per Gbit/s"
            print(line)
        ward = [r[0] for r in results["ward"]]
        go = [r[0] for r in results["wireguard-go"]]
        if ward and go:
            ratios = [w / g for w, g in zip(ward, go)]
            print(f"ward / wireguard-go, turn by turn: median {statistics.median(ratios):.2f} "
                  f"({min(ratios):.2f}-{max(ratios):.2f})")
        return 1 if failed else 0
    finally:
        teardown()
        sh("pkill", "-f", "iperf3 -s -D -B 10.221.2.10", check=False)


if __name__ == "__main__":
    sys.exit(main())
