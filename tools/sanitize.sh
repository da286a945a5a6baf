#!/usr/bin/env bash
# The unit tests built with ASan + UBSan (GCC) in their own build tree, and run. Exits non-zero on
# a failing test or any sanitizer report (a leak, an overflow, undefined behaviour).
#   tools/sanitize.sh                 the modules listed below
#   GANTRY_SANITIZE_TARGETS="unit_common_net" tools/sanitize.sh      others
# Environment: GANTRY_SANITIZE_BUILD_DIR (build-asan), GANTRY_JOBS (nproc).
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${GANTRY_SANITIZE_BUILD_DIR:-build-asan}
jobs=${GANTRY_JOBS:-$(nproc)}
# common/base and the continue-token decoder first (cheap to build); the rest of the unit
# tests join once their sanitizer build has been timed and fits CI (docs/development.md).
targets=${GANTRY_SANITIZE_TARGETS:-unit_support unit_common_base unit_cloudcore_api_continue}

if [ ! -f "$build_dir/build.ninja" ]; then
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGANTRY_SANITIZE=ON >/dev/null
fi
start=$(date +%s)
# shellcheck disable=SC2086
cmake --build "$build_dir" -j "$jobs" --target $targets
echo "sanitize build: $(( $(date +%s) - start )) s"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
regex=$(echo "$targets" | tr -s ' ' '\n' | sed 's/^/^/; s/$/:/' | paste -sd'|')
(cd "$build_dir" && ctest --output-on-failure --no-tests=error -j "$jobs" -R "$regex")
