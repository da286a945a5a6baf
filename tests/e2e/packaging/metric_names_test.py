#!/usr/bin/env python3
"""Every metric the Prometheus rules and the Grafana dashboards use exists on a live cloudcore.

Starts real cloudcores (made by `gantryadm init`, on free loopback ports): one on the embedded
RocksDB store and one on a real etcd (Debian's etcd-server), so that the metrics of both store
backends are seen. Creates a node so that the per-province series exist, scrapes /metrics, and
checks each name used in deploy/prometheus/*.yaml and deploy/grafana/*.json:
  - a `gantry_*` name must be exported (a histogram's _bucket/_sum/_count by its family);
  - a recording rule's name (with ':') must be recorded by the rules;
  - `up` is Prometheus' own; any other name is an error.
Also fails when an expression uses no metric at all, or when a rule file or dashboard is empty.

usage: metric_names_test.py --cloudcore BIN --gantryadm BIN --source DIR
"""
import argparse
import glob
import json
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

PROMQL_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and",
    "or", "unless", "inf", "nan", "atan2",
    # aggregation operators, which may stand before their `by (...)` instead of a parenthesis
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk",
    "topk", "quantile",
}
PROMETHEUS_OWN = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def eventually(condition, timeout=30.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return False


class Cloudcore:
    """A cloudcore made by gantryadm init in `workdir`, listening on free ports."""

    def __init__(self, args, workdir, store_yaml=""):
        self.dir = workdir
        subprocess.run([args.gantryadm, "init", "--data-dir", workdir, "--advertise-address",
                        "127.0.0.1"], check=True, stdout=subprocess.DEVNULL)
        config_path = os.path.join(workdir, "cloudcore.yaml")
        with open(config_path) as f:
            config = f.read()
        self.api_port = free_port()
        for default, port in (("10000", free_port()), ("10002", free_port()),
                              ("10443", self.api_port)):
            config = config.replace('"0.0.0.0:%s"' % default, '"127.0.0.1:%d"' % port)
        config += store_yaml
        with open(config_path, "w") as f:
            f.write(config)
        with open(os.path.join(workdir, "admin.kubeconfig")) as f:
            self.token = re.search(r"token: (\S+)", f.read()).group(1)
        self.tls = ssl.create_default_context(cafile=os.path.join(workdir, "pki", "ca.crt"))
        self.log = open(os.path.join(workdir, "cloudcore.log"), "w")
        self.process = subprocess.Popen([args.cloudcore, "--config", config_path],
                                        stdout=self.log, stderr=subprocess.STDOUT)
        if not eventually(lambda: self.process.poll() is not None or self.ready()):
            raise RuntimeError("cloudcore did not become ready:\n" + self.read_log())
        if self.process.poll() is not None:
            raise RuntimeError("cloudcore exited:\n" + self.read_log())

    def read_log(self):
        with open(os.path.join(self.dir, "cloudcore.log")) as f:
            return f.read()[-4000:]

    def request(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request("https://127.0.0.1:%d%s" % (self.api_port, path), data=data,
                                     method=method)
        req.add_header("Authorization", "Bearer " + self.token)
        if data:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, context=self.tls, timeout=10) as r:
            return r.status, r.read().decode()

    def ready(self):
        try:
            return self.request("GET", "/readyz")[0] == 200
        except OSError:
            return False

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


class Etcd:
    def __init__(self, workdir):
        self.client = "http://127.0.0.1:%d" % free_port()
        peer = "http://127.0.0.1:%d" % free_port()
        self.log = open(os.path.join(workdir, "etcd.log"), "w")
        self.process = subprocess.Popen(
            ["etcd", "--name=metrics-test", "--data-dir=" + os.path.join(workdir, "etcd"),
             "--listen-client-urls=" + self.client, "--advertise-client-urls=" + self.client,
             "--listen-peer-urls=" + peer, "--initial-advertise-peer-urls=" + peer,
             "--initial-cluster=metrics-test=" + peer, "--logger=zap", "--log-outputs=stderr",
             "--log-level=warn"], stdout=self.log, stderr=subprocess.STDOUT)

        def healthy():
            try:
                with urllib.request.urlopen(self.client + "/health", timeout=2) as r:
                    return b'"health":"true"' in r.read()
            except OSError:
                return False
        if not eventually(lambda: self.process.poll() is not None or healthy()) or \
                self.process.poll() is not None:
            raise RuntimeError("etcd did not start (see %s/etcd.log)" % workdir)

    def stop(self):
        self.process.kill()
        self.process.wait()
        self.log.close()


def exported_names(text):
    """Sample names a scrape can be queried by: families and their histogram/summary series."""
    names = set()
    for line in text.splitlines():
        m = re.match(r"# TYPE (\S+) (\S+)", line)
        if m:
            name, kind = m.groups()
            names.add(name)
            if kind == "histogram":
                names.update({name + "_bucket", name + "_sum", name + "_count"})
            if kind == "summary":
                names.update({name + "_sum", name + "_count"})
        elif line and not line.startswith("#"):
            names.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
    return names


def metric_names(expr):
    """The metric names a PromQL expression reads (label names, functions, keywords left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", "{}", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "[]", text)  # ranges and subqueries
    # Label lists of grouping clauses and vector matching.
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", text)
    # Grafana's label_values(metric, label): only the metric.
    text = re.sub(r"\blabel_values\s*\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,[^)]*\)", r"\1", text)
    names = set()
    for m in re.finditer(r"(?<![a-zA-Z0-9_:.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", text):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in PROMQL_KEYWORDS:
            continue
        # Numbers with exponents and durations ("5m") never start with a letter here.
        names.add(word)
    return names


def rule_expressions(path):
    with open(path) as f:
        doc = yaml.safe_load(f)
    exprs, records = [], set()
    for group in doc.get("groups", []):
        for rule in group.get("rules", []):
            exprs.append(("%s: %s" % (os.path.basename(path), rule.get("alert") or
                                      rule.get("record")), rule["expr"]))
            if "record" in rule:
                records.add(rule["record"])
    return exprs, records


def dashboard_expressions(path):
    with open(path) as f:
        doc = json.load(f)
    out = []

    def walk(node, where):
        if isinstance(node, dict):
            title = node.get("title", where)
            if isinstance(node.get("expr"), str):
                out.append(("%s: %s" % (os.path.basename(path), title), node["expr"]))
            query = node.get("query")
            if node.get("type") == "query":  # a templating variable
                q = query.get("query") if isinstance(query, dict) else query
                out.append(("%s: variable %s" % (os.path.basename(path), node.get("name")), q))
            for v in node.values():
                walk(v, title)
        elif isinstance(node, list):
            for v in node:
                walk(v, where)
    walk(doc, "")
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cloudcore", required=True)
    parser.add_argument("--gantryadm", required=True)
    parser.add_argument("--source", required=True)
    args = parser.parse_args()

    rule_files = sorted(glob.glob(os.path.join(args.source, "deploy/prometheus/*.yaml")))
    dashboards = sorted(glob.glob(os.path.join(args.source, "deploy/grafana/*.json")))
    if not rule_files or not dashboards:
        print("FAIL: no rule files or no dashboards under deploy/")
        return 1
    exprs, records = [], set()
    for path in rule_files:
        e, r = rule_expressions(path)
        if not e:
            print("FAIL: %s has no rules" % path)
            return 1
        exprs += e
        records |= r
    for path in dashboards:
        e = dashboard_expressions(path)
        if not e:
            print("FAIL: %s has no queries" % path)
            return 1
        exprs += e

    scraped = set()
    work = tempfile.mkdtemp(prefix="gantry-metric-names-")
    started = time.monotonic()
    try:
        etcd = Etcd(work)
        try:
            for name, store_yaml in (
                    ("rocksdb", ""),
                    ("etcd", "store:\n  backend: etcd\n  etcd:\n    endpoints: [\"%s\"]\n"
                     % etcd.client)):
                core = Cloudcore(args, os.path.join(work, name), store_yaml)
                try:
                    node = {"apiVersion": "v1", "kind": "Node", "metadata": {
                        "name": "metrics-" + name,
                        "labels": {"topology.gantry.io/province": "zhejiang"}}}
                    core.request("POST", "/api/v1/nodes", node)
                    core.request("GET", "/api/v1/nodes")
                    status, text = core.request("GET", "/metrics")
                    assert status == 200
                    # The new node, the API call that made it and the store txns are counted.
                    for sample in (
                            'gantry_province_nodes{province="zhejiang",state="unknown"} 1',
                            'gantry_api_request_duration_seconds_count{verb="CREATE",'
                            'resource="nodes",code="201"} 1',
                            'gantry_api_request_duration_seconds_count{verb="LIST",'
                            'resource="nodes",code="200"} 1'):
                        if sample not in text:
                            raise AssertionError("%s: no `%s` in /metrics:\n%s" %
                                                 (name, sample, text))
                    txns = re.search(r"^gantry_store_txn_duration_seconds_count (\d+)$", text,
                                     re.M)
                    if not txns or int(txns.group(1)) < 1:
                        raise AssertionError("%s: no store txn observed" % name)
                    names = exported_names(text)
                    print("%s: %d series names on /metrics" % (name, len(names)))
                    scraped |= names
                finally:
                    core.stop()
        finally:
            etcd.stop()
    except Exception:
        print("kept %s for inspection" % work)
        raise
    shutil.rmtree(work, ignore_errors=True)

    failures, used = [], set()
    for where, expr in exprs:
        names = metric_names(expr)
        if not names:
            failures.append("%s: uses no metric: %s" % (where, expr.strip()))
        for n in sorted(names):
            used.add(n)
            if ":" in n:
                if n not in records:
                    failures.append("%s: recording rule %s is not defined" % (where, n))
            elif n.startswith("gantry_"):
                if n not in scraped:
                    failures.append("%s: %s is not exported by cloudcore" % (where, n))
            elif n not in PROMETHEUS_OWN:
                failures.append("%s: %s is neither cloudcore's nor Prometheus' own" % (where, n))
    print("%d expressions, %d distinct names checked in %.1f s" %
          (len(exprs), len(used), time.monotonic() - started))
    for f in failures:
        print("FAIL: " + f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
