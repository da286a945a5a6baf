#!/usr/bin/env bash
# Brings up a local Gantry on this machine: installs what is missing, builds, starts cloudcore on
# its embedded store, joins one local edge node and starts its edgecore, then prints how to look.
#
#   tools/quickstart.sh          start (idempotent: reuses the cluster it made, restarts what runs)
#   tools/quickstart.sh stop     stop what it started
#   tools/quickstart.sh reset    stop and remove the quickstart cluster
#
# State lives in $GANTRY_QUICKSTART_DIR (default /var/lib/gantry-quickstart when root, else
# ~/.local/state/gantry-quickstart); the build in $GANTRY_BUILD_DIR (default build/).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

if [ "$(id -u)" -eq 0 ]; then default_state=/var/lib/gantry-quickstart; else default_state=$HOME/.local/state/gantry-quickstart; fi
state=${GANTRY_QUICKSTART_DIR:-$default_state}
build=${GANTRY_BUILD_DIR:-build}
cloud_dir=$state/cloud
edge_dir=$state/edge
node=quickstart-edge
province=quickstart

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

stop_pid() {  # stop_pid NAME PIDFILE
  local pidfile=$2
  [ -f "$pidfile" ] || return 0
  local pid
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null && grep -q "$1" "/proc/$pid/cmdline" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "stopped $1 (pid $pid)"
  fi
  rm -f "$pidfile"
}

stop_all() {
  stop_pid edgecore "$edge_dir/edgecore.pid"
  stop_pid cloudcore "$state/cloudcore.pid"
}

# wait_for_log FILE PATTERN SECONDS PIDFILE: polls the log until the pattern shows up.
wait_for_log() {
  local file=$1 pattern=$2 seconds=$3 pidfile=$4
  for _ in $(seq 1 $((seconds * 10))); do
    grep -q "$pattern" "$file" 2>/dev/null && return 0
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "it exited; last lines of $file:" >&2
      tail -20 "$file" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "timed out after ${seconds}s waiting for '$pattern' in $file; last lines:" >&2
  tail -20 "$file" >&2
  return 1
}

case "${1:-start}" in
  stop) stop_all; exit 0 ;;
  reset) stop_all; rm -rf "$state"; echo "removed $state"; exit 0 ;;
  start) ;;
  *) echo "usage: $0 [start|stop|reset]" >&2; exit 2 ;;
esac

say "Installing what is missing (tools/deps.sh)"
tools/deps.sh

say "Building cloudcore, edgecore and gantryadm into $build/"
[ -f "$build/build.ninja" ] || cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target cloudcore edgecore gantryadm
cloudcore=$repo/$build/cloudcore/cloudcore
edgecore=$repo/$build/edgecore/edgecore
gantryadm=$repo/$build/tools/gantryadm/gantryadm

stop_all
mkdir -p "$state"

if [ ! -f "$cloud_dir/pki/ca.crt" ]; then
  say "Creating the cluster (gantryadm init)"
  "$gantryadm" init --data-dir "$cloud_dir" --advertise-address 127.0.0.1 >/dev/null
fi

say "Starting cloudcore"
nohup "$cloudcore" --config "$cloud_dir/cloudcore.yaml" >"$state/cloudcore.log" 2>&1 &
echo $! >"$state/cloudcore.pid"
wait_for_log "$state/cloudcore.log" "ready" 30 "$state/cloudcore.pid"

if [ ! -f "$edge_dir/edgecore.yaml" ]; then
  if "$gantryadm" --help | grep -qE "^  join +"; then
    say "Joining the edge node '$node' (gantryadm gettoken + join)"
    token=$("$gantryadm" gettoken --data-dir "$cloud_dir" --ttl 1h --province "$province" 2>/dev/null)
    "$gantryadm" join --cloudcore 127.0.0.1:10002 --token "$token" --node-name "$node" \
      --province "$province" --data-dir "$edge_dir" >/dev/null
  else
    # This build of gantryadm has no join command (it arrives with cloudcore's join endpoint):
    # issue the node's certificate straight from the cluster CA instead, as join would.
    say "Issuing the edge node's certificate from the cluster CA (this build has no gantryadm join)"
    mkdir -p "$edge_dir/pki"
    chmod 700 "$edge_dir/pki"
    openssl ecparam -name prime256v1 -genkey -noout -out "$edge_dir/pki/node.key" 2>/dev/null
    chmod 600 "$edge_dir/pki/node.key"
    openssl req -new -key "$edge_dir/pki/node.key" -subj "/CN=system:node:$node" -out "$edge_dir/pki/node.csr"
    printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n' >"$edge_dir/pki/ext.cnf"
    openssl x509 -req -in "$edge_dir/pki/node.csr" -CA "$cloud_dir/pki/ca.crt" -CAkey "$cloud_dir/pki/ca.key" \
      -CAcreateserial -days 365 -sha256 -extfile "$edge_dir/pki/ext.cnf" -out "$edge_dir/pki/node.crt" 2>/dev/null
    cp "$cloud_dir/pki/ca.crt" "$edge_dir/pki/ca.crt"
    rm -f "$edge_dir/pki/node.csr" "$edge_dir/pki/ext.cnf"
    cat >"$edge_dir/edgecore.yaml" <<YAML
node_name: $node
data_dir: $edge_dir
cloudcore: 127.0.0.1:10000
tls:
  cert: $edge_dir/pki/node.crt
  key: $edge_dir/pki/node.key
  ca: $edge_dir/pki/ca.crt
YAML
  fi
fi

say "Starting edgecore for '$node'"
nohup "$edgecore" --config "$edge_dir/edgecore.yaml" >"$state/edgecore.log" 2>&1 &
echo $! >"$edge_dir/edgecore.pid"
wait_for_log "$state/edgecore.log" "welcomed" 30 "$edge_dir/edgecore.pid"

echo
say "Gantry is up"
cat <<EOF2
  cloudcore   pid $(cat "$state/cloudcore.pid"), tunnel on :10000, log $state/cloudcore.log
  edgecore    pid $(cat "$edge_dir/edgecore.pid"), node '$node', cache $edge_dir/meta, log $state/edgecore.log

EOF2
if curl -skf --max-time 2 https://127.0.0.1:10443/healthz >/dev/null 2>&1; then
  echo "  kubectl:  kubectl --kubeconfig $cloud_dir/admin.kubeconfig get nodes,pods -A"
  kubectl --kubeconfig "$cloud_dir/admin.kubeconfig" get nodes,pods -A 2>&1 | sed 's/^/    /' || true
else
  cat <<EOF2
  This build has no REST API yet: kubectl and the dashboard (:10443) and pods on containerd
  come with later issues. What you can see now: the node's tunnel in the logs, e.g.
    grep -E 'connected|welcomed|resumed' $state/edgecore.log $state/cloudcore.log
EOF2
fi
cat <<EOF2

  Stop:   tools/quickstart.sh stop      Remove everything: tools/quickstart.sh reset
EOF2
