#!/usr/bin/env bash
# Installs what is missing, configures, builds and runs every test. Ends with ctest's summary;
# exits non-zero on any failure.
#   tools/test.sh                 everything
#   tools/test.sh -L unit         only tests labelled unit (ctest arguments pass through)
set -euo pipefail
cd "$(dirname "$0")/.."

tools/deps.sh

build_dir=${GANTRY_BUILD_DIR:-build}
# ccache caches compilations that use precompiled headers only with this sloppiness (our PCH is
# Boost's headers alone, so no define of ours can change it).
export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}
jobs=${GANTRY_JOBS:-$(nproc)}

if [ ! -f "$build_dir/build.ninja" ]; then
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
start=$(date +%s)
cmake --build "$build_dir" -j "$jobs"
echo "build: $(( $(date +%s) - start )) s"

# Tests that start many connections need more descriptors than the default 1024.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

cd "$build_dir"
ctest --output-on-failure --no-tests=error -j "$jobs" "$@"
