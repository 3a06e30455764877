"""Invariants of a proposal, for random small workload graphs over random inventories:
every observed edge is allowed (checked with the NetworkPolicy evaluator), an unobserved
one is denied, and the output doesn't depend on the order of the edges."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from discover.enrichment.peers import GraphEdge, workload_of
from discover.inventory.model import Inventory, Pod
from discover.netpol.evaluate import IpEndpoint, PolicyEvaluator
from discover.synthesis import SynthesisOptions, propose, render_policies_yaml
from discover.synthesis.selectors import choose_selector
from discover.synthesis.selfcheck import EndpointFactory
from tests.factories import (
    external_peer,
    make_edge,
    make_graph,
    make_inventory,
    make_pod,
    workload_peer,
)
from tests.test_synthesis_rules import validate_documents

PORTS = (53, 80, 443, 5432, 8080, 8081, 8082, 9090)
NAMES = {8080: "http", 5432: "pg"}


@dataclass(frozen=True)
class World:
    inventory: Inventory
    workloads: tuple[Pod, ...]  # one representative pod per workload
    edges: tuple[GraphEdge, ...]
    observed: frozenset[tuple[int, int, str, int]]  # (src index, dst index, protocol, port)
    resolvers: frozenset[int]  # workloads that queried the cluster DNS
    dns: Pod


@st.composite
def worlds(draw: st.DrawFn) -> World:
    count = draw(st.integers(2, 6))
    pods: list[Pod] = []
    representatives: list[Pod] = []
    for index in range(count):
        namespace = draw(st.sampled_from(["a", "b", "c"]))
        labels = {"app": f"w{index}", "tier": draw(st.sampled_from(["x", "y"])),
                  "pod-template-hash": draw(st.sampled_from(["h1", "h2"]))}
        if draw(st.integers(0, 4)) == 0:  # sometimes no label of its own: maybe no selector
            del labels["app"]
        named = draw(st.booleans())
        ports = [(port, "TCP", NAMES[port] if named and port in NAMES else None)
                 for port in PORTS]
        replicas = draw(st.integers(1, 2))
        for replica in range(replicas):
            pod = make_pod(namespace, f"w{index}", labels, f"10.244.{index}.{replica + 1}",
                           index=replica, ports=ports, node=f"node-{replica + 1}")
            pods.append(pod)
        representatives.append(pods[-1])
    observed: set[tuple[int, int, str, int]] = set()
    edges = []
    for _ in range(draw(st.integers(1, 8))):
        src = draw(st.integers(0, count - 1))
        dst = (src + draw(st.integers(1, count - 1))) % count
        protocol = draw(st.sampled_from(["TCP", "UDP"]))
        port = draw(st.sampled_from(PORTS))
        if (src, dst, protocol, port) in observed:
            continue
        observed.add((src, dst, protocol, port))
        source, destination = representatives[src].workload, representatives[dst].workload
        port_name = next((p.name for p in representatives[dst].ports
                          if p.port == port and p.protocol == protocol), None)
        edges.append(make_edge(workload_peer(source.namespace, source.name),
                               workload_peer(destination.namespace, destination.name),
                               port, protocol=protocol, port_name=port_name))
    dns = make_pod("kube-system", "coredns", {"k8s-app": "kube-dns"}, "10.245.0.2",
                   ports=[(53, "UDP", "dns"), (53, "TCP", "dns-tcp")])
    pods.append(dns)
    resolvers = draw(st.sets(st.integers(0, count - 1), max_size=count))
    for index in resolvers:
        client = representatives[index].workload
        edges.append(make_edge(workload_peer(client.namespace, client.name),
                               workload_peer("kube-system", "coredns", dns=True), 53,
                               protocol="UDP", port_name="dns"))
    if draw(st.booleans()):
        first = representatives[0].workload
        edges.append(make_edge(workload_peer(first.namespace, first.name),
                               external_peer("203.0.113.9"), 443))
    return World(make_inventory(pods), tuple(representatives), tuple(edges),
                 frozenset(observed), frozenset(resolvers), dns)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=worlds(), data=st.data())
def test_observed_allowed_unobserved_denied(world: World, data: st.DataObject) -> None:
    # self_check=True: propose() itself runs the evaluator over every edge it allowed
    proposal = propose(make_graph(world.edges), world.inventory, SynthesisOptions())
    evaluator = PolicyEvaluator(proposal.policies)
    endpoints = EndpointFactory(world.inventory)
    # a workload no label set selects exactly gets no policy and is no peer: its observed
    # edges are denied on purpose (decided False, with a critical finding)
    unselectable = {pod.workload for pod in world.workloads
                    if not choose_selector(pod.workload, world.inventory).exact}
    denied = {id(d.edge) for d in proposal.decisions if d.allowed is False}
    for edge in world.edges:
        src, dst = endpoints.endpoint(edge.source), endpoints.endpoint(edge.destination)
        assert src is not None and dst is not None
        blocked = {workload_of(edge.source), workload_of(edge.destination)} & unselectable
        assert evaluator.check(src, dst, edge.protocol, edge.port).allowed == (not blocked), edge
        assert (id(edge) in denied) == bool(blocked), edge
    critical = {f.subject for f in proposal.findings if f.rule == "selector-no-exact-label"}
    assert critical == {str(w) for w in unselectable}
    for manifest in proposal.policies:  # no policy selects pods of two workloads
        selected = {pod.workload for pod in world.inventory.pods
                    if pod.namespace == manifest["metadata"]["namespace"]
                    and all(pod.labels.get(key) == value for key, value
                            in manifest["spec"]["podSelector"].get("matchLabels", {}).items())}
        assert len(selected) <= 1 or manifest["metadata"]["name"] == "default-deny"

    # every unobserved (workload, workload, protocol, port) is denied, not just a random one
    candidates = [*PORTS, 22, 6379]
    for src_index, src_pod in enumerate(world.workloads):
        for dst_index, dst_pod in enumerate(world.workloads):
            if src_index == dst_index:
                continue
            src = endpoints.endpoint(workload_peer(src_pod.namespace, src_pod.workload.name))
            dst = endpoints.endpoint(workload_peer(dst_pod.namespace, dst_pod.workload.name))
            assert src is not None and dst is not None
            for protocol in ("TCP", "UDP"):
                for port in candidates:
                    if (src_index, dst_index, protocol, port) not in world.observed:
                        verdict = evaluator.check(src, dst, protocol, port)
                        assert not verdict.allowed, (src_index, dst_index, protocol, port)
    # DNS (UDP and TCP) for the workloads that resolved names, and for no other
    dns = endpoints.endpoint(workload_peer("kube-system", "coredns"))
    assert dns is not None
    for index, pod in enumerate(world.workloads):
        client = endpoints.endpoint(workload_peer(pod.namespace, pod.workload.name))
        assert client is not None
        for protocol in ("UDP", "TCP"):
            allowed = evaluator.check(client, dns, protocol, 53).allowed
            expected = index in world.resolvers and pod.workload not in unselectable
            assert allowed == expected, (index, protocol)
    # nothing external beyond what was observed
    src_pod = world.workloads[data.draw(st.integers(0, len(world.workloads) - 1))]
    src = endpoints.endpoint(workload_peer(src_pod.namespace, src_pod.workload.name))
    assert src is not None
    outside = IpEndpoint(external_peer("198.51.100.77").ip)
    assert not evaluator.check(src, outside, "TCP", 443).allowed


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=worlds(), seed=st.randoms(use_true_random=False))
def test_edge_order_does_not_matter(world: World, seed: object) -> None:
    shuffled = list(world.edges)
    seed.shuffle(shuffled)  # type: ignore[attr-defined]
    first = render_policies_yaml(propose(make_graph(world.edges), world.inventory,
                                         SynthesisOptions()))
    second = render_policies_yaml(propose(make_graph(shuffled), world.inventory,
                                          SynthesisOptions()))
    assert first == second
    validate_documents(first)
