#!/usr/bin/env bash
# Brings up a local Gantry on this machine: installs what is missing, builds, starts a private
# containerd (tools/containerd.sh), cloudcore on its embedded store, joins one local edge node and
# starts its edgecore, runs a sample busybox pod on it, then prints how to look.
#
#   tools/quickstart.sh          start (idempotent: reuses the cluster it made, restarts what runs)
#   tools/quickstart.sh stop     stop what it started
#   tools/quickstart.sh reset    stop and remove the quickstart cluster
#   tools/quickstart.sh ha [stop|reset]   etcd + three cloudcore replicas instead (tools/quickstart_ha.sh)
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
containerd_dir=$state/containerd
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

stop_containerd() {
  [ -d "$containerd_dir" ] && tools/containerd.sh stop "$containerd_dir" || true
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
  ha) shift; exec tools/quickstart_ha.sh "$@" ;;
  stop) stop_all; stop_containerd; exit 0 ;;
  reset) stop_all; stop_containerd; rm -rf "$state"; echo "removed $state"; exit 0 ;;
  start) ;;
  *) echo "usage: $0 [start|stop|reset|ha [stop|reset]]" >&2; exit 2 ;;
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

say "Starting containerd (tools/containerd.sh, busybox images imported offline)"
runtime=$(tools/containerd.sh start "$containerd_dir")
echo "  $runtime"

if [ ! -f "$edge_dir/edgecore.yaml" ]; then
  say "Joining the edge node '$node' (gantryadm gettoken + join)"
  token=$("$gantryadm" gettoken --data-dir "$cloud_dir" --ttl 1h --province "$province" 2>/dev/null)
  "$gantryadm" join --cloudcore 127.0.0.1:10002 --token "$token" --node-name "$node" \
    --province "$province" --data-dir "$edge_dir" --runtime-endpoint "$runtime" >/dev/null
fi

say "Starting edgecore for '$node'"
nohup "$edgecore" --config "$edge_dir/edgecore.yaml" >"$state/edgecore.log" 2>&1 &
echo $! >"$edge_dir/edgecore.pid"
wait_for_log "$state/edgecore.log" "welcomed" 30 "$edge_dir/edgecore.pid"

kubeconfig=$cloud_dir/admin.kubeconfig
kc() { kubectl --kubeconfig "$kubeconfig" "$@"; }

say "Running a sample pod 'hello' on '$node'"
for _ in $(seq 1 300); do
  [ "$(kc get node "$node" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ] && break
  sleep 0.1
done
kc apply -f - <<YAML
apiVersion: v1
kind: Pod
metadata:
  name: hello
  namespace: default
spec:
  nodeName: $node
  containers:
  - name: hello
    image: gantry.local/busybox:1
    command: ["sh", "-c", "echo hello from the edge; while true; do date; sleep 10; done"]
YAML
for _ in $(seq 1 600); do
  [ "$(kc get pod hello -o 'jsonpath={.status.phase}' 2>/dev/null)" = Running ] && break
  sleep 0.1
done

echo
say "Gantry is up"
cat <<EOF2
  containerd  $runtime (log $containerd_dir/containerd.log)
  cloudcore   pid $(cat "$state/cloudcore.pid"), tunnel :10000, join :10002, API :10443, log $state/cloudcore.log
  edgecore    pid $(cat "$edge_dir/edgecore.pid"), node '$node', cache $edge_dir/meta, log $state/edgecore.log

  kubectl --kubeconfig $kubeconfig get nodes,pods -A
EOF2
kc get nodes,pods -A -o wide 2>&1 | sed 's/^/    /' || true
cat <<EOF2

  kubectl --kubeconfig $kubeconfig logs hello
EOF2
kc logs hello 2>&1 | head -3 | sed 's/^/    /' || true
cat <<EOF2

  Dashboard: https://127.0.0.1:10443/ui/  (the certificate is signed by $cloud_dir/pki/ca.crt;
  import it or accept the warning), signed in with the admin token:
    $(sed -n 's/^ *token: //p' "$kubeconfig")

  Stop everything (the pods too):   tools/quickstart.sh stop
  Remove everything:                tools/quickstart.sh reset
EOF2
