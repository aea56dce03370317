#!/bin/sh
# The `ward-validate` pre-commit hook (.pre-commit-hooks.yaml): `ward validate FILES...` on
# the files pre-commit passes. pre-commit runs this script from its own clone of ward at the
# `rev` the user pinned, so ward is built from that clone (once; ci/install.sh keeps the
# build in the clone's .ward-ci/root). WARD_BIN=path skips the build and runs that ward.
set -eu
here=$(cd "$(dirname "$0")/../.." && pwd)
if [ -z "${WARD_BIN:-}" ]; then
  "$here/ci/install.sh" install "$here" "$here/.ward-ci/root"
  WARD_BIN=$here/.ward-ci/root/bin/ward
fi
exec "$WARD_BIN" validate "$@"
