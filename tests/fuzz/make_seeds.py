#!/usr/bin/env python3
"""Writes the seed corpora in corpus/<target>/ (run from anywhere; needs protoc). The seeds are
checked in; run this again after changing it. Frame conversations use frames.h's record format."""
import os
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PROTO = os.path.join(ROOT, "proto")


def frame(text):
    """A gantry.v1.Frame from protobuf text format."""
    return subprocess.run(
        ["protoc", f"--proto_path={PROTO}", "--encode=gantry.v1.Frame", "gantry/v1/tunnel.proto"],
        input=text.encode(), stdout=subprocess.PIPE, check=True).stdout


def record(op, data=b""):
    return bytes([op]) + struct.pack("<H", len(data)) + data


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


POD = 'kind: OBJECT_KIND_POD namespace: "default" name: "%s" uid: "uid-%s" revision: %d ' \
      'pod { containers { name: "c" image: "busybox" } labels { key: "app" value: "web" } }'


def edge():
    welcome_snap = frame('welcome { heartbeat_interval_seconds: 15 resume: RESUME_MODE_SNAPSHOT '
                         'idle_timeout_seconds: 45 }')
    welcome_incr = frame('welcome { heartbeat_interval_seconds: 15 resume: RESUME_MODE_INCREMENTAL '
                         'acked_sequence: 1 }')
    snap1 = frame('object_delta { revision: 5 snapshot: true more: true upserts { %s } }'
                  % (POD % ("web", "web", 4)))
    snap2 = frame('object_delta { revision: 5 snapshot: true upserts { kind: OBJECT_KIND_CONFIG_MAP '
                  'namespace: "default" name: "cfg" revision: 5 config_map { data { key: "a" '
                  'value: "b" } } } }')
    incr = frame('object_delta { revision: 7 upserts { %s } deletes { kind: OBJECT_KIND_POD '
                 'namespace: "default" name: "web" } }' % (POD % ("db", "db", 6)))
    ack = frame('status_ack { sequence: 1 resync { kind: OBJECT_KIND_POD namespace: "default" '
                'name: "web" generation: 3 reason: "generation" } }')
    stream = frame('stream_open { id: 1 window: 65536 logs { namespace: "default" pod: "web" '
                   'container: "c" tail_lines: 10 } }')
    cert = frame('certificate_response { certificate_pem: "-----BEGIN CERTIFICATE-----" }')
    write("fuzz_edge_frames", "snapshot", record(0, welcome_snap) + record(0, snap1) +
          record(0, snap2) + record(2, b"web") + record(3) + record(0, ack) + record(3))
    write("fuzz_edge_frames", "incremental", record(0, welcome_incr) + record(0, incr) +
          record(1) + record(0, welcome_incr) + record(0, incr))
    write("fuzz_edge_frames", "streams", record(0, welcome_snap) + record(0, stream) +
          record(0, cert) + record(0, frame('stream_close { id: 1 }')))
    write("fuzz_edge_frames", "before_welcome", record(0, incr) + record(0, b"\xff\xff"))


def cloud():
    hello = frame('hello { protocol_version: 1 applied_revision: 0 edgecore_version: "0.1.0" }')
    hello_rev = frame('hello { protocol_version: 1 applied_revision: 2 acked_sequence: 1 }')
    delta = frame('status_delta { sequence: 1 entries { kind: OBJECT_KIND_POD namespace: "default" '
                  'name: "web" full: true uid: "uid-web" pod { phase: POD_PHASE_RUNNING ready: '
                  'true pod_ip: "10.0.0.2" } } entries { kind: OBJECT_KIND_NODE name: "n1" '
                  'full: true node { capacity { pods: 110 } } } }')
    delta2 = frame('status_delta { sequence: 2 entries { kind: OBJECT_KIND_POD namespace: '
                   '"default" name: "web" base_generation: 1 pod { ready: false } } }')
    deleted = frame('status_delta { sequence: 3 entries { kind: OBJECT_KIND_POD namespace: '
                    '"default" name: "web" deleted: true } }')
    other = frame('status_delta { sequence: 4 entries { kind: OBJECT_KIND_POD namespace: '
                  '"default" name: "db" full: true pod { phase: POD_PHASE_RUNNING } } }')
    write("fuzz_cloud_frames", "session", record(0, hello) + record(0, frame('object_ack { '
          'revision: 3 }')) + record(0, delta) + record(0, delta2) + record(0, delta2) +
          record(0, deleted))
    write("fuzz_cloud_frames", "resume", record(0, hello_rev) + record(0, delta2) + record(1) +
          record(0, hello) + record(0, other))
    write("fuzz_cloud_frames", "no_hello", record(0, delta) + record(0, b"\x08\x01"))


def text_seeds():
    for i, s in enumerate(["\x00app=web,tier!=db", "\x00env in (prod, staging),!legacy,release",
                           "\x00app notin (a,b),x.io/y-z=v_1", "\x00example.com/key==value",
                           "\x01metadata.name=web,spec.nodeName!=n1", "\x01status.phase==Running",
                           "\x00", "\x00a in ()"]):
        write("fuzz_selectors", f"seed{i}", s)
    import base64, json
    for i, tok in enumerate([{"v": 1, "rv": 42, "start": "pods/default/web"},
                             {"v": 1, "rv": 0, "start": ""}, {"v": 2, "rv": 1, "start": "x"},
                             {"v": "1", "rv": 1, "start": "x"}, {"v": 1, "rv": -1, "start": 3}]):
        write("fuzz_continue_token", f"seed{i}", base64.b64encode(json.dumps(tok).encode()))
    write("fuzz_continue_token", "padding", "====")
    configs = {
        "full": "node_name: edge-1\ninsecure: false\noffset: -3\nport: 10350\nratio: 0.25\n"
                "cache: 128MiB\nprovinces: [north, south]\nlabels: {a: b, c: d}\nmode: cloud\n"
                "tunnel:\n  address: wss://cloud:10000\n  heartbeat: 15s\n  idle_timeout: 1m\n"
                "  window: 8\nlog:\n  level: debug\n  format: json\ntokens:\n  - name: a\n"
                "    role: admin\n  - {name: b}\n",
        "bad": "port: 0\nratio: 2\ncache: 1x\ntunnel: {heartbeat: 2h, idle_timeout: 1s}\n"
               "unknown: 1\ntokens: [{role: root}]\n",
        "anchors": "a: &x {b: c}\nlabels: *x\nprovinces: !!str abc\n",
        "empty": "", "scalar": "42\n", "list": "- a\n- b\n", "duration": "1h30m", "size": "10MB",
    }
    for name, text in configs.items():
        write("fuzz_config", name, text)
    ca = "a" * 64
    claims = base64.urlsafe_b64encode(json.dumps({"exp": 1800000000, "id": "abc",
                                                  "province": "north"}).encode()).rstrip(b"=")
    mac = base64.urlsafe_b64encode(b"\x01" * 32).rstrip(b"=")
    write("fuzz_join_token", "token", ca.encode() + b"." + claims + b"." + mac)
    write("fuzz_join_token", "short", "abc.def.ghi")
    write("fuzz_join_token", "claims", "north")
    for i, line in enumerate(["2024-01-02T03:04:05.123456789Z stdout F hello world",
                              "2024-01-02T03:04:05Z stderr P part",
                              "2024-01-02T03:04:05.1+02:00 stdout F:x y",
                              "2024-01-02T03:04:05.000000001Z stdout F",
                              "2024-02-30T24:00:60-23:59 stdout F x"]):
        write("fuzz_cri_log", f"seed{i}", line)
    key = subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                          "ec_paramgen_curve:P-256"], stdout=subprocess.PIPE, check=True).stdout
    csr = subprocess.run(["openssl", "req", "-new", "-key", "/dev/stdin", "-subj", "/CN=edge-1"],
                         input=key, stdout=subprocess.PIPE, check=True).stdout
    write("fuzz_csr", "csr.pem", csr)
    write("fuzz_csr", "not_pem", "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"
                                 "-----END CERTIFICATE REQUEST-----\n")


def varint(v):
    out = b""
    while True:
        b = v & 0x7F
        v >>= 7
        out += bytes([b | (0x80 if v else 0)])
        if not v:
            return out


def pb_field(number, data):
    data = data if isinstance(data, bytes) else data.encode()
    return varint(number << 3 | 2) + varint(len(data)) + data


def pb_varint(number, v):
    return varint(number << 3) + varint(v)


def protobuf_bodies():
    """kubectl 1.33's create configmap|secret|namespace bodies; the first byte picks the kind
    (0 ConfigMap, 1 Secret, 2 Namespace, 3 Pod: refused)."""
    def envelope(kind, raw):
        return b"k8s\0" + pb_field(1, pb_field(1, "v1") + pb_field(2, kind)) + pb_field(2, raw) + \
            pb_field(3, "") + pb_field(4, "")

    def meta(name, extra=b""):
        return pb_field(1, name) + b"".join(pb_field(n, "") for n in range(2, 7)) + \
            pb_varint(7, 0) + pb_field(8, "") + extra

    def entry(k, v):
        return pb_field(1, k) + pb_field(2, v)
    labels = pb_field(11, entry("app", "web")) + pb_field(12, entry("note", "x"))
    cm = pb_field(1, meta("c", labels)) + pb_field(2, entry("a", "b")) + \
        pb_field(3, entry("bin", b"\x7f\x00E"))
    write("fuzz_protobuf_body", "configmap", b"\x00" + envelope("ConfigMap", cm))
    secret = pb_field(1, meta("s")) + pb_field(2, entry("a", "b")) + pb_field(3, "Opaque") + \
        pb_field(4, entry("plain", "text")) + pb_varint(5, 0)
    write("fuzz_protobuf_body", "secret", b"\x01" + envelope("Secret", secret))
    owner = pb_field(13, pb_field(1, "v1") + pb_field(2, "ConfigMap") + pb_field(3, "c") +
                     pb_field(4, "uid-1") + pb_varint(6, 1))
    ns = pb_field(1, meta("ns", owner + pb_field(14, "kubernetes"))) + pb_field(2, pb_field(1, "x"))
    write("fuzz_protobuf_body", "namespace", b"\x02" + envelope("Namespace", ns))
    write("fuzz_protobuf_body", "pod", b"\x03" + envelope("Pod", pb_field(1, meta("p"))))


if __name__ == "__main__":
    edge()
    cloud()
    text_seeds()
    protobuf_bodies()
    print("seeds written under", os.path.join(HERE, "corpus"), file=sys.stderr)
