#!/usr/bin/env python3
"""charts/cloudcore rendered with Helm's engine and checked, one values profile at a time.

Debian has no helm binary, so tools/chartrender (Go's text/template + sprig, as Helm) is built
here, offline, from Debian's Go packages. For each profile the rendered objects are parsed and
checked (kinds, names, selectors against pod labels, ports, probes, volumes, the store and the
replicas); cloudcore.yaml from the ConfigMap must use only options deploy/cloudcore.yaml
documents, and for the embedded-store profile a real cloudcore must start on it. Values that
cannot work must fail to render with a message naming the value.

usage: chart_test.py --source DIR --build DIR --cloudcore BIN --gantryadm BIN
"""
import argparse
import base64
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

NAMESPACE = "gantry-system"
RELEASE = "gantry"


def build_renderer(source, build):
    """go build of tools/chartrender in GOPATH mode against /usr/share/gocode (no network)."""
    root = os.path.join(build, "chartrender")
    gopath = os.path.join(root, "gopath")
    src = os.path.join(gopath, "src")
    os.makedirs(os.path.join(src, "github.com/Masterminds/sprig"), exist_ok=True)
    os.makedirs(os.path.join(src, "github.com/Masterminds/semver"), exist_ok=True)
    # Debian installs the v3 modules without their /v3 import-path suffix.
    links = {
        "chartrender": os.path.abspath(os.path.join(source, "tools/chartrender")),
        "github.com/Masterminds/sprig/v3": "/usr/share/gocode/src/github.com/Masterminds/sprig",
        "github.com/Masterminds/semver/v3": "/usr/share/gocode/src/github.com/Masterminds/semver",
    }
    for link, target in links.items():
        path = os.path.join(src, link)
        if os.path.islink(path):
            os.unlink(path)
        os.symlink(target, path)
    binary = os.path.join(root, "chartrender")
    env = dict(os.environ, GO111MODULE="off", GOPATH=gopath + ":/usr/share/gocode",
               GOCACHE=os.path.join(root, "gocache"), GOPROXY="off", GOFLAGS="",
               CGO_ENABLED="0")
    subprocess.run(["go", "build", "-o", binary, "chartrender"], env=env, check=True)
    return binary


class Renderer:
    def __init__(self, binary, chart, scratch):
        self.binary, self.chart, self.scratch = binary, chart, scratch
        self.count = 0

    def run(self, values):
        self.count += 1
        path = os.path.join(self.scratch, "values-%d.yaml" % self.count)
        with open(path, "w") as f:
            yaml.safe_dump(values, f)
        return subprocess.run([self.binary, "-f", path, "-name", RELEASE, "-namespace",
                               NAMESPACE, self.chart], capture_output=True, text=True)

    def render(self, values):
        r = self.run(values)
        if r.returncode != 0:
            raise AssertionError("render failed: " + r.stderr)
        docs = [d for d in yaml.safe_load_all(r.stdout) if d]
        return docs, r.stdout

    def refuse(self, values, message):
        r = self.run(values)
        if r.returncode == 0:
            raise AssertionError("rendered values that cannot work: %s" % values)
        if message not in r.stderr:
            raise AssertionError("error %r does not say %r" % (r.stderr, message))


def key_paths(node, prefix=""):
    out = set()
    if isinstance(node, dict):
        for k, v in node.items():
            p = prefix + "." + k if prefix else k
            out.add(p)
            out |= key_paths(v, p)
    return out


def one(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind and (name is None or
                                                       d["metadata"]["name"] == name)]
    assert len(found) == 1, "%d %s %s, want 1" % (len(found), kind, name or "")
    return found[0]


def check_common(docs, documented_keys, join=True):
    """What holds for every profile; returns the StatefulSet and the parsed cloudcore.yaml."""
    for d in docs:
        assert d.get("apiVersion") and d.get("kind"), d
        meta = d["metadata"]
        assert len(meta["name"]) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?",
                                                        meta["name"]), meta["name"]
        assert meta["namespace"] == NAMESPACE, meta
        assert meta["labels"]["app.kubernetes.io/instance"] == RELEASE, meta
    sts = one(docs, "StatefulSet")
    pod = sts["spec"]["template"]
    pod_labels = pod["metadata"]["labels"]
    selector = sts["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items(), (selector, pod_labels)
    assert sts["spec"]["serviceName"] == one(docs, "Service", RELEASE + "-cloudcore-headless")[
        "metadata"]["name"]
    assert "checksum/config" in pod["metadata"]["annotations"]

    (container,) = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports.get("tunnel") == 10000 and ports.get("api") == 10443, ports
    for probe, path in (("startupProbe", "/readyz"), ("readinessProbe", "/readyz"),
                        ("livenessProbe", "/livez")):
        get = container[probe]["httpGet"]
        assert get == {"path": path, "port": "api", "scheme": "HTTPS"}, (probe, get)
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
    assert container["args"] == ["--config", "/etc/gantry/config/cloudcore.yaml"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True

    # Every mount has a volume (or a claim template); Secrets and the ConfigMap are the chart's
    # or the ones the values name.
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    claims = {c["metadata"]["name"] for c in sts["spec"].get("volumeClaimTemplates", [])}
    for m in container["volumeMounts"]:
        assert m["name"] in volumes or m["name"] in claims, m
    assert volumes["config"]["configMap"]["name"] == one(docs, "ConfigMap")["metadata"]["name"]
    pki_keys = {i["key"] for i in volumes["pki"]["secret"]["items"]}
    assert pki_keys == {"ca.crt", "ca.key", "cloudcore.crt", "cloudcore.key", "token-signing.key"}

    # Services: select the pods, target named container ports.
    services = [d for d in docs if d["kind"] == "Service"]
    by_component = {}
    for s in services:
        assert s["spec"]["selector"].items() <= pod_labels.items(), s["metadata"]["name"]
        for p in s["spec"]["ports"]:
            assert p["targetPort"] in ports, (s["metadata"]["name"], p)
        component = s["metadata"]["labels"].get("app.kubernetes.io/component")
        if component:
            by_component[component] = s
    want = {"tunnel", "join", "api"} if join else {"tunnel", "api"}
    assert want == set(by_component), by_component.keys()
    assert by_component["tunnel"]["spec"]["ports"][0]["port"] == 10000
    assert (ports.get("join") == 10002) == join, ports
    if join:
        assert by_component["join"]["spec"]["ports"][0]["port"] == 10002
    assert by_component["api"]["spec"]["ports"][0]["port"] == 10443

    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert ("maxUnavailable" in pdb["spec"]) != ("minAvailable" in pdb["spec"])

    config = yaml.safe_load(one(docs, "ConfigMap")["data"]["cloudcore.yaml"])
    unknown = key_paths(config) - documented_keys
    assert not unknown, "cloudcore.yaml options deploy/cloudcore.yaml does not know: %s" % unknown
    assert config["api"]["anonymous_health"] is True  # the probes carry no token
    return sts, config


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cloudcore_on(config, args, scratch):
    """Starts cloudcore on the chart's cloudcore.yaml, its paths moved into a gantryadm init
    directory and its listeners onto free loopback ports; returns once /readyz answers."""
    pki = os.path.join(scratch, "init")
    subprocess.run([args.gantryadm, "init", "--data-dir", pki, "--advertise-address",
                    "127.0.0.1"], check=True, stdout=subprocess.DEVNULL)
    text = yaml.safe_dump(config)
    text = text.replace("/etc/gantry/pki/", pki + "/pki/")
    text = text.replace("/etc/gantry/tokens/tokens.csv", pki + "/tokens.csv")
    text = text.replace("/var/lib/gantry/cloudcore", os.path.join(scratch, "data"))
    api_port = free_port()
    for default, port in (("10000", free_port()), ("10002", free_port()), ("10443", api_port)):
        text = text.replace("0.0.0.0:" + default, "127.0.0.1:%d" % port)
    assert "/etc/gantry" not in text, text
    path = os.path.join(scratch, "cloudcore.yaml")
    with open(path, "w") as f:
        f.write(text)
    log_path = os.path.join(scratch, "cloudcore.log")
    tls = ssl.create_default_context(cafile=os.path.join(pki, "pki", "ca.crt"))
    with open(log_path, "w") as log:
        p = subprocess.Popen([args.cloudcore, "--config", path], stdout=log,
                             stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and p.poll() is None:
            try:
                with urllib.request.urlopen("https://127.0.0.1:%d/readyz" % api_port,
                                            context=tls, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        with open(log_path) as f:
            raise AssertionError("cloudcore did not start on the chart's config:\n" + f.read())
    finally:
        p.terminate()
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", required=True)
    parser.add_argument("--build", required=True)
    parser.add_argument("--cloudcore", required=True)
    parser.add_argument("--gantryadm", required=True)
    args = parser.parse_args()
    started = time.monotonic()
    binary = build_renderer(args.source, args.build)
    print("chartrender built in %.1f s" % (time.monotonic() - started))
    with open(os.path.join(args.source, "deploy/cloudcore.yaml")) as f:
        text = f.read()
    documented = key_paths(yaml.safe_load(text))
    # The ha: section is there commented out (it needs etcd): its options count as documented.
    block = text[text.index("\n# ha:\n") + 1:].split("\n\n")[0]
    documented |= key_paths(yaml.safe_load("\n".join(line[2:] for line in block.splitlines())))
    scratch = tempfile.mkdtemp(prefix="gantry-chart-")
    r = Renderer(binary, os.path.join(args.source, "charts/cloudcore"), scratch)
    secrets = {"pki": {"existingSecret": "cloudcore-pki"},
               "tokens": {"existingSecret": "cloudcore-tokens"}}
    checked = 0

    # 1. The embedded store: one replica, RocksDB on a PersistentVolume.
    docs, _ = r.render(secrets)
    sts, config = check_common(docs, documented)
    assert sts["spec"]["replicas"] == 1
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert config["store"]["backend"] == "rocksdb" and "etcd" not in config["store"]
    assert "ha" not in config  # one replica on its own store
    assert one(docs, "PodDisruptionBudget")["spec"] == {
        "maxUnavailable": 1, "selector": one(docs, "PodDisruptionBudget")["spec"]["selector"]}
    assert {d["kind"] for d in docs} == {"ConfigMap", "StatefulSet", "Service",
                                         "PodDisruptionBudget", "ServiceAccount"}
    assert not [d for d in docs if d["kind"] == "Secret"]
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert volumes["pki"]["secret"]["secretName"] == "cloudcore-pki"
    assert volumes["tokens"]["secret"]["secretName"] == "cloudcore-tokens"
    assert "affinity" not in sts["spec"]["template"]["spec"]
    api = one(docs, "Service", RELEASE + "-cloudcore-api")
    assert api["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert api["spec"]["type"] == "ClusterIP"
    assert one(docs, "Service", RELEASE + "-cloudcore-tunnel")["spec"]["type"] == "LoadBalancer"
    run_cloudcore_on(config, args, os.path.join(scratch, "rocksdb"))
    checked += 1

    # 2. Three replicas on etcd with TLS, NodePorts, a ServiceMonitor, a custom image.
    docs, _ = r.render(dict(secrets, replicas=3, image={"repository": "reg.local/cloudcore",
                                                        "tag": "1.2.3"},
                            store={"backend": "etcd", "etcd": {
                                "endpoints": ["https://10.0.0.1:2379", "https://10.0.0.2:2379"],
                                "tls": {"secret": "etcd-client", "serverName": "etcd.local"}}},
                            service={"tunnel": {"type": "NodePort", "nodePort": 30000,
                                                "externalTrafficPolicy": "Local"}},
                            metrics={"serviceMonitor": {"enabled": True,
                                                        "labels": {"release": "prom"}}},
                            podDisruptionBudget={"maxUnavailable": None, "minAvailable": 2}))
    sts, config = check_common(docs, documented)
    assert sts["spec"]["replicas"] == 3
    assert "volumeClaimTemplates" not in sts["spec"]
    pod = sts["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "reg.local/cloudcore:1.2.3"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["data"] == {"name": "data", "emptyDir": {}}
    assert volumes["etcd-tls"]["secret"]["secretName"] == "etcd-client"
    assert pod["affinity"]["podAntiAffinity"]
    assert config["store"]["backend"] == "etcd"
    # ha: the replica link on every pod and the headless Service, advertised by the pod's name.
    assert config["ha"] == {"lease_ttl": "15s", "link_listen": "0.0.0.0:10004",
                            "link_advertise": "{name}.%s-cloudcore-headless.%s.svc:10004"
                                              % (RELEASE, NAMESPACE)}
    ports = {p["name"]: p for p in pod["containers"][0]["ports"]}
    assert ports["link"]["containerPort"] == 10004
    headless = one(docs, "Service", RELEASE + "-cloudcore-headless")["spec"]
    assert {"name": "link", "port": 10004, "targetPort": "link"} in headless["ports"]
    assert config["store"]["etcd"]["endpoints"] == ["https://10.0.0.1:2379",
                                                    "https://10.0.0.2:2379"]
    assert config["store"]["etcd"]["tls"] == {"ca": "/etc/gantry/etcd/ca.crt",
                                              "cert": "/etc/gantry/etcd/tls.crt",
                                              "key": "/etc/gantry/etcd/tls.key",
                                              "server_name": "etcd.local"}
    tunnel = one(docs, "Service", RELEASE + "-cloudcore-tunnel")["spec"]
    assert tunnel["type"] == "NodePort" and tunnel["ports"][0]["nodePort"] == 30000
    assert tunnel["externalTrafficPolicy"] == "Local"
    assert one(docs, "PodDisruptionBudget")["spec"]["minAvailable"] == 2
    monitor = one(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["endpoints"][0]["port"] == "api"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= \
        one(docs, "Service", RELEASE + "-cloudcore-api")["metadata"]["labels"].items()
    checked += 1

    # 3. The PKI and the tokens given inline: the chart makes the Secrets; no join endpoint.
    pem = "-----BEGIN X-----\nAAAA\n-----END X-----\n"
    docs, _ = r.render({"pki": {"create": True, "files": {
        "caCrt": pem, "caKey": pem, "cloudcoreCrt": pem, "cloudcoreKey": pem,
        "tokenSigningKey": "ab" * 32}}, "tokens": {"create": True, "csv": "t,admin,1,\"a\"\n"},
        "config": {"join": {"enabled": False}}})
    check_common(docs, documented, join=False)
    secrets_made = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    assert set(secrets_made) == {RELEASE + "-cloudcore-pki", RELEASE + "-cloudcore-tokens"}
    assert base64.b64decode(secrets_made[RELEASE + "-cloudcore-pki"]["data"]["ca.crt"]).decode() \
        == pem
    sts = one(docs, "StatefulSet")
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert volumes["pki"]["secret"]["secretName"] == RELEASE + "-cloudcore-pki"
    assert not [s for s in docs if s["kind"] == "Service" and
                s["metadata"]["name"].endswith("-join")]
    config = yaml.safe_load(one(docs, "ConfigMap")["data"]["cloudcore.yaml"])
    assert "join" not in config
    checked += 1

    # 4. Values that cannot work.
    r.refuse(dict(secrets, replicas=3), "needs store.backend etcd")
    r.refuse(dict(secrets, store={"backend": "mysql"}), "store.backend must be rocksdb or etcd")
    r.refuse(dict(secrets, store={"backend": "etcd"}), "store.etcd.endpoints is required")
    r.refuse({"tokens": {"existingSecret": "t"}}, "pki.existingSecret is required")
    r.refuse({"pki": {"existingSecret": "p"}}, "tokens.existingSecret is required")
    r.refuse(dict(secrets, podDisruptionBudget={"minAvailable": 1}), "not both")
    r.refuse({"pki": {"create": True}, "tokens": {"existingSecret": "t"}},
             "pki.files.caCrt is required")
    checked += 1

    shutil.rmtree(scratch, ignore_errors=True)
    print("%d profiles checked in %.1f s" % (checked, time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
