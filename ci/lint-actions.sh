#!/usr/bin/env bash
# Lints the GitHub workflow and the composite action with actionlint and zizmor.
#
#   ci/lint-actions.sh actionlint   actionlint on ci/github/ward.yml, wired to the action in
#                                   this repository (so the `with:` inputs are checked
#                                   against ci/github/action.yml)
#   ci/lint-actions.sh zizmor       zizmor --offline --persona pedantic on ci/github/ward.yml
#                                   and action.yml:
#                                   actions pinned by commit, no persisted checkout
#                                   credentials, no template injection, minimal permissions
#
# Installs the tools the first time: actionlint from the Go module proxy into
# $HOME/.cache/ward/bin, zizmor from PyPI into the venv $HOME/.cache/ward/venv-zizmor.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=$HOME/.cache/ward
actionlint_version=v1.7.12
zizmor_version=1.32.0

actionlint() {
  local bin=$cache/bin/actionlint tmp
  if [[ ! -x $bin ]] || [[ $("$bin" -version | head -1) != "$actionlint_version" ]]; then
    command -v go >/dev/null || { echo "actionlint needs Go to build" >&2; return 1; }
    GOBIN=$cache/bin go install "github.com/rhysd/actionlint/cmd/actionlint@$actionlint_version"
  fi
  # actionlint resolves a local action (`uses: ./ci/github`) only inside a git repository:
  # a scratch one with the action and the example workflow pointing at it.
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  git init -q "$tmp"
  mkdir -p "$tmp/ci" "$tmp/.github/workflows"
  cp -r "$repo/ci/github" "$tmp/ci/"
  sed -E 's#uses: [^ ]+/ward/ci/github@[0-9a-f]{40}.*#uses: ./ci/github#' "$repo/ci/github/ward.yml" \
    >"$tmp/.github/workflows/ward.yml"
  grep -q 'uses: ./ci/github$' "$tmp/.github/workflows/ward.yml" ||
    { echo "ci/github/ward.yml does not use the action by a commit" >&2; return 1; }
  (cd "$tmp" && "$bin" -no-color .github/workflows/ward.yml)
}

zizmor() {
  local venv=$cache/venv-zizmor
  if [[ ! -x $venv/bin/zizmor ]] || [[ $("$venv/bin/zizmor" --version) != "zizmor $zizmor_version" ]]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "zizmor==$zizmor_version"
  fi
  "$venv/bin/zizmor" --offline --no-progress --persona pedantic "$repo/ci/github/ward.yml" "$repo/ci/github/action.yml"
}

case ${1:-} in
  actionlint) actionlint ;;
  zizmor) zizmor ;;
  *) echo "usage: $0 actionlint|zizmor" >&2; exit 1 ;;
esac
