#!/usr/bin/env bash
# Runs the CI templates' scripts the way the GitHub action, the GitLab template, pre-commit
# and the hook installer run them, against a scratch policy repository (a real git
# repository: a base commit with this repository's policies/ and cluster-config/, a head
# commit that changes a policy, a broken commit). No GitHub or GitLab: the comment API is
# ci/testdata/forge-api-stub.py on loopback, which records the requests.
#
#   ci/test-templates.sh          one check of ci/test.sh; prints `ok: ...` per assertion
#
# The example workflow ci/github/ward.yml runs in act (nektos/act) on this machine itself,
# without a container engine; the actions it uses from elsewhere get local stand-ins.
#
# Needs cargo, git, curl, jq, python3 and Go. Installs pre-commit and PyYAML into
# $HOME/.cache/ward/venv-templates and act into $HOME/.cache/ward/bin the first time. Builds
# ward with `--debug` into CARGO_TARGET_DIR (the GitLab job builds from a fresh fetch of
# this repository's HEAD, so what it tests is the committed state).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
stub_pid=""
cleanup() {
  [[ -n $stub_pid ]] && kill "$stub_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
export WARD_INSTALL_ARGS=--debug
venv=$HOME/.cache/ward/venv-templates
act_version=v0.2.89

fail() {
  echo "test-templates: FAILED: $*" >&2
  exit 1
}
ok() { echo "ok: $*"; }

tools() {
  if [[ ! -x $venv/bin/pre-commit ]] || ! "$venv/bin/python" -c 'import yaml' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q pre-commit==4.7.0 PyYAML==6.0.3
  fi
}

# The scratch policy repository: base (the example policies), head (a port added),
# broken (head plus a policy with a misspelt field). A bare `origin` holds main = base.
scratch() {
  local r=$tmp/policy-repo
  git init -q -b main "$r"
  git -C "$r" config user.email ci@example.invalid
  git -C "$r" config user.name ci
  cp -r "$repo/policies" "$repo/cluster-config" "$r/"
  git -C "$r" add -A && git -C "$r" commit -qm base
  git clone -q --bare "$r" "$tmp/origin.git"
  git -C "$r" remote add origin "$tmp/origin.git"
  git -C "$r" switch -qc feature
  sed -i 's/port: "80"/port: "8080"/' "$r/policies/namespaces/shop/backend-ingress.yaml"
  git -C "$r" diff --quiet && fail "the head commit changes nothing (backend-ingress.yaml has no port 80?)"
  git -C "$r" commit -qam "backend: port 8080"
  git -C "$r" tag head
  cat >"$r/policies/namespaces/shop/broken.yaml" <<'EOF'
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: broken
  namespace: shop
spec:
  endpointSelecter:
    matchLabels:
      app: backend
EOF
  git -C "$r" add -A && git -C "$r" commit -qm "a broken policy"
  git -C "$r" tag broken
}

# start_stub: a fresh API stub (no comment of ward's yet); sets api.
start_stub() {
  if [[ -n $stub_pid ]]; then kill "$stub_pid"; wait "$stub_pid" 2>/dev/null || true; fi
  rm -f "$tmp/port"
  : >"$tmp/requests.log"
  python3 "$repo/ci/testdata/forge-api-stub.py" "$tmp/port" "$tmp/requests.log" &
  stub_pid=$!
  for _ in $(seq 50); do [[ -s $tmp/port ]] && break; sleep 0.1; done
  [[ -s $tmp/port ]] || fail "the API stub did not start"
  api=http://127.0.0.1:$(<"$tmp/port")
}

# requests METHOD: the paths of the recorded requests with that method.
requests() { jq -r --arg m "$1" 'select(.method == $m) | .path' "$tmp/requests.log"; }

test_install() {
  local root=$tmp/gh-root out
  "$repo/ci/install.sh" install "$repo" "$root" 2>"$tmp/install.log" || { cat "$tmp/install.log"; fail "install"; }
  ward=$root/bin/ward
  "$ward" --version >/dev/null || fail "the installed ward does not run"
  if "$ward" lab --help >/dev/null 2>&1; then fail "the installed ward has the node commands"; fi
  ok "install.sh builds the slim CLI (no lab command)"
  out=$("$repo/ci/install.sh" install "$repo" "$root" 2>&1)
  [[ $out == *"up to date"* ]] || fail "a second install rebuilt: $out"
  ok "install.sh skips the build when the cached root holds the same sources"
  out=$("$repo/ci/install.sh" fetch "file://$repo" HEAD "$tmp/fetched")
  [[ -f $out/reconciler/Cargo.toml ]] || fail "fetch did not check ward out into $out"
  if out=$("$repo/ci/install.sh" fetch "file://$repo" no-such-ref "$tmp/fetched" 2>&1); then
    fail "fetching an unknown ref succeeded"
  fi
  [[ $out == *"cannot fetch no-such-ref from file://$repo"* ]] || fail "unknown ref: $out"
  ok "install.sh fetch: a ref of ward's repository by URL; an unknown ref is named"
}

test_github() {
  local r=$tmp/policy-repo out=$tmp/gh-out rc=0
  export WARD_BIN=$ward
  (cd "$r" && git checkout -q broken && WARD_SARIF=true "$repo/ci/report.sh" validate "$out" >"$tmp/annotations") || rc=$?
  [[ $rc == 1 ]] || fail "validate of the broken head exited $rc, not 1"
  grep -q '^::error file=policies/namespaces/shop/broken.yaml,line=7' "$tmp/annotations" ||
    fail "no annotation for broken.yaml:7: $(cat "$tmp/annotations")"
  ok "validate: an ::error annotation on policies/namespaces/shop/broken.yaml line 7, exit 1"
  jq -e '[.runs[0].results[] | select(.ruleId == "WARD-J001")] | length > 0' "$out/ward.sarif" >/dev/null ||
    fail "the SARIF has no WARD-J001 result"
  ok "validate: SARIF with the finding"

  rc=0
  (cd "$r" && git checkout -q head && "$repo/ci/report.sh" diff origin/main HEAD "$out" >/dev/null) || rc=$?
  [[ $rc == 2 ]] || fail "diff base..head exited $rc, not 2 (changes)"
  grep -q 'backend-ingress' "$out/ward-diff.md" || fail "the diff does not name backend-ingress"
  git -C "$r" rev-parse --verify -q refs/remotes/origin/main >/dev/null || fail "origin/main was not fetched"
  ok "diff: origin/main fetched, exit 2, ward-diff.md names the changed policy"

  start_stub
  local env=(GITHUB_API_URL="$api" GITHUB_REPOSITORY=o/policies WARD_PR=7 GITHUB_TOKEN=t0ken
    GITHUB_RUN_ID=99 GITHUB_SHA=0123456789abcdef)
  out=$(env "${env[@]}" "$repo/ci/comment.sh" github "$tmp/gh-out/ward-diff.md")
  [[ $out == "created comment 2" ]] || fail "first comment: $out"
  [[ $(requests POST) == /repos/o/policies/issues/7/comments ]] || fail "POST: $(requests POST)"
  out=$(env "${env[@]}" "$repo/ci/comment.sh" github "$tmp/gh-out/ward-diff.md")
  [[ $out == "updated comment 2" ]] || fail "second comment: $out"
  [[ $(requests PATCH) == /repos/o/policies/issues/comments/2 ]] || fail "PATCH: $(requests PATCH)"
  [[ $(requests POST | wc -l) == 1 ]] || fail "a second comment was created"
  jq -e 'select(.method == "PATCH") | (.body.body | startswith("<!-- ward-diff -->\n"))
    and (.body.body | contains("backend-ingress")) and (.auth == "Bearer t0ken")' \
    "$tmp/requests.log" >/dev/null || fail "the PATCH body or token is wrong"
  ok "comment: created the first time (POST), the same comment updated the second time (PATCH)"
}

# act_tool: nektos/act from its Go module into $HOME/.cache/ward/bin (cached).
act_tool() {
  act=$HOME/.cache/ward/bin/act
  if [[ ! -x $act ]] || [[ $("$act" --version) != "act version ${act_version#v}" ]]; then
    command -v go >/dev/null || fail "act needs Go to build"
    GOBIN=$HOME/.cache/ward/bin go install "github.com/nektos/act@$act_version" || fail "go install act"
  fi
}

# act_stand_ins: local actions that stand in for the external ones (no GitHub here):
# checkout clones the scratch repository at $WARD_TEST_REF; cache, upload-sarif and
# upload-artifact do nothing. And the directory act runs in: act takes github.repository
# from its origin.
act_stand_ins() {
  local dir=$tmp/act-actions
  mkdir -p "$dir/noop/upload-sarif" "$dir/checkout" "$tmp/act-home"
  cat >"$dir/noop/action.yml" <<'EOF'
name: stand-in
description: does nothing (no GitHub here)
inputs: {path: {required: false}, key: {required: false}, name: {required: false}, sarif_file: {required: false}, category: {required: false}}
runs:
  using: composite
  steps:
    - {shell: bash, run: echo stand-in}
EOF
  cp "$dir/noop/action.yml" "$dir/noop/upload-sarif/"
  cat >"$dir/checkout/action.yml" <<'EOF'
name: checkout stand-in
description: clones the scratch repository at the PR head, as actions/checkout would
inputs: {fetch-depth: {required: false}, persist-credentials: {required: false}}
runs:
  using: composite
  steps:
    - {shell: bash, run: 'git clone -q "$WARD_TEST_REPO" . && git checkout -q "$WARD_TEST_REF"'}
EOF
  git init -q "$tmp/act-cwd"
  git -C "$tmp/act-cwd" remote add origin https://github.com/o/policies.git
  echo '{"pull_request": {"number": 7, "base": {"ref": "main"}, "head": {"repo": {"full_name": "o/policies"}}}}' \
    >"$tmp/event.json"
}

# act_run REF: the example workflow ci/github/ward.yml, as it is, run by act on this
# machine (no container: `-P ubuntu-latest=-self-hosted`) for a pull request whose head is
# REF of the scratch repository; `OWNER/ward/ci/github@<commit>` is this repository.
act_run() {
  local ref=$1 uses stand_ins=$tmp/act-actions
  [[ -d $stand_ins ]] || act_stand_ins
  local args=(pull_request --no-skip-checkout -W "$repo/ci/github/ward.yml" -e "$tmp/event.json"
    -P ubuntu-latest=-self-hosted -s GITHUB_TOKEN=t0ken
    --env HOME="$tmp/act-home" --env CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}"
    --env RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}" --env WARD_INSTALL_ARGS=--debug
    --env GITHUB_API_URL="$api" --env WARD_TEST_REPO="$tmp/policy-repo" --env WARD_TEST_REF="$ref")
  while read -r uses; do
    case $uses in
      */ward/ci/github@*) args+=(--local-repository "${uses%%/ci/github@*}@${uses##*@}=$repo") ;;
      actions/checkout@*) args+=(--local-repository "$uses=$stand_ins/checkout") ;;
      github/codeql-action/upload-sarif@*)
        args+=(--local-repository "github/codeql-action@${uses##*@}=$stand_ins/noop") ;;
      *) args+=(--local-repository "$uses=$stand_ins/noop") ;;
    esac
  done < <(sed -nE 's/^ *(- )?uses: ([^ ]+).*/\2/p' "$repo/ci/github/ward.yml" "$repo/ci/github/action.yml")
  # act keeps its own files under XDG_CACHE_HOME: in the scratch folder.
  (cd "$tmp/act-cwd" && XDG_CACHE_HOME=$tmp/act-cache "$act" "${args[@]}")
}

test_github_act() {
  local rc=0
  act_tool
  start_stub
  act_run head >"$tmp/act.log" 2>&1 || { cat "$tmp/act.log"; fail "act: the workflow failed on a valid head"; }
  grep -q 'building ward' "$tmp/act.log" || fail "act: the action did not build ward"
  [[ $(requests POST) == /repos/o/policies/issues/7/comments ]] ||
    { cat "$tmp/act.log"; fail "act: POST: $(requests POST)"; }
  ok "act runs ci/github/ward.yml: the action builds ward, validates, posts the diff comment"
  act_run head >"$tmp/act.log" 2>&1 || { cat "$tmp/act.log"; fail "act: the second run failed"; }
  grep -q 'ward is up to date' "$tmp/act.log" || fail "act: the second run rebuilt ward"
  [[ $(requests PATCH) == /repos/o/policies/issues/comments/2 ]] || fail "act: PATCH: $(requests PATCH)"
  ok "act, second run: ward from the cache, the same comment updated (PATCH)"
  act_run broken >"$tmp/act.log" 2>&1 || rc=$?
  ((rc != 0)) || fail "act: the workflow passed with a broken policy"
  grep -q '::error file=policies/namespaces/shop/broken.yaml,line=7' "$tmp/act.log" ||
    { cat "$tmp/act.log"; fail "act: no annotation for broken.yaml"; }
  ok "act, broken policy: an annotation on broken.yaml line 7 and a failed job"
}

# gitlab_job JOB: the job's before_script and script from the template, run by bash as a
# GitLab runner would, in the scratch repository, with GitLab's variables.
gitlab_job() {
  local job=$1
  "$venv/bin/python" - "$repo/ci/gitlab/ward.gitlab-ci.yml" "$job" >"$tmp/job.sh" <<'EOF'
import sys, yaml
t = yaml.safe_load(open(sys.argv[1]))
job = t[sys.argv[2]]
base = t[job["extends"]]
print("\n".join(base["before_script"] + job["script"]))
EOF
  (
    cd "$tmp/policy-repo"
    unset WARD_BIN
    export CI_PROJECT_DIR=$PWD WARD_GIT_URL=file://$repo WARD_REF=HEAD WARD_PATHS="policies cluster-config"
    export CI_MERGE_REQUEST_TARGET_BRANCH_NAME=main CI_API_V4_URL=$api/api/v4 CI_PROJECT_ID=42
    export CI_MERGE_REQUEST_IID=3 WARD_GITLAB_TOKEN=gl-t0ken CI_COMMIT_SHORT_SHA=abc1234
    export CI_PIPELINE_URL=https://gitlab.example.invalid/p/1 CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}
    bash -eo pipefail "$tmp/job.sh"
  )
}

test_gitlab() {
  local r=$tmp/policy-repo rc=0 out
  git -C "$r" update-ref -d refs/remotes/origin/main
  git -C "$r" checkout -q head
  start_stub
  gitlab_job ward:diff >"$tmp/gl-diff.log" 2>&1 || { cat "$tmp/gl-diff.log"; fail "ward:diff failed"; }
  [[ -x $r/.ward-ci/root/bin/ward ]] || fail "the GitLab job did not install ward into .ward-ci/root"
  [[ $(requests POST) == /api/v4/projects/42/merge_requests/3/notes ]] || fail "POST: $(requests POST)"
  ok "GitLab ward:diff: fetched ward from its git URL, built it, posted the MR note"
  gitlab_job ward:diff >"$tmp/gl-diff.log" 2>&1 || { cat "$tmp/gl-diff.log"; fail "ward:diff failed (2nd)"; }
  grep -q "up to date" "$tmp/gl-diff.log" || fail "the second job rebuilt ward despite the cache"
  [[ $(requests PUT) == /api/v4/projects/42/merge_requests/3/notes/2 ]] || fail "PUT: $(requests PUT)"
  [[ $(requests POST | wc -l) == 1 ]] || fail "a second note was created"
  jq -e 'select(.method == "PUT") | .auth == "gl-t0ken"' "$tmp/requests.log" >/dev/null || fail "token"
  ok "GitLab ward:diff: the cached ward reused, the same note updated (PUT)"

  git -C "$r" checkout -q broken
  gitlab_job ward:validate >"$tmp/gl-validate.log" 2>&1 || rc=$?
  [[ $rc == 1 ]] || { cat "$tmp/gl-validate.log"; fail "ward:validate on the broken head exited $rc, not 1"; }
  grep -q 'broken.yaml:7:3: error\[WARD-J001\]' "$tmp/gl-validate.log" || fail "no finding in the job log"
  out=$(grep -c '<failure' "$r/ward-junit.xml" || true)
  ((out > 0)) || fail "ward-junit.xml has no failure"
  ok "GitLab ward:validate: exit 1, the finding in the log, a JUnit failure"
}

test_pre_commit() {
  local r=$tmp/policy-repo rc=0
  git -C "$r" checkout -q broken
  export PRE_COMMIT_HOME=$tmp/pre-commit WARD_BIN=$ward
  (cd "$r" && "$venv/bin/pre-commit" try-repo "$repo" ward-validate --all-files) >"$tmp/pc.log" 2>&1 || rc=$?
  [[ $rc == 1 ]] || { cat "$tmp/pc.log"; fail "pre-commit on the broken head exited $rc, not 1"; }
  grep -q 'WARD-J001' "$tmp/pc.log" || { cat "$tmp/pc.log"; fail "pre-commit did not show the finding"; }
  git -C "$r" checkout -q head
  (cd "$r" && "$venv/bin/pre-commit" try-repo "$repo" ward-validate --all-files) >"$tmp/pc.log" 2>&1 ||
    { cat "$tmp/pc.log"; fail "pre-commit on the valid head failed"; }
  ok "pre-commit ward-validate: fails on the broken policy, passes on the valid one"
  git -C "$r" checkout -q broken
  rc=0
  (cd "$r" && unset WARD_BIN && PATH=$(dirname "$ward"):$PATH \
    "$venv/bin/pre-commit" try-repo "$repo" ward-validate-system --all-files) >"$tmp/pc.log" 2>&1 || rc=$?
  if [[ $rc != 1 ]] || ! grep -q 'WARD-J001' "$tmp/pc.log"; then
    cat "$tmp/pc.log"
    fail "pre-commit ward-validate-system on the broken head exited $rc"
  fi
  ok "pre-commit ward-validate-system (ward on PATH): fails on the broken policy"
}

test_hook_install() {
  local r=$tmp/policy-repo own_before own_after link
  own_before=$(ls -la "$(git -C "$repo" rev-parse --path-format=absolute --git-path hooks)" 2>/dev/null || true)
  (cd "$r/policies" && "$repo/ci/hooks/install.sh") >/dev/null
  link=$(readlink "$r/.git/hooks/pre-push") || fail "no pre-push hook in the policy repository"
  [[ $link == "$repo/ci/hooks/pre-push" ]] || fail "pre-push links to $link"
  git -C "$r" worktree add -q "$tmp/wt" head
  git -C "$tmp/wt" config core.hooksPath .githooks
  (cd "$tmp/wt" && "$repo/ci/hooks/install.sh") >/dev/null
  [[ -L $tmp/wt/.githooks/pre-push ]] || fail "core.hooksPath in a worktree was not honoured"
  own_after=$(ls -la "$(git -C "$repo" rev-parse --path-format=absolute --git-path hooks)" 2>/dev/null || true)
  [[ $own_before == "$own_after" ]] || fail "install.sh changed ward's own hooks"
  git -C "$r" config --unset core.hooksPath
  ok "hooks/install.sh installs into the repository it runs in (core.hooksPath, worktrees), not ward's"
}

tools
scratch
test_install
test_github
test_github_act
test_gitlab
test_pre_commit
test_hook_install
echo "test-templates: all passed"
