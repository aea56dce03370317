#!/usr/bin/env bash
# Builds the test cluster's binaries from their Go modules, at pinned versions:
#   kube-apiserver from k8s.io/kubernetes (its staging modules replaced by their published
#   v0.x versions, which is how the module can be used from outside its repository) and
#   etcd from go.etcd.io/etcd/server/v3 (the version Kubernetes itself requires), and the
#   node's and control plane's other parts from the same module: kubelet, kube-scheduler and
#   kube-controller-manager (the single-node cluster of ci/cluster/).
# Output: $WARD_KUBE_BIN (default $HOME/.cache/ward/kube/<versions>/bin) with those five
# binaries; prints that directory. Cached: a second run with the same versions does nothing;
# a cache from before the node binaries builds only those.
# Needs Go (the machine's 1.26 is enough: k8s.io/kubernetes v1.37 says `go 1.26.0`) and the
# Go module proxy. The first build takes about 10 minutes on 2 cores.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.7.0}
staging=v0.${K8S_VERSION#v1.}
root=${WARD_KUBE_CACHE:-$HOME/.cache/ward/kube}/k8s-$K8S_VERSION-etcd-$ETCD_VERSION
bin=${WARD_KUBE_BIN:-$root/bin}

kube_cmds=(kube-apiserver kube-controller-manager kube-scheduler kubelet)
built() {
  local c
  for c in etcd "${kube_cmds[@]}"; do [[ -x $bin/$c ]] || return 1; done
  [[ -f $bin/.done ]]
}
if built; then
  echo "$bin"
  exit 0
fi
command -v go >/dev/null || { echo "ci/kube/build.sh: Go is missing" >&2; exit 1; }
mkdir -p "$root/src" "$bin"
cd "$root/src"

# The staging modules k8s.io/kubernetes replaces with ./staging/src/... in its own go.mod.
gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
{
  echo "module ward.dev/testcluster"
  echo
  echo "go 1.26.0"
  echo
  echo "require ("
  echo "	k8s.io/kubernetes $K8S_VERSION"
  echo "	go.etcd.io/etcd/server/v3 $ETCD_VERSION"
  echo ")"
  grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$gomod" | awk -v v="$staging" '{print "replace " $1 " => " $1 " " v}'
} > go.mod
cat > tools.go <<'GO'
//go:build tools

// Package tools pins the binaries the test cluster is built from.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
GO
echo "ci/kube/build.sh: resolving k8s.io/kubernetes $K8S_VERSION and etcd $ETCD_VERSION" >&2
GOFLAGS=-mod=mod go mod tidy >&2
if [[ ! -x $bin/etcd ]]; then
  echo "ci/kube/build.sh: building etcd" >&2
  go build -trimpath -o "$bin/etcd" go.etcd.io/etcd/server/v3 >&2
fi
# About 10 minutes for the first, a few more for each of the others (they share packages).
for c in "${kube_cmds[@]}"; do
  [[ -x $bin/$c ]] && continue
  echo "ci/kube/build.sh: building $c" >&2
  go build -trimpath -o "$bin/$c.tmp" "k8s.io/kubernetes/cmd/$c" >&2
  mv "$bin/$c.tmp" "$bin/$c"
done
touch "$bin/.done"
echo "$bin"
