#!/usr/bin/env bash
# The project's habits, checked: clang-format (the checked-in .clang-format, clang-format 14) over
# every C++ file, and clang-tidy (the checks in .clang-tidy) over every C++ source, with the build's
# compile_commands.json. Exits non-zero on any difference or finding, naming the file and the fix.
#   tools/lint.sh               both (clang-tidy needs a configured build: GANTRY_BUILD_DIR, build)
#   tools/lint.sh format        clang-format only (a second)
#   tools/lint.sh tidy [FILE…]  clang-tidy only, on the given sources or all of them
# Environment: GANTRY_BUILD_DIR (build), GANTRY_JOBS (nproc): clang-tidy processes in parallel.
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-all}
[ $# -eq 0 ] || shift
build_dir=${GANTRY_BUILD_DIR:-build}
jobs=${GANTRY_JOBS:-$(nproc)}
clang_format=$(command -v clang-format-14 || command -v clang-format)
clang_tidy=$(command -v clang-tidy-14 || command -v clang-tidy)

# Every C++ file of the project (git's list when this is a clone; generated code is in the build).
cxx_files() {
  if git rev-parse --show-toplevel >/dev/null 2>&1; then
    git ls-files -co --exclude-standard -- '*.cc' '*.h'
  else
    find common cloudcore edgecore proto tools tests -name '*.cc' -o -name '*.h'
  fi | sort
}

check_format() {
  local start files bad=()
  start=$(date +%s)
  mapfile -t files < <(cxx_files | while IFS= read -r f; do [ -f "$f" ] && echo "$f"; done)
  # One clang-format per batch of files; every difference is reported as "<file>:<line>:<col>: ".
  mapfile -t bad < <(printf '%s\n' "${files[@]}" |
    xargs -P "$jobs" -n 40 "$clang_format" --dry-run --Werror 2>&1 |
    grep -oE '^[^ :][^:]*:[0-9]+:[0-9]+: (warning|error)' | cut -d: -f1 | sort -u || true)
  echo "lint: clang-format: ${#files[@]} files in $(( $(date +%s) - start )) s"
  if [ ${#bad[@]} -gt 0 ]; then
    echo "lint: clang-format: ${#bad[@]} file(s) differ from .clang-format:"
    printf '  %s\n' "${bad[@]}"
    echo "lint: fix with: $clang_format -i ${bad[*]}"
    return 1
  fi
}

check_tidy() {
  local db="$build_dir/compile_commands.json"
  if [ ! -f "$db" ]; then
    echo "lint: clang-tidy needs $db: configure first (cmake -S . -B $build_dir -G Ninja)"
    return 1
  fi
  local start out files=("$@")
  start=$(date +%s)
  out=$(mktemp -d "${TMPDIR:-/tmp}/gantry-tidy.XXXXXX")
  # The build's database, for the project's sources only, without GCC's precompiled header (clang
  # cannot read a .gch; the headers are included by the sources anyway).
  python3 - "$db" "$out/compile_commands.json" "$PWD" <<'PY'
import json, os, re, shlex, sys
db, dest, root = sys.argv[1:]
entries = []
for e in json.load(open(db)):
    path = os.path.realpath(os.path.join(e["directory"], e["file"]))
    if not path.startswith(root + os.sep):
        continue  # generated (protobuf) or outside the tree
    args = e.get("arguments") or shlex.split(e["command"])
    clean, i = [], 0
    while i < len(args):
        if args[i] == "-include" and i + 1 < len(args) and "cmake_pch" in args[i + 1]:
            i += 2
            continue
        if not args[i].startswith("-Winvalid-pch"):
            clean.append(args[i])
        i += 1
    entries.append({"directory": e["directory"], "file": path, "arguments": clean})
json.dump(entries, open(dest, "w"), indent=1)
PY
  if [ ${#files[@]} -eq 0 ]; then
    mapfile -t files < <(python3 -c "import json,sys; [print(e['file']) for e in json.load(open(sys.argv[1]))]" \
      "$out/compile_commands.json" | sort -u)
  fi
  # One clang-tidy per source, $jobs at a time; a source's findings go to its own log.
  local failed=0
  printf '%s\n' "${files[@]}" | xargs -P "$jobs" -I{} sh -c \
    '"$0" -p "$1" --quiet --warnings-as-errors="*" --extra-arg=-Wno-unknown-warning-option "$2" \
       >"$1/$(echo "$2" | tr / _).log" 2>&1 || echo "$2" >>"$1/failed"' \
    "$clang_tidy" "$out" {} || true
  echo "lint: clang-tidy: ${#files[@]} sources in $(( $(date +%s) - start )) s ($jobs at a time)"
  if [ -s "$out/failed" ]; then
    failed=1
    echo "lint: clang-tidy found problems in:"
    sort "$out/failed" | sed 's/^/  /'
    # Every finding once (a header's findings repeat for each source that includes it).
    cat "$out"/*.log | grep -E '^[^ ].*:[0-9]+:[0-9]+: (warning|error):' | sort -u
    echo "lint: details: the logs in $out; fix the code, or, for a false positive, add"
    echo "      // NOLINT(<check>): <why> on the line. Rerun one: tools/lint.sh tidy <file>"
    return $failed
  fi
  rm -rf "$out"
}

case "$what" in
  format) check_format ;;
  tidy) check_tidy "$@" ;;
  all)
    rc=0
    check_format || rc=1
    check_tidy || rc=1
    exit $rc
    ;;
  *) echo "usage: tools/lint.sh [format|tidy [FILE...]]" >&2; exit 2 ;;
esac
