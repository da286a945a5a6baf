#!/usr/bin/env bash
# Installs what is missing, configures, builds and runs every test, then the checks CI enforces.
# Exits non-zero on any failure; prints each stage's wall time.
#   tools/test.sh                 everything CI runs: build, tests, lint (clang-format), fuzz
#   tools/test.sh -L unit         with ctest arguments: the build and those tests only
#   GANTRY_STAGES="build lint" tools/test.sh   chosen stages (build tests lint tidy fuzz sanitize)
# Environment: GANTRY_BUILD_DIR (build; may lie outside the source tree), GANTRY_JOBS (nproc),
# GANTRY_FUZZ_SECONDS (per fuzz target, 30; the fuzz build goes to $GANTRY_BUILD_DIR-fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."

tools/deps.sh

build_dir=${GANTRY_BUILD_DIR:-build}
# ccache caches compilations that use precompiled headers only with this sloppiness (our PCH is
# Boost's headers alone, so no define of ours can change it).
export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}
export GANTRY_JOBS=${GANTRY_JOBS:-$(nproc)}
jobs=$GANTRY_JOBS
if [ $# -gt 0 ]; then
  stages=${GANTRY_STAGES:-build tests}
else
  stages=${GANTRY_STAGES:-build tests lint fuzz}
fi
has() { [[ " $stages " == *" $1 "* ]]; }

times=()
stage() {  # stage NAME COMMAND...: runs it, records its wall time, stops everything on failure
  local name=$1 start rc=0
  shift
  start=$(date +%s)
  echo "=== $name"
  "$@" || rc=$?
  times+=("$name $(( $(date +%s) - start )) s")
  if [ $rc -ne 0 ]; then
    echo "=== $name FAILED (exit $rc)"
    printf 'time: %s\n' "${times[@]}"
    exit $rc
  fi
}

configure_and_build() {
  if [ ! -f "$build_dir/build.ninja" ]; then
    cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
  fi
  cmake --build "$build_dir" -j "$jobs"
}

run_tests() {
  # Tests that start many connections need more descriptors than the default 1024.
  ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
  (cd "$build_dir" && ctest --output-on-failure --no-tests=error -j "$jobs" "$@")
}

if has build; then stage build configure_and_build; fi
if has tests; then stage tests run_tests "$@"; fi
# clang-tidy over the whole tree takes far longer than CI allows on 2 cores (docs/development.md):
# CI checks formatting; `tools/lint.sh tidy FILE` (or GANTRY_STAGES="... tidy") runs clang-tidy.
if has lint; then stage lint tools/lint.sh format; fi
if has tidy; then stage tidy env GANTRY_BUILD_DIR="$build_dir" tools/lint.sh tidy; fi
if has fuzz; then
  stage fuzz env GANTRY_FUZZ_BUILD_DIR="${GANTRY_FUZZ_BUILD_DIR:-$build_dir-fuzz}" tools/fuzz.sh
fi
if has sanitize; then
  stage sanitize env GANTRY_SANITIZE_BUILD_DIR="${GANTRY_SANITIZE_BUILD_DIR:-$build_dir-asan}" \
    tools/sanitize.sh
fi
printf 'time: %s\n' "${times[@]}"
