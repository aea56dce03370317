#!/usr/bin/env bash
# Writes Cilium's CRDs for the kinds ward uses (CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy,
# CiliumEnvoyConfig, CiliumClusterwideEnvoyConfig, CiliumCIDRGroup) for every Cilium release that
# ci/crds/releases pins, taken from Cilium itself: `go mod download` fetches Cilium's Go module
# at that release from the Go module proxy (checked against Go's checksum database and against
# the hash in ci/crds/releases), and the files are copied unchanged from the CRDs its package
# github.com/cilium/cilium/pkg/k8s/apis/cilium.io/client embeds (the ones the agent installs).
# Output: one folder per minor version (`1.17/`, `1.18/`, ...) under $WARD_CILIUM_CRDS_DIR
# (default $HOME/.cache/ward/crds/cilium); prints that directory. Cached: a release already
# fetched with the same hash is not fetched again (and needs no Go).
# Needs Go and the Go module proxy the first time (about 10 seconds per release).
#
#   export WARD_CILIUM_CRDS=$(ci/crds/fetch.sh)    # what the schema tests read
#   ci/crds/fetch.sh --update                      # also copies them into schema/crds/<minor>/
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
update=
case "${1:-}" in
  "") ;;
  --update) update=1 ;;
  *) echo "usage: ci/crds/fetch.sh [--update]" >&2; exit 2 ;;
esac

out=${WARD_CILIUM_CRDS_DIR:-${WARD_CRDS_CACHE:-$HOME/.cache/ward/crds}/cilium}
module=github.com/cilium/cilium
files="ciliumnetworkpolicies ciliumclusterwidenetworkpolicies ciliumenvoyconfigs ciliumclusterwideenvoyconfigs ciliumcidrgroups"

# fetch MINOR RELEASE SUM: fills $out/MINOR unless it already holds RELEASE with SUM.
fetch() {
  local minor=$1 release=$2 sum=$3 dest=$out/$1
  [[ -f $dest/.done && $(cat "$dest/.done") == "$release $sum" ]] && return 0
  command -v go >/dev/null || { echo "ci/crds/fetch.sh: Go is missing" >&2; exit 1; }
  echo "ci/crds/fetch.sh: downloading $module $release" >&2
  local info dir got
  info=$(cd /tmp && GOFLAGS=-mod=mod go mod download -json "$module@$release")
  dir=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])' <<<"$info")
  got=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["Sum"])' <<<"$info")
  [[ $got == "$sum" ]] || {
    echo "ci/crds/fetch.sh: $module $release has hash $got, ci/crds/releases pins $sum" >&2
    exit 1
  }
  local tmp
  tmp=$(mktemp -d "$out/.$minor.XXXXXX")
  for f in $files; do
    # The CIDR group CRD was v2alpha1 only until 1.18.
    local src=$dir/pkg/k8s/apis/cilium.io/client/crds/v2/$f.yaml
    [[ -f $src ]] || src=$dir/pkg/k8s/apis/cilium.io/client/crds/v2alpha1/$f.yaml
    [[ -f $src ]] || { echo "ci/crds/fetch.sh: $release has no CRD $f" >&2; rm -rf "$tmp"; exit 1; }
    cp "$src" "$tmp/$f.yaml"
    chmod 0644 "$tmp/$f.yaml"
  done
  echo "$release $sum" > "$tmp/.done"
  rm -rf "$dest"
  mv "$tmp" "$dest"
}

mkdir -p "$out"
while read -r minor release sum; do
  [[ -z $minor || $minor == \#* ]] && continue
  fetch "$minor" "$release" "$sum"
  if [[ -n $update ]]; then
    mkdir -p "$repo/schema/crds/$minor"
    rm -f "$repo/schema/crds/$minor"/cilium*.yaml
    cp "$out/$minor"/*.yaml "$repo/schema/crds/$minor/"
    echo "ci/crds/fetch.sh: copied the CRDs of Cilium $release into schema/crds/$minor/" >&2
  fi
done < "$here/releases"
echo "$out"
