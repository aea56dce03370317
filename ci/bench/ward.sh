#!/usr/bin/env bash
# ward's own benchmarks for the foundation: validate throughput, memory and linearity, the
# kubeconform side-by-side, and plan time over 10,000 objects with 100 changed.
#
#   ci/bench/ward.sh            # everything (builds ward --release first)
#   SIZES="1000 10000" ci/bench/ward.sh
#
# Corpora come from gen_policies.py (seed 42) and are cached in ~/.cache/ward/bench.
# Each figure is the median of $RUNS runs (default 5) after one warm-up run; peak memory is
# the maximum RSS reported by /usr/bin/time over those runs.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ward/target}"
cache=${WARD_BENCH_DIR:-$HOME/.cache/ward/bench}
runs=${RUNS:-5}
sizes=${SIZES:-1000 10000 100000}
mkdir -p "$cache"

(cd "$root" && cargo build --release --locked -q -p ward-reconciler)
ward=$CARGO_TARGET_DIR/release/ward
[ -x /usr/bin/time ] || { echo "ward.sh: /usr/bin/time is missing (apt-get install time)" >&2; exit 2; }

corpus() {  # corpus DOCS -> directory
  local docs=$1 files=$(( $1 / 10 )) dir="$cache/corpus-$1"
  if [ ! -f "$dir/.done" ]; then
    rm -rf "$dir"
    python3 "$here/gen_policies.py" "$dir" --docs "$docs" --files "$files" --seed 42 >/dev/null
    touch "$dir/.done"
  fi
  echo "$dir"
}

# measure CMD... : prints "median_seconds max_rss_kib"
measure() {
  "$@" >/dev/null 2>&1 || true
  local times=() rss=0 out tf
  tf=$(mktemp)
  for _ in $(seq "$runs"); do
    /usr/bin/time -f "%e %M" -o "$tf" "$@" >/dev/null 2>&1 || true
    out=$(tail -1 "$tf")
    times+=("${out% *}")
    (( ${out#* } > rss )) && rss=${out#* }
  done
  rm -f "$tf"
  printf '%s\n' "${times[@]}" | sort -n | awk -v rss="$rss" '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%s %s\n", m, rss}'
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
echo "ward validate (median of $runs):"
for n in $sizes; do
  dir=$(corpus "$n")
  read -r secs rss < <(measure "$ward" validate "$dir")
  awk -v n="$n" -v s="$secs" -v r="$rss" 'BEGIN {printf "  %7d docs: %6.3f s  %8.0f docs/s  peak %6.1f MiB  %.2f us/doc\n", n, s, n/s, r/1024, s*1e6/n}'
done

# The pre-commit and CI case: one changed file named on the command line, in a repository of
# 10,000 documents (only that file is read).
dir=$(corpus 10000)
one=$(find "$dir" -name '*.yaml' | sort | sed -n 1p)
# /usr/bin/time counts in hundredths of a second: too coarse here, so time it in Python.
python3 - "$ward" "$dir" "$one" <<'PY'
import statistics, subprocess, sys, time
ward, repo, one = sys.argv[1:]
times = []
for _ in range(26):
    t = time.perf_counter()
    subprocess.run([ward, "--repo", repo, "validate", one], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    times.append(time.perf_counter() - t)
times = times[1:]  # the first run warms the page cache
print(f"ward validate of one file in the 10000-doc repository: median {statistics.median(times) * 1000:.1f} ms, min {min(times) * 1000:.1f} ms (25 runs)")
PY

if [ "${SKIP_KUBECONFORM:-}" != 1 ]; then
  dir=$(corpus 10000)
  echo "kubeconform on the same 10000 docs:"
  RUNS=$runs "$here/kubeconform.sh" "$dir" | sed 's/^/  /'
fi

echo "ward plan, 10000 objects, 100 changed (median of $runs):"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$(corpus 10000)" "$work/policies"
"$ward" --repo "$work" --state "$work/.ward" apply >/dev/null
python3 - "$work/policies" <<'PY'
import os, re, sys
# Change 100 documents: bump the first port number found in 100 files (one doc each).
changed = 0
for dirpath, _, names in sorted(os.walk(sys.argv[1])):
    for n in sorted(names):
        if changed == 100 or not n.endswith(".yaml"):
            continue
        p = os.path.join(dirpath, n)
        text = open(p).read()
        m = re.search(r'port: "(\d+)"', text)
        if not m:
            continue
        bumped = 'port: "%d"' % (int(m.group(1)) % 60000 + 1)
        open(p, "w").write(text[:m.start()] + bumped + text[m.end():])
        changed += 1
print(f"  changed {changed} documents", file=sys.stderr)
PY
read -r secs rss < <(measure "$ward" --repo "$work" --state "$work/.ward" plan)
summary=$("$ward" --repo "$work" --state "$work/.ward" plan | grep -E "to create" || true)
echo "  ${secs} s, peak $(( rss / 1024 )) MiB; ${summary#*: }"
