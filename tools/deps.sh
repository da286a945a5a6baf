#!/usr/bin/env bash
# Installs every Debian package that the build, the tests and the quickstart need.
# Idempotent and quick when everything is present: apt is only called for what is missing.
set -euo pipefail

packages=(
  # build
  build-essential cmake ninja-build ccache pkg-config git
  # libraries
  libboost-dev libboost-system-dev libprotobuf-dev protobuf-compiler
  libgrpc++-dev protobuf-compiler-grpc librocksdb-dev libssl-dev libyaml-cpp-dev
  libfmt-dev libspdlog-dev libcli11-dev nlohmann-json3-dev catch2
  # lint (tools/lint.sh) and fuzzing (tools/fuzz.sh: clang, libFuzzer in libclang-rt-14-dev)
  clang-format clang-tidy clang-tools clang libclang-rt-14-dev
  # tests
  prometheus openssl curl procps iproute2 python3 systemd
  # packaging tests (tests/e2e/packaging): the Helm chart rendered with Go's text/template and
  # sprig (Helm's engine; Debian has no helm), the .deb packages checked with lintian
  golang-go golang-github-masterminds-sprig-dev golang-gopkg-yaml.v3-dev lintian dpkg-dev fakeroot
  python3-yaml
  # the etcd store backend (tests, `store.backend: etcd`, tools/quickstart.sh ha)
  etcd-server etcd-client
  # edge runtime (tests and quickstart)
  containerd runc containernetworking-plugins busybox-static docker-registry skopeo iptables
  # the dashboard's browser tests (tests/e2e/dashboard: playwright-core drives Debian's chromium)
  chromium nodejs
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

# kubectl: use the one on the machine; Debian's kubernetes-client (1.20) only when none is present
# (the two packages both own /usr/bin/kubectl).
if ! command -v kubectl >/dev/null 2>&1; then
  missing+=(kubernetes-client)
fi

# npm: the one that comes with nodejs when it does (nodesource), Debian's otherwise.
if ! command -v npm >/dev/null 2>&1; then
  missing+=(npm)
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "deps: done"
fi

# Debian's kubectl 1.20 (kubernetes-client) beside the machine's own, for the e2e tests' oldest
# client: unpacked, not installed (it would own /usr/bin/kubectl).
kubectl_old=/var/cache/gantry-kubectl/1.20
if [ ! -x "$kubectl_old/usr/bin/kubectl" ]; then
  echo "deps: unpacking Debian's kubernetes-client into $kubectl_old"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  work=$(mktemp -d)
  if ! (cd "$work" && apt-get download kubernetes-client >/dev/null 2>&1); then
    "${sudo_cmd[@]}" apt-get update -qq
    (cd "$work" && apt-get download kubernetes-client >/dev/null 2>&1)
  fi
  "${sudo_cmd[@]}" mkdir -p "$kubectl_old"
  "${sudo_cmd[@]}" dpkg -x "$work"/kubernetes-client_*.deb "$kubectl_old"
  rm -rf "$work"
fi

# The dashboard tests' npm packages, exactly as locked (npm ci), when the lock changed.
dash=$(cd "$(dirname "$0")/.." && pwd)/tests/e2e/dashboard
if [ -f "$dash/package-lock.json" ] && ! cmp -s "$dash/package-lock.json" "$dash/node_modules/.gantry-lock" 2>/dev/null; then
  echo "deps: npm ci in tests/e2e/dashboard"
  (cd "$dash" && npm ci --no-audit --no-fund --loglevel=error >/dev/null &&
    cp package-lock.json node_modules/.gantry-lock)
fi
