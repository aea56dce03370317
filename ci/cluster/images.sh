#!/usr/bin/env bash
# Builds the test cluster's own images, offline, and prints the archive that holds them:
#
#   localhost/ward/pause:1     the pod sandbox's image (containerd's sandbox_image)
#   localhost/ward/testpod:1   the end-to-end tests' echo server (and its client)
#
# Both are the one static Go program of ci/cluster/testpod on an empty root (FROM scratch):
# no registry is reachable here, so even the pause image is ours. podman builds them (only
# COPY, nothing runs) and saves them as one docker-archive, which ci/cluster/up.sh imports
# into containerd (`ctr -n k8s.io images import`). Cached under
# $HOME/.cache/ward/cluster/images by the hash of the program's sources.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=$HOME/.cache/ward/cluster/images
mkdir -p "$cache"
key=$(cat "$here/testpod/go.mod" "$here/testpod/main.go" "$0" | sha256sum | cut -c1-16)
archive=$cache/testpod-$key.tar
if [[ -s $archive ]]; then
  echo "$archive"
  exit 0
fi
log() { echo "ci/cluster/images.sh: $*" >&2; }
command -v go >/dev/null || { log "Go is missing"; exit 1; }
command -v podman >/dev/null || { log "podman is missing (apt-get install podman)"; exit 1; }

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
log "building testpod (static)"
(cd "$here/testpod" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$context/testpod" .)
cat >"$context/Containerfile.pause" <<'EOF'
FROM scratch
COPY testpod /testpod
ENTRYPOINT ["/testpod", "pause"]
EOF
cat >"$context/Containerfile.testpod" <<'EOF'
FROM scratch
COPY testpod /testpod
ENTRYPOINT ["/testpod"]
CMD ["serve"]
EOF
for name in pause testpod; do
  podman build --quiet -f "$context/Containerfile.$name" -t "localhost/ward/$name:1" "$context" >/dev/null
done
podman save --quiet --format docker-archive -m -o "$archive.tmp" localhost/ward/pause:1 localhost/ward/testpod:1
mv "$archive.tmp" "$archive"
echo "$archive"
