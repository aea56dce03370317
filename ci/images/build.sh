#!/usr/bin/env bash
# Builds ward's two container images, the controller (`ward`) and the node agent
# (`ward-agent`), from reconciler/deploy/Dockerfile{,.agent} with podman, offline:
#
#   ci/images/build.sh           # prints the two image names, one per line
#
# No registry is needed. The base image is Debian bookworm made here with debootstrap from
# Debian's package archive (the one source of packages this machine reaches), cached as a
# tarball under $HOME/.cache/ward/images; the binaries are release builds of this checkout
# (`ward` without the node feature), put into the Dockerfiles' `prebuilt` stage. The tags are
# the names reconciler/deploy's manifests use (ghcr.io/ward-dev/ward:<version>), so
# `kubectl apply -k reconciler/deploy` on a node that has these images runs them.
#
# podman runs with runc and the cgroupfs manager, with ulimits no higher than the host's:
# this machine mounts cgroup v1 (crun refuses its hybrid layout) and its root cannot raise an
# rlimit. The settings are in the containers.conf this script writes (CONTAINERS_CONF); use
# the same file for `podman run`: `CONTAINERS_CONF=$HOME/.cache/ward/images/containers.conf`.
#
# Environment: WARD_IMAGE_PROFILE (cargo profile of the binaries, default release),
# CARGO_TARGET_DIR (default $HOME/.cache/ward/target), WARD_DEBIAN_MIRROR (default
# http://deb.debian.org/debian).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cache=$HOME/.cache/ward/images
profile=${WARD_IMAGE_PROFILE:-release}
mirror=${WARD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/ward/target}
mkdir -p "$cache"

log() { echo "ci/images/build.sh: $*" >&2; }

# podman, buildah's runtime (runc) and debootstrap, from Debian's packages.
need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v debootstrap >/dev/null || need+=(debootstrap)
if ((${#need[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    log "missing ${need[*]}; install them (as root: apt-get install ${need[*]})"
    exit 1
  fi
  log "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# runc, cgroupfs, and the host's own limits of open files and processes (podman's defaults
# raise them, which fails here). podman lowers its own process limit to the kernel's pid_max
# (conmon then runs with it), and a container may not go above that either.
limit() { local v; v=$(ulimit "$1"); [[ $v == unlimited ]] && v=1048576; echo "$v"; }
pid_max=$(cat /proc/sys/kernel/pid_max)
nproc() { local v; v=$(limit "$1"); echo $((v < pid_max ? v : pid_max)); }
export CONTAINERS_CONF=$cache/containers.conf
cat >"$CONTAINERS_CONF" <<CONF
# Written by ci/images/build.sh: podman settings that work on a cgroup v1 host whose root
# cannot raise rlimits.
[containers]
default_ulimits = [
  "nofile=$(limit -Sn):$(limit -Hn)",
  "nproc=$(nproc -Su):$(nproc -Hu)",
]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF

# The base image: Debian bookworm (the release the binaries are built on) with the TLS roots,
# libssl for git2, and iproute2 for the agent.
base=localhost/ward-base:bookworm
if ! podman image exists "$base"; then
  tarball=$cache/base-bookworm.tar
  if [[ ! -s $tarball ]]; then
    log "making the base image with debootstrap (about a minute)"
    rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
    trap 'rm -rf "$rootfs"' EXIT
    debootstrap --variant=minbase --include=ca-certificates,libssl3,iproute2 \
      bookworm "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
      { log "debootstrap failed; its log: $cache/debootstrap.log"; exit 1; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
      "$rootfs"/usr/share/doc "$rootfs"/usr/share/man "$rootfs"/usr/share/locale
    tar -C "$rootfs" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
    trap - EXIT
  fi
  podman import --quiet "$tarball" "$base" >/dev/null
fi

# The binaries: the CLI without the node feature (what the controller runs), and the agent.
log "building ward and ward-agent ($profile)"
cargo build --locked --profile "$profile" -p ward-reconciler --no-default-features --bin ward >&2
cargo build --locked --profile "$profile" -p ward-datapath --bin ward-agent >&2
dir=$CARGO_TARGET_DIR/$([[ $profile == dev ]] && echo debug || echo "$profile")

version=$(cargo metadata --locked --no-deps --format-version 1 |
  python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "ward-reconciler"))')

# One build per image: a context holding only its binary, the Dockerfile's prebuilt stage.
build() {
  local name=$1 binary=$2 dockerfile=$3 context
  context=$(mktemp -d)
  cp "$dir/$binary" "$context/$binary"
  strip --strip-debug "$context/$binary"
  podman build --quiet --target prebuilt --build-arg "BASE=$base" \
    -f "$dockerfile" -t "$name" "$context" >/dev/null ||
    { rm -rf "$context"; log "building $name failed"; return 1; }
  rm -rf "$context"
  echo "$name"
}
build "ghcr.io/ward-dev/ward:$version" ward "$root/reconciler/deploy/Dockerfile"
build "ghcr.io/ward-dev/ward-agent:$version" ward-agent "$root/reconciler/deploy/Dockerfile.agent"
