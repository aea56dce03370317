#!/usr/bin/env bash
# kubeconform side-by-side: schema-only validation of a policy corpus with kubeconform,
# using JSON Schemas converted from the real Cilium CRDs, timed like a benchmark.
#
#   ci/bench/kubeconform.sh INPUT_DIR
#
# Steps
#   1. build kubeconform from its Go module into ~/.cache/ward/bin (skipped when the cached
#      binary already is that version);
#   2. convert the Cilium CRDs to kubeconform's schema layout with crd2jsonschema.py
#      ({kind-lowercase}_{version}.json, additionalProperties:false like openapi2jsonschema);
#   3. run `kubeconform -strict -summary` on INPUT_DIR: one warm-up run, then $RUNS timed
#      runs; print the median wall time, documents/second and peak RSS.
#
# Environment
#   CILIUM_CRDS          CRD directory (default: $WARD_CILIUM_CRDS, the output of
#                        ci/crds/fetch.sh, when set; else <repo>/schema/crds, the same files)
#   KUBECONFORM_VERSION  module version to build (default v0.7.0; `latest` allowed)
#   WARD_BIN_DIR         where built tools are cached (default ~/.cache/ward/bin)
#   KUBECONFORM_SCHEMAS  keep the converted schemas in this directory (default: temp dir)
#   KUBECONFORM_SKIP     kinds to skip (default CiliumConfig: ward's own kind, no CRD)
#   KUBECONFORM_ARGS     extra arguments for kubeconform (e.g. "-n 2")
#   RUNS                 timed runs (default 5)
#
# Exit status: 0 when every document is valid, 1 when kubeconform reported invalid
# documents or errors (the figures are printed either way), 2 on setup problems.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

if [ $# -ne 1 ] || [ ! -d "$1" ]; then
  echo "usage: $0 INPUT_DIR   (e.g. a tree written by ci/bench/gen_policies.py)" >&2
  exit 2
fi
input=$(cd "$1" && pwd)

version=${KUBECONFORM_VERSION:-v0.7.0}
bin_dir=${WARD_BIN_DIR:-$HOME/.cache/ward/bin}
kc=$bin_dir/kubeconform
runs=${RUNS:-5}
skip=${KUBECONFORM_SKIP:-CiliumConfig}

# --- 1. kubeconform ---------------------------------------------------------------------
built_version() {  # module version recorded in the binary, or empty
  [ -x "$kc" ] || return 0
  go version -m "$kc" 2>/dev/null | awk '$1 == "mod" { print $3; exit }'
}

if ! command -v go >/dev/null 2>&1; then
  if [ -x "$kc" ]; then
    echo "kubeconform.sh: go not found; using cached $kc" >&2
  else
    echo "kubeconform.sh: go is required to build kubeconform (none cached in $bin_dir)" >&2
    exit 2
  fi
else
  have=$(built_version)
  if [ -n "$have" ] && { [ "$have" = "$version" ] || [ "$version" = latest ]; }; then
    echo "kubeconform $have: cached at $kc" >&2
  else
    mkdir -p "$bin_dir"
    echo "building kubeconform $version into $bin_dir ..." >&2
    if ! GOBIN=$bin_dir go install "github.com/yannh/kubeconform/cmd/kubeconform@$version" >&2; then
      if [ "$version" != latest ]; then
        echo "kubeconform $version did not install; trying the newest version" >&2
        GOBIN=$bin_dir go install "github.com/yannh/kubeconform/cmd/kubeconform@latest" >&2
      else
        exit 2
      fi
    fi
  fi
fi
kc_version=$( (command -v go >/dev/null 2>&1 && built_version) || true)
kc_version=${kc_version:-unknown}

# --- 2. CRDs -> JSON Schema ----------------------------------------------------------------
has_crds() { [ -d "$1" ] && ls "$1"/*.yaml >/dev/null 2>&1; }
# The newest Cilium release ci/crds/releases pins (its last line), ward's default.
newest=$(awk '!/^#/ && NF { m = $1 } END { print m }' "$root/ci/crds/releases")
if [ -n "${CILIUM_CRDS:-}" ]; then
  crds=$CILIUM_CRDS
  has_crds "$crds" || { echo "kubeconform.sh: no *.yaml CRDs in CILIUM_CRDS=$crds" >&2; exit 2; }
elif [ -n "${WARD_CILIUM_CRDS:-}" ]; then
  crds=$WARD_CILIUM_CRDS/$newest
  has_crds "$crds" || { echo "kubeconform.sh: no *.yaml CRDs in WARD_CILIUM_CRDS=$crds" >&2; exit 2; }
elif has_crds "$root/schema/crds/$newest"; then
  crds=$root/schema/crds/$newest
else
  echo "kubeconform.sh: no Cilium CRDs found (set CILIUM_CRDS)" >&2
  exit 2
fi
crds=$(cd "$crds" && pwd)

if [ -n "${KUBECONFORM_SCHEMAS:-}" ]; then
  schemas=$KUBECONFORM_SCHEMAS
  mkdir -p "$schemas"
else
  schemas=$(mktemp -d "${TMPDIR:-/tmp}/ward-kubeconform.XXXXXX")
  trap 'rm -rf "$schemas"' EXIT
fi
python3 "$here/crd2jsonschema.py" -q -o "$schemas" "$crds"

# --- 3. run and time ------------------------------------------------------------------------
# shellcheck disable=SC2206 # word splitting of KUBECONFORM_ARGS is intended
cmd=("$kc" -strict -summary -output text
     -schema-location "$schemas/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"
     -skip "$skip" ${KUBECONFORM_ARGS:-} "$input")

KC_VERSION=$kc_version CRDS=$crds RUNS=$runs python3 - "${cmd[@]}" <<'PY'
import os, re, statistics, subprocess, sys, time

cmd = sys.argv[1:]
runs = int(os.environ["RUNS"])

def once():
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    return dt, ru.ru_maxrss, p.returncode, out.decode(errors="replace")  # maxrss: KiB

once()  # warm-up: page cache, schema files
results = [once() for _ in range(runs)]
times = [r[0] for r in results]
rss = [r[1] for r in results]
rc, out = results[-1][2], results[-1][3]
m = re.search(r"Summary: (\d+) resources? found in (\d+) files? - Valid: (\d+), "
              r"Invalid: (\d+), Errors: (\d+),? Skipped: (\d+)", out)
if not m:
    sys.stderr.write(out[-4000:])
    sys.exit("kubeconform.sh: no summary line in kubeconform output")
docs, files, valid, invalid, errors, skipped = map(int, m.groups())
problems = [l for l in out.splitlines() if not l.startswith("Summary:")]
for line in problems[:20]:
    print(line[:400])
if len(problems) > 20:
    print(f"... {len(problems) - 20} more")
med = statistics.median(times)
print(f"kubeconform {os.environ['KC_VERSION']} (CRDs: {os.environ['CRDS']}, {os.cpu_count()} CPUs)")
print("command: " + " ".join(a if " " not in a else repr(a) for a in cmd))
print(m.group(0))
print(f"runs: {runs} (+1 warm-up); wall s: " + ", ".join(f"{t:.3f}" for t in times))
print(f"median wall: {med:.3f} s  min: {min(times):.3f} s  max: {max(times):.3f} s")
print(f"throughput: {docs / med:,.0f} docs/s (median run, {docs} documents, {files} files)")
print(f"peak RSS: {max(rss) / 1024:.1f} MiB (median {statistics.median(rss) / 1024:.1f} MiB)")
sys.exit(0 if invalid == 0 and errors == 0 and rc == 0 else 1)
PY
