#!/usr/bin/env bash
# Runs every test of the workspace. The README's test command, and what .ci/run calls.
#
# Installs what the tests need when it is missing (as root, from Debian's packages), and
# keeps build output under $HOME/.cache/ward so later runs are incremental.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ward/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
mkdir -p "$HOME/.cache/ward"

need_apt=()
command -v git >/dev/null || need_apt+=(git)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
dpkg -s libssl-dev >/dev/null 2>&1 || need_apt+=(libssl-dev)
command -v cc >/dev/null || need_apt+=(build-essential)
# The datapath: clang builds the BPF programs; the lab uses iproute2; benchmarks use iperf3;
# the WireGuard tests capture the underlay with tcpdump.
command -v clang >/dev/null || need_apt+=(clang)
dpkg -s libbpf-dev >/dev/null 2>&1 || need_apt+=(libbpf-dev)
command -v ip >/dev/null || need_apt+=(iproute2)
command -v iperf3 >/dev/null || need_apt+=(iperf3)
command -v tcpdump >/dev/null || need_apt+=(tcpdump)
# The kube tests drive the test cluster with kubectl (machines of this kind have it).
command -v kubectl >/dev/null || need_apt+=(kubernetes-client)
if ((${#need_apt[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "ci/test.sh: missing ${need_apt[*]}; install them (as root: apt-get install ${need_apt[*]})" >&2
    exit 1
  fi
  echo "ci/test.sh: installing ${need_apt[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null; then
  echo "ci/test.sh: cargo is missing; install Rust (rustup) first" >&2
  exit 1
fi

# BPF maps and programs are pinned under /sys/fs/bpf/ward: bpffs must be mounted.
if [[ $(id -u) -eq 0 ]] && ! mountpoint -q /sys/fs/bpf; then
  mount -t bpf bpf /sys/fs/bpf
fi

# The test cluster (etcd and kube-apiserver from their Go modules), built once and cached
# under $HOME/.cache/ward/kube; the kube tests find it through WARD_KUBE_BIN.
if command -v go >/dev/null; then
  WARD_KUBE_BIN=$(ci/kube/build.sh)
  export WARD_KUBE_BIN
else
  echo "ci/test.sh: Go is missing, so the kube tests have no test cluster (they fail under CI=true)" >&2
fi
# Cilium's CRDs from its Go module at the release ci/crds/go.mod pins, cached under
# $HOME/.cache/ward/crds; the schema tests compare schema/crds with them (WARD_CILIUM_CRDS).
if command -v go >/dev/null; then
  WARD_CILIUM_CRDS=$(ci/crds/fetch.sh)
  export WARD_CILIUM_CRDS
fi

cargo build --workspace --locked --all-targets
cargo test --workspace --locked --no-fail-fast
