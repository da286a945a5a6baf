#!/usr/bin/env bash
# Benchmark scenarios: one cloudcore + edgesim (or the real edgecore) on this machine, loopback
# only. Each scenario prints one line of figures (and keeps the JSON reports in $WORK).
#
#   tools/bench/bench.sh steady        N nodes x M pods, 1 status change per pod per 10 min
#   tools/bench/bench.sh storm         N nodes connected; cloudcore killed (-9) and restarted
#   tools/bench/bench.sh idle-bytes    bytes on the wire per idle node per second
#   tools/bench/bench.sh propagation   pod write (REST) -> edge, and edge status -> cloud watch
#   tools/bench/bench.sh edge-rss      edgecore's resident memory with 10 and 50 cached pods
#   tools/bench/bench.sh status-bytes  one pod phase change on the wire vs a Kubernetes status patch
#   tools/bench/bench.sh prepull       an ImagePullJob over N nodes (29 provinces); edgesim takes
#                                      PULL_SECONDS (10) per image, PER_PROVINCE (8) nodes at once
#
# Environment: GANTRY_BUILD_DIR (build), NODES (1000), PODS (5), DURATION (seconds of
# measurement, per scenario), THREADS (cloudcore threads, 2), SIM_THREADS (1), KEEP=1 keeps $WORK.
# No kernel knobs are changed; `ulimit -n` is raised to the hard limit (20,000 on the project's
# machine, which bounds one cloudcore to ~19,900 nodes: see docs/benchmarks.md).
set -euo pipefail

SCENARIO=${1:?usage: bench.sh steady|storm|idle-bytes|propagation|edge-rss|status-bytes|prepull}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${GANTRY_BUILD_DIR:-build}
[[ $BUILD = /* ]] || BUILD=$ROOT/$BUILD
NODES=${NODES:-1000}
PODS=${PODS:-5}
THREADS=${THREADS:-2}
SIM_THREADS=${SIM_THREADS:-1}
ulimit -n "$(ulimit -Hn)"

WORK=$(mktemp -d /tmp/gantry-bench.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ ${KEEP:-0} != 1 ]]; then rm -rf "$WORK"; else echo "kept $WORK" >&2; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
TUNNEL_PORT=$(free_port); API_PORT=$(free_port); JOIN_PORT=$(free_port)
CC=$WORK/cc

init_cluster() {
  "$BUILD/tools/gantryadm/gantryadm" init --data-dir "$CC" --advertise-address 127.0.0.1 >/dev/null
  # Loopback listeners on free ports, quieter logs, and the resync bound for large fleets.
  sed -i -e "s/\"0.0.0.0:10000\"/\"127.0.0.1:$TUNNEL_PORT\"/" -e "s/\"0.0.0.0:10443\"/\"127.0.0.1:$API_PORT\"/" \
    -e "s/\"0.0.0.0:10002\"/\"127.0.0.1:$JOIN_PORT\"/" -e 's/level: info/level: warn/' "$CC/cloudcore.yaml"
  printf 'threads: %s\n' "$THREADS" >>"$CC/cloudcore.yaml"
  TOKEN=$(sed -n 's/^ *token: //p' "$CC/admin.kubeconfig")
}

seed() {  # seed NODES PODS [PREFIX]
  "$BUILD/tools/edgesim/edgesim" --seed-store "$CC/data/store" --nodes "$1" --pods "$2" \
    --node-prefix "${3:-sim}" >"$WORK/seed.json"
}

CLOUD_PID=
start_cloudcore() {
  local log=$WORK/cloudcore.$(date +%s%N).log
  "$BUILD/cloudcore/cloudcore" --config "$CC/cloudcore.yaml" >"$log" 2>&1 &
  CLOUD_PID=$!
  PIDS+=("$CLOUD_PID")
  CLOUD_START_MS=$(date +%s%3N)
  for _ in $(seq 1 1200); do
    if curl -sk --max-time 1 "https://127.0.0.1:$API_PORT/healthz" >/dev/null 2>&1; then
      CLOUD_READY_MS=$(date +%s%3N)
      return 0
    fi
    kill -0 "$CLOUD_PID" 2>/dev/null || { cat "$log" >&2; echo "cloudcore exited" >&2; exit 1; }
    sleep 0.1
  done
  echo "cloudcore did not become ready" >&2
  exit 1
}

# Samples cloudcore's CPU ticks and RSS once a second: "unix_ms ticks rss_kib" lines.
SAMPLER_PID=
start_sampler() {
  local pid=$1 out=$2
  (
    while kill -0 "$pid" 2>/dev/null; do
      read -r -a stat <"/proc/$pid/stat" || break
      rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
      echo "$(date +%s%3N) $((stat[13] + stat[14])) $rss"
      sleep 1
    done
  ) >"$out" &
  SAMPLER_PID=$!
  PIDS+=("$SAMPLER_PID")
}

# cores used between two unix-ms instants, from the sampler's file
cpu_between() {
  awk -v a="$2" -v b="$3" -v hz="$(getconf CLK_TCK)" '
    $1 >= a && t0 == "" { t0 = $1; c0 = $2 }
    $1 <= b { t1 = $1; c1 = $2 }
    END { if (t1 > t0) printf "%.2f", (c1 - c0) / hz / ((t1 - t0) / 1000); else print "n/a" }' "$1"
}
max_rss_mb() { awk '$3 > m { m = $3 } END { printf "%.0f", m / 1024 }' "$1"; }

edgesim() {  # edgesim REPORT ARGS...
  local report=$1
  shift
  "$BUILD/tools/edgesim/edgesim" --cloudcore "127.0.0.1:$TUNNEL_PORT" --api "127.0.0.1:$API_PORT" \
    --data-dir "$CC" --threads "$SIM_THREADS" --report "$report" "$@" >/dev/null
}

j() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@"; }

case "$SCENARIO" in
steady | idle-bytes | propagation)
  DURATION=${DURATION:-120}
  init_cluster
  seed "$NODES" "$PODS"
  start_cloudcore
  RSS0=$(awk '/VmRSS/ {print $2}' "/proc/$CLOUD_PID/status")
  start_sampler "$CLOUD_PID" "$WORK/cloud.samples"
  # PERF=seconds: a CPU profile of cloudcore from the first connection on ($WORK/perf.data).
  if [[ -n ${PERF:-} ]]; then
    perf record -F 499 -g -p "$CLOUD_PID" -o "$WORK/perf.data" -- sleep "$PERF" >/dev/null 2>&1 &
    PIDS+=($!)
  fi
  case "$SCENARIO" in
  steady) CHURN=600 ;;
  idle-bytes) CHURN=0 ;;
  propagation) CHURN=${CHURN:-60} ;;
  esac
  ARGS=(--nodes "$NODES" --churn-interval "$CHURN" --duration "$DURATION" --connect-timeout 900 --settle 60)
  [[ $SCENARIO = propagation ]] && ARGS+=(--downstream-writes "${WRITES:-20}")
  edgesim "$WORK/sim.json" "${ARGS[@]}"
  R=$WORK/sim.json
  W0=$(j "$R" 'd["window_start_unix_ms"]')
  W1=$(j "$R" 'd["window_end_unix_ms"]')
  CPU=$(cpu_between "$WORK/cloud.samples" "$W0" "$W1")
  RSS=$(awk -v a="$W0" -v b="$W1" '$1 >= a && $1 <= b && $3 > m { m = $3 } END { print m }' "$WORK/cloud.samples")
  PER_NODE=$(python3 -c "print(round(($RSS - $RSS0) * 1024 / $NODES))")
  case "$SCENARIO" in
  steady)
    echo "steady nodes=$NODES pods=$(j "$R" 'd["pods"]') resynced=$(j "$R" 'd["resynced"]')" \
      "ready=$(j "$R" 'd["cloud_watch"]["nodes_ready"]') connect_s=$(j "$R" 'round(d["connect_seconds"],1)')" \
      "resync_ms_p50/p99/max=$(j "$R" '"%s/%s/%s" % tuple(d["resync_ms"]["initial"].get(k) for k in ("p50","p99","max"))')" \
      "cloudcore_rss_mb=$((RSS / 1024)) rss_per_node_b=$PER_NODE cloudcore_cpu_cores=$CPU" \
      "changes=$(j "$R" 'd["status"]["changes_generated"]') unacked=$(j "$R" 'd["status"]["pods_unacked_at_end"]')" \
      "unseen=$(j "$R" 'd["status"]["pods_not_seen_in_watch_at_end"]')" \
      "status_ms_p50/p99=$(j "$R" '"%s/%s" % (d["propagation_ms"].get("p50"), d["propagation_ms"].get("p99"))')" \
      "bytes_per_node_s=$(j "$R" 'round(d["wire"]["bytes_per_node_per_second"],2)')" \
      "edgesim_rss_mb=$(j "$R" 'd["edgesim_rss_kib"]["end"]//1024') errors=$(j "$R" 'd["errors"]' | tr -d ' ')"
    ;;
  idle-bytes)
    echo "idle-bytes nodes=$NODES window_s=$(j "$R" 'round(d["window_seconds"])')" \
      "bytes_per_node_per_s=$(j "$R" 'round(d["wire"]["bytes_per_node_per_second"],2)')" \
      "connections=$(j "$R" 'd["wire"]["connections_at_window_start"]') (TLS+WebSocket at the socket, both ways;" \
      "TCP/IP headers excluded) cloudcore_cpu_cores=$CPU"
    ;;
  propagation)
    echo "propagation nodes=$NODES downstream_ms_p50/p99/max=$(j "$R" '"%s/%s/%s" % tuple(d["downstream_ms"].get(k) for k in ("p50","p99","max"))')" \
      "(n=$(j "$R" 'd["downstream_ms"]["count"]'))" \
      "upstream_status_ms_p50/p99/max=$(j "$R" '"%s/%s/%s" % tuple(d["propagation_ms"].get(k) for k in ("p50","p99","max"))')" \
      "(n=$(j "$R" 'd["propagation_ms"]["count"]')) cloudcore_cpu_cores=$CPU"
    ;;
  esac
  ;;

storm)
  DURATION=${DURATION:-240}
  KILL_AFTER=${KILL_AFTER:-20}
  init_cluster
  seed "$NODES" "$PODS"
  start_cloudcore
  edgesim "$WORK/sim.json" --nodes "$NODES" --churn-interval 600 --duration "$DURATION" \
    --connect-timeout 900 --settle 120 &
  SIM_PID=$!
  PIDS+=("$SIM_PID")
  # Wait for the whole fleet (the hub's gauge), then a little steady time.
  for _ in $(seq 1 9000); do
    n=$(curl -sk -H "Authorization: Bearer $TOKEN" "https://127.0.0.1:$API_PORT/metrics" |
      awk '/^gantry_hub_sessions / {print $2}')
    [[ ${n%.*} -ge $NODES ]] 2>/dev/null && break
    sleep 0.1
  done
  sleep "$KILL_AFTER"
  kill -9 "$CLOUD_PID"
  KILL_MS=$(date +%s%3N)
  wait "$CLOUD_PID" 2>/dev/null || true  # its store lock goes with the process
  start_cloudcore
  RESTART_MS=$CLOUD_START_MS
  start_sampler "$CLOUD_PID" "$WORK/cloud.samples"
  for _ in $(seq 1 9000); do
    n=$(curl -sk -H "Authorization: Bearer $TOKEN" "https://127.0.0.1:$API_PORT/metrics" |
      awk '/^gantry_hub_sessions / {print $2}')
    [[ ${n%.*} -ge $NODES ]] 2>/dev/null && break
    sleep 0.2
  done
  ALL_MS=$(date +%s%3N)
  sleep 2
  METRICS=$(curl -sk -H "Authorization: Bearer $TOKEN" "https://127.0.0.1:$API_PORT/metrics")
  REFUSED=$(awk '/^gantry_hub_refused_busy_total / {print $2}' <<<"$METRICS")
  HWM=$(awk '/VmHWM/ {print int($2/1024)}' "/proc/$CLOUD_PID/status")
  wait "$SIM_PID" || true
  R=$WORK/sim.json
  echo "storm nodes=$NODES pods=$(j "$R" 'd["pods"]') restart_to_ready_s=$(python3 -c "print(round(($CLOUD_READY_MS - $KILL_MS)/1000,1))")" \
    "all_sessions_back_s=$(python3 -c "print(round(($ALL_MS - $RESTART_MS)/1000,1))")" \
    "all_resynced_s=$(python3 -c "print(round(($(j "$R" 'd["last_resync_unix_ms"]') - $RESTART_MS)/1000,1))")" \
    "reconnect_resync_ms_p50/p99/max=$(j "$R" '"%s/%s/%s" % tuple(d["resync_ms"]["reconnect"].get(k) for k in ("p50","p99","max"))')" \
    "(n=$(j "$R" 'd["resync_ms"]["reconnect"]["count"]')) tls_resumed=$(j "$R" 'd["tls_resumed"]')/$(j "$R" 'd["tunnels_opened"]')" \
    "peak_rss_mb=$HWM refused_503=${REFUSED:-?}" \
    "not_ready_events=$(j "$R" 'd["cloud_watch"]["not_ready_events"]') ready_at_end=$(j "$R" 'd["cloud_watch"]["nodes_ready"]')" \
    "unacked=$(j "$R" 'd["status"]["pods_unacked_at_end"]') unseen=$(j "$R" 'd["status"]["pods_not_seen_in_watch_at_end"]')" \
    "errors=$(j "$R" 'd["errors"]' | tr -d ' ')"
  ;;

status-bytes)
  init_cluster
  seed 1 1
  start_cloudcore
  edgesim "$WORK/sim.json" --nodes 1 --status-bytes --heartbeat 600
  R=$WORK/sim.json
  echo "status-bytes gantry_upstream=$(j "$R" 'd["gantry"]["upstream_wire_bytes"]')B" \
    "gantry_ack=$(j "$R" 'd["gantry"]["ack_wire_bytes"]')B" \
    "k8s_patch_request=$(j "$R" 'd["kubernetes_json"]["request_wire_bytes"]')B" \
    "(body $(j "$R" 'd["kubernetes_json"]["patch_body_bytes"]')B)" \
    "k8s_response=$(j "$R" 'd["kubernetes_json"]["response_wire_bytes"]')B (HTTP $(j "$R" 'd["kubernetes_json"]["response_status"]'))" \
    "ratio_request/upstream=$(j "$R" 'round(d["ratio_request_vs_upstream"],1)')"
  ;;

edge-rss)
  init_cluster
  # The join endpoint issues the node's certificate; its pods are seeded before cloudcore starts.
  for count in 10 50; do
    seed 1 "$count" "rss$count"
  done
  start_cloudcore
  line="edge-rss (runtime unavailable: no containerd socket)"
  for count in 10 50; do
    node=rss$count-000000
    ED=$WORK/edge$count
    tok=$("$BUILD/tools/gantryadm/gantryadm" gettoken --data-dir "$CC")
    "$BUILD/tools/gantryadm/gantryadm" join --cloudcore "127.0.0.1:$JOIN_PORT" --token "$tok" \
      --node-name "$node" --province p00 --data-dir "$ED" \
      --runtime-endpoint "unix://$WORK/no-containerd.sock" >/dev/null 2>&1
    sed -i -e "s/^cloudcore: .*/cloudcore: \"127.0.0.1:$TUNNEL_PORT\"/" "$ED/edgecore.yaml"
    grep -q '^log:' "$ED/edgecore.yaml" || printf 'log:\n  level: warn\n' >>"$ED/edgecore.yaml"
    "$BUILD/edgecore/edgecore" --config "$ED/edgecore.yaml" >"$WORK/edgecore$count.log" 2>&1 &
    EPID=$!
    PIDS+=("$EPID")
    # Cached: the pods' manifests are in the edge's RocksDB once the node acknowledged the revision
    # that carried them; then let it settle.
    for _ in $(seq 1 300); do
      sent=$(curl -sk -H "Authorization: Bearer $TOKEN" "https://127.0.0.1:$API_PORT/metrics" |
        awk '/^gantry_hub_objects_sent_total / {print $2}')
      [[ ${sent%.*} -ge $((count + (count == 50 ? 10 : 0))) ]] 2>/dev/null && break
      sleep 0.1
    done
    sleep "${SETTLE:-20}"
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$EPID/status")
    pss=$(awk '/^Pss:/ {s += $2} END {print s}' "/proc/$EPID/smaps" 2>/dev/null || echo "?")
    line+=" pods=$count rss_kib=$rss pss_kib=$pss"
    kill "$EPID"
    wait "$EPID" 2>/dev/null || true
  done
  echo "$line"
  ;;
prepull)
  PULL_SECONDS=${PULL_SECONDS:-10}
  PER_PROVINCE=${PER_PROVINCE:-8}
  init_cluster
  seed "$NODES" 1
  start_cloudcore
  start_sampler "$CLOUD_PID" "$WORK/cloud.samples"
  edgesim "$WORK/sim.json" --nodes "$NODES" --churn-interval 0 --duration 3600 \
    --connect-timeout 900 --settle 0 --pull-seconds "$PULL_SECONDS" &
  SIM_PID=$!
  PIDS+=("$SIM_PID")
  for _ in $(seq 1 9000); do
    n=$(curl -sk -H "Authorization: Bearer $TOKEN" "https://127.0.0.1:$API_PORT/metrics" |
      awk '/^gantry_hub_sessions / {print $2}')
    [[ ${n%.*} -ge $NODES ]] 2>/dev/null && break
    sleep 0.2
  done
  JOBS="https://127.0.0.1:$API_PORT/apis/gantry.io/v1/namespaces/default/imagepulljobs"
  START_MS=$(date +%s%3N)
  curl -skf -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -X POST "$JOBS" \
    -d "{\"apiVersion\":\"gantry.io/v1\",\"kind\":\"ImagePullJob\",\"metadata\":{\"name\":\"warm\"},
         \"spec\":{\"images\":[\"registry.local/gateway:2\"],\"parallelism\":{\"perProvince\":$PER_PROVINCE}}}" \
    >/dev/null
  while :; do
    curl -sk -H "Authorization: Bearer $TOKEN" "$JOBS/warm" >"$WORK/job.json"
    [[ $(j "$WORK/job.json" 'd.get("status",{}).get("phase","")') = Succeeded ]] && break
    kill -0 "$SIM_PID" 2>/dev/null || { echo "edgesim exited" >&2; exit 1; }
    sleep 0.5
  done
  END_MS=$(date +%s%3N)
  CPU=$(cpu_between "$WORK/cloud.samples" "$START_MS" "$END_MS")
  MAXP=$(python3 -c "import collections; c=collections.Counter(i % 29 for i in range($NODES)); print(max(c.values()))")
  echo "prepull nodes=$NODES provinces=29 per_province=$PER_PROVINCE pull_s=$PULL_SECONDS" \
    "succeeded=$(j "$WORK/job.json" 'd["status"]["succeeded"]') failed=$(j "$WORK/job.json" 'd["status"]["failed"]')" \
    "seconds=$(python3 -c "print(round(($END_MS - $START_MS)/1000,1))")" \
    "bound_s=$(python3 -c "import math; print(math.ceil($MAXP / $PER_PROVINCE) * $PULL_SECONDS)")" \
    "(largest province $MAXP nodes) cloudcore_cpu_cores=$CPU"
  ;;
*)
  echo "unknown scenario $SCENARIO" >&2
  exit 2
  ;;
esac
