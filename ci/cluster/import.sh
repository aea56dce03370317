#!/usr/bin/env bash
# Imports podman images into the running test cluster's containerd (namespace k8s.io, where
# the kubelet looks; each node's when there are two), as a node that cannot pull needs them:
#
#   ci/cluster/import.sh $(ci/images/build.sh)     # ward's controller and agent images
#
# The cluster is the one /run/ward-cluster/current names (ci/cluster/up.sh).
set -euo pipefail

(($#)) || { echo "usage: ci/cluster/import.sh IMAGE..." >&2; exit 2; }
dir=$(cat /run/ward-cluster/current 2>/dev/null) || { echo "ci/cluster/import.sh: no cluster is up (ci/cluster/up.sh DIR)" >&2; exit 1; }
archive=$(mktemp "$dir/import.XXXXXX.tar")
trap 'rm -f "$archive"' EXIT
rm -f "$archive"
podman save --quiet --format docker-archive -m -o "$archive" "$@"
# Into each node's containerd at once (a failed import fails the script).
pids=()
for sock in "$dir"/containerd/containerd.sock "$dir"/node1/containerd/containerd.sock; do
  [[ -S $sock ]] || continue # one node only
  ctr --address "$sock" -n k8s.io images import "$archive" >&2 &
  pids+=($!)
done
for pid in "${pids[@]}"; do
  wait "$pid"
done
