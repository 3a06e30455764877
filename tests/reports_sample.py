"""The bundled shop sample run through the pipeline, as a ReportInput for report tests."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from ipaddress import ip_address
from pathlib import Path

from discover.enrichment.peers import ExternalPeer, FlowKey, GraphEdge, Peer, WorkloadPeer
from discover.enrichment.workload_graph import WorkloadGraph, build_graph
from discover.flows.events import DirectionEvidence, IPAddress, Protocol
from discover.flows.flowtable import DnsRow, FlowRow
from discover.flows.sources import load_inputs
from discover.inventory.files import load_inventory_files
from discover.inventory.model import ContainerPort, Inventory, Namespace, Pod, WorkloadRef
from discover.synthesis import SynthesisOptions, propose
from discover.synthesis.options import FqdnMode
from discover.synthesis.proposal import (
    Direction,
    EdgeDecision,
    Finding,
    FqdnDependency,
    FqdnHandling,
    PolicyDocument,
    PortUse,
    Proposal,
    Severity,
    Window,
)
from discover.verification.changes import compute_changes
from reports.model import ReportInput

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "shop"


@cache
def shop_report() -> ReportInput:
    capture = SAMPLE / "capture.pcap"
    loaded = load_inputs([capture], jobs=1)
    flows, dns = tuple(loaded.table.flow_rows()), tuple(loaded.table.dns_rows())
    inventory = load_inventory_files([SAMPLE / "inventory.json"])
    graph = build_graph(flows, dns, inventory)
    proposal = propose(graph, inventory, SynthesisOptions())
    counters = {"packets": loaded.packets, "dns_answers": loaded.dns_answers}
    return ReportInput(
        proposal=proposal, graph=graph, flows=flows, dns=dns, inventory=inventory,
        sources=("samples/shop/capture.pcap",), counters=counters,
        warnings=tuple(loaded.warnings), changes=compute_changes(inventory, proposal),
    )


EVIL = '<script>alert("x")</script>&<i-evil>'
T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
T1 = datetime(2026, 1, 2, 3, 9, 5, tzinfo=UTC)
WEB = WorkloadRef("ns-a", "Deployment", "web")
DB = WorkloadRef("ns-b", "StatefulSet", "db")
WEB_IP, DB_IP = ip_address("10.0.0.1"), ip_address("10.0.1.1")
EXT_IP, CLIENT_IP = ip_address("192.0.2.7"), ip_address("203.0.113.9")


def _edge(source: Peer, destination: Peer, src_ip: IPAddress, dst_ip: IPAddress, port: int,
          connections: int) -> GraphEdge:
    return GraphEdge(source, destination, Protocol.TCP, port, None, connections,
                     connections * 10, T0, T1, (FlowKey(src_ip, dst_ip, Protocol.TCP, port),))


def tiny_report(evil: str = EVIL) -> ReportInput:
    """Two workloads, an FQDN destination and a denied external client; `evil` is put
    into every free-text field a cluster or DNS could control."""
    web, db = WorkloadPeer(WEB), WorkloadPeer(DB)
    fqdn = ExternalPeer(EXT_IP, f"{evil}.example.com")
    client = ExternalPeer(CLIENT_IP)
    to_db = _edge(web, db, WEB_IP, DB_IP, 5432, 3)
    to_fqdn = _edge(web, fqdn, WEB_IP, EXT_IP, 443, 2)
    from_client = _edge(client, web, CLIENT_IP, WEB_IP, 8080, 5)
    graph = WorkloadGraph((to_db, to_fqdn, from_client), T0, T1, notes=(evil,))
    manifest = {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "web-netpol", "namespace": "ns-a",
                     "annotations": {"netpol-discover.io/workload": str(WEB),
                                     "note": evil}},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}},
                 "policyTypes": ["Ingress", "Egress"], "ingress": [],
                 "egress": [{"to": [{"namespaceSelector": {"matchLabels": {
                     "kubernetes.io/metadata.name": "ns-b"}},
                     "podSelector": {"matchLabels": {"app": "db"}}}],
                     "ports": [{"protocol": "TCP", "port": 5432}]}]},
    }
    deny = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "default-deny", "namespace": "ns-a"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}
    dependency = FqdnDependency(WEB, f"{evil}.example.com", (evil,), (PortUse(Protocol.TCP, 443),),
                                (EXT_IP,), (30,), True, 2, T0, T1,
                                FqdnHandling(FqdnMode.ANY_IP))
    proposal = Proposal(
        documents=(PolicyDocument(deny, ("default deny",)),
                   PolicyDocument(manifest, (f"rule from {evil}",))),
        fqdn_dependencies=(dependency,),
        cilium_documents=(),
        findings=(Finding(Severity.WARNING, "ingress-2-external-source", str(WEB),
                          f"external source {evil}", evil),
                  Finding(Severity.INFO, "cni-detected", "cluster/cni", "CNI: calico")),
        namespaces=("ns-a",),
        window=Window(T0, T1),
        decisions=(EdgeDecision(to_db, Direction.EGRESS, True, "ns-a/web-netpol", "observed"),
                   EdgeDecision(to_fqdn, Direction.EGRESS, True, "ns-a/web-netpol", "fqdn"),
                   EdgeDecision(from_client, Direction.INGRESS, False, "ns-a/web-netpol",
                                f"external source {evil}")),
        fqdn_mode=FqdnMode.ANY_IP,
    )
    flows = tuple(
        FlowRow(src, dst, Protocol.TCP, port, connections, connections * 10, T0.timestamp(),
                T1.timestamp(), DirectionEvidence.SYN)
        for src, dst, port, connections in ((WEB_IP, DB_IP, 5432, 3), (WEB_IP, EXT_IP, 443, 2),
                                            (CLIENT_IP, WEB_IP, 8080, 5)))
    dns: tuple[DnsRow, ...] = ()
    inventory = Inventory(
        namespaces=(Namespace("ns-a"), Namespace("ns-b")),
        pods=(Pod("ns-a", "web-1", "u1", {"app": "web"}, (WEB_IP,), WEB),
              Pod("ns-b", "db-0", "u2", {"app": "db"}, (DB_IP,), DB,
                  ports=(ContainerPort(5432, name="pg"),))),
        notes=(f"inventory note {evil}",),
    )
    return ReportInput(proposal, graph, flows, dns, inventory, (f"{evil}.pcap",),
                       {"packets": 100}, (f"warning {evil}",),
                       compute_changes(inventory, proposal))


def big_report(namespaces: int = 20, per_namespace: int = 10,
               name_prefix: str = "") -> ReportInput:
    """A synthetic cluster of namespaces x per_namespace workloads (one pod each): a chain
    of calls inside each namespace, a call into the next namespace, DNS for everybody,
    one scraper, a few external names; the proposal comes from the real `propose`.
    `name_prefix` starts every workload name of the teams (hostile text in tests)."""
    dns_ref = WorkloadRef("kube-system", "Deployment", "coredns")
    scraper = WorkloadRef("monitoring", "StatefulSet", "prometheus")
    refs = [WorkloadRef(f"team-{n:02d}", "Deployment", f"{name_prefix}svc-{i:02d}")
            for n in range(namespaces) for i in range(per_namespace)]
    every = [dns_ref, scraper, *refs]
    ips = {ref: ip_address(f"10.{20 + i // 250}.{i % 250}.10") for i, ref in enumerate(every)}
    pods = tuple(
        Pod(ref.namespace, f"{ref.name}-0", f"uid-{i}", {"app": ref.name}, (ips[ref],), ref,
            ports=(ContainerPort(8080, name="http"), ContainerPort(53, Protocol.UDP, "dns"),
                   ContainerPort(9090, name="metrics")))
        for i, ref in enumerate(every))
    names = sorted({ref.namespace for ref in every})
    inventory = Inventory(namespaces=tuple(Namespace(n, {"kubernetes.io/metadata.name": n})
                                           for n in names), pods=pods)
    peer = {ref: WorkloadPeer(ref, is_cluster_dns=ref == dns_ref)
            for ref in every}
    edges = []

    def add(src: WorkloadRef, dst: WorkloadRef, port: int,
            protocol: Protocol = Protocol.TCP) -> None:
        edges.append(GraphEdge(peer[src], peer[dst], protocol, port, None, 4, 40, T0, T1,
                               (FlowKey(ips[src], ips[dst], protocol, port),)))

    for index, ref in enumerate(refs):
        add(ref, dns_ref, 53, Protocol.UDP)
        add(scraper, ref, 9090)
        position = index % per_namespace
        if position + 1 < per_namespace:
            add(ref, refs[index + 1], 8080)
        if position == per_namespace - 1 and index + 1 < len(refs):
            add(ref, refs[index + 1], 8080)  # into the next namespace
        if position == 3:
            fqdn = ExternalPeer(ip_address(f"192.0.2.{index % 250}"),
                                f"api{index % 7}.example.com")
            edges.append(GraphEdge(peer[ref], fqdn, Protocol.TCP, 443, None, 2, 20, T0, T1,
                                   (FlowKey(ips[ref], fqdn.ip, Protocol.TCP, 443),)))
    graph = WorkloadGraph(tuple(edges), T0, T1, ())
    proposal = propose(graph, inventory, SynthesisOptions())
    flows = tuple(
        FlowRow(k.src_ip, k.dst_ip, Protocol(k.protocol), k.dst_port, 4, 40, T0.timestamp(),
                T1.timestamp(), DirectionEvidence.SYN)
        for e in edges for k in e.evidence)
    return ReportInput(proposal, graph, flows, (), inventory,
                       ("synthetic",), {"packets": len(flows) * 40}, (),
                       compute_changes(inventory, proposal))


def empty_report() -> ReportInput:
    """Nothing observed, nothing proposed."""
    nothing = Proposal((), (), (), (), (), Window(None, None))
    return ReportInput(nothing, WorkloadGraph((), None, None, ()), (), (), Inventory(), (),
                       {}, (), compute_changes(Inventory(), nothing))
