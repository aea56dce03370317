#!/usr/bin/env bash
# Starts a real Kubernetes cluster of one node (or two) on this machine, for the end-to-end
# tests:
#
#   ci/cluster/up.sh DIR       # DIR: an empty folder of yours; prints DIR/kubeconfig
#   NODES=2 ci/cluster/up.sh DIR   # and a second node, ward-node1, in a network namespace
#   ci/cluster/down.sh [DIR]   # stops it and removes every trace (also after a crash)
#
# etcd, kube-apiserver, kube-controller-manager and kube-scheduler (ci/kube/build.sh builds
# them from k8s.io/kubernetes), containerd and runc from Debian's packages, the kubelet, and
# the CNI plugin `ptp` (containernetworking-plugins). Everything it writes is under DIR
# (data, sockets, logs, certificates, kubelet and containerd roots) except what the kernel
# keeps elsewhere, which ci/cluster/down.sh removes by name:
# - the node's address NODE_IP (default 10.250.0.1/32) on the loopback device `lo`: pods
#   live in network namespaces of their own, so the host's 127.0.0.1 is not theirs, but an
#   address of the host on any device is delivered locally when a pod sends to it (the kernel
#   has no dummy-link module here). The API server and the kubelet listen on it only.
# - the pods' network namespaces (under DIR, containerd's netns_mounts_under_state_dir), their
#   veth pairs and /32 routes, the cgroups under /ward-cluster, the CNI cache files
#   /var/lib/cni/results/ward-ptp-*, the agent's pinned maps /sys/fs/bpf/ward/NODE and its
#   run folder /var/run/ward/NODE (ci/cluster/deploy).
# - with NODES=2, the second node ward-node1 (its own containerd, kubelet, kubelet
#   certificate, CNI configuration and pod CIDR, cgroup root /ward-cluster-node1,
#   everything else under DIR/node1): both run with `nsenter --net` in the network namespace
#   ward-node1 (/run/netns/ward-node1), so its pods' veth pairs and /32 routes are there, and
#   so are the agent's hostNetwork pod and its WireGuard interface (containerd's shims, and so
#   runc and the containers without a network namespace of their own, inherit it). Only the
#   network namespace is its own: `nsenter --net`, not `ip netns exec`, which would also mount
#   a new /sys over the host's and hide /sys/fs/cgroup and /sys/fs/bpf from the kubelet and
#   the agent. A veth pair `ward-node1` (host, NODE1_IP's .254/24) -- `eth0` (netns,
#   NODE1_IP/24, default 10.250.1.1) is the underlay between the nodes: the host routes
#   NODE1_IP/32 (from NODE_IP, as one node speaks to another) and the second pod CIDR through
#   it, the namespace everything through the host (default route), which reaches the API
#   server at NODE_IP:6443 unchanged. Forwarding is on in both. When ward's agents run, each
#   replaces the route to the other node's pod CIDR with its WireGuard interface.
# One cluster at a time per machine: /run/ward-cluster/current names the running one's DIR.
#
# Settings this machine needs (cgroup v1 in a hybrid layout; root without CAP_SYS_RESOURCE,
# so no process may raise an rlimit), found by trying:
# - containerd 1.6 (bookworm) with runc and `SystemdCgroup = false`; the kubelet with
#   `cgroupDriver: cgroupfs` (containerd 1.6 lacks the CRI RuntimeConfig call, so the kubelet
#   uses its own setting; Kubernetes 1.38 drops that fallback and needs containerd 2).
# - kubelet `failCgroupV1: false` (since 1.35 the kubelet refuses cgroup v1 by default),
#   `failSwapOn: false`, a cgroupRoot of our own, eviction thresholds in MiB, not per cent
#   (this disk is shared and often over 99 % full: the default imagefs.available<15 % would
#   evict every pod and taint the node) and no
#   image garbage collection (the imported images cannot be pulled again).
# - containerd `restrict_oom_score_adj = true`: lowering an oom_score_adj needs
#   CAP_SYS_RESOURCE. No rlimit is raised: the CRI's default spec only lowers RLIMIT_NOFILE.
# - `ptp`, not `bridge`: ptp gives each pod a veth pair and a /32 route to its address via
#   the host side, which is how ward-agent's kube mode finds a pod's interface (the route's
#   device); bridge would route the whole pod CIDR to cni0 and leave no per-pod route.
#   ipMasq is off (nothing leaves the node), so no iptables rule is written.
# - No kube-proxy: the `kubernetes` Service's ClusterIP does not route, so pods that talk to
#   the API server get KUBERNETES_SERVICE_HOST/PORT (the node's address) from the test overlay.
#
# Environment: WARD_KUBE_BIN (the binaries, default: ci/kube/build.sh's output), NODE_NAME
# (ward-node0), NODE_IP (10.250.0.1), POD_CIDR (10.244.0.0/16; each node gets a /24 of it and
# its CNI configuration is written from its Node's spec.podCIDR), NODES
# (1; 2 adds ward-node1), NODE1_IP (10.250.1.1).
set -euo pipefail

dir=${1:?usage: ci/cluster/up.sh DIR}
here=$(cd "$(dirname "$0")" && pwd)
node=${NODE_NAME:-ward-node0}
node_ip=${NODE_IP:-10.250.0.1}
pod_cidr=${POD_CIDR:-10.244.0.0/16}
cgroup_root=/ward-cluster
nodes=${NODES:-1}
node1='' node1_ip=''
log() { echo "ci/cluster/up.sh: $(date +%T) $*" >&2; }
fail() { log "$*"; exit 1; }

[[ $(id -u) -eq 0 ]] || fail "needs root (cgroups, network namespaces, mounts)"
case $nodes in
  1) ;;
  2) node1=ward-node1 node1_ip=${NODE1_IP:-10.250.1.1} ;;
  *) fail "NODES=$nodes: one or two nodes" ;;
esac
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

# Prerequisites: containerd, runc and the CNI plugins from Debian's packages.
need=()
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[[ -x /usr/lib/cni/ptp ]] || need+=(containernetworking-plugins)
command -v kubectl >/dev/null || need+=(kubernetes-client)
command -v openssl >/dev/null || need+=(openssl)
if ((${#need[@]})); then
  log "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
bin=${WARD_KUBE_BIN:-$("$here/../kube/build.sh")}
for c in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet; do
  [[ -x $bin/$c ]] || fail "$bin/$c is missing: run ci/kube/build.sh"
done
images=$("$here/images.sh")

# A cluster left by a crash is removed first; a running one is refused.
if [[ -f /run/ward-cluster/current ]]; then
  old=$(cat /run/ward-cluster/current)
  if [[ -f $old/pids ]] && kill -0 "$(head -1 "$old/pids")" 2>/dev/null; then
    fail "a cluster is running in $old; stop it first: ci/cluster/down.sh $old"
  fi
  log "removing what a stopped cluster left in $old"
  "$here/down.sh" "$old"
fi
mkdir -p /run/ward-cluster "$dir"
echo "$dir" >/run/ward-cluster/current
: >"$dir/pids"

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
start() { # name, command...: runs it in the background, its output in DIR/logs/name.log
  local name=$1
  shift
  "$@" >"$dir/logs/$name.log" 2>&1 </dev/null &
  echo $! >>"$dir/pids"
}
wait_for() { # what, seconds, command...
  local what=$1 limit=$2 i
  shift 2
  for ((i = 0; i < limit * 5; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  fail "$what not ready after ${limit}s; logs in $dir/logs"
}
mkdir -p "$dir"/{logs,pki,etcd,cni/net.d,cni/ipam,containerd/root,containerd/state,kubelet}

# The node's address.
ip addr replace "$node_ip/32" dev lo
# Mount propagation as systemd sets it up on a usual node: ward-agent's DaemonSet mounts
# /sys/fs/bpf Bidirectional (the mount must be shared) and /run/netns HostToContainer (shared
# or slave); here every mount is private, and containerd refuses both. /run/netns becomes a
# shared bind mount of itself, as `ip netns add` makes it.
mount --make-shared /sys/fs/bpf
mkdir -p /run/netns
mountpoint -q /run/netns || mount --bind /run/netns /run/netns
mount --make-shared /run/netns

# Certificates: a CA, the API server's (the node's address and the service names), an admin
# (system:masters) and the kubelet's client certificate (system:node:NODE, so the Node
# authorizer applies), and the service-account signing key.
pki=$dir/pki
cert() { # name, subject, extensions
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "$2" \
    -keyout "$pki/$1.key" -out "$pki/$1.csr" 2>/dev/null
  openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 2 -extfile <(printf '%s\n' "$3") -out "$pki/$1.crt" 2>/dev/null
}
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj "/CN=ward test cluster CA" -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
cert apiserver "/CN=kube-apiserver" "subjectAltName=IP:$node_ip,IP:10.96.0.1,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:localhost
extendedKeyUsage=serverAuth"
cert admin "/O=system:masters/CN=ward-admin" "extendedKeyUsage=clientAuth"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/sa.key" 2>/dev/null
openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub"

# The API server and the kubelet on their usual ports (the node's address is ours alone),
# so pods find the API server at a fixed NODE_IP:6443; etcd and the rest on free loopback ports.
etcd_client=$(port) etcd_peer=$(port) api_port=6443
server=https://$node_ip:$api_port
kubeconfig() { # file, user
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: ward
  cluster: {server: "$server", certificate-authority: "$pki/ca.crt"}
users:
- name: $2
  user: {client-certificate: "$pki/$2.crt", client-key: "$pki/$2.key"}
contexts:
- name: ward
  context: {cluster: ward, user: $2}
current-context: ward
EOF
}
kubeconfig "$dir/kubeconfig" admin
export KUBECONFIG=$dir/kubeconfig

log "starting etcd and kube-apiserver on $server"
start etcd "$bin/etcd" --data-dir "$dir/etcd" --name ward --log-level warn --unsafe-no-fsync \
  --listen-client-urls "http://127.0.0.1:$etcd_client" --advertise-client-urls "http://127.0.0.1:$etcd_client" \
  --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
  --initial-cluster "ward=http://127.0.0.1:$etcd_peer"
start kube-apiserver "$bin/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_client" \
  --bind-address "$node_ip" --advertise-address "$node_ip" --secure-port "$api_port" \
  --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
  --client-ca-file "$pki/ca.crt" --kubelet-client-certificate "$pki/admin.crt" --kubelet-client-key "$pki/admin.key" \
  --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
  --service-account-issuer https://kubernetes.default.svc --service-cluster-ip-range 10.96.0.0/24 \
  --kubelet-preferred-address-types InternalIP \
  --authorization-mode Node,RBAC --allow-privileged=true --enable-priority-and-fairness=false \
  --cert-dir "$dir/pki/apiserver-certs" --v=0
# shellcheck disable=SC2016 # expanded by sh
wait_for "kube-apiserver" 90 sh -c '[ "$(kubectl get --raw /readyz)" = ok ]'

log "starting kube-controller-manager and kube-scheduler"
start kube-controller-manager "$bin/kube-controller-manager" --kubeconfig "$dir/kubeconfig" \
  --authentication-kubeconfig "$dir/kubeconfig" --authorization-kubeconfig "$dir/kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$(port)" --leader-elect=false \
  --allocate-node-cidrs --cluster-cidr "$pod_cidr" --node-cidr-mask-size 24 \
  --service-cluster-ip-range 10.96.0.0/24 --root-ca-file "$pki/ca.crt" \
  --service-account-private-key-file "$pki/sa.key" --use-service-account-credentials=false --v=0
start kube-scheduler "$bin/kube-scheduler" --kubeconfig "$dir/kubeconfig" \
  --authentication-kubeconfig "$dir/kubeconfig" --authorization-kubeconfig "$dir/kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$(port)" --leader-elect=false --v=0

# One node: containerd and the kubelet, each with its own root, state, socket, CNI
# configuration and cgroup root; the second node's run in its network namespace.
node_up() { # name, address, folder, cgroup root, log prefix, command prefix...
  local name=$1 ip=$2 root=$3 cgroup=$4 tag=$5
  shift 5
  mkdir -p "$root"/{cni/net.d,cni/ipam,containerd/root,containerd/state,kubelet}
  cert "kubelet-$name" "/O=system:nodes/CN=system:node:$name" "extendedKeyUsage=clientAuth"
  kubeconfig "$root/kubelet.kubeconfig" "kubelet-$name"
  containerd_config "$root" >"$root/containerd/config.toml"
  log "starting containerd of $name"
  start "${tag}containerd" "$@" containerd --config "$root/containerd/config.toml"
  wait_for "containerd of $name" 30 ctr --address "$root/containerd/containerd.sock" version
  ctr --address "$root/containerd/containerd.sock" -n k8s.io images import --no-unpack "$images" >"$dir/logs/${tag}import.log"
  cgroup_root_up "$cgroup"
  kubelet_config "$root" "$ip" "$cgroup" >"$root/kubelet/config.yaml"
  log "starting the kubelet (node $name, $ip)"
  start "${tag}kubelet" "$@" "$bin/kubelet" --config "$root/kubelet/config.yaml" \
    --kubeconfig "$root/kubelet.kubeconfig" --root-dir "$root/kubelet/root" \
    --hostname-override "$name" --node-ip "$ip" --v=1
}

# containerd: its own root, state and socket; runc with cgroupfs; the pod networks' namespaces
# under its state folder (so down.sh finds ours after a crash); CNI from the node's folder.
containerd_config() { # folder
  cat <<EOF
version = 2
root = "$1/containerd/root"
state = "$1/containerd/state"
[grpc]
  address = "$1/containerd/containerd.sock"
[ttrpc]
  address = "$1/containerd/ttrpc.sock"
[debug]
  address = "$1/containerd/debug.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$1/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/ward/pause:1"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$1/cni/net.d"
EOF
}

cni_config() { # folder, the node's pod CIDR
  cat <<EOF
{
  "cniVersion": "1.0.0",
  "name": "ward-ptp",
  "plugins": [
    {
      "type": "ptp",
      "ipMasq": false,
      "mtu": 1500,
      "ipam": {
        "type": "host-local",
        "dataDir": "$1/cni/ipam",
        "ranges": [[{"subnet": "$2"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "loopback"}
  ]
}
EOF
}

# The kubelet checks that its cgroup root exists in every hierarchy; a new cpuset starts
# with no CPUs and no memory nodes, so it gets its parent's.
cgroup_root_up() { # cgroup root
  local h
  for h in /sys/fs/cgroup/*/; do
    mountpoint -q "$h" || continue
    mkdir -p "$h${1#/}"
    if [[ -f $h/cpuset.cpus ]]; then
      cat "$h/cpuset.cpus" >"$h${1#/}/cpuset.cpus"
      cat "$h/cpuset.mems" >"$h${1#/}/cpuset.mems"
    fi
  done
}

# The kubelet: cgroupfs, cgroup v1 allowed, no swap check, its own cgroup root, and its own
# folder for the containers' logs: a kubelet removes the folders of /var/log/pods whose pod it
# does not run, so two kubelets sharing it delete each other's logs (and the containers that
# then cannot write theirs fail).
kubelet_config() { # folder, address, cgroup root
  cat <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$1/containerd/containerd.sock
cgroupDriver: cgroupfs
cgroupRoot: $3
podLogsDir: $1/pod-logs
failCgroupV1: false
failSwapOn: false
address: $2
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $(port)
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$pki/ca.crt"}
authorization: {mode: Webhook}
resolvConf: /etc/resolv.conf
enforceNodeAllocatable: [pods]
evictionHard: {memory.available: "64Mi", nodefs.available: "64Mi", imagefs.available: "64Mi", nodefs.inodesFree: "1%", imagefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
syncFrequency: 10s
nodeStatusUpdateFrequency: 5s
EOF
}

# The second node's network namespace, wired to the host (the underlay between the nodes):
# a veth pair, NODE1_IP/24 inside, .254 on the host side; the host reaches the node's pods
# through it, the node everything else through its default route via the host. The host
# speaks to the node from its own address (NODE_IP), as one node does to another.
netns_up() {
  local host_side=${node1_ip%.*}.254
  ip netns add "$node1"
  ip link add "$node1" type veth peer name eth0 netns "$node1"
  ip addr add "$host_side/24" dev "$node1"
  ip link set "$node1" up
  ip route replace "$node1_ip/32" dev "$node1" src "$node_ip"
  ip -n "$node1" link set lo up
  ip -n "$node1" addr add "$node1_ip/24" dev eth0
  ip -n "$node1" link set eth0 up
  ip -n "$node1" route add default via "$host_side"
  ip netns exec "$node1" sysctl -qw net.ipv4.ip_forward=1
}

# A node's pod network, once the controller-manager gave it its /24 (which one is not fixed:
# with two nodes the second got .1.0/24 or .2.0/24): the CNI configuration that containerd
# picks up (the node turns Ready then), and on the second node the host's route to its pods.
pod_network_up() { # name, folder
  local cidr
  # shellcheck disable=SC2016 # expanded by sh
  wait_for "the pod CIDR of $1" 60 sh -c '[ -n "$(kubectl get node "$0" -o jsonpath={.spec.podCIDR})" ]' "$1"
  cidr=$(kubectl get node "$1" -o jsonpath='{.spec.podCIDR}')
  cni_config "$2" "$cidr" >"$2/cni/net.d/10-ward-ptp.conflist"
  [[ $1 != "$node1" ]] || ip route replace "$cidr" via "$node1_ip" dev "$node1"
  log "node $1 has the pod CIDR $cidr"
}

node_up "$node" "$node_ip" "$dir" "$cgroup_root" ""
if ((nodes == 2)); then
  netns_up
  node_up "$node1" "$node1_ip" "$dir/node1" "$cgroup_root-node1" "node1-" \
    nsenter "--net=/run/netns/$node1" --
fi
pod_network_up "$node" "$dir"
[[ -z $node1 ]] || pod_network_up "$node1" "$dir/node1"
for n in "$node" ${node1:+"$node1"}; do
  wait_for "node $n" 120 kubectl wait --for=condition=Ready --timeout=5s "node/$n"
  log "node $n is Ready"
done
echo "$dir/kubeconfig"
