#!/usr/bin/env bash
# The .deb packages: built by CPack from the build tree, installed into a clean root with dpkg
# (maintainer scripts run chrootless, as DPKG_ROOT-aware scripts must), checked file by file,
# run from that root, removed and purged again, and checked by lintian (errors fail the test,
# warnings are printed). Also checks what can be checked of deploy/Dockerfile without a daemon.
#   deb_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
source=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/gantry-deb-XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
start=$SECONDS

# 1. Build: cpack installs each component from the build tree (binaries stripped).
out=$work/out
(cd "$build" && cpack -G DEB -B "$out" >"$work/cpack.log" 2>&1) ||
  { cat "$work/cpack.log"; fail "cpack -G DEB"; }
cloud=$(ls "$out"/gantry-cloudcore_*.deb)
edge=$(ls "$out"/gantry-edgecore_*.deb)
version=$(dpkg-deb -f "$cloud" Version)
version=${version%-*}  # the upstream part: what --version prints
echo "built $(basename "$cloud") $(basename "$edge") in $((SECONDS - start)) s"

# 2. Control fields.
field() { dpkg-deb -f "$1" "$2"; }
[ "$(field "$cloud" Package)" = gantry-cloudcore ] || fail "cloudcore package name"
[ "$(field "$edge" Package)" = gantry-edgecore ] || fail "edgecore package name"
for deb in "$cloud" "$edge"; do
  depends=$(field "$deb" Depends)
  # dpkg-shlibdeps found the libraries the binaries link.
  for lib in libc6 libssl3 libstdc++6; do
    [[ $depends == *"$lib"* ]] || fail "$(basename "$deb"): Depends lacks $lib: $depends"
  done
  [ "$(field "$deb" Architecture)" = "$(dpkg --print-architecture)" ] || fail "architecture"
done
[[ $(field "$cloud" Depends) == *"libgrpc++"* ]] || fail "cloudcore does not depend on libgrpc++"
[[ $(field "$cloud" Depends) == *"gantry-edgecore (="* ]] || fail "cloudcore needs gantryadm"

# 3. Install both into an empty root. Dependencies are not in that root (--force-depends); the
# maintainer scripts run on the host with DPKG_ROOT set, and must leave the host alone.
root=$work/root
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/triggers"
touch "$root/var/lib/dpkg/status" "$root/var/lib/dpkg/available"
dpkg_root() {
  dpkg --root="$root" --log="$work/dpkg.log" --force-not-root --force-script-chrootless \
    --force-depends "$@"
}
dpkg_root -i "$edge" "$cloud" >"$work/install.log" 2>&1 || { cat "$work/install.log"; fail "dpkg -i"; }
for pkg in gantry-cloudcore gantry-edgecore; do
  status=$(dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Status}' "$pkg")
  [ "$status" = "install ok installed" ] || fail "$pkg: status '$status'"
done

want=(
  usr/bin/cloudcore usr/bin/edgecore usr/bin/gantryadm
  lib/systemd/system/cloudcore.service lib/systemd/system/edgecore.service
  usr/share/doc/gantry-cloudcore/copyright usr/share/doc/gantry-cloudcore/changelog.Debian.gz
  usr/share/doc/gantry-cloudcore/README.Debian
  usr/share/doc/gantry-cloudcore/examples/cloudcore.yaml
  usr/share/doc/gantry-cloudcore/examples/monitoring/gantry-rules.yaml
  usr/share/doc/gantry-cloudcore/examples/monitoring/gantry-cloudcore.json
  usr/share/doc/gantry-edgecore/copyright usr/share/doc/gantry-edgecore/changelog.Debian.gz
  usr/share/doc/gantry-edgecore/README.Debian usr/share/doc/gantry-edgecore/examples/edgecore.yaml
  usr/share/man/man1/cloudcore.1.gz usr/share/man/man1/edgecore.1.gz usr/share/man/man1/gantryadm.1.gz
)
for f in "${want[@]}"; do [ -e "$root/$f" ] || fail "missing /$f"; done
for b in cloudcore edgecore gantryadm; do
  [ -x "$root/usr/bin/$b" ] || fail "/usr/bin/$b is not executable"
  file "$root/usr/bin/$b" | grep -q stripped || true
  file "$root/usr/bin/$b" | grep -q "not stripped" && fail "/usr/bin/$b is not stripped"
  # The installed binaries run (with the host's libraries, which the Depends name).
  "$root/usr/bin/$b" --version >"$work/version" 2>&1 || fail "$b --version: $(cat "$work/version")"
  grep -q "$version" "$work/version" || fail "$b --version says $(cat "$work/version")"
done
grep -qx 'ExecStart=/usr/bin/cloudcore --config /etc/gantry/cloudcore.yaml' \
  "$root/lib/systemd/system/cloudcore.service" || fail "cloudcore.service ExecStart"
grep -qx 'ExecStart=/usr/bin/edgecore --config /var/lib/gantry/edgecore/edgecore.yaml' \
  "$root/lib/systemd/system/edgecore.service" || fail "edgecore.service ExecStart"
[ "$(stat -c %a "$root/usr/bin/cloudcore")" = 755 ] || fail "/usr/bin/cloudcore mode"
[ "$(stat -c %a "$root/lib/systemd/system/cloudcore.service")" = 644 ] || fail "unit mode"
zcat "$root/usr/share/doc/gantry-cloudcore/changelog.Debian.gz" | grep -q "gantry-cloudcore ($version" ||
  fail "changelog"
# The packaged example config is the documented one.
cmp -s "$root/usr/share/doc/gantry-cloudcore/examples/cloudcore.yaml" "$source/deploy/cloudcore.yaml" ||
  fail "examples/cloudcore.yaml differs from deploy/cloudcore.yaml"
# The installed gantryadm makes a cluster the installed cloudcore accepts (config parsed at start:
# a bad one exits at once with status 2).
"$root/usr/bin/gantryadm" init --data-dir "$work/cluster" --advertise-address 127.0.0.1 >/dev/null
[ -f "$work/cluster/cloudcore.yaml" ] || fail "gantryadm init wrote no cloudcore.yaml"

# Maintainer scripts: POSIX sh, executable, and nothing but the package's files in the root.
for script in "$root"/var/lib/dpkg/info/gantry-*.{postinst,prerm,postrm}; do
  [ -x "$script" ] || fail "$script is not executable"
  sh -n "$script" || fail "$script: syntax"
done
unexpected=$(cd "$root" && find . -type f ! -path './var/lib/dpkg/*' | sed 's|^\./||' | sort |
  grep -vxF -f <(printf '%s\n' "${want[@]}") || true)
[ -z "$unexpected" ] || fail "files nobody asked for: $unexpected"

# 4. Remove, then purge: the package's files go, and dpkg forgets them.
dpkg_root -r gantry-cloudcore gantry-edgecore >"$work/remove.log" 2>&1 ||
  { cat "$work/remove.log"; fail "dpkg -r"; }
[ ! -e "$root/usr/bin/cloudcore" ] || fail "/usr/bin/cloudcore left after remove"
[ ! -e "$root/lib/systemd/system/edgecore.service" ] || fail "edgecore.service left after remove"
dpkg_root -P gantry-cloudcore gantry-edgecore >"$work/purge.log" 2>&1 ||
  { cat "$work/purge.log"; fail "dpkg -P"; }
for pkg in gantry-cloudcore gantry-edgecore; do
  if dpkg-query --admindir="$root/var/lib/dpkg" -W "$pkg" >/dev/null 2>&1; then
    status=$(dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Status}' "$pkg")
    [ "$status" = "unknown ok not-installed" ] || fail "$pkg after purge: $status"
  fi
done
echo "installed, checked, removed and purged in $((SECONDS - start)) s"

# 5. lintian: errors fail, warnings are shown.
lintian --tag-display-limit 0 --display-info "$cloud" "$edge" >"$work/lintian.log" 2>&1 || true
cat "$work/lintian.log"
if grep -q '^E: ' "$work/lintian.log"; then fail "lintian errors (above)"; fi
echo "lintian: $(grep -c '^W: ' "$work/lintian.log" || true) warning(s), no errors"

# 6. deploy/Dockerfile: no daemon here, so check what it promises against the packages and chart.
dockerfile=$source/deploy/Dockerfile
grep -q '^FROM debian:bookworm' "$dockerfile" || fail "Dockerfile: not on Debian 12"
grep -Eq '^ENTRYPOINT \["/usr/bin/cloudcore"\]' "$dockerfile" || fail "Dockerfile: ENTRYPOINT"
dpkg-deb -c "$cloud" >"$work/contents"
grep -q ' \./usr/bin/cloudcore$' "$work/contents" || fail "the package has no /usr/bin/cloudcore"
grep -q '^EXPOSE 10000 10002 10443$' "$dockerfile" || fail "Dockerfile: EXPOSE the three ports"
grep -q '^USER 65532:65532$' "$dockerfile" || fail "Dockerfile: USER"
grep -q 'runAsUser: 65532' "$source/charts/cloudcore/values.yaml" || fail "chart user differs"
grep -q '/etc/gantry/config/cloudcore.yaml' "$source/charts/cloudcore/templates/statefulset.yaml" ||
  fail "chart config path differs from the Dockerfile's CMD"
while read -r instruction _; do
  case $instruction in
    FROM|RUN|COPY|ENV|WORKDIR|USER|EXPOSE|VOLUME|ENTRYPOINT|CMD|ARG|LABEL|'#'*|'') ;;
    *) fail "Dockerfile: unknown instruction $instruction" ;;
  esac
done < <(sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$dockerfile")
echo "packaging checked in $((SECONDS - start)) s"
