#!/usr/bin/env bash
# Writes Cilium's CRDs for the kinds ward uses (CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy,
# CiliumEnvoyConfig, CiliumClusterwideEnvoyConfig, CiliumCIDRGroup), taken from Cilium itself:
# the Go program beside this script imports github.com/cilium/cilium/pkg/k8s/apis/cilium.io/client
# at the version its go.mod requires (the one place the Cilium version is pinned) and writes the
# CRDs that package embeds, one `<plural>.yaml` per CRD. The files are then checked to be
# byte-for-byte the package's own crds/v2/*.yaml.
# Output: $WARD_CILIUM_CRDS_DIR (default $HOME/.cache/ward/crds/<cilium-version>); prints that
# directory. Cached: a second run with the same program and version does nothing (and needs no Go).
# Needs Go and the Go module proxy the first time; Go's own module and build caches are used.
# The first run takes about 3 minutes on 2 cores (building Cilium's package and its dependencies).
#
#   export WARD_CILIUM_CRDS=$(ci/crds/fetch.sh)    # what the schema tests read
#   ci/crds/fetch.sh --update                      # also copies them into schema/crds/
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
update=
case "${1:-}" in
  "") ;;
  --update) update=1 ;;
  *) echo "usage: ci/crds/fetch.sh [--update]" >&2; exit 2 ;;
esac

version=$(awk '$1 == "github.com/cilium/cilium" { print $2 } $1 == "require" && $2 == "github.com/cilium/cilium" { print $3 }' "$here/go.mod")
[[ -n $version ]] || { echo "ci/crds/fetch.sh: no github.com/cilium/cilium version in $here/go.mod" >&2; exit 1; }
out=${WARD_CILIUM_CRDS_DIR:-${WARD_CRDS_CACHE:-$HOME/.cache/ward/crds}/$version}
# The program's inputs: a change to any of them makes a cached output stale.
stamp=$(cd "$here" && cat go.mod go.sum main.go | sha256sum | cut -d' ' -f1)

if ! [[ -f $out/.done && $(cat "$out/.done") == "$stamp" ]]; then
  command -v go >/dev/null || { echo "ci/crds/fetch.sh: Go is missing" >&2; exit 1; }
  mkdir -p "$(dirname "$out")"
  tmp=$(mktemp -d "${out%/}.tmp.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  cd "$here"
  echo "ci/crds/fetch.sh: building the CRD writer against github.com/cilium/cilium $version" >&2
  go build -trimpath -o "$tmp/crds" .
  "$tmp/crds" -out "$tmp/out"
  # The program writes the CRDs as Cilium's package parses them; check they are the very files.
  pkg=$(go list -f '{{.Dir}}' github.com/cilium/cilium/pkg/k8s/apis/cilium.io/client)
  for f in "$tmp"/out/*.yaml; do
    cmp -s "$f" "$pkg/crds/v2/$(basename "$f")" || {
      echo "ci/crds/fetch.sh: $(basename "$f") differs from $pkg/crds/v2/$(basename "$f")" >&2
      exit 1
    }
  done
  echo "$stamp" > "$tmp/out/.done"
  rm -rf "$out"
  mv "$tmp/out" "$out"
fi

if [[ -n $update ]]; then
  rm -f "$repo"/schema/crds/cilium*.yaml
  cp "$out"/*.yaml "$repo/schema/crds/"
  echo "ci/crds/fetch.sh: copied the CRDs of Cilium $version into schema/crds/; record $version in schema/crds/README.md" >&2
fi
echo "$out"
