#!/usr/bin/env bash
# Builds both images (ci/images/build.sh) and runs them, as ci/test.sh's "container images"
# check: root, podman from Debian's packages, no network inside the containers.
#
# 1. `ward validate /repo` in the controller image, on this repository's policies mounted
#    read-only, exits 0 and says valid; the same on a copy with a broken policy exits 1 and
#    names the file and line (so the binary in the image really checks).
# 2. The agent image runs `ward-agent --version`, and every library its binary links is
#    in the image.
# 3. `kubectl kustomize reconciler/deploy` renders, and the Deployment and the DaemonSet name
#    exactly the images built here.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
fail() { echo "ci/images/test.sh: $*" >&2; exit 1; }

mapfile -t images < <("$root/ci/images/build.sh")
((${#images[@]} == 2)) || fail "ci/images/build.sh printed ${#images[@]} image names, not 2"
ward=${images[0]} agent=${images[1]}
export CONTAINERS_CONF=$HOME/.cache/ward/images/containers.conf
run() { podman run --rm --network none "$@"; }

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cp -r "$root/policies" "$root/cluster-config" "$scratch/"
chmod -R a+rX "$scratch"

out=$(run -v "$scratch:/repo:ro" "$ward" validate /repo) ||
  fail "ward validate /repo in $ward failed: $out"
grep -q '^valid: ' <<<"$out" || fail "ward validate /repo in $ward did not say valid: $out"
echo "ci/images/test.sh: $ward: $(tail -n 1 <<<"$out")" >&2

broken=$scratch/policies/broken.yaml
printf 'apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: broken\n  namespace: shop\nspec:\n  endpointSelector: {}\n  ingress:\n    - toPorts:\n        - ports:\n            - port: "99999"\n' >"$broken"
chmod a+r "$broken"
set +e
out=$(run -v "$scratch:/repo:ro" "$ward" validate /repo 2>&1)
status=$?
set -e
((status == 1)) || fail "a broken policy: ward validate exited $status, not 1: $out"
grep -q 'broken.yaml:11:' <<<"$out" || fail "the finding does not name broken.yaml:11: $out"

out=$(run "$agent" --version) || fail "ward-agent --version in $agent failed: $out"
grep -q '^ward-agent ' <<<"$out" || fail "ward-agent --version printed: $out"
missing=$(run --entrypoint ldd "$agent" /usr/local/bin/ward-agent | grep 'not found' || true)
[[ -z $missing ]] || fail "$agent lacks libraries: $missing"
missing=$(run --entrypoint ldd "$ward" /usr/local/bin/ward | grep 'not found' || true)
[[ -z $missing ]] || fail "$ward lacks libraries: $missing"

rendered=$(kubectl kustomize "$root/reconciler/deploy") || fail "kubectl kustomize reconciler/deploy failed"
named=$(sed -nE 's/^ +image: +//p' <<<"$rendered" | sort -u | tr '\n' ' ')
[[ $named == "$(printf '%s\n' "$ward" "$agent" | sort -u | tr '\n' ' ')" ]] ||
  fail "the manifests name the images $named, the build made $ward $agent"
echo "ci/images/test.sh: both images built and ran; the manifests name them" >&2
