"""A synthetic cluster of any size: a kubectl-shaped inventory and an agent summary.

    python benchmarks/make_cluster.py OUTDIR --workloads 500 [--edges-per-workload 20]
        [--per-namespace 25] [--cross-namespace 0.1] [--seed 1]

writes OUTDIR/inventory.json (what `kubectl get namespaces,nodes,deployments,replicasets,
pods,services,endpointslices -A -o json` gives: one List) and OUTDIR/summary.json (an
agent summary written by the project's own writer, `discover/flows/summary.py`), the same
bytes for the same arguments.

The cluster: namespaces of --per-namespace workloads, each a Deployment with its
ReplicaSet and 2 pods (ownerReferences, pod IPs, a named container port), one ClusterIP
Service with its EndpointSlice; one node a 200 pods; kube-system with 2 CoreDNS pods
behind the kube-dns Service. The traffic: workloads x edges-per-workload distinct edges
between workloads (mostly within a namespace, --cross-namespace of them across; half to
the Service's ClusterIP on the Service port, with the DNS answer that gave the ClusterIP,
half to a pod IP on the container port), a DNS lookup edge (UDP 53 to the kube-dns
ClusterIP) from every pod, and one workload in 20 calling one of a few external names on
443, with their DNS answers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from ipaddress import IPv4Address, ip_address
from pathlib import Path
from typing import Any

PODS_PER_WORKLOAD = 2
PODS_PER_NODE = 200
CREATED = "2026-01-01T00:00:00Z"
WINDOW_START = datetime(2026, 1, 1, 1, 0, tzinfo=UTC)
WINDOW_SECONDS = 3600.0
POD_NET = int(IPv4Address("10.64.0.0"))  # 10.64.0.0/10: a /24 a node, up to 16,384 nodes
NODE_NET = int(IPv4Address("172.18.0.0"))
SERVICE_NET = int(IPv4Address("10.96.0.0"))
DNS_SERVICE_IP = "10.96.0.10"
FIRST_SERVICE = 1000  # ClusterIPs of the workloads start at 10.96.3.232
# (port name, container port, Service port): a workload serves one of these by its index
PORTS = (("http", 8080, 80), ("grpc", 50051, 50051), ("https", 8443, 443),
         ("redis", 6379, 6379), ("postgres", 5432, 5432))
EXTERNAL_NAMES = 12  # api-0.example.com ... on 203.0.113.0/24
EXTERNAL_SHARE = 20  # one workload in 20 calls an external name
HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
UID_NAMESPACE = uuid.UUID("6f1c3b1e-8a52-4d1e-9b0e-3c7a5f0d2e11")


@dataclass(frozen=True, slots=True)
class Workload:
    index: int
    namespace: str
    name: str
    pod_ips: tuple[str, ...]
    pod_names: tuple[str, ...]
    cluster_ip: str
    port_name: str
    container_port: int
    service_port: int


@dataclass(frozen=True, slots=True)
class Cluster:
    namespaces: tuple[str, ...]
    workloads: tuple[Workload, ...]
    dns_pods: tuple[Workload, ...]  # CoreDNS, as one workload of kube-system
    nodes: int


def build_cluster(workloads: int, per_namespace: int) -> Cluster:
    """Names and addresses only; `inventory_items` and `flow_rows` draw from it."""
    if workloads < 1 or per_namespace < 1:
        raise ValueError("--workloads and --per-namespace must be at least 1")
    pods = 0

    def next_pod_ip() -> str:
        nonlocal pods
        node, slot = divmod(pods, PODS_PER_NODE)
        pods += 1
        return str(IPv4Address(POD_NET + node * 256 + 2 + slot))

    dns_ips = (next_pod_ip(), next_pod_ip())
    coredns = Workload(-1, "kube-system", "coredns", dns_ips,
                       tuple(f"coredns-{_hash('coredns')}-{_hash(ip)[:5]}" for ip in dns_ips),
                       DNS_SERVICE_IP, "dns", 53, 53)
    namespaces = tuple(f"team-{n:04d}" for n in range((workloads + per_namespace - 1)
                                                       // per_namespace))
    made = []
    for index in range(workloads):
        namespace = namespaces[index // per_namespace]
        name = f"app-{index:05d}"
        ips = tuple(next_pod_ip() for _ in range(PODS_PER_WORKLOAD))
        template = _hash(f"{namespace}/{name}")
        port_name, container_port, service_port = PORTS[index % len(PORTS)]
        made.append(Workload(
            index, namespace, name, ips,
            tuple(f"{name}-{template}-{_hash(ip)[:5]}" for ip in ips),
            str(IPv4Address(SERVICE_NET + FIRST_SERVICE + index)),
            port_name, container_port, service_port))
    return Cluster(("kube-system", *namespaces), tuple(made), (coredns,),
                   (pods + PODS_PER_NODE - 1) // PODS_PER_NODE)


# -- inventory -----------------------------------------------------------------------------


def inventory_items(cluster: Cluster) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = [_namespace(ns) for ns in cluster.namespaces]
    items += [_node(n) for n in range(cluster.nodes)]
    dns_labels = {"k8s-app": "kube-dns"}
    for workload in (*cluster.dns_pods, *cluster.workloads):
        labels = dns_labels if workload.index < 0 else {"app": workload.name,
                                                          "tier": "backend"}
        items += _workload_objects(workload, labels)
    return items


def _workload_objects(w: Workload, labels: dict[str, str]) -> list[dict[str, Any]]:
    template_hash = _hash(f"{w.namespace}/{w.name}")
    dns = w.index < 0
    image = "registry.k8s.io/coredns/coredns:v1.11.1" if dns else f"registry.example/{w.name}:1"
    ports: list[dict[str, Any]] = (
        [{"containerPort": 53, "name": "dns", "protocol": "UDP"},
         {"containerPort": 53, "name": "dns-tcp", "protocol": "TCP"}] if dns else
        [{"containerPort": w.container_port, "name": w.port_name, "protocol": "TCP"}])
    spec = {"containers": [{"name": w.name, "image": image, "ports": ports}],
            "dnsPolicy": "ClusterFirst", "restartPolicy": "Always"}
    deployment_uid = _uid("Deployment", w.namespace, w.name)
    rs_name = f"{w.name}-{template_hash}"
    rs_uid = _uid("ReplicaSet", w.namespace, rs_name)
    rs_labels = {**labels, "pod-template-hash": template_hash}
    objects: list[dict[str, Any]] = [
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": _meta(w.name, w.namespace, deployment_uid, labels),
         "spec": {"replicas": len(w.pod_ips), "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels}, "spec": spec}},
         "status": {"replicas": len(w.pod_ips), "readyReplicas": len(w.pod_ips)}},
        {"apiVersion": "apps/v1", "kind": "ReplicaSet",
         "metadata": {**_meta(rs_name, w.namespace, rs_uid, rs_labels),
                      "ownerReferences": [_owner("apps/v1", "Deployment", w.name,
                                                 deployment_uid)]},
         "spec": {"replicas": len(w.pod_ips), "selector": {"matchLabels": rs_labels},
                  "template": {"metadata": {"labels": rs_labels}, "spec": spec}},
         "status": {"replicas": len(w.pod_ips), "readyReplicas": len(w.pod_ips)}},
    ]
    endpoints = []
    for pod_name, ip in zip(w.pod_names, w.pod_ips, strict=True):
        pod_uid = _uid("Pod", w.namespace, pod_name)
        node = _node_name((int(IPv4Address(ip)) - POD_NET) // 256)
        objects.append(
            {"apiVersion": "v1", "kind": "Pod",
             "metadata": {**_meta(pod_name, w.namespace, pod_uid, rs_labels),
                          "generateName": f"{rs_name}-",
                          "ownerReferences": [_owner("apps/v1", "ReplicaSet", rs_name,
                                                     rs_uid)]},
             "spec": {**spec, "nodeName": node},
             "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                        "hostIP": _node_ip((int(IPv4Address(ip)) - POD_NET) // 256),
                        "startTime": CREATED,
                        "conditions": [{"type": "Ready", "status": "True"}]}})
        endpoints.append({"addresses": [ip], "nodeName": node,
                          "conditions": {"ready": True, "serving": True, "terminating": False},
                          "targetRef": {"kind": "Pod", "name": pod_name,
                                        "namespace": w.namespace, "uid": pod_uid}})
    service_name = "kube-dns" if dns else w.name
    service_uid = _uid("Service", w.namespace, service_name)
    service_ports: list[dict[str, Any]] = (
        [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": "dns"},
         {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": "dns-tcp"}] if dns else
        [{"name": w.port_name, "port": w.service_port, "protocol": "TCP",
          "targetPort": w.port_name}])
    slice_ports = [{"name": p["name"], "port": 53 if dns else w.container_port,
                    "protocol": p["protocol"]} for p in service_ports]
    objects.append(
        {"apiVersion": "v1", "kind": "Service",
         "metadata": _meta(service_name, w.namespace, service_uid, labels),
         "spec": {"type": "ClusterIP", "clusterIP": w.cluster_ip, "clusterIPs": [w.cluster_ip],
                  "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                  "ports": service_ports, "selector": labels, "sessionAffinity": "None"},
         "status": {"loadBalancer": {}}})
    slice_name = f"{service_name}-{_hash(service_uid)[:5]}"
    objects.append(
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
         "metadata": {**_meta(slice_name, w.namespace,
                              _uid("EndpointSlice", w.namespace, slice_name),
                              {"kubernetes.io/service-name": service_name,
                               "endpointslice.kubernetes.io/managed-by":
                                   "endpointslice-controller.k8s.io"}),
                      "generateName": f"{service_name}-",
                      "ownerReferences": [_owner("v1", "Service", service_name, service_uid)]},
         "endpoints": endpoints, "ports": slice_ports})
    return objects


def _namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "uid": _uid("Namespace", "", name),
                         "creationTimestamp": CREATED,
                         "labels": {"kubernetes.io/metadata.name": name}},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


def _node(n: int) -> dict[str, Any]:
    cidr = f"{IPv4Address(POD_NET + n * 256)}/24"
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": _node_name(n), "uid": _uid("Node", "", _node_name(n)),
                         "creationTimestamp": CREATED,
                         "labels": {"kubernetes.io/hostname": _node_name(n),
                                    "kubernetes.io/os": "linux"}},
            "spec": {"podCIDR": cidr, "podCIDRs": [cidr],
                     "providerID": f"kind://docker/bench/{_node_name(n)}"},
            "status": {"addresses": [{"type": "InternalIP", "address": _node_ip(n)},
                                     {"type": "Hostname", "address": _node_name(n)}]}}


def _node_name(n: int) -> str:
    return f"node-{n:05d}"


def _node_ip(n: int) -> str:
    return str(IPv4Address(NODE_NET + 2 + n))


def _meta(name: str, namespace: str, uid: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "uid": uid, "creationTimestamp": CREATED,
            "labels": labels}


def _owner(api_version: str, kind: str, name: str, uid: str) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "name": name, "uid": uid,
            "controller": True, "blockOwnerDeletion": True}


def _uid(kind: str, namespace: str, name: str) -> str:
    return str(uuid.uuid5(UID_NAMESPACE, f"{kind}/{namespace}/{name}"))


def _hash(text: str) -> str:
    """A pod-template-hash lookalike (10 characters of the alphabet kube uses)."""
    digest = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    chars = []
    for _ in range(10):
        digest, rest = divmod(digest, len(HASH_ALPHABET))
        chars.append(HASH_ALPHABET[rest])
    return "".join(chars)


# -- traffic -------------------------------------------------------------------------------

Edge = tuple[str, str, str, int]  # client IP, server IP, protocol, server port
Answer = tuple[str, str, str]  # client IP, name, address


def traffic(cluster: Cluster, edges_per_workload: int, cross_namespace: float,
            rng: random.Random) -> tuple[list[Edge], list[Answer]]:
    """Distinct edges (workload to workload, DNS, external) and the DNS answers behind
    them: every ClusterIP edge and every external edge has the answer its client used."""
    workloads = cluster.workloads
    by_namespace: dict[str, list[Workload]] = {}
    for w in workloads:
        by_namespace.setdefault(w.namespace, []).append(w)
    wanted = len(workloads) * edges_per_workload
    # a workload pair gives at most 2 clients x (ClusterIP + 2 pod IPs) distinct edges
    if len(workloads) < 2 or wanted > len(workloads) * (len(workloads) - 1) * 6:
        raise ValueError("too many edges for so few workloads")
    edges: set[Edge] = set()
    answers: set[Answer] = set()
    tries = 0
    while len(edges) < wanted:
        tries += 1
        if tries > 50 * wanted:
            raise ValueError("could not draw that many distinct edges; lower the edge count")
        source = workloads[rng.randrange(len(workloads))]
        peers = by_namespace[source.namespace]
        if rng.random() < cross_namespace or len(peers) < 2:
            destination = workloads[rng.randrange(len(workloads))]
        else:
            destination = peers[rng.randrange(len(peers))]
        if destination is source:
            continue
        client = source.pod_ips[rng.randrange(len(source.pod_ips))]
        if rng.random() < 0.5:
            edges.add((client, destination.cluster_ip, "TCP", destination.service_port))
            answers.add((client, f"{destination.name}.{destination.namespace}.svc.cluster.local",
                         destination.cluster_ip))
        else:
            server = destination.pod_ips[rng.randrange(len(destination.pod_ips))]
            edges.add((client, server, "TCP", destination.container_port))
    for w in workloads:
        for client in w.pod_ips:
            edges.add((client, DNS_SERVICE_IP, "UDP", 53))
        if w.index % EXTERNAL_SHARE == 0:
            n = rng.randrange(EXTERNAL_NAMES)
            address = str(IPv4Address(int(IPv4Address("203.0.113.10")) + n))
            for client in w.pod_ips:
                edges.add((client, address, "TCP", 443))
                answers.add((client, f"api-{n}.example.com", address))
    return sorted(edges), sorted(answers)


def write_summary_file(path: Path, edges: list[Edge], answers: list[Answer],
                       rng: random.Random) -> None:
    """Through the project's writer, so the document is whatever version it writes."""
    from discover.flows.events import DirectionEvidence, Protocol
    from discover.flows.flowtable import DnsRow, FlowRow, FlowTable
    from discover.flows.summary import SummaryMeta, write_summary

    start = WINDOW_START.timestamp()
    table = FlowTable()
    for client, server, protocol, port in edges:
        first = start + rng.uniform(0, WINDOW_SECONDS * 0.9)
        connections = rng.randint(1, 40)
        table.add_flow_row(FlowRow(
            ip_address(client), ip_address(server), Protocol(protocol), port,
            connections=connections, packets=2 * connections, first_seen=first,
            last_seen=first + rng.uniform(0, WINDOW_SECONDS * 0.1),
            direction=DirectionEvidence.SYN if protocol == "TCP" else
            DirectionEvidence.UDP_FIRST, **_completed()))
    dns_server = ip_address(DNS_SERVICE_IP)
    for client, name, address in answers:
        first = start + rng.uniform(0, WINDOW_SECONDS * 0.9)
        table.add_dns_row(DnsRow(ip_address(client), name, ip_address(address), (), dns_server,
                                 30, rng.randint(1, 40), first, first + 1.0))
    meta = SummaryMeta(node_name="bench", interface="any", window_start=WINDOW_START,
                       window_end=datetime.fromtimestamp(start + WINDOW_SECONDS, UTC),
                       counters={"packets": sum(r.packets for r in table.flow_rows())},
                       agent_name="bench-cluster")
    write_summary(table, meta, path)


def _completed() -> dict[str, Any]:
    """outcome=completed where FlowRow has that field (summary schema 2), nothing before."""
    from discover.flows import events

    outcome = getattr(events, "Outcome", None)
    return {} if outcome is None else {"outcome": outcome.COMPLETED}


def make_cluster(out: Path, workloads: int, edges_per_workload: int = 20,
                 per_namespace: int = 25, cross_namespace: float = 0.1,
                 seed: int = 1) -> dict[str, int]:
    """Write inventory.json and summary.json into `out`; what was written, counted."""
    rng = random.Random(seed)
    cluster = build_cluster(workloads, per_namespace)
    out.mkdir(parents=True, exist_ok=True)
    items = inventory_items(cluster)
    (out / "inventory.json").write_text(json.dumps(
        {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
         "items": items}, indent=4) + "\n")
    edges, answers = traffic(cluster, edges_per_workload, cross_namespace, rng)
    write_summary_file(out / "summary.json", edges, answers, rng)
    return {"namespaces": len(cluster.namespaces), "workloads": len(cluster.workloads),
            "pods": PODS_PER_WORKLOAD * len(cluster.workloads) + 2, "nodes": cluster.nodes,
            "objects": len(items), "edges": len(edges),
            "workload_edges": len(cluster.workloads) * edges_per_workload,
            "dns_rows": len(answers)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="directory for inventory.json and summary.json")
    parser.add_argument("--workloads", type=int, default=500)
    parser.add_argument("--edges-per-workload", type=int, default=20,
                        help="workload-to-workload edges per workload (default 20)")
    parser.add_argument("--per-namespace", type=int, default=25,
                        help="workloads per namespace (default 25)")
    parser.add_argument("--cross-namespace", type=float, default=0.1,
                        help="share of workload edges that cross namespaces (default 0.1)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        counts = make_cluster(args.out, args.workloads, args.edges_per_workload,
                              args.per_namespace, args.cross_namespace, args.seed)
    except ValueError as error:
        print(f"make_cluster: error: {error}", file=sys.stderr)
        return 2
    print(", ".join(f"{key} {value:,}" for key, value in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
