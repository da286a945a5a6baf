#!/usr/bin/env bash
# tools/quickstart.sh ha: a local Gantry with several cloudcore replicas (docs/operations.md §11).
# Starts a private one-member etcd, three cloudcore replicas on it (shared PKI from gantryadm
# init), a private containerd and one edge node whose edgecore lists all three replicas, runs a
# sample pod, then prints who leads and how to try a failover.
#
#   tools/quickstart.sh ha          start (idempotent: reuses the cluster it made)
#   tools/quickstart.sh ha stop     stop what it started
#   tools/quickstart.sh ha reset    stop and remove it
#
# Ports (loopback): etcd 22379; replica i (0, 1, 2): tunnel 1i000, join 1i002, API 1i443.
# State in $GANTRY_QUICKSTART_DIR/ha (default /var/lib/gantry-quickstart/ha as root).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

if [ "$(id -u)" -eq 0 ]; then default_state=/var/lib/gantry-quickstart; else default_state=$HOME/.local/state/gantry-quickstart; fi
state=${GANTRY_QUICKSTART_DIR:-$default_state}/ha
build=${GANTRY_BUILD_DIR:-build}
cloud_dir=$state/cloud
edge_dir=$state/edge
containerd_dir=$state/containerd
etcd_port=22379
replicas=(0 1 2)
node=quickstart-ha-edge
province=quickstart

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

stop_pid() {  # stop_pid NAME PIDFILE
  local pidfile=$2
  [ -f "$pidfile" ] || return 0
  local pid
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null && grep -q "$1" "/proc/$pid/cmdline" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "stopped $1 (pid $pid)"
  fi
  rm -f "$pidfile"
}

stop_all() {
  stop_pid edgecore "$state/edgecore.pid"
  for i in "${replicas[@]}"; do stop_pid cloudcore "$state/cloudcore-$i.pid"; done
  stop_pid etcd "$state/etcd.pid"
}

stop_containerd() {
  [ -d "$containerd_dir" ] && tools/containerd.sh stop "$containerd_dir" || true
}

wait_for_log() {  # wait_for_log FILE PATTERN SECONDS PIDFILE
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
  stop) stop_all; stop_containerd; exit 0 ;;
  reset) stop_all; stop_containerd; rm -rf "$state"; echo "removed $state"; exit 0 ;;
  start) ;;
  *) echo "usage: tools/quickstart.sh ha [start|stop|reset]" >&2; exit 2 ;;
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

say "Starting etcd on 127.0.0.1:$etcd_port"
nohup etcd --name gantry-ha --data-dir "$state/etcd" \
  --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$((etcd_port + 1))" \
  --initial-advertise-peer-urls "http://127.0.0.1:$((etcd_port + 1))" \
  --initial-cluster "gantry-ha=http://127.0.0.1:$((etcd_port + 1))" >"$state/etcd.log" 2>&1 &
echo $! >"$state/etcd.pid"
wait_for_log "$state/etcd.log" "ready to serve client requests" 30 "$state/etcd.pid"

if [ ! -f "$cloud_dir/pki/ca.crt" ]; then
  say "Creating the cluster (gantryadm init): one PKI for every replica"
  "$gantryadm" init --data-dir "$cloud_dir" --advertise-address 127.0.0.1 >/dev/null
fi

tunnels=""
for i in "${replicas[@]}"; do
  base=$((10 + i))
  conf=$cloud_dir/cloudcore-$i.yaml
  sed -e "s|0.0.0.0:10000|127.0.0.1:${base}000|; s|0.0.0.0:10002|127.0.0.1:${base}002|" \
      -e "s|0.0.0.0:10443|127.0.0.1:${base}443|; s|$cloud_dir/data|$cloud_dir/data-$i|" \
      "$cloud_dir/cloudcore.yaml" >"$conf"
  cat >>"$conf" <<YAML
store:
  backend: etcd
  etcd:
    endpoints: ["http://127.0.0.1:$etcd_port"]
ha:
  name: replica-$i
  lease_ttl: 15s
  link_listen: "127.0.0.1:${base}004"
  link_advertise: "127.0.0.1"
YAML
  say "Starting cloudcore replica-$i (tunnel :${base}000, join :${base}002, API :${base}443, link :${base}004)"
  nohup "$cloudcore" --config "$conf" >"$state/cloudcore-$i.log" 2>&1 &
  echo $! >"$state/cloudcore-$i.pid"
  tunnels="$tunnels${tunnels:+, }127.0.0.1:${base}000"
done
for i in "${replicas[@]}"; do
  wait_for_log "$state/cloudcore-$i.log" " ready: " 60 "$state/cloudcore-$i.pid"
done

say "Starting containerd (tools/containerd.sh, busybox images imported offline)"
runtime=$(tools/containerd.sh start "$containerd_dir")
echo "  $runtime"

if [ ! -f "$edge_dir/edgecore.yaml" ]; then
  say "Joining the edge node '$node' through replica-0 (gantryadm gettoken + join)"
  token=$("$gantryadm" gettoken --data-dir "$cloud_dir" --ttl 1h --province "$province" 2>/dev/null)
  "$gantryadm" join --cloudcore 127.0.0.1:10002 --token "$token" --node-name "$node" \
    --province "$province" --data-dir "$edge_dir" --runtime-endpoint "$runtime" >/dev/null
  # Every replica's tunnel: the edge picks one at random and moves on when it fails.
  sed -i "s|^cloudcore: .*|cloudcore: [$tunnels]|" "$edge_dir/edgecore.yaml"
fi

say "Starting edgecore for '$node' (cloudcore: [$tunnels])"
nohup "$edgecore" --config "$edge_dir/edgecore.yaml" >"$state/edgecore.log" 2>&1 &
echo $! >"$state/edgecore.pid"
wait_for_log "$state/edgecore.log" "welcomed" 60 "$state/edgecore.pid"

kubeconfig=$cloud_dir/admin.kubeconfig
kc() { kubectl --kubeconfig "$kubeconfig" "$@"; }
token=$(cut -d, -f1 "$cloud_dir/tokens.csv")
leader() {
  for i in "${replicas[@]}"; do
    curl -s --max-time 5 --cacert "$cloud_dir/pki/ca.crt" -H "Authorization: Bearer $token" \
      "https://127.0.0.1:$((10 + i))443/metrics" 2>/dev/null | grep -q '^gantry_leader 1' && echo "replica-$i" && return
  done
  echo "(none yet)"
}

say "Running a sample pod 'hello' (scheduled by the leader)"
kc apply -f - <<YAML
apiVersion: v1
kind: Pod
metadata:
  name: hello
  namespace: default
spec:
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
say "Gantry with three replicas is up"
held=$(ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:$etcd_port" get --print-value-only "/gantry/coordination/nodes/$node" 2>/dev/null || true)
cat <<EOF2
  etcd        pid $(cat "$state/etcd.pid"), 127.0.0.1:$etcd_port, log $state/etcd.log
  replicas    $(for i in "${replicas[@]}"; do printf 'replica-%s pid %s  ' "$i" "$(cat "$state/cloudcore-$i.pid")"; done)
              logs $state/cloudcore-{0,1,2}.log
  leader      $(leader)
  edge node   '$node' held by ${held:-?}; log $state/edgecore.log

  kubectl --kubeconfig $kubeconfig get nodes,pods -o wide
EOF2
kc get nodes,pods -o wide 2>&1 | sed 's/^/    /' || true
cat <<EOF2

  Try a failover: kill -9 the replica holding the node or the leader, e.g.
    kill -9 \$(cat $state/cloudcore-0.pid)
  then watch the node move and the lead change:
    ETCDCTL_API=3 etcdctl --endpoints 127.0.0.1:$etcd_port get --prefix /gantry/coordination/
    kubectl --kubeconfig $kubeconfig get nodes -w
  (the kubeconfig talks to replica-0's API; use https://127.0.0.1:11443 or :12443 if it is the
  one you killed). Start it again with: tools/quickstart.sh ha

  Stop everything:    tools/quickstart.sh ha stop
  Remove everything:  tools/quickstart.sh ha reset
EOF2
