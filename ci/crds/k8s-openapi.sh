#!/usr/bin/env bash
# Writes the Kubernetes OpenAPI v3 schema of NetworkPolicy (networking.k8s.io/v1), taken from
# Kubernetes itself: the module k8s.io/kubernetes, at the version the test cluster is built from
# (ci/kube/build.sh's K8S_VERSION, the one place it is pinned), ships the API server's published
# spec as api/openapi-spec/v3/apis__networking.k8s.io__v1_openapi.json. The Go module proxy
# serves that module; `go mod download` fetches it into Go's module cache (once).
# Output: $WARD_K8S_OPENAPI_DIR (default $HOME/.cache/ward/openapi/<k8s-version>) holding
# networking.k8s.io_v1.networkpolicy.json: the spec's `info` and the component schemas that
# io.k8s.api.networking.v1.NetworkPolicy reaches, unchanged; prints that directory.
#
#   export WARD_K8S_OPENAPI=$(ci/crds/k8s-openapi.sh)   # what the schema tests read
#   ci/crds/k8s-openapi.sh --update                     # also copies it into schema/openapi/
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
update=
case "${1:-}" in
  "") ;;
  --update) update=1 ;;
  *) echo "usage: ci/crds/k8s-openapi.sh [--update]" >&2; exit 2 ;;
esac

version=$(sed -n 's/^K8S_VERSION=\${K8S_VERSION:-\(v[0-9.]*\)}$/\1/p' "$repo/ci/kube/build.sh")
[[ -n $version ]] || { echo "ci/crds/k8s-openapi.sh: no K8S_VERSION in ci/kube/build.sh" >&2; exit 1; }
out=${WARD_K8S_OPENAPI_DIR:-$HOME/.cache/ward/openapi/$version}
file=networking.k8s.io_v1.networkpolicy.json

if ! [[ -f $out/$file ]]; then
  command -v go >/dev/null || { echo "ci/crds/k8s-openapi.sh: Go is missing" >&2; exit 1; }
  dir=$(GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$version" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  spec=$dir/api/openapi-spec/v3/apis__networking.k8s.io__v1_openapi.json
  mkdir -p "$out"
  python3 - "$spec" "$out/$file.tmp" <<'PY'
import json, sys
spec = json.load(open(sys.argv[1]))
schemas = spec["components"]["schemas"]
root = "io.k8s.api.networking.v1.NetworkPolicy"
keep, todo = {}, [root]
def refs(node):
    if isinstance(node, dict):
        r = node.get("$ref")
        if isinstance(r, str) and r.startswith("#/components/schemas/"):
            yield r[len("#/components/schemas/"):]
        for v in node.values():
            yield from refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from refs(v)
while todo:
    name = todo.pop()
    if name in keep:
        continue
    keep[name] = schemas[name]
    todo.extend(refs(schemas[name]))
out = {"info": spec["info"], "components": {"schemas": dict(sorted(keep.items()))}}
with open(sys.argv[2], "w") as f:
    json.dump(out, f, indent=2, sort_keys=False)
    f.write("\n")
PY
  mv "$out/$file.tmp" "$out/$file"
  echo "ci/crds/k8s-openapi.sh: NetworkPolicy's schema from k8s.io/kubernetes $version" >&2
fi

if [[ -n $update ]]; then
  cp "$out/$file" "$repo/schema/openapi/$file"
  echo "ci/crds/k8s-openapi.sh: copied it into schema/openapi/; record $version in schema/openapi/README.md" >&2
fi
echo "$out"
