#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/, clang + ASan + UBSan, their own build tree) and runs
# each from its checked-in seed corpus for a bounded time. Exits non-zero on the first crash, leak,
# sanitizer report or timeout, printing the input that did it and how to replay it.
#   tools/fuzz.sh                       every target, GANTRY_FUZZ_SECONDS (30) each
#   tools/fuzz.sh fuzz_selectors 600    one target, 600 s
#   GANTRY_FUZZ_RUNS=10000000 tools/fuzz.sh fuzz_cri_log    a fixed number of executions
# Environment: GANTRY_FUZZ_BUILD_DIR (build-fuzz), GANTRY_JOBS (nproc), GANTRY_FUZZ_SEED (1: the
# same random choices every run, so a CI failure replays; 0: libFuzzer picks one).
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${GANTRY_FUZZ_BUILD_DIR:-build-fuzz}
seconds=${2:-${GANTRY_FUZZ_SECONDS:-30}}
jobs=${GANTRY_JOBS:-$(nproc)}
only=${1:-}

if [ ! -f "$build_dir/build.ninja" ]; then
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGANTRY_FUZZ=ON \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >/dev/null
fi
start=$(date +%s)
cmake --build "$build_dir" -j "$jobs" --target fuzz
echo "fuzz build: $(( $(date +%s) - start )) s"

work=$(mktemp -d "${TMPDIR:-/tmp}/gantry-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
# A leak report would need the whole run's allocations kept: leaks are the sanitizer build's job.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

status=0
for source in tests/fuzz/fuzz_*.cc; do
  name=$(basename "$source" .cc)
  [ -z "$only" ] || [ "$only" = "$name" ] || continue
  binary="$build_dir/tests/fuzz/$name"
  corpus="tests/fuzz/corpus/$name"
  if [ ! -x "$binary" ]; then
    echo "fuzz: $binary was not built (missing gantry_fuzz_target line in tests/fuzz/CMakeLists.txt?)"
    status=1
    continue
  fi
  mkdir -p "$work/$name" "$work/$name-artifacts"
  [ -d "$corpus" ] || echo "fuzz: $name has no seed corpus ($corpus): starting from nothing"
  limit=(-max_total_time="$seconds" -seed="${GANTRY_FUZZ_SEED:-1}")
  [ -z "${GANTRY_FUZZ_RUNS:-}" ] || limit=(-runs="$GANTRY_FUZZ_RUNS" -seed="${GANTRY_FUZZ_SEED:-1}")
  target_start=$(date +%s)
  # New inputs go to the scratch corpus (first directory); the checked-in seeds are only read.
  if "$binary" "${limit[@]}" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
       -artifact_prefix="$work/$name-artifacts/" "$work/$name" $( [ -d "$corpus" ] && echo "$corpus" ) \
       >"$work/$name.log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/$name.log" | grep -o '[0-9]*$' || echo "?")
    echo "fuzz: $name ok: $runs executions in $(( $(date +%s) - target_start )) s" \
      "($(ls "$work/$name" | wc -l) new inputs)"
  else
    status=1
    echo "fuzz: $name FAILED; the end of its log:"
    tail -n 60 "$work/$name.log"
    for artifact in "$work/$name-artifacts"/*; do
      [ -e "$artifact" ] || continue
      keep="$build_dir/$(basename "$artifact")"
      cp "$artifact" "$keep"
      echo "fuzz: the input is in $keep (base64: $(head -c 4096 "$artifact" | base64 -w0))"
      echo "fuzz: replay with: $binary $keep"
    done
  fi
done
exit $status
