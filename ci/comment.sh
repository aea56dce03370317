#!/usr/bin/env bash
# Posts a report as ONE comment per pull request (GitHub) or merge request (GitLab): the
# first run creates it, every later run updates that same comment in place. The comment is
# found again by a hidden marker on its first line (WARD_COMMENT_MARKER, default
# `<!-- ward-diff -->`; set another one per job when several ward jobs comment on one PR).
#
#   ci/comment.sh github FILE   env GITHUB_TOKEN, GITHUB_REPOSITORY, WARD_PR (the number),
#                               GITHUB_API_URL (default https://api.github.com),
#                               optional GITHUB_SERVER_URL, GITHUB_RUN_ID, GITHUB_SHA for
#                               the footer's link to the run
#   ci/comment.sh gitlab FILE   env WARD_GITLAB_TOKEN (a project access token, scope api),
#                               CI_API_V4_URL, CI_PROJECT_ID, CI_MERGE_REQUEST_IID,
#                               optional CI_PIPELINE_URL, CI_COMMIT_SHORT_SHA
#
# Needs curl and jq. Prints `created comment ID` or `updated comment ID`.
set -euo pipefail

marker=${WARD_COMMENT_MARKER:-<!-- ward-diff -->}
# GitHub refuses comments over 65,536 characters; ward's markdown stays under 60,000 unless
# told otherwise. Never cut it here (that could break a code fence): point at the run.
max_chars=65000

die() {
  printf 'ward comment: %s\n' "$*" >&2
  exit 1
}

need() {
  local v
  for v in "$@"; do
    [[ -n ${!v:-} ]] || die "$v is not set"
  done
}

# body FILE LINK: the marker, the report (or a pointer when too long), the footer.
body() {
  local file=$1 link=$2 chars
  chars=$(wc -m <"$file")
  printf '%s\n' "$marker"
  if ((chars > max_chars)); then
    printf 'The ward report is too long for a comment (%s characters); see %s.\n' "$chars" "${link:-the job log}"
  else
    cat "$file"
  fi
  printf '\n<sub>ward%s%s</sub>\n' "${sha:+ · $sha}" "${link:+ · $link}"
}

# api METHOD URL [JSON_FILE]: one request with the forge's token header; the response body
# on standard output.
api() {
  local method=$1 url=$2 data=${3:-}
  local args=(-fsS --retry 3 -X "$method" -H "$auth" -H 'Content-Type: application/json')
  [[ $forge == github ]] && args+=(-H 'Accept: application/vnd.github+json' -H 'X-GitHub-Api-Version: 2022-11-28')
  [[ -n $data ]] && args+=(--data-binary "@$data")
  curl "${args[@]}" "$url" || die "$method $url failed"
}

# find_comment LIST_URL: the id of the first comment whose body starts with the marker,
# page by page (100 a page) until an empty page.
find_comment() {
  local list=$1 page=1 id items
  while :; do
    items=$(api GET "$list?per_page=100&page=$page")
    id=$(jq -r --arg m "$marker" '[.[] | select(.body | startswith($m))][0].id // empty' <<<"$items")
    [[ -n $id ]] && { printf '%s\n' "$id"; return; }
    [[ $(jq length <<<"$items") -lt 100 ]] && return
    page=$((page + 1))
  done
}

main() {
  forge=${1:-}
  local file=${2:-} list item_url update id link
  [[ -f $file ]] || die "usage: $0 github|gitlab FILE (FILE: the markdown to post)"
  command -v jq >/dev/null || die "jq is missing"
  command -v curl >/dev/null || die "curl is missing"
  case $forge in
    github)
      need GITHUB_TOKEN GITHUB_REPOSITORY WARD_PR
      local api_url=${GITHUB_API_URL:-https://api.github.com}
      auth="Authorization: Bearer $GITHUB_TOKEN"
      list=$api_url/repos/$GITHUB_REPOSITORY/issues/$WARD_PR/comments
      item_url=$api_url/repos/$GITHUB_REPOSITORY/issues/comments
      update=PATCH
      sha=${GITHUB_SHA:0:7}
      link=""
      [[ -n ${GITHUB_RUN_ID:-} ]] &&
        link="[run](${GITHUB_SERVER_URL:-https://github.com}/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID)"
      ;;
    gitlab)
      need WARD_GITLAB_TOKEN CI_API_V4_URL CI_PROJECT_ID CI_MERGE_REQUEST_IID
      auth="PRIVATE-TOKEN: $WARD_GITLAB_TOKEN"
      list=$CI_API_V4_URL/projects/$CI_PROJECT_ID/merge_requests/$CI_MERGE_REQUEST_IID/notes
      item_url=$list
      update=PUT
      sha=${CI_COMMIT_SHORT_SHA:-}
      link=${CI_PIPELINE_URL:+[pipeline]($CI_PIPELINE_URL)}
      ;;
    *) die "usage: $0 github|gitlab FILE" ;;
  esac
  payload=$(mktemp)
  trap 'rm -f "$payload"' EXIT
  # A file, not an argument: a report can be larger than the argument limit.
  body "$file" "$link" | jq -Rs '{body: .}' >"$payload"
  id=$(find_comment "$list")
  if [[ -n $id ]]; then
    api "$update" "$item_url/$id" "$payload" >/dev/null
    echo "updated comment $id"
  else
    id=$(api POST "$list" "$payload" | jq -r .id)
    echo "created comment $id"
  fi
}

main "$@"
