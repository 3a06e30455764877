"""What the proposal newly denies, computed on classes of workloads: equal to the
evaluator's pair-by-pair workload matrix on random clusters, and the sample's figures."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from ipaddress import ip_address
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from discover.inventory.model import (
    ContainerPort,
    Inventory,
    Namespace,
    NetworkPolicy,
    Pod,
    WorkloadRef,
)
from discover.netpol import PolicyEvaluator
from discover.netpol.classes import WorkloadClasses
from discover.netpol.matrix import workload_endpoints, workload_matrix
from discover.synthesis.proposal import PolicyDocument, Proposal, Window
from discover.verification.changes import (
    NAMES_SHOWN,
    Changes,
    KeptPeer,
    SideChange,
    WorkloadChange,
    compute_changes,
)
from tests.reports_sample import DB, WEB, shop_report, tiny_report

# -- the reference: every ordered pair through the evaluator ------------------------------


def pairwise_changes(inventory: Inventory, proposal: Proposal) -> Changes:
    """The definition, quadratic: the workload matrix before and after."""
    existing = list(inventory.network_policies)
    before = workload_matrix(PolicyEvaluator(existing), inventory)
    after = workload_matrix(PolicyEvaluator([*existing, *proposal.policies]), inventory)
    ingress: dict[WorkloadRef, list[tuple[WorkloadRef, Any]]] = defaultdict(list)
    egress: dict[WorkloadRef, list[tuple[WorkloadRef, Any]]] = defaultdict(list)
    for old, new in zip(before, after, strict=True):
        if old.allowed.is_empty or old.allowed == new.allowed:
            continue
        ingress[old.destination].append((old.source, new.allowed))
        egress[old.source].append((old.destination, new.allowed))

    def side(pairs: list[tuple[WorkloadRef, Any]]) -> SideChange:
        lost = [peer for peer, kept in pairs if kept.is_empty]
        limited = [KeptPeer(peer, kept) for peer, kept in pairs if not kept.is_empty]
        return SideChange(len(lost), len(limited), tuple(lost[:NAMES_SHOWN]),
                          tuple(limited[:NAMES_SHOWN]))

    return Changes(
        {ref: WorkloadChange(ref, side(ingress[ref]), side(egress[ref]))
         for ref in sorted(set(ingress) | set(egress))},
        sum(1 for cell in before if not cell.allowed.is_empty),
        sum(1 for cell in after if not cell.allowed.is_empty),
    )


# -- random clusters ---------------------------------------------------------------------

NAMESPACES = ("a", "b", "c")
KEYS = ("app", "tier", "role")
VALUES = ("x", "y", "z")
PORTS = ((80, "TCP", "http"), (8080, "TCP", "web"), (53, "UDP", "dns"), (9000, "SCTP", None),
         (81, "UDP", "http"))
# Often the same few label sets, so that workloads fall into shared classes that only
# their ports or addresses tell apart.
labels = st.one_of(
    st.sampled_from(({}, {"app": "x"}, {"app": "x", "tier": "y"})),
    st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=3),
)


@st.composite
def selectors(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {}
    match = draw(st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=2))
    if match:
        out["matchLabels"] = match
    expressions = []
    for _ in range(draw(st.integers(0, 1))):
        operator = draw(st.sampled_from(("In", "NotIn", "Exists", "DoesNotExist")))
        expression: dict[str, Any] = {"key": draw(st.sampled_from(KEYS)), "operator": operator}
        if operator in ("In", "NotIn"):
            expression["values"] = draw(st.lists(st.sampled_from(VALUES), min_size=1,
                                                 max_size=2, unique=True))
        expressions.append(expression)
    if expressions:
        out["matchExpressions"] = expressions
    return out


@st.composite
def namespace_selectors(draw: st.DrawFn) -> dict[str, Any]:
    return draw(st.one_of(
        st.just({}),
        st.builds(lambda n: {"matchLabels": {"kubernetes.io/metadata.name": n}},
                  st.sampled_from(NAMESPACES)),
        st.builds(lambda v: {"matchLabels": {"team": v}}, st.sampled_from(VALUES)),
    ))


@st.composite
def peers(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(("pods", "namespaces", "both", "ipBlock")))
    if kind == "ipBlock":
        cidr, excepts = draw(st.sampled_from((
            ("10.1.0.0/29", []), ("10.1.0.0/30", ["10.1.0.1/32"]), ("0.0.0.0/0", ["10.1.0.0/30"]),
            ("10.1.0.4/32", []))))
        return {"ipBlock": {"cidr": cidr, "except": excepts}}
    out: dict[str, Any] = {}
    if kind in ("pods", "both"):
        out["podSelector"] = draw(selectors())
    if kind in ("namespaces", "both"):
        out["namespaceSelector"] = draw(namespace_selectors())
    return out


@st.composite
def rule_ports(draw: st.DrawFn) -> dict[str, Any]:
    protocol = draw(st.sampled_from(("TCP", "UDP", "SCTP")))
    kind = draw(st.sampled_from(("any", "number", "range", "name")))
    if kind == "any":
        return {"protocol": protocol}
    if kind == "number":
        return {"protocol": protocol, "port": draw(st.sampled_from((53, 80, 8080, 9000)))}
    if kind == "range":
        return {"protocol": protocol, "port": 53, "endPort": draw(st.sampled_from((80, 9000)))}
    return {"protocol": protocol, "port": draw(st.sampled_from(("http", "web", "dns", "nope")))}


@st.composite
def rules(draw: st.DrawFn, key: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if draw(st.booleans()):
        out[key] = draw(st.lists(peers(), max_size=2))
    if draw(st.booleans()):
        out["ports"] = draw(st.lists(rule_ports(), max_size=2))
    return out


@st.composite
def policies(draw: st.DrawFn, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"podSelector": draw(selectors())}
    types = draw(st.sampled_from((None, ["Ingress"], ["Egress"], ["Ingress", "Egress"])))
    if types is not None:
        spec["policyTypes"] = types
    if draw(st.booleans()):
        spec["ingress"] = draw(st.lists(rules("from"), max_size=2))
    if draw(st.booleans()):
        spec["egress"] = draw(st.lists(rules("to"), max_size=2))
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": draw(st.sampled_from(NAMESPACES))},
            "spec": spec}


@st.composite
def pods(draw: st.DrawFn, number: int) -> Pod:
    namespace = draw(st.sampled_from(NAMESPACES))
    # A small address pool: two workloads may share an address (the same pod to the
    # evaluator when in one namespace); some pods have none.
    ip = draw(st.sampled_from((None, "10.1.0.1", "10.1.0.2", "10.1.0.3", "10.1.0.4",
                               "10.1.0.9", "10.1.0.10", "10.2.0.1")))
    ports = draw(st.lists(st.sampled_from(PORTS), max_size=3, unique_by=lambda p: p[2] or p))
    return Pod(
        namespace=namespace, name=f"w{number}-0", uid=f"u{number}", labels=draw(labels),
        ips=(ip_address(ip),) if ip else (),
        workload=WorkloadRef(namespace, draw(st.sampled_from(("Deployment", "StatefulSet"))),
                             f"w{number}"),
        host_network=draw(st.integers(0, 9)) == 0,
        ports=tuple(ContainerPort(port, protocol, name, "main")
                    for port, protocol, name in ports),
    )


@st.composite
def clusters(draw: st.DrawFn) -> tuple[Inventory, Proposal]:
    count = draw(st.integers(0, 10))
    team = {n: draw(st.sampled_from(VALUES)) for n in NAMESPACES}
    existing = [draw(policies(f"old{i}")) for i in range(draw(st.integers(0, 2)))]
    proposed = [draw(policies(f"new{i}")) for i in range(draw(st.integers(0, 4)))]
    inventory = Inventory(
        namespaces=tuple(Namespace(n, {"kubernetes.io/metadata.name": n, "team": team[n]})
                         for n in NAMESPACES),
        pods=tuple(draw(pods(i)) for i in range(count)),
        network_policies=tuple(NetworkPolicy(p["metadata"]["namespace"], p["metadata"]["name"],
                                             p["spec"]) for p in existing),
    )
    documents = tuple(PolicyDocument(p, ()) for p in proposed)
    return inventory, Proposal(documents, (), (), (), (), Window(None, None))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters())
def test_classes_give_the_pairwise_answer(cluster: tuple[Inventory, Proposal]) -> None:
    inventory, proposal = cluster
    assert compute_changes(inventory, proposal) == pairwise_changes(inventory, proposal)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters())
def test_every_class_cell_is_the_evaluators(cluster: tuple[Inventory, Proposal]) -> None:
    inventory, proposal = cluster
    existing = PolicyEvaluator(list(inventory.network_policies)).policies
    every = (*existing, *PolicyEvaluator(proposal.policies).policies)
    endpoints = workload_endpoints(inventory)
    classes = WorkloadClasses(endpoints, every)
    exceptions = classes.exceptions()
    for active in (len(existing), len(every)):
        evaluator = PolicyEvaluator(every[:active])
        for source in endpoints:
            for destination in endpoints:
                if source == destination:
                    continue
                pair = (classes.class_of[source], classes.class_of[destination])
                rules = exceptions.get(pair)
                cell = (classes.connections(pair, rules, active) if rules is not None
                        else classes.default(pair, active))
                assert cell == evaluator.connections(endpoints[source], endpoints[destination])


# -- the sample and small cases ----------------------------------------------------------


def test_no_existing_policies_every_pair_was_open() -> None:
    report = shop_report()
    changes = compute_changes(report.inventory, report.proposal)
    workloads = {p.workload for p in report.inventory.pods if not p.host_network}
    assert changes.pairs_open_before == len(workloads) * (len(workloads) - 1)
    assert 0 < changes.pairs_open_after < changes.pairs_open_before
    assert changes == pairwise_changes(report.inventory, report.proposal)
    for change in changes.by_workload.values():
        for kept in change.ingress.limited_shown + change.egress.limited_shown:
            assert not kept.after.is_empty and not kept.after.is_all


def test_observed_pairs_keep_their_ports() -> None:
    report = shop_report()
    changes = compute_changes(report.inventory, report.proposal)
    cart = next(ref for ref in changes.by_workload if ref.name == "cart")
    ingress = changes.by_workload[cart].ingress
    storefront = next(k for k in ingress.limited_shown if k.peer.name == "storefront")
    assert storefront.after.contains("TCP", 8080)
    lines = changes.by_workload[cart].lines()
    assert any(line.startswith("denies all ingress from") for line in lines)


def test_tiny_pairs() -> None:
    report = tiny_report()
    changes = compute_changes(report.inventory, report.proposal)
    assert changes.pairs_open_before == 2
    assert changes.pairs_open_after == 1  # web -> db on TCP 5432 only
    db_from_web = changes.by_workload[DB].ingress.limited_shown[0]
    assert db_from_web.peer == WEB and str(db_from_web.after) == "TCP 5432"
    assert changes.by_workload[WEB].ingress.lost_shown == (DB,)


def test_existing_policies_are_the_baseline() -> None:
    report = tiny_report()
    closed = NetworkPolicy("ns-b", "deny", {"podSelector": {}, "policyTypes": ["Ingress"]})
    inventory = replace(report.inventory, network_policies=(closed,))
    changes = compute_changes(inventory, report.proposal)
    assert changes.pairs_open_before == 1  # only db -> web was open
    assert WEB in changes.by_workload


def test_unreadable_existing_policies_compare_without_them() -> None:
    report = tiny_report()
    broken = NetworkPolicy("ns-b", "broken", {"podSelector": {"matchLabels": "oops"}})
    changes = compute_changes(replace(report.inventory, network_policies=(broken,)),
                              report.proposal)
    assert changes.note is not None and "ns-b/broken" in changes.note
    assert changes.pairs_open_before == 2 and changes.pairs_open_after == 1


def test_names_beyond_the_shown_ones_are_counted() -> None:
    namespace = Namespace("n", {"kubernetes.io/metadata.name": "n"})
    many = tuple(
        Pod("n", f"p{i}-0", f"u{i}", {"app": f"p{i}"}, (ip_address(f"10.3.0.{i + 1}"),),
            WorkloadRef("n", "Deployment", f"p{i:02d}"))
        for i in range(12))
    deny = {"kind": "NetworkPolicy", "metadata": {"name": "deny", "namespace": "n"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}
    proposal = Proposal((PolicyDocument(deny, ()),), (), (), (), (), Window(None, None))
    changes = compute_changes(Inventory(namespaces=(namespace,), pods=many), proposal)
    assert changes.pairs_open_before == 12 * 11 and changes.pairs_open_after == 0
    first = changes.by_workload[WorkloadRef("n", "Deployment", "p00")]
    assert first.ingress.lost == 11
    assert [r.name for r in first.ingress.lost_shown] == ["p01", "p02", "p03", "p04"]
    assert first.lines()[0].endswith("(n/deployment/p01, n/deployment/p02, "
                                     "n/deployment/p03, n/deployment/p04, +7 more)")


def test_named_ports_tell_workloads_apart() -> None:
    namespace = Namespace("n", {"kubernetes.io/metadata.name": "n"})

    def pod(name: str, ip: str, *ports: tuple[int, str]) -> Pod:
        return Pod("n", f"{name}-0", name, {"app": "x"}, (ip_address(ip),),
                   WorkloadRef("n", "Deployment", name),
                   ports=tuple(ContainerPort(p, "TCP", n, "main") for p, n in ports))

    inventory = Inventory(namespaces=(namespace,), pods=(
        pod("a", "10.3.0.1", (80, "http")), pod("b", "10.3.0.2", (8080, "http")),
        pod("c", "10.3.0.3")))
    named = {"kind": "NetworkPolicy", "metadata": {"name": "http", "namespace": "n"},
             "spec": {"podSelector": {}, "ingress": [{"ports": [{"port": "http"}]}]}}
    proposal = Proposal((PolicyDocument(named, ()),), (), (), (), (), Window(None, None))
    changes = compute_changes(inventory, proposal)
    assert changes == pairwise_changes(inventory, proposal)
    kept = {str(k.after) for k in changes.by_workload[WorkloadRef("n", "Deployment", "c")]
            .egress.limited_shown}
    assert kept == {"TCP 80", "TCP 8080"}
