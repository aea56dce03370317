#!/usr/bin/env bash
# Stops the cluster ci/cluster/up.sh started in DIR (default: the one /run/ward-cluster/current
# names) and removes everything it left, whether it is running or crashed long ago:
# its processes (DIR/pids), containerd's shims and every process in the cluster's cgroups,
# the mounts under DIR (the pods' volumes, rootfs and network namespaces), the cgroups,
# the pods' veth pairs and routes (they go with their namespaces), the CNI cache files, the
# node's address on lo, ward-agent's pinned maps of the node, its run folder and its
# WireGuard interface, the Git repository the deploy overlay mounts (/run/ward-cluster/git),
# and DIR itself; of a second node (NODES=2) also its cgroups, its network namespace (with
# the veth pair to the host, the routes through it and the WireGuard interface in it), its
# pinned maps and run folder.
# Safe to run twice; refuses a DIR that up.sh did not make (no DIR/pids).
set -euo pipefail

dir=${1:-$(cat /run/ward-cluster/current 2>/dev/null || true)}
node=${NODE_NAME:-ward-node0}
node_ip=${NODE_IP:-10.250.0.1}
cgroup_root=/ward-cluster
node1=ward-node1 # the second node (NODES=2): its network namespace, veth and cgroup root
cgroups=("$cgroup_root" "$cgroup_root-node1")
log() { echo "ci/cluster/down.sh: $*" >&2; }
[[ $(id -u) -eq 0 ]] || { log "needs root"; exit 1; }

# Processes: the ones up.sh started (the kubelet first, so it restarts nothing), then
# anything that names DIR (containerd's shims: -address DIR/containerd/...), then every
# process left in the cluster's cgroups (the containers).
stop() { # pids...: TERM, then KILL after 5 s
  (($#)) || return 0
  kill -TERM "$@" 2>/dev/null || true
  local i
  for ((i = 0; i < 50; i++)); do
    kill -0 "$@" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$@" 2>/dev/null || true
}
if [[ -n $dir && -f $dir/pids ]]; then
  mapfile -t pids < <(tac "$dir/pids")
  stop "${pids[@]}"
  mapfile -t pids < <(pgrep -f -- "$dir/" || true)
  stop "${pids[@]}"
fi
for ((round = 0; round < 20; round++)); do
  mapfile -t pids < <(for c in "${cgroups[@]}"; do
    find /sys/fs/cgroup/pids"$c" -name cgroup.procs -exec cat {} + 2>/dev/null || true
  done | sort -u)
  ((${#pids[@]})) || break
  kill -KILL "${pids[@]}" 2>/dev/null || true
  sleep 0.2
done

# Mounts under DIR, deepest first (lazily if busy).
if [[ -n $dir && -f $dir/pids ]]; then
  awk -v d="$dir/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "cannot unmount $m"
  done
fi

# Cgroups, leaves first, in every hierarchy.
for h in /sys/fs/cgroup/*/; do
  for c in "${cgroups[@]}"; do
    [[ -d $h${c#/} ]] || continue
    find "$h${c#/}" -depth -type d -exec rmdir {} + 2>/dev/null || true
    [[ ! -d $h${c#/} ]] || log "cgroup $h${c#/} is still there"
  done
done

# The second node's network namespace (its veth pair, routes and WireGuard interface go with it).
if [[ -e /run/netns/$node1 ]]; then
  ip netns del "$node1" || log "cannot remove the network namespace $node1"
fi
ip link del "$node1" 2>/dev/null || true

# What the network namespaces' removal did not take with it: the CNI results libcni caches
# per network and pod sandbox (ward-ptp and containerd's own cni-loopback), found by the
# sandboxes containerd recorded under DIR.
if [[ -n $dir && -f $dir/pids ]]; then
  for sandbox in "$dir"{,/node1}/containerd/state/io.containerd.grpc.v1.cri/sandboxes/*/; do
    [[ -d $sandbox ]] || continue # no sandbox: the pattern itself
    id=$(basename "$sandbox")
    rm -f /var/lib/cni/results/*-"$id"-*
  done
fi
rm -f /var/lib/cni/results/ward-ptp-*
ip addr del "$node_ip/32" dev lo 2>/dev/null || true
rm -rf "/sys/fs/bpf/ward/$node" "/sys/fs/bpf/ward/$node1"
# The agents' run folders (ci/cluster/deploy: one per node, as each node of a cluster has its own).
rm -rf "/var/run/ward/$node" "/var/run/ward/$node1"
# ward-agent's userspace WireGuard interface goes with its device process; a kernel one would not.
ip link del cilium_wg0 2>/dev/null || true

# The kubelets' links to their containers' logs (the logs themselves are under DIR).
if [[ -n $dir && -f $dir/pids && -d /var/log/containers ]]; then
  find /var/log/containers -maxdepth 1 -lname "$dir/*" -delete
fi

# The repository ci/cluster/deploy mounts into the controller.
rm -rf /run/ward-cluster/git
if [[ -n $dir && -f $dir/pids ]]; then
  rm -rf --one-file-system "$dir"
fi
if [[ -f /run/ward-cluster/current && $(cat /run/ward-cluster/current) == "$dir" ]]; then
  rm -f /run/ward-cluster/current
fi
