#!/usr/bin/env bash
# Installs the `ward` CLI for a CI job: the slim build (`--no-default-features`: no node
# commands, no aya/nix/WireGuard crates, no clang), from ward's sources at a known revision.
# Used by the GitHub action (ci/github/action.yml), the GitLab template
# (ci/gitlab/ward.gitlab-ci.yml) and the pre-commit hook; none of them assumes that the
# repository the job runs in holds ward's sources.
#
#   ci/install.sh fetch URL REF DIR   fetch ward at REF (branch, tag or full commit) from the
#                                     git URL into DIR (shallow), print DIR
#   ci/install.sh key SRC             print the cache key of the sources in SRC (a hash of
#                                     their content, so a moved branch gets a new key)
#   ci/install.sh install SRC ROOT    `cargo install` ward from SRC into ROOT (ROOT/bin/ward),
#                                     unless ROOT already holds a build of the same sources
#                                     (ROOT/.ward-source holds their key): cache ROOT between
#                                     jobs and a warm job skips the build
#
# Environment: WARD_INSTALL_ARGS, more `cargo install` arguments (word-split; the tests use
# `--debug`); cargo's own (CARGO_HOME, CARGO_TARGET_DIR) are honoured.
set -euo pipefail

die() {
  printf 'ward install: %s\n' "$*" >&2
  exit 1
}

# fetch URL REF DIR: any ref the server lets a client fetch (branches, tags, commits).
fetch() {
  local url=$1 ref=$2 dir=$3
  [[ -n $url ]] || die "no git URL for ward's sources (set the repository URL)"
  [[ -n $ref ]] || die "no ward revision given (set a tag or a full commit of ward)"
  rm -rf "$dir"
  git init -q "$dir"
  git -C "$dir" fetch -q --depth 1 --no-tags "$url" "$ref" ||
    die "cannot fetch $ref from $url: check the URL and that $ref is a branch, tag or full commit"
  git -C "$dir" -c advice.detachedHead=false checkout -q FETCH_HEAD
  printf '%s\n' "$dir"
}

# key SRC: sha256 over the path and content of every file of the sources (but .git/, a
# target/ and ward's own .ward/ and .ward-ci/ folders).
key() {
  local src=$1
  [[ -f $src/reconciler/Cargo.toml ]] || die "$src does not hold ward's sources (no reconciler/Cargo.toml)"
  (
    cd "$src"
    find . \( -name .git -o -name target -o -name .ward -o -name .ward-ci \) -prune -o \
      -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 -r sha256sum | sha256sum | cut -c1-32
  )
}

# install SRC ROOT
install() {
  local src=$1 root=$2 want have=""
  want=$(key "$src")
  [[ -f $root/.ward-source ]] && have=$(<"$root/.ward-source")
  if [[ -x $root/bin/ward && $have == "$want" ]]; then
    echo "ward is up to date in $root (sources $want)" >&2
    "$root/bin/ward" --version >&2
    return
  fi
  command -v cargo >/dev/null ||
    die "cargo is missing: install Rust first (rustup; in GitHub Actions e.g. dtolnay/rust-toolchain)"
  echo "building ward (sources $want) into $root; a cold build takes a few minutes" >&2
  # shellcheck disable=SC2086 # WARD_INSTALL_ARGS: several arguments on purpose
  cargo install --locked --force --no-default-features --path "$src/reconciler" \
    --root "$root" --bin ward ${WARD_INSTALL_ARGS:-} >&2 ||
    die "cargo install failed (see above); it needs a C compiler, pkg-config and OpenSSL headers"
  printf '%s\n' "$want" >"$root/.ward-source"
  "$root/bin/ward" --version >&2
}

case ${1:-} in
  fetch) [[ $# -eq 4 ]] || die "usage: $0 fetch URL REF DIR"; fetch "$2" "$3" "$4" ;;
  key) [[ $# -eq 2 ]] || die "usage: $0 key SRC"; key "$2" ;;
  install) [[ $# -eq 3 ]] || die "usage: $0 install SRC ROOT"; install "$2" "$3" ;;
  *) die "usage: $0 fetch URL REF DIR | key SRC | install SRC ROOT" ;;
esac
