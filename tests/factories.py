"""Small builders of inventories and graphs for tests and examples (shipped beside the
code, like mitmproxy's tflow): every default is a documentation or private address."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address

from discover.enrichment.peers import ExternalPeer, GraphEdge, NodePeer, Peer, WorkloadPeer
from discover.enrichment.workload_graph import UndeclaredPort, WorkloadGraph
from discover.flows.events import Protocol
from discover.inventory.model import (
    ContainerPort,
    Inventory,
    Namespace,
    Node,
    Pod,
    WorkloadRef,
)

T0 = datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(hours=6)


def ref(namespace: str, name: str, kind: str = "Deployment") -> WorkloadRef:
    return WorkloadRef(namespace, kind, name)


def make_pod(
    namespace: str,
    workload: str,
    labels: Mapping[str, str],
    ip: str,
    *,
    index: int = 0,
    kind: str = "Deployment",
    ports: Iterable[tuple[int, str, str | None]] = (),
    node: str = "node-1",
    host_network: bool = False,
    images: Iterable[str] = (),
) -> Pod:
    """A pod of `workload`; `ports` as (port, protocol, name), the protocol as its text."""
    suffix = f"-{index}" if kind == "StatefulSet" else f"-5d8f7-{index:05d}"
    return Pod(
        namespace=namespace,
        name=f"{workload}{suffix}",
        uid=f"uid-{namespace}-{workload}-{index}",
        labels=dict(labels),
        ips=(ip_address(ip),),
        workload=ref(namespace, workload, kind),
        node_name=node,
        host_network=host_network,
        ports=tuple(ContainerPort(p, Protocol(proto), name, "main") for p, proto, name in ports),
        images=tuple(images),
    )


def make_inventory(
    pods: Iterable[Pod],
    *,
    namespaces: Iterable[str] | None = None,
    unlabelled: Iterable[str] = (),
    provider: str | None = None,
    **objects: object,
) -> Inventory:
    """Namespaces default to those of the pods (labelled with their name, except the
    `unlabelled` ones); two nodes 10.0.0.1 and 10.0.0.2."""
    pods = tuple(pods)
    names = sorted(set(namespaces or ()) | {p.namespace for p in pods})
    without = set(unlabelled)
    prefix = {"gke": "gce://p/z/", "eks": "aws:///z/", "aks": "azure:///s/"}.get(provider or "")
    nodes = tuple(
        Node(f"node-{i}", (ip_address(f"10.0.0.{i}"),),
             provider_id=f"{prefix}node-{i}" if prefix else None)
        for i in (1, 2)
    )
    return Inventory(
        namespaces=tuple(
            Namespace(n, {} if n in without else {"kubernetes.io/metadata.name": n})
            for n in names
        ),
        nodes=nodes,
        pods=pods,
        **objects,  # type: ignore[arg-type]
    )


def workload_peer(namespace: str, name: str, kind: str = "Deployment",
                  *, dns: bool = False) -> WorkloadPeer:
    return WorkloadPeer(ref(namespace, name, kind), is_cluster_dns=dns)


def external_peer(ip: str, *, fqdn: str | None = None,
                  chain: tuple[str, ...] = ()) -> ExternalPeer:
    return ExternalPeer(ip_address(ip), fqdn, chain)


def node_peer(ip: str, node: str | None = None) -> NodePeer:
    return NodePeer(ip_address(ip), node)


def make_edge(
    source: Peer, destination: Peer, port: int, *, protocol: Protocol | str = Protocol.TCP,
    port_name: str | None = None, connections: int = 3,
) -> GraphEdge:
    return GraphEdge(source, destination, Protocol(protocol), port, port_name, connections,
                     connections * 10, T0, T1)


def make_graph(edges: Iterable[GraphEdge],
               undeclared: Iterable[UndeclaredPort] = ()) -> WorkloadGraph:
    return WorkloadGraph(tuple(edges), T0, T1, (), tuple(undeclared))


def shop_pods() -> list[Pod]:
    """A small shop: web (named port http), api (declares 9090 only), db (StatefulSet),
    a UI in another namespace, CoreDNS, Calico and an ingress-nginx controller."""
    return [
        make_pod("shop", "web", {"app.kubernetes.io/name": "web", "pod-template-hash": "5d8f7"},
                 "10.244.1.10", ports=[(8080, "TCP", "http")], node="node-1"),
        make_pod("shop", "web", {"app.kubernetes.io/name": "web", "pod-template-hash": "5d8f7"},
                 "10.244.2.10", index=1, ports=[(8080, "TCP", "http")], node="node-2"),
        make_pod("shop", "api", {"app": "api", "tier": "backend"}, "10.244.1.11",
                 ports=[(9090, "TCP", None)], node="node-1"),
        make_pod("shop", "db", {"app": "db", "tier": "backend",
                                "statefulset.kubernetes.io/pod-name": "db-0",
                                "controller-revision-hash": "db-7c9"},
                 "10.244.1.12", kind="StatefulSet", ports=[(5432, "TCP", "pg")], node="node-1"),
        make_pod("front", "ui", {"app": "ui"}, "10.244.2.20", node="node-2"),
        make_pod("kube-system", "coredns", {"k8s-app": "kube-dns"}, "10.244.0.2",
                 ports=[(53, "UDP", "dns"), (53, "TCP", "dns-tcp"), (9153, "TCP", "metrics")],
                 images=["registry.k8s.io/coredns/coredns:v1.11.1"]),
        make_pod("kube-system", "calico-node", {"k8s-app": "calico-node"}, "10.0.0.1",
                 kind="DaemonSet", host_network=True, images=["docker.io/calico/node:v3.27.0"]),
        make_pod("ingress-nginx", "ingress-nginx-controller",
                 {"app.kubernetes.io/name": "ingress-nginx"}, "10.244.2.30", node="node-2",
                 ports=[(80, "TCP", "http"), (443, "TCP", "https")],
                 images=["registry.k8s.io/ingress-nginx/controller:v1.10.0"]),
    ]
