"""Loading a big inventory file: `kubectl get ... -A -o json` of 100,000 pods (~500 MB).

    python benchmarks/bench_inventory.py [--pods 100000] [--keep FILE [--reuse]] [--yaml]

It writes one List the way kubectl prints it (4-space indent, sorted keys): namespaces,
nodes, Deployments with their ReplicaSets (10 pods each) and a ClusterIP Service each, and
the pods, each ~5-8 KB as kubectl prints a real one (labels, annotations, owner,
containers with env, resources, probes and volume mounts, volumes, tolerations, status
with conditions and container statuses; no last-applied annotation: a ReplicaSet made
them). Then, each in a child process of its own (wall
time and peak RSS, VmHWM):

- **json.loads only**: the whole file into Python objects, nothing else (what holding the
  document costs);
- **whole document (before)**: the loader as it was, the document parsed whole by
  `json.loads` and every object kept as it was read until the model is built
  (`read_documents` with streaming off);
- **load_inventory_files (after)**: `discover.inventory.files.load_inventory_files`, the
  loader `--inventory` uses;
- with --yaml, the same inventory as YAML through `load_inventory_files`.

It checks that both loaders built the same inventory and prints the before/after ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MB = 1024 * 1024
PODS_PER_DEPLOYMENT = 10
NODES = 500
NAMESPACES = 100
CREATED = "2026-01-01T00:00:00Z"
# kubectl get omits managedFields since 1.21 (--show-managed-fields=false); --managed-fields
# puts them in, as an API client's list has them.
MANAGED_FIELDS = False


def _meta(name: str, namespace: str | None, uid: str, labels: dict[str, str],
          extra: dict[str, Any] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": uid, "creationTimestamp": CREATED,
                            "resourceVersion": str(random.randrange(10**8)), "labels": labels}
    if namespace:
        meta["namespace"] = namespace
    meta.update(extra or {})
    return meta


def _managed_fields(manager: str) -> list[dict[str, Any]]:
    return [{"apiVersion": "v1", "fieldsType": "FieldsV1", "manager": manager,
             "operation": "Update", "time": CREATED, "fieldsV1": {
                 "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                 "f:spec": {"f:containers": {'k:{"name":"app"}': {".": {}, "f:image": {}}}}}},
            {"apiVersion": "v1", "fieldsType": "FieldsV1", "manager": "kubelet",
             "operation": "Update", "subresource": "status", "time": CREATED, "fieldsV1": {
                 "f:status": {"f:conditions": {'k:{"type":"Ready"}': {".": {}, "f:status": {}}},
                              "f:containerStatuses": {}, "f:hostIP": {}, "f:phase": {},
                              "f:podIP": {}, "f:podIPs": {".": {}}}}}]


def make_pod(index: int, deployment: int, namespace: str, app: str, rs_uid: str) -> dict[str, Any]:
    name = f"{app}-7d4f8b9c6-{index:06x}"
    node = f"node-{index % NODES:04d}"
    labels = {"app": app, "pod-template-hash": "7d4f8b9c6", "tier": "backend"}
    ip = f"10.{64 + index // 65536}.{index // 256 % 256}.{index % 256}"
    container = {
        "name": "app", "image": f"registry.example.com/{app}:1.{deployment % 30}.0",
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"},
                  {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}],
        "env": [{"name": n, "value": f"value-{n.lower()}-{deployment}"} for n in
                ("LOG_LEVEL", "DB_HOST")],
        "resources": {"limits": {"cpu": "500m", "memory": "512Mi"},
                      "requests": {"cpu": "100m", "memory": "128Mi"}},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
                          "periodSeconds": 10, "timeoutSeconds": 1, "failureThreshold": 3,
                          "successThreshold": 1},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080, "scheme": "HTTP"},
                           "periodSeconds": 5, "timeoutSeconds": 1, "failureThreshold": 3,
                           "successThreshold": 1},
        "volumeMounts": [{"name": "config", "mountPath": "/etc/app"},
                         {"name": "kube-api-access-x7k2p", "readOnly": True,
                          "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": _meta(name, namespace, f"pod-{index:012d}", labels, {
            "generateName": f"{app}-7d4f8b9c6-",
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9090"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                 "name": f"{app}-7d4f8b9c6", "uid": rs_uid,
                                 "controller": True, "blockOwnerDeletion": True}],
            **({"managedFields": _managed_fields("kube-controller-manager")}
               if MANAGED_FIELDS else {})}),
        "spec": {
            "containers": [container],
            "dnsPolicy": "ClusterFirst", "enableServiceLinks": True, "nodeName": node,
            "preemptionPolicy": "PreemptLowerPriority", "priority": 0,
            "restartPolicy": "Always", "schedulerName": "default-scheduler",
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65532},
            "serviceAccount": "default", "serviceAccountName": "default",
            "terminationGracePeriodSeconds": 30,
            "tolerations": [{"effect": "NoExecute", "key": f"node.kubernetes.io/{t}",
                             "operator": "Exists", "tolerationSeconds": 300}
                            for t in ("not-ready", "unreachable")],
            "volumes": [{"name": "config", "configMap": {"name": f"{app}-config",
                                                         "defaultMode": 420}},
                        {"name": "kube-api-access-x7k2p", "projected": {
                            "defaultMode": 420, "sources": [
                                {"serviceAccountToken": {"expirationSeconds": 3607,
                                                         "path": "token"}},
                                {"configMap": {"name": "kube-root-ca.crt", "items": [
                                    {"key": "ca.crt", "path": "ca.crt"}]}},
                                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
                                    "apiVersion": "v1",
                                    "fieldPath": "metadata.namespace"}}]}}]}}],
        },
        "status": {
            "phase": "Running", "hostIP": f"192.168.{index % NODES // 256}.{index % 256}",
            "podIP": ip, "podIPs": [{"ip": ip}], "qosClass": "Burstable", "startTime": CREATED,
            "conditions": [{"type": t, "status": "True", "lastProbeTime": None,
                            "lastTransitionTime": CREATED}
                           for t in ("Initialized", "Ready", "ContainersReady",
                                     "PodScheduled")],
            "containerStatuses": [{
                "name": "app", "ready": True, "restartCount": 0, "started": True,
                "image": container["image"],
                "imageID": f"registry.example.com/{app}@sha256:{index:064x}",
                "containerID": f"containerd://{index:064x}",
                "lastState": {}, "state": {"running": {"startedAt": CREATED}}}],
        },
    }


def make_inventory(pods: int, seed: int = 11) -> dict[str, Any]:
    random.seed(seed)
    items: list[dict[str, Any]] = []
    for n in range(NAMESPACES):
        items.append({"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(
            f"ns-{n:03d}", None, f"ns-{n}", {"kubernetes.io/metadata.name": f"ns-{n:03d}"})})
    for n in range(NODES):
        items.append({"apiVersion": "v1", "kind": "Node", "metadata": _meta(
            f"node-{n:04d}", None, f"node-{n}", {"kubernetes.io/hostname": f"node-{n:04d}"}),
            "spec": {"podCIDR": f"10.{64 + n // 256}.{n % 256}.0/24"},
            "status": {"addresses": [{"type": "InternalIP",
                                      "address": f"192.168.{n // 256}.{n % 256}"}]}})
    for d in range((pods + PODS_PER_DEPLOYMENT - 1) // PODS_PER_DEPLOYMENT):
        namespace, app = f"ns-{d % NAMESPACES:03d}", f"app-{d:05d}"
        labels = {"app": app, "tier": "backend"}
        template = {"metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "app", "image": f"{app}:1",
                                             "ports": [{"containerPort": 8080}]}]}}
        items.append({"apiVersion": "apps/v1", "kind": "Deployment",
                      "metadata": _meta(app, namespace, f"dep-{d}", labels),
                      "spec": {"replicas": PODS_PER_DEPLOYMENT,
                               "selector": {"matchLabels": labels}, "template": template}})
        rs_uid = f"rs-{d}"
        items.append({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": _meta(
            f"{app}-7d4f8b9c6", namespace, rs_uid, {**labels, "pod-template-hash": "7d4f8b9c6"},
            {"ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": app,
                                  "uid": f"dep-{d}", "controller": True}]}),
            "spec": {"replicas": PODS_PER_DEPLOYMENT, "selector": {"matchLabels": labels},
                     "template": template}})
        items.append({"apiVersion": "v1", "kind": "Service",
                      "metadata": _meta(app, namespace, f"svc-{d}", labels),
                      "spec": {"type": "ClusterIP", "selector": labels,
                               "clusterIP": f"10.96.{d // 256}.{d % 256}",
                               "clusterIPs": [f"10.96.{d // 256}.{d % 256}"],
                               "ports": [{"name": "http", "port": 80, "protocol": "TCP",
                                          "targetPort": "http"}]}})
        for p in range(PODS_PER_DEPLOYMENT):
            index = d * PODS_PER_DEPLOYMENT + p
            if index < pods:
                items.append(make_pod(index, d, namespace, app, rs_uid))
    return {"apiVersion": "v1", "items": items, "kind": "List",
            "metadata": {"resourceVersion": ""}}


def peak_rss_kb() -> int:
    """This process's peak RSS since its exec (VmHWM; ru_maxrss keeps the parent's from
    before the exec, the generator's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


# -- the modes, each in a child -----------------------------------------------------------


def mode_json_loads(path: Path) -> dict[str, Any]:
    document = json.loads(path.read_text())
    return {"objects": len(document["items"])}


def mode_before(path: Path) -> dict[str, Any]:
    from discover.inventory import files

    files.STREAM_JSON_FROM = None  # the whole document, every object as read
    return _facts(files.load_inventory_files([path]))


def mode_after(path: Path) -> dict[str, Any]:
    from discover.inventory.files import load_inventory_files

    return _facts(load_inventory_files([path]))


def _facts(inventory: Any) -> dict[str, Any]:
    import hashlib

    digest = hashlib.sha256(repr((inventory.pods, inventory.workloads, inventory.services,
                                  inventory.nodes, inventory.namespaces)).encode())
    return {"objects": len(inventory.pods) + len(inventory.services) + len(inventory.nodes),
            "pods": len(inventory.pods), "sha256": digest.hexdigest(),
            "notes": len(inventory.notes)}


MODES = {"json.loads only": mode_json_loads, "whole document (before)": mode_before,
         "load_inventory_files (after)": mode_after}


def run_mode(mode: str, path: Path) -> dict[str, Any]:
    # A fixed hash seed: the children's reprs (sets inside) compare across processes.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "0"}
    done = subprocess.run([sys.executable, __file__, "--child", mode, str(path)],
                          capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{done.stderr[-3000:]}")
    facts: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return facts


def child_main(mode: str, path: Path) -> None:
    start = time.perf_counter()
    facts = (mode_after if mode.startswith("yaml") else MODES[mode])(path)
    facts["seconds"] = time.perf_counter() - start
    facts["maxrss_kb"] = peak_rss_kb()
    print(json.dumps(facts))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(sys.argv[2], Path(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, default=None, help="write the JSON file here")
    parser.add_argument("--reuse", action="store_true",
                        help="with --keep: measure the file already there, if any")
    parser.add_argument("--yaml", action="store_true", help="also load it as YAML")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-inventory-") as scratch:
        path = args.keep or Path(scratch) / "inventory.json"
        start = time.perf_counter()
        if args.reuse and path.exists() and not args.yaml:
            inventory = json.loads(path.read_text())
        else:
            inventory = make_inventory(args.pods)
            path.write_text(json.dumps(inventory, indent=4, sort_keys=True) + "\n")
        objects = len(inventory["items"])
        print(f"{args.pods:,} pods, {objects:,} objects: {path.stat().st_size / MB:,.0f} MB "
              f"of JSON ({path.stat().st_size / objects / 1024:.1f} KB an object), written in "
              f"{time.perf_counter() - start:.1f} s")
        modes = list(MODES)
        if args.yaml:
            import yaml

            dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
            yaml_path = Path(scratch) / "inventory.yaml"
            with open(yaml_path, "w") as stream:
                yaml.dump(inventory, stream, Dumper=dumper)
            modes.append(f"yaml ({yaml_path.stat().st_size / MB:,.0f} MB)")
        del inventory
        results: dict[str, dict[str, Any]] = {}
        print(f"{'mode':<30} {'time s':>8} {'peak RSS MB':>12} {'pods':>8}")
        for mode in modes:
            target = yaml_path if mode.startswith("yaml") else path
            facts = results[mode] = run_mode(mode, target)
            print(f"{mode:<30} {facts['seconds']:>8.1f} {facts['maxrss_kb'] / 1024:>12,.0f} "
                  f"{facts.get('pods', '-'):>8}", flush=True)
    before, after = results["whole document (before)"], results["load_inventory_files (after)"]
    same = before["sha256"] == after["sha256"]
    print(f"before/after: time {before['seconds'] / after['seconds']:.2f}x, peak RSS "
          f"{before['maxrss_kb'] / after['maxrss_kb']:.2f}x "
          f"({'same inventory' if same else 'INVENTORIES DIFFER'})")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
