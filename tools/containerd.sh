#!/usr/bin/env bash
# A private containerd for tests and the quickstart: its own config, root, state and socket under
# one directory, started in the background (no systemd here), with offline-built busybox images.
#
#   tools/containerd.sh start DIR [--replace-stale]
#                                          start (idempotent); prints unix://DIR/containerd.sock
#                                          --replace-stale: first stop a containerd that another
#                                          DIR's start left running (a test that died; only for
#                                          callers holding the machine lock, like the fixture)
#   tools/containerd.sh stop DIR           kill every task/sandbox it ran, containerd, mounts,
#                                          netns, CNI bridge, pod cgroups (and every empty cgroup
#                                          under the paths listed in DIR/cgroup-roots); keeps DIR
#   tools/containerd.sh clean DIR          stop + rm -rf DIR
#   tools/containerd.sh daemon-stop DIR [--kill]
#                                          stop the containerd process only (SIGTERM, or SIGKILL
#                                          with --kill); containers keep running, state is kept;
#                                          `start DIR` brings it back
#   tools/containerd.sh restart DIR        daemon-stop + start
#   tools/containerd.sh status DIR         exit 0 when it answers
#   tools/containerd.sh ctr DIR ARGS...    ctr -n k8s.io against this instance
#   tools/containerd.sh image NAME TAG OUT.tar [MARKER]
#                                          busybox OCI archive named NAME:TAG with MARKER in
#                                          /etc/gantry-image (different markers, different digests)
#   tools/containerd.sh registry-start DIR PORT
#                                          docker-registry on 127.0.0.1:PORT (plain http), and
#                                          DIR/certs.d/127.0.0.1:PORT/hosts.toml so that this
#                                          containerd pulls from it
#   tools/containerd.sh registry-push DIR PORT OCI.tar NAME:TAG
#   tools/containerd.sh registry-stop DIR
#
# Images in every instance: gantry.local/pause:1 (the sandbox image, `sleep inf`) and
# gantry.local/busybox:1 (busybox with /bin/sh and the applets).
#
# Only one containerd may run on a machine at a time: whatever its state dir, containerd uses
# /run/containerd/{runc/k8s.io,s,fifo}. `start` refuses when a containerd that is not this
# DIR's runs; ctest serialises the tests that use it with RESOURCE_LOCK containerd, and the C++
# fixture also holds a machine-wide flock (/run/lock/gantry-containerd.lock) so that test runs
# from different build trees wait for each other.
set -euo pipefail

die() {
  echo "containerd.sh: $*" >&2
  exit 1
}
log() { echo "containerd.sh: $*" >&2; }

readonly CNI_BRIDGE=${GANTRY_CNI_BRIDGE:-gantrycni0}
readonly CNI_SUBNET=${GANTRY_CNI_SUBNET:-10.213.0.0/24}
readonly CNI_NETWORK=gantry-test
readonly RUNC_ROOT=/run/containerd/runc/k8s.io
readonly START_TIMEOUT=${GANTRY_CONTAINERD_START_TIMEOUT:-60}

abs_dir() {
  mkdir -p "$1"
  (cd "$1" && pwd)
}

sock() { echo "$1/containerd.sock"; }

ctr_in() {
  local dir=$1
  shift
  timeout "${GANTRY_CTR_TIMEOUT:-60}" ctr --address "$(sock "$dir")" --namespace k8s.io "$@"
}

daemon_pid() {
  local dir=$1 pid
  [ -f "$dir/containerd.pid" ] || return 1
  pid=$(cat "$dir/containerd.pid")
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
  # A recycled PID is not ours: it must be containerd with our config.
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "--config $dir/config.toml" || return 1
  echo "$pid"
}

# Running and not a zombie (PID 1 here may take a second or two to reap orphans).
alive() {
  local st=""
  [ -r "/proc/$1/stat" ] || return 1
  read -r _ _ st _ <"/proc/$1/stat" 2>/dev/null || return 1
  [ "$st" != Z ] && [ "$st" != X ]
}

not_alive() { ! alive "$1"; }

answers() {
  timeout 10 ctr --address "$(sock "$1")" version >/dev/null 2>&1
}

# Waits until `cond ARGS` holds or `secs` pass; a condition that returns 2 gives up at once.
wait_for() {
  local secs=$1
  shift
  local deadline=$((SECONDS + secs)) rc
  while :; do
    rc=0
    "$@" || rc=$?
    [ $rc -ne 0 ] || return 0
    [ $rc -ne 2 ] || return 1
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.1
  done
}

write_config() {
  local dir=$1
  mkdir -p "$dir/root" "$dir/state" "$dir/cni/conf" "$dir/cni/ipam" "$dir/certs.d" "$dir/images"
  cat >"$dir/config.toml" <<EOF
# Written by tools/containerd.sh: a private containerd for Gantry's tests and quickstart.
version = 2
root = "$dir/root"
state = "$dir/state"
oom_score = 0
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
                    "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$dir/containerd.sock"

[ttrpc]
  address = "$dir/containerd.sock.ttrpc"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "gantry.local/pause:1"
  # root here lacks CAP_SYS_RESOURCE: without this RunPodSandbox fails (oom_score_adj EPERM).
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni/conf"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    # Read at every pull: hosts.toml files added after start count (registry-start).
    config_path = "$dir/certs.d"
EOF
  cat >"$dir/cni/conf/10-gantry.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$CNI_NETWORK",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$CNI_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "promiscMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$dir/cni/ipam",
        "ranges": [[{"subnet": "$CNI_SUBNET"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

# --- Images -------------------------------------------------------------------------------------

oci_arch() {
  case "$(uname -m)" in
    x86_64) echo amd64 ;;
    aarch64) echo arm64 ;;
    armv7l) echo arm ;;
    *) uname -m ;;
  esac
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }
size_of() { stat -c %s "$1"; }

readonly IMAGE_CACHE=${GANTRY_IMAGE_CACHE:-/var/tmp/gantry-images}
readonly IMAGE_FORMAT=1  # bump when build_image_uncached changes what it builds

# build_image NAME:TAG OUT.tar MARKER CMD_JSON: an OCI image layout archive of busybox, from a
# cache keyed by everything that goes into it (the build is reproducible, so this only saves
# time: ~0.7 s per image on a loaded machine).
build_image() {
  local ref=$1 out=$2 marker=$3 cmd_json=$4
  [ -x /bin/busybox ] || die "/bin/busybox missing (apt-get install busybox-static)"
  local key
  key=$(printf '%s\n' "$IMAGE_FORMAT" "$(sha256_of /bin/busybox)" "$ref" "$marker" "$cmd_json" |
    sha256sum | cut -c1-32)
  mkdir -p "$(dirname "$out")"
  if [ -f "$IMAGE_CACHE/$key.tar" ] && cp "$IMAGE_CACHE/$key.tar" "$out.tmp" 2>/dev/null; then
    mv "$out.tmp" "$out"
    return 0
  fi
  build_image_uncached "$ref" "$out" "$marker" "$cmd_json"
  if mkdir -p "$IMAGE_CACHE" 2>/dev/null && cp "$out" "$IMAGE_CACHE/$key.tar.$$" 2>/dev/null; then
    mv "$IMAGE_CACHE/$key.tar.$$" "$IMAGE_CACHE/$key.tar"
  fi
}

build_image_uncached() {
  local ref=$1 out=$2 marker=$3 cmd_json=$4
  local busybox=/bin/busybox
  local work
  work=$(mktemp -d)
  # shellcheck disable=SC2064
  trap "rm -rf '$work'" RETURN
  local rootfs=$work/rootfs
  mkdir -p "$rootfs"/{bin,etc,tmp,root,proc,sys,dev,var,run,home}
  chmod 1777 "$rootfs/tmp"
  cp "$busybox" "$rootfs/bin/busybox"
  local applet
  for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' \
    >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' >"$rootfs/etc/group"
  printf '%s\n' "$marker" >"$rootfs/etc/gantry-image"
  # Reproducible: the same marker gives the same digest.
  local blobs=$work/layout/blobs/sha256
  mkdir -p "$blobs"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -C "$rootfs" -cf "$work/layer.tar" .
  local layer_digest layer_size
  layer_digest=$(sha256_of "$work/layer.tar")
  layer_size=$(size_of "$work/layer.tar")
  mv "$work/layer.tar" "$blobs/$layer_digest"

  printf '{"architecture":"%s","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":%s,"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"tools/containerd.sh image"}]}' \
    "$(oci_arch)" "$cmd_json" "$layer_digest" >"$work/config.json"
  local config_digest config_size
  config_digest=$(sha256_of "$work/config.json")
  config_size=$(size_of "$work/config.json")
  mv "$work/config.json" "$blobs/$config_digest"

  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
    "$config_digest" "$config_size" "$layer_digest" "$layer_size" >"$work/manifest.json"
  local manifest_digest manifest_size
  manifest_digest=$(sha256_of "$work/manifest.json")
  manifest_size=$(size_of "$work/manifest.json")
  mv "$work/manifest.json" "$blobs/$manifest_digest"

  local tag=${ref##*:}
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$manifest_digest" "$manifest_size" "$ref" "$tag" >"$work/layout/index.json"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$work/layout/oci-layout"
  mkdir -p "$(dirname "$out")"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work/layout" \
    -cf "$out.tmp" oci-layout index.json blobs
  mv "$out.tmp" "$out"
}

import_images() {
  local dir=$1 present
  present=$(ctr_in "$dir" images ls -q 2>/dev/null || true)
  if ! grep -qx 'gantry.local/pause:1' <<<"$present"; then
    build_image gantry.local/pause:1 "$dir/images/pause.tar" pause '["sleep","inf"]'
    ctr_in "$dir" images import "$dir/images/pause.tar" >/dev/null
  fi
  if ! grep -qx 'gantry.local/busybox:1' <<<"$present"; then
    build_image gantry.local/busybox:1 "$dir/images/busybox.tar" busybox '["sh"]'
    ctr_in "$dir" images import "$dir/images/busybox.tar" >/dev/null
  fi
}

# --- Daemon -------------------------------------------------------------------------------------

foreign_containerd() {
  local dir=$1 pid
  for pid in $(pgrep -x containerd || true); do
    alive "$pid" || continue  # a zombie waiting for PID 1 to reap it
    if ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "--config $dir/config.toml"; then
      echo "$pid"
      return 0
    fi
  done
  return 1
}

cmd_start() {
  local dir replace_stale=0
  dir=$(abs_dir "$1")
  [ "${2:-}" = "--replace-stale" ] && replace_stale=1
  if daemon_pid "$dir" >/dev/null && answers "$dir"; then
    import_images "$dir"
    echo "unix://$(sock "$dir")"
    return 0
  fi
  local other other_dir
  while other=$(foreign_containerd "$dir"); do
    other_dir=$(tr '\0' '\n' <"/proc/$other/cmdline" | grep -A1 -x -- --config | tail -n1 || true)
    other_dir=$(dirname "${other_dir:-/nonexistent/config.toml}")
    if [ "$replace_stale" = 1 ] && [ -f "$other_dir/config.toml" ] &&
      grep -q '^# Written by tools/containerd.sh' "$other_dir/config.toml"; then
      # The caller holds the machine-wide lock: this one was left by a test that died.
      log "stopping a stale containerd from $other_dir (pid $other)"
      cmd_registry_stop "$other_dir"
      cmd_stop "$other_dir"
      case "$(basename "$other_dir")" in gantry-test-*) rm -rf "$other_dir" ;; esac
      continue
    fi
    die "another containerd runs (pid $other: $(tr '\0' ' ' <"/proc/$other/cmdline")); only one" \
      "may run at a time (they share /run/containerd): stop it first"
  done
  # Containers whose containerd is gone (a test that stopped the daemon, then died).
  if [ "$replace_stale" = 1 ] && [ -d "$RUNC_ROOT" ]; then
    local state bundle
    for state in "$RUNC_ROOT"/*/state.json; do
      [ -f "$state" ] || continue
      bundle=$(grep -o 'bundle=[^"]*' "$state" | head -n1 | cut -d= -f2-)
      other_dir=${bundle%%/state/io.containerd.runtime.v2.task/*}
      [ -n "$bundle" ] && [ "$other_dir" != "$bundle" ] && [ "$other_dir" != "$dir" ] || continue
      [ -f "$other_dir/config.toml" ] &&
        grep -q '^# Written by tools/containerd.sh' "$other_dir/config.toml" || continue
      log "removing containers a stale containerd from $other_dir left"
      cmd_registry_stop "$other_dir"
      cmd_stop "$other_dir"
      case "$(basename "$other_dir")" in gantry-test-*) rm -rf "$other_dir" ;; esac
    done
  fi
  if [ ${#dir} -gt 90 ]; then
    die "$dir is too long for a unix socket path ($dir/containerd.sock); use a shorter DIR"
  fi
  write_config "$dir"
  rm -f "$(sock "$dir")" "$(sock "$dir").ttrpc"
  # setsid: not in the caller's process group, so a test runner's group kill does not take it
  # down behind the fixture's back; the fixture stops it by PID.
  setsid nohup containerd --config "$dir/config.toml" >>"$dir/containerd.log" 2>&1 </dev/null &
  echo $! >"$dir/containerd.pid"
  local pid
  pid=$(cat "$dir/containerd.pid")
  # shellcheck disable=SC2317
  started() { alive "$pid" || return 2; answers "$dir"; }
  if ! wait_for "$START_TIMEOUT" started; then
    tail -n 30 "$dir/containerd.log" >&2 || true
    die "containerd (pid $pid) did not answer on $(sock "$dir") within ${START_TIMEOUT}s"
  fi
  if ctr --address "$(sock "$dir")" plugins ls 2>/dev/null | grep -E 'io.containerd.grpc.v1 +cri ' |
    grep -qv ' ok'; then
    tail -n 30 "$dir/containerd.log" >&2 || true
    die "containerd's CRI plugin did not load; see $dir/containerd.log"
  fi
  import_images "$dir"
  echo "unix://$(sock "$dir")"
}

cmd_daemon_stop() {
  local dir sig=TERM
  dir=$(abs_dir "$1")
  [ "${2:-}" = "--kill" ] && sig=KILL
  local pid
  pid=$(daemon_pid "$dir") || return 0
  kill -s "$sig" "$pid" 2>/dev/null || true
  if ! wait_for 20 not_alive "$pid"; then
    log "containerd (pid $pid) ignored SIG$sig for 20 s; killing it"
    kill -s KILL "$pid" 2>/dev/null || true
    wait_for 10 not_alive "$pid" || die "containerd (pid $pid) does not die"
  fi
  rm -f "$dir/containerd.pid"
}

# Network namespaces and pod cgroups of the sandboxes this instance ran. Read from containerd's
# metadata file directly, so that this also works when containerd is dead.
sandbox_netns() {
  local db=$1/root/io.containerd.metadata.v1.bolt/meta.db
  [ -f "$db" ] || return 0
  grep -aoE '/var/run/netns/cni-[0-9a-f-]+' "$db" | sort -u || true
}
container_cgroups() {
  local db=$1/root/io.containerd.metadata.v1.bolt/meta.db
  [ -f "$db" ] || return 0
  grep -aoE '"cgroupsPath":"[^"]+"' "$db" | sed -E 's/.*:"(.*)"/\1/' | sort -u || true
}

cmd_stop() {
  local dir
  dir=$(abs_dir "$1")
  local netns cgroups
  netns=$(sandbox_netns "$dir")
  cgroups=$(container_cgroups "$dir")

  # 1. Through containerd when it answers: SIGKILL every task, delete tasks and containers.
  if daemon_pid "$dir" >/dev/null && answers "$dir"; then
    local id
    for id in $(ctr_in "$dir" tasks ls -q 2>/dev/null || true); do
      ctr_in "$dir" tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
    done
    for id in $(ctr_in "$dir" tasks ls -q 2>/dev/null || true); do
      GANTRY_CTR_TIMEOUT=20 ctr_in "$dir" tasks delete -f "$id" >/dev/null 2>&1 || true
    done
    for id in $(ctr_in "$dir" containers ls -q 2>/dev/null || true); do
      ctr_in "$dir" containers delete "$id" >/dev/null 2>&1 || true
    done
  fi
  cmd_daemon_stop "$dir" --kill

  # 2. Whatever runc still knows from this instance (containerd was dead, or a delete failed).
  if [ -d "$RUNC_ROOT" ]; then
    local state id
    for state in "$RUNC_ROOT"/*/state.json; do
      [ -f "$state" ] || continue
      grep -q "\"$dir/state/" "$state" || continue
      id=$(basename "$(dirname "$state")")
      runc --root "$RUNC_ROOT" kill "$id" KILL >/dev/null 2>&1 || true
      runc --root "$RUNC_ROOT" delete -f "$id" >/dev/null 2>&1 || true
    done
  fi
  # 3. Shims of this instance (they outlive containerd by design).
  local pid
  for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $dir/containerd.sock" || true); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  # 4. Mounts under DIR (rootfs overlays, sandbox shm), deepest first.
  local m
  for m in $(awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  # 5. Network namespaces and the bridge.
  local ns
  for ns in $netns; do
    if [ -e "$ns" ]; then
      umount "$ns" 2>/dev/null || umount -l "$ns" 2>/dev/null || true
      rm -f "$ns"
    fi
  done
  # Host-port rules the portmap plugin added (CNI DEL never ran for sandboxes killed above).
  if command -v iptables >/dev/null; then
    local rule chain
    while read -r rule; do
      [ -n "$rule" ] || continue
      chain=$(grep -oE 'CNI-DN-[0-9a-f]+' <<<"$rule" | tail -n1)
      eval "iptables -t nat ${rule/#-A /-D }" 2>/dev/null || true
      if [ -n "$chain" ]; then
        iptables -t nat -F "$chain" 2>/dev/null || true
        iptables -t nat -X "$chain" 2>/dev/null || true
      fi
    done < <(iptables -t nat -S CNI-HOSTPORT-DNAT 2>/dev/null | grep -F "$CNI_NETWORK" || true)
  fi
  if ip link show "$CNI_BRIDGE" >/dev/null 2>&1; then
    ip link delete "$CNI_BRIDGE" 2>/dev/null || true
  fi
  rm -rf "$dir/cni/ipam"
  # 6. cgroups: containerd leaves pod-level directories (cgroup_parent) behind. Remove each
  #    container's directory and then its parents while they are empty (rmdir refuses otherwise),
  #    and every empty directory under the roots listed in DIR/cgroup-roots (one per line, e.g.
  #    /gantry-test: sandboxes removed through CRI are no longer in containerd's metadata).
  local cg ctl path root
  for cg in $cgroups; do
    for ctl in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
      path=${ctl%/}$cg
      while [ -d "$path" ] && [ "$path" != "${ctl%/}" ] && rmdir "$path" 2>/dev/null; do
        path=$(dirname "$path")
        # Stop below the first level: never remove top-level groups others may share.
        [ "$(dirname "$path")" != "${ctl%/}" ] || break
      done
    done
  done
  if [ -f "$dir/cgroup-roots" ]; then
    while read -r root; do
      case "$root" in /?*) ;; *) continue ;; esac
      for ctl in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
        [ -d "${ctl%/}$root" ] || continue
        find "${ctl%/}$root" -depth -type d -exec rmdir {} + 2>/dev/null || true
      done
    done <"$dir/cgroup-roots"
  fi
}

cmd_clean() {
  local dir
  dir=$(abs_dir "$1")
  cmd_registry_stop "$dir"
  cmd_stop "$dir"
  rm -rf "$dir"
}

# --- Registry -----------------------------------------------------------------------------------

registry_up() { curl -fsS -o /dev/null "http://127.0.0.1:$1/v2/"; }

cmd_registry_start() {
  local dir port
  dir=$(abs_dir "$1")
  port=$2
  command -v docker-registry >/dev/null || die "docker-registry missing (tools/deps.sh)"
  local rdir=$dir/registry/$port
  mkdir -p "$rdir/data" "$dir/certs.d/127.0.0.1:$port"
  local pid
  if [ -f "$rdir/registry.pid" ] && pid=$(cat "$rdir/registry.pid") && [ -d "/proc/$pid" ] &&
    registry_up "$port"; then
    return 0
  fi
  cat >"$rdir/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $rdir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
EOF
  setsid nohup docker-registry serve "$rdir/config.yml" >>"$rdir/registry.log" 2>&1 </dev/null &
  echo $! >"$rdir/registry.pid"
  pid=$(cat "$rdir/registry.pid")
  # shellcheck disable=SC2317
  reg_started() { alive "$pid" || return 2; registry_up "$port"; }
  if ! wait_for 30 reg_started; then
    tail -n 20 "$rdir/registry.log" >&2 || true
    die "docker-registry did not answer on 127.0.0.1:$port"
  fi
  cat >"$dir/certs.d/127.0.0.1:$port/hosts.toml" <<EOF
server = "http://127.0.0.1:$port"

[host."http://127.0.0.1:$port"]
  capabilities = ["pull", "resolve"]
  skip_verify = true
EOF
}

cmd_registry_push() {
  local port=$2 archive=$3 ref=$4
  command -v skopeo >/dev/null || die "skopeo missing (tools/deps.sh)"
  skopeo --insecure-policy copy --quiet --dest-tls-verify=false "oci-archive:$archive" \
    "docker://127.0.0.1:$port/$ref" >&2
}

cmd_registry_stop() {
  local dir=$1 pidfile pid
  [ -d "$dir/registry" ] || return 0
  for pidfile in "$dir"/registry/*/registry.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if [ -d "/proc/$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q docker-registry; then
      kill -TERM "$pid" 2>/dev/null || true
      wait_for 10 not_alive "$pid" || kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
    local port
    port=$(basename "$(dirname "$pidfile")")
    rm -rf "$dir/certs.d/127.0.0.1:$port"
  done
}

# --- Main ---------------------------------------------------------------------------------------

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
  exit 2
}

[ $# -ge 1 ] || usage
command=$1
shift
case "$command" in
  start) [ $# -ge 1 ] || usage; cmd_start "$@" ;;
  stop) [ $# -eq 1 ] || usage; cmd_stop "$1" ;;
  clean) [ $# -eq 1 ] || usage; cmd_clean "$1" ;;
  daemon-stop) [ $# -ge 1 ] || usage; cmd_daemon_stop "$@" ;;
  restart)
    [ $# -eq 1 ] || usage
    cmd_daemon_stop "$1"
    cmd_start "$1"
    ;;
  status)
    [ $# -eq 1 ] || usage
    d=$(abs_dir "$1")
    daemon_pid "$d" >/dev/null && answers "$d"
    ;;
  ctr)
    [ $# -ge 1 ] || usage
    d=$(abs_dir "$1")
    shift
    ctr_in "$d" "$@"
    ;;
  image)
    [ $# -ge 3 ] || usage
    build_image "$1:$2" "$3" "${4:-$1:$2}" '["sh"]'
    ;;
  registry-start) [ $# -eq 2 ] || usage; cmd_registry_start "$1" "$2" ;;
  registry-push) [ $# -eq 4 ] || usage; cmd_registry_push "$@" ;;
  registry-stop) [ $# -eq 1 ] || usage; cmd_registry_stop "$(abs_dir "$1")" ;;
  -h | --help | help) usage ;;
  *) usage ;;
esac
