#!/bin/sh
# Install ward's pre-push hook into the git repository of the current directory (your
# policy repository, not ward's own) by symlinking it, so that updates to this copy of
# ci/hooks/ take effect without reinstalling.
#
#   cd my-policies && /path/to/ward/ci/hooks/install.sh [-f]
#                                -f: replace an existing, different pre-push hook
#                                    (it is kept as pre-push.backup)
#
# Honours core.hooksPath (relative to the work tree's top) and worktrees (asks git where the
# hooks directory is).
set -eu

force=0
[ "${1:-}" = "-f" ] && force=1

here=$(cd "$(dirname "$0")" && pwd)
src=$here/pre-push
top=$(git rev-parse --show-toplevel 2>/dev/null) || {
  echo "not in a git work tree: run this from the repository the hook is for" >&2
  exit 1
}

hooks=$(git -C "$top" config --get core.hooksPath || true)
if [ -z "$hooks" ]; then
  hooks=$(git -C "$top" rev-parse --git-path hooks)
fi
case $hooks in
  /*) ;;
  *) hooks=$top/$hooks ;;
esac
mkdir -p "$hooks"
dest=$hooks/pre-push

chmod +x "$src"
if [ -L "$dest" ] && [ "$(readlink "$dest")" = "$src" ]; then
  echo "pre-push hook already installed: $dest -> $src"
  exit 0
fi
if [ -e "$dest" ] || [ -L "$dest" ]; then
  if [ "$force" -ne 1 ]; then
    echo "a pre-push hook already exists at $dest; rerun with -f to replace it" >&2
    echo "(it will be kept as $dest.backup)" >&2
    exit 1
  fi
  mv -f "$dest" "$dest.backup"
fi
ln -s "$src" "$dest"
echo "installed: $dest -> $src"
echo "the hook runs \${WARD_BIN:-ward} validate --rev <sha>; install ward with:"
echo "  cargo install --locked --path $(cd "$here/../.." && pwd)/reconciler --no-default-features"
