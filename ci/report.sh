#!/usr/bin/env bash
# The ward steps of a CI job, shared by the GitHub action and the GitLab template. Runs in
# the policy repository's checkout (the current directory) with `ward` on PATH.
#
#   ci/report.sh validate OUTDIR
#       ward validate $WARD_PATHS, findings on standard output in $WARD_ANNOTATIONS
#       (`github`: ::error annotations, `text`: the job log); also OUTDIR/ward.sarif when
#       WARD_SARIF=true and OUTDIR/ward-junit.xml when WARD_JUNIT=true.
#       Exit: ward's (0 clean, 1 errors).
#   ci/report.sh diff BASE HEAD OUTDIR
#       ward diff BASE..HEAD as Markdown: OUTDIR/ward-diff.md (at most WARD_MARKDOWN_LIMIT
#       characters, default 60000, for the comment) and OUTDIR/ward-diff-full.md (all of it,
#       also printed for the job log). A BASE of the form origin/BRANCH that is not there
#       yet is fetched. Exit: 0 no changes, 2 changes, 1 errors (--detailed-exitcode).
#
# Environment: WARD_PATHS (default "policies cluster-config", word-split), WARD_BIN (default
# ward), WARD_ANNOTATIONS (default github), WARD_SARIF, WARD_JUNIT, WARD_MARKDOWN_LIMIT.
set -uo pipefail

ward=${WARD_BIN:-ward}
read -r -a paths <<<"${WARD_PATHS:-policies cluster-config}"

die() {
  printf 'ward report: %s\n' "$*" >&2
  exit 1
}

validate() {
  local out=$1 rc=0
  mkdir -p "$out" || die "cannot create $out"
  "$ward" validate "${paths[@]}" -o "${WARD_ANNOTATIONS:-github}" || rc=$?
  if [[ ${WARD_SARIF:-false} == true ]]; then
    "$ward" validate "${paths[@]}" -o sarif >"$out/ward.sarif" 2>/dev/null
  fi
  if [[ ${WARD_JUNIT:-false} == true ]]; then
    "$ward" validate "${paths[@]}" -o junit >"$out/ward-junit.xml" 2>/dev/null
  fi
  return "$rc"
}

# ensure_base BASE: fetch origin/BRANCH when the checkout does not have it (shallow or
# single-branch checkouts). When that fails, ward diff says which revision it cannot find.
ensure_base() {
  local base=$1
  git rev-parse --verify --quiet "$base^{commit}" >/dev/null 2>&1 && return
  if [[ $base == origin/* ]]; then
    git fetch -q --no-tags origin "${base#origin/}:refs/remotes/$base" ||
      echo "ward report: cannot fetch ${base#origin/} from origin" >&2
  fi
}

diff_() {
  local base=$1 head=$2 out=$3 rc=0
  mkdir -p "$out" || die "cannot create $out"
  ensure_base "$base"
  "$ward" diff --base "$base" --head "$head" -o markdown --detailed-exitcode \
    >"$out/ward-diff.md" || rc=$?
  "$ward" diff --base "$base" --head "$head" -o markdown --markdown-limit 0 \
    >"$out/ward-diff-full.md" 2>/dev/null
  if [[ ! -s $out/ward-diff.md ]]; then
    printf '**ward diff failed** (exit %s); see the job log.\n' "$rc" >"$out/ward-diff.md"
  fi
  [[ -s $out/ward-diff-full.md ]] || cp "$out/ward-diff.md" "$out/ward-diff-full.md"
  cat "$out/ward-diff-full.md"
  echo "ward diff exit code $rc (0 no changes, 2 changes, 1 errors)" >&2
  return "$rc"
}

case ${1:-} in
  validate) [[ $# -eq 2 ]] || die "usage: $0 validate OUTDIR"; validate "$2" ;;
  diff) [[ $# -eq 4 ]] || die "usage: $0 diff BASE HEAD OUTDIR"; diff_ "$2" "$3" "$4" ;;
  *) die "usage: $0 validate OUTDIR | diff BASE HEAD OUTDIR" ;;
esac
