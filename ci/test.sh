#!/usr/bin/env bash
# Runs every test of the workspace. The README's test command, and what .ci/run calls.
#
# Installs what the tests need when it is missing (as root, from Debian's packages), and
# keeps build output under $HOME/.cache/ward so later runs are incremental.
#
# Honest by construction: as root (when everything could be installed) it sets must-run mode
# itself (WARD_TESTS_MUST_RUN=1), so a root-only or kube test that cannot run fails instead of
# skipping. Run by someone else, the root-only tests skip, each with a loud `SKIPPED:` line.
# Either way it checks formatting, clippy, the API docs' links, the CLI without the node feature and the CI templates
# (actionlint, zizmor, ci/test-templates.sh), and ends with
# one line `N passed, N failed, N skipped` (those checks count as tests).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ward/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
mkdir -p "$HOME/.cache/ward"

# A package left unpacked but not configured (an install that stopped halfway) has its
# commands in place without what its setup creates (tcpdump's user, podman's policy.json),
# and the checks below would take it as installed: finish such installs first.
if [[ $(id -u) -eq 0 ]] && [[ -n $(dpkg --audit 2>/dev/null) ]]; then
  echo "ci/test.sh: dpkg reports unfinished installs; running dpkg --configure -a" >&2
  DEBIAN_FRONTEND=noninteractive dpkg --configure -a >&2 ||
    echo "ci/test.sh: dpkg --configure -a failed; tests that need those packages may fail" >&2
fi

# Incremental build state grows with every change built and is never pruned by cargo; on a
# long-lived machine it fills the disk. Below 10 GiB free it goes (builds stay correct,
# the next one is slower).
free_kib=$(df -Pk "$HOME/.cache/ward" | awk 'NR == 2 { print $4 }')
if [[ $free_kib =~ ^[0-9]+$ ]] && ((free_kib < 10 * 1024 * 1024)); then
  echo "ci/test.sh: $((free_kib / 1024 / 1024)) GiB free; removing incremental build state under $CARGO_TARGET_DIR" >&2
  rm -rf "$CARGO_TARGET_DIR"/*/incremental
fi

need_apt=()
command -v git >/dev/null || need_apt+=(git)
# --verify-signatures tests sign real commits with SSH and OpenPGP keys.
command -v ssh-keygen >/dev/null || need_apt+=(openssh-client)
command -v gpg >/dev/null || need_apt+=(gnupg)
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
# The two-node cluster of the end-to-end tests (ci/cluster/up.sh): containerd, runc and the
# CNI plugins run the pods; podman builds the images they run (ours, offline).
command -v containerd >/dev/null || need_apt+=(containerd)
command -v runc >/dev/null || need_apt+=(runc)
[[ -x /usr/lib/cni/ptp ]] || need_apt+=(containernetworking-plugins)
command -v podman >/dev/null || need_apt+=(podman)
command -v openssl >/dev/null || need_apt+=(openssl)
# The CI templates' tests: curl and jq post comments, python3 runs the API stub and the venvs
# of pre-commit and zizmor.
command -v curl >/dev/null || need_apt+=(curl)
command -v jq >/dev/null || need_apt+=(jq)
command -v python3 >/dev/null || need_apt+=(python3 python3-venv)
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

# The test cluster (etcd, kube-apiserver and, for the two-node cluster of ci/cluster/, the
# kubelet, kube-scheduler and kube-controller-manager, from their Go modules), built once and
# cached under $HOME/.cache/ward/kube; the kube tests find it through WARD_KUBE_BIN.
if command -v go >/dev/null; then
  WARD_KUBE_BIN=$(ci/kube/build.sh)
  export WARD_KUBE_BIN
else
  echo "ci/test.sh: Go is missing, so the kube tests have no test cluster (they fail in must-run mode)" >&2
fi
# Cilium's CRDs from its Go module at each release ci/crds/releases pins, cached under
# $HOME/.cache/ward/crds; the schema tests compare schema/crds with them (WARD_CILIUM_CRDS).
# NetworkPolicy's schema from the Kubernetes OpenAPI spec of the test cluster's release
# (ci/crds/k8s-openapi.sh); compared with schema/openapi (WARD_K8S_OPENAPI).
if command -v go >/dev/null; then
  WARD_CILIUM_CRDS=$(ci/crds/fetch.sh)
  export WARD_CILIUM_CRDS
  WARD_K8S_OPENAPI=$(ci/crds/k8s-openapi.sh)
  export WARD_K8S_OPENAPI
fi

if [[ $(id -u) -eq 0 ]]; then
  export WARD_TESTS_MUST_RUN=1
else
  echo "ci/test.sh: not root: the lab, BPF and WireGuard tests will be SKIPPED (run as root to run them)" >&2
fi
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
export WARD_SKIP_LOG=$logs/skipped
: >"$WARD_SKIP_LOG"

# Checks that are not cargo tests, each counted as one test in the summary.
passed=0 failed=0 check_skipped=0
check() {
  local name=$1
  shift
  if "$@"; then
    passed=$((passed + 1))
  else
    echo "ci/test.sh: FAILED: $name" >&2
    failed=$((failed + 1))
  fi
}
# The CLI that CI jobs install: no kernel crates and no clang needed.
slim_cli() {
  cargo build --locked -p ward-reconciler --no-default-features --bin ward || return 1
  local kernel
  kernel=$(cargo tree --locked -p ward-reconciler --no-default-features -e normal --prefix none |
    grep -E '^(aya|nix|defguard|gotatun|tun-rs|ward-datapath)[ -]' | sort -u)
  [[ -z $kernel ]] || { echo "ward without the node feature links: $kernel" >&2; return 1; }
}
check "cargo fmt --check" cargo fmt --all --check
check "cargo clippy -D warnings" cargo clippy --workspace --all-targets --locked -- -D warnings
check "cargo clippy (no node feature)" cargo clippy -p ward-reconciler --no-default-features --all-targets --locked -- -D warnings
check "cargo doc -D warnings" env RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
check "ward without the node feature" slim_cli
# The CI templates: the GitHub workflow and action linted, and every template's scripts run
# against a scratch policy repository (ci/test-templates.sh).
check "actionlint (ci/github)" ci/lint-actions.sh actionlint
check "zizmor (ci/github)" ci/lint-actions.sh zizmor
check "CI templates against a scratch policy repository" ci/test-templates.sh

cargo build --workspace --locked --all-targets
set +e
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$logs/test"
status=${PIPESTATUS[0]}
set -e

# Both container images, built from reconciler/deploy's Dockerfiles with podman and run
# (root: podman's containers here are rootful).
if [[ $(id -u) -eq 0 ]]; then
  # Debug binaries (already built above, stripped of debug info in the image): the release
  # build would add a quarter of an hour to a fresh machine's run for the same code.
  check "container images" env WARD_IMAGE_PROFILE=dev ci/images/test.sh
else
  echo "SKIPPED: container images (ci/images/test.sh): podman runs them as root only" >&2
  check_skipped=$((check_skipped + 1))
fi

# libtest's "test result: ok. 12 passed; 0 failed; 1 ignored; ..." lines, one per binary.
read -r t_passed t_failed t_ignored < <(
  sed -nE 's/^test result: [a-zA-Z]+\. ([0-9]+) passed; ([0-9]+) failed; ([0-9]+) ignored.*/\1 \2 \3/p' "$logs/test" |
    awk '{p += $1; f += $2; i += $3} END {print p + 0, f + 0, i + 0}'
)
skipped=$(grep -c '^SKIPPED:' "$WARD_SKIP_LOG" || true)
if ((skipped > 0)); then
  echo "ci/test.sh: these tests did not run:" >&2
  sort "$WARD_SKIP_LOG" >&2
fi
# A test that skipped returned early and was counted as passed by libtest.
passed=$((passed + t_passed - skipped))
failed=$((failed + t_failed))
if ((status != 0 && failed == 0)); then
  echo "ci/test.sh: cargo test failed before running every test (exit $status)" >&2
  failed=1
fi
echo "$passed passed, $failed failed, $((skipped + t_ignored + check_skipped)) skipped"
((failed == 0))
