#!/usr/bin/env bash
# Fuzzes ward-schema's YAML loader and validator (schema/fuzz, target `load`) with libFuzzer
# for a while, like a benchmark: not part of ci/test.sh.
#
#   ci/fuzz/run.sh [SECONDS]        # default 600
#
# Stable Rust is enough: the target is built with the same coverage instrumentation that
# cargo-fuzz asks rustc for (SanitizerCoverage, stable -C options), without AddressSanitizer
# (which needs nightly and adds little to safe Rust). libfuzzer-sys builds libFuzzer itself
# with the C++ compiler (g++ or clang++).
#
# The corpus grows in $WARD_FUZZ_DIR (default $HOME/.cache/ward/fuzz), seeded from
# schema/fuzz/seeds/load; findings (crash-*, timeout-*, oom-*) land in its artifacts/ folder
# and the script exits 1 if there is any. Keep a finding as a regression input by copying it to
# schema/tests/data/fuzz/ (cargo test -p ward-schema --test fuzz_regressions replays them).
#
# Environment: WARD_FUZZ_DIR, WARD_FUZZ_JOBS (parallel fuzzing processes, default 1),
# WARD_FUZZ_MAX_LEN (largest input, default 16384 bytes), CARGO_TARGET_DIR (default
# $HOME/.cache/ward/target-fuzz; the flags differ from a normal build's, so keep it apart).
set -euo pipefail

seconds=${1:-600}
root=$(cd "$(dirname "$0")/../.." && pwd)
fuzz_dir=${WARD_FUZZ_DIR:-$HOME/.cache/ward/fuzz}
jobs=${WARD_FUZZ_JOBS:-1}
max_len=${WARD_FUZZ_MAX_LEN:-16384}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/ward/target-fuzz}

if ! command -v c++ >/dev/null && ! command -v clang++ >/dev/null; then
    echo "ci/fuzz/run.sh: a C++ compiler is needed to build libFuzzer (apt-get install g++)" >&2
    exit 1
fi

host=$(rustc -vV | sed -n 's/^host: //p')
# What cargo-fuzz passes (minus -Zsanitizer): edge coverage with 8-bit counters, a PC table
# for libFuzzer's feature tracking, comparison tracing for the value profile, and the debug
# assertions and overflow checks a release build would drop.
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
-Cdebug-assertions -Coverflow-checks -Cforce-frame-pointers ${RUSTFLAGS:-}"

echo "ci/fuzz/run.sh: building schema/fuzz (target load, $host)" >&2
# --target keeps the flags off build scripts and proc macros.
cargo build --locked --release --manifest-path "$root/schema/fuzz/Cargo.toml" \
    --bin load --target "$host"
bin=$CARGO_TARGET_DIR/$host/release/load

corpus=$fuzz_dir/corpus/load
artifacts=$fuzz_dir/artifacts/load
mkdir -p "$corpus" "$artifacts"
log=$fuzz_dir/load.log
# Findings of earlier runs stay in $artifacts; this run reports only its own.
stamp=$fuzz_dir/.run-started
touch "$stamp"

echo "ci/fuzz/run.sh: fuzzing for ${seconds}s, corpus $corpus, log $log" >&2
set +e
args=(
    -max_total_time="$seconds"
    -max_len="$max_len"
    -timeout=10
    -rss_limit_mb=4096
    -print_final_stats=1
    -dict="$root/schema/fuzz/yaml.dict"
    -artifact_prefix="$artifacts/"
)
if [ "$jobs" -gt 1 ]; then
    args+=(-fork="$jobs" -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
fi
"$bin" "${args[@]}" "$corpus" "$root/schema/fuzz/seeds/load" 2>&1 | tee "$log" |
    grep -E '^#[0-9]+[[:space:]]+(INITED|pulse)|^Done |ERROR|panicked|^SUMMARY'
status=${PIPESTATUS[0]}
set -e

findings=$(find "$artifacts" -type f -newer "$stamp" \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | sort)
echo
echo "libFuzzer exit status $status; corpus now $(find "$corpus" -type f | wc -l) input(s)"
grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' "$log" || true
# The last status line: edges covered (cov) and features (ft).
grep -E '^#[0-9]+[[:space:]]' "$log" | tail -1 | sed -E 's/^(#[0-9]+)[[:space:]]+[A-Z]+[[:space:]]+(cov: [0-9]+ ft: [0-9]+ corp: [^ ]+).*/last: \1 \2/' || true
if [ -n "$findings" ]; then
    echo "findings:"
    printf '  %s\n' $findings
    exit 1
fi
echo "findings: none"
exit "$status"
