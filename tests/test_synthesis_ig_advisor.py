"""Behaviour next to Inspektor Gadget's network policy advisor, on its own recorded events
and golden policies (the testdata of its 2022 advisor, in the public corpora the `corpora`
fixture finds; skipped where they are absent).

Their events become an inventory and a workload graph; then, with both sets of policies
in the evaluator: every recorded connection is allowed by both, and ours never allows a
connection between the case's pods that theirs denies (ours is at least as tight; it
adds namespace default denies and DNS that their old format didn't record)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from discover.inventory.model import Pod
from discover.netpol.evaluate import PodEndpoint, PolicyEvaluator
from discover.synthesis import SynthesisOptions, propose
from tests.factories import make_edge, make_graph, make_inventory, make_pod
from tests.factories import workload_peer as peer

CASES = ("accept-from-pod", "connect-to-svc", "connect-to-svc-duplicate",
         "connect-to-svc-namespace", "multiple")


def _owner(pod_name: str) -> str:
    return pod_name.rsplit("-", 2)[0]


def _load(directory: Path, case: str) -> tuple[list[Pod], list[tuple[Pod, Pod, int]], list[Any]]:
    events = json.loads((directory / f"{case}.input").read_text())
    pods: dict[tuple[str, str], Pod] = {}

    def pod(namespace: str, owner: str, labels: dict[str, str]) -> Pod:
        key = (namespace, owner)
        if key not in pods:
            pods[key] = make_pod(namespace, owner, labels, f"10.244.0.{len(pods) + 1}",
                                 ports=[])
        return pods[key]

    connections = []
    for event in events:
        local = pod(event["local_pod_namespace"], event["local_pod_owner"],
                    event["local_pod_labels"])
        if event["remote_kind"] == "pod":
            remote = pod(event["remote_pod_namespace"], _owner(event["remote_pod_name"]),
                         event["remote_pod_labels"])
        else:  # a Service: its backing pods carry the selector's labels
            remote = pod(event["remote_svc_namespace"], event["remote_svc_name"],
                         event["remote_svc_label_selector"])
        src, dst = (local, remote) if event["type"] == "connect" else (remote, local)
        connections.append((src, dst, int(event["port"])))
    golden = [d for d in yaml.safe_load_all((directory / f"{case}.golden").read_text()) if d]
    return list(pods.values()), connections, golden


def _endpoint(pod: Pod) -> PodEndpoint:
    # their goldens select namespaces by `name`, ours by kubernetes.io/metadata.name
    labels = {"name": pod.namespace, "kubernetes.io/metadata.name": pod.namespace}
    return PodEndpoint(pod.namespace, pod.labels, labels, pod.ips[0], pod.ports, pod.name)


@pytest.mark.parametrize("case", CASES)
def test_same_connections_allowed_and_never_looser(corpora: Path, case: str) -> None:
    directory = corpora / "inspektor-gadget-advisor" / "v2022-old-advisor" / "testdata"
    pods, connections, golden = _load(directory, case)
    edges = [make_edge(peer(s.namespace, s.workload.name), peer(d.namespace, d.workload.name),
                       port) for s, d, port in connections]
    proposal = propose(make_graph(edges), make_inventory(pods), SynthesisOptions())
    ours, theirs = PolicyEvaluator(proposal.policies), PolicyEvaluator(golden)
    # two owners sharing every label (connect-to-svc-duplicate): no selector tells them
    # apart, so their flows are denied on purpose, with a critical finding
    denied = {(d.edge.source.workload, d.edge.destination.workload, d.edge.port)
              for d in proposal.decisions if d.allowed is False}
    for src, dst, port in connections:
        assert theirs.check(_endpoint(src), _endpoint(dst), "TCP", port).allowed
        verdict = ours.check(_endpoint(src), _endpoint(dst), "TCP", port)
        assert verdict.allowed == ((src.workload, dst.workload, port) not in denied)
    if denied:
        assert "selector-no-exact-label" in {f.rule for f in proposal.findings}
    assert bool(denied) == (case == "connect-to-svc-duplicate")
    ports = sorted({port for _, _, port in connections} | {80, 443})
    for src in pods:
        for dst in pods:
            for port in ports:
                if src is dst:
                    continue
                mine = ours.check(_endpoint(src), _endpoint(dst), "TCP", port)
                if mine.allowed:
                    assert theirs.check(_endpoint(src), _endpoint(dst), "TCP", port).allowed
    # and ours drops the hash label they also drop
    for manifest in proposal.policies:
        assert "pod-template-hash" not in json.dumps(manifest)
