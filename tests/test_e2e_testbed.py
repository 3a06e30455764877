"""End to end on real packets: run the small testbed scenario, `netpol-discover analyze` its
capture with its inventory, then check the proposal three ways -- with `netpol-discover
verify`, with the project's evaluator directly, and against the ground truth: every
connection made is allowed, a sample of connections never made is denied, and the FQDN
dependencies found are exactly the scenario's. The same checks run on the committed shop
sample (no root needed for that one: it is a file). The control-plane scenario checks
what keeps a cluster running (issue 16): API-server watches, a webhook the API server
calls, a host-network client of cluster DNS, the cluster DNS's upstream.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from ipaddress import IPv4Address, ip_address
from pathlib import Path
from typing import Any

import pytest
import yaml

from discover.inventory.files import load_inventory_files
from discover.inventory.model import Inventory, Pod
from discover.netpol.evaluate import Endpoint, IpEndpoint, PodEndpoint, PolicyEvaluator
from discover.netpol.files import load_policy_file
from tests.testbed.pytest_support import REPO, ScenarioRun, cached_run
from tests.testbed.scenario import SERVICE_RANGE

SAMPLE = REPO / "samples" / "shop"
ANALYZE_MISSING = importlib.util.find_spec("discover.commands.analyze") is None
OUTPUTS = ("policies.yaml", "flows.csv", "fqdn-dependencies.yaml", "cilium-policies.yaml",
           "report.md", "report.html")
# Addresses no scenario uses: a client and a server nobody talked to.
STRANGER = IPv4Address("203.0.113.77")
NOWHERE = IPv4Address("192.0.2.199")


def _cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "discover", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=600, check=False)


def _analyze(capture: Path, inventory: Path, out: Path, *extra: str) -> Path:
    if ANALYZE_MISSING:
        pytest.skip("`netpol-discover analyze` is not in this checkout yet "
                    "(discover/commands/analyze.py)")
    done = _cli("analyze", capture, "--inventory", inventory, "--out", out, *extra)
    assert done.returncode == 0, done.stderr
    for name in OUTPUTS:
        assert (out / name).is_file(), f"analyze did not write {name}"
    return out


@dataclass(frozen=True, slots=True)
class Case:
    """One recorded run and what `analyze` proposed for it."""

    truth: dict[str, Any]
    inventory_path: Path
    inventory: Inventory
    proposal: Path

    @property
    def policies(self) -> Path:
        return self.proposal / "policies.yaml"


def _case(truth: dict[str, Any], inventory: Path, capture: Path, out: Path,
          *extra: str) -> Case:
    proposal = _analyze(capture, inventory, out, *extra)
    return Case(truth, inventory, load_inventory_files([inventory]), proposal)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Case:
    if ANALYZE_MISSING:  # skip before spending the run
        pytest.skip("`netpol-discover analyze` is not in this checkout yet")
    run: ScenarioRun = cached_run("small", tmp_path_factory.mktemp("testbed"))
    return _case(run.truth, run.inventory, run.capture, tmp_path_factory.mktemp("proposal"))


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Case:
    truth = json.loads((SAMPLE / "ground-truth.json").read_text(encoding="utf-8"))
    return _case(truth, SAMPLE / "inventory.json", SAMPLE / "capture.pcap",
                 tmp_path_factory.mktemp("shop-proposal"))


# -- what was made, what was never made ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Probe:
    """One connection to check: wire addresses for `verify`, endpoints for the evaluator."""

    src_ip: str
    dst_ip: str  # as the client used it (ClusterIP, LB IP, pod IP, external IP)
    protocol: str
    dst_port: int
    src: Endpoint
    dst: Endpoint
    pod_port: int  # the port the destination really listens on (targetPort)
    time: float
    what: str
    from_node: bool = False  # kubelet-like: Kubernetes always lets a node reach its pods


class _Endpoints:
    def __init__(self, inventory: Inventory) -> None:
        self.pods = {(p.namespace, p.name): p for p in inventory.pods}
        self.namespaces = {n.name: n.labels for n in inventory.namespaces}

    def pod(self, pod: Pod) -> PodEndpoint:
        return PodEndpoint(namespace=pod.namespace, labels=pod.labels,
                           namespace_labels=self.namespaces.get(pod.namespace, {}),
                           ip=pod.ips[0], ports=pod.ports, name=pod.name)

    def of(self, ref: dict[str, Any] | None) -> Endpoint | None:
        if ref is None:
            return None
        if ref["kind"] in ("external", "node", "api-server"):
            return IpEndpoint(ip_address(ref["ip"]))
        pod = self.pods.get((ref["namespace"], ref["pod"]))
        return None if pod is None else self.pod(pod)


def made(case: Case) -> list[Probe]:
    """Every connection of the ground truth whose pods the inventory has (a pod deleted
    before the snapshot can't be allowed by a policy that selects by its labels)."""
    endpoints = _Endpoints(case.inventory)
    probes = []
    for c in case.truth["connections"]:
        src, dst = endpoints.of(c["client"]), endpoints.of(c["resolved"])
        if src is None or dst is None:
            continue
        probes.append(Probe(c["client"]["ip"], c["server_address"], c["protocol"],
                            c["server_port"], src, dst, c["resolved"]["port"], c["time"],
                            f"{c['client'].get('workload') or c['client']['ip']} -> "
                            f"{c['server_address']}:{c['server_port']}",
                            from_node=c["client"]["kind"] == "node"))
    return probes


def never_made(case: Case) -> list[Probe]:
    """A sample of connections nobody made: other workload pairs, other ports, external
    addresses not used, strangers calling in. kube-system stays out (every pod may reach
    the cluster DNS, whatever it did)."""
    endpoints = _Endpoints(case.inventory)
    at = datetime.fromisoformat(case.truth["end"]).timestamp()
    pods: dict[str, Pod] = {}
    for pod in case.inventory.pods:
        if pod.namespace != "kube-system" and not pod.host_network:
            pods.setdefault(f"{pod.workload.namespace}/{pod.workload.name}", pod)
    app = [c for c in case.truth["connections"] if c["purpose"] == "app" and c["resolved"]]
    pairs = {(c["client"].get("workload"), c["resolved"].get("workload")) for c in app}
    ports_used = {(c["client"].get("workload"), c["resolved"].get("workload"), c["protocol"],
                   c["resolved"]["port"]) for c in app}
    external_used = {(c["client"].get("workload"), c["resolved"]["ip"], c["protocol"],
                      c["resolved"]["port"]) for c in app if c["resolved"]["kind"] == "external"}
    fqdn_ports = {(d["workload"], d["protocol"], d["port"])
                  for d in case.truth["fqdn_dependencies"]}
    probes: list[Probe] = []

    def add(src_ip: str, src: Endpoint, dst_ip: str, dst: Endpoint, protocol: str,
            port: int, what: str) -> None:
        probes.append(Probe(src_ip, dst_ip, protocol, port, src, dst, port, at, what))

    for a, client in sorted(pods.items()):
        src = endpoints.pod(client)
        for b, server in sorted(pods.items()):
            if a == b:
                continue
            dst = endpoints.pod(server)
            candidates = [(p.protocol, p.port) for p in server.ports] + [("TCP", 9999)]
            for protocol, port in candidates:
                if (a, b, protocol, port) in ports_used:
                    continue
                kind = "other port" if (a, b) in pairs else "other pair"
                add(str(client.ips[0]), src, str(server.ips[0]), dst, protocol, port,
                    f"{kind}: {a} -> {b} {protocol}/{port}")
        # External addresses and ports this workload did not use; a port where it has an
        # FQDN dependency is left out (the any-ip fallback opens that port to any address).
        externals = {(ip, protocol, port) for _, ip, protocol, port in external_used}
        externals |= {(str(NOWHERE), "TCP", 22)}
        for ip, protocol, port in sorted(externals):
            if (a, ip, protocol, port) in external_used or (a, protocol, port) in fqdn_ports:
                continue
            add(str(client.ips[0]), src, ip, IpEndpoint(ip_address(ip)), protocol, port,
                f"external: {a} -> {ip} {protocol}/{port}")
        # A stranger outside calling each port of each workload.
        for p in client.ports:
            add(str(STRANGER), IpEndpoint(STRANGER), str(client.ips[0]), src, p.protocol,
                p.port, f"stranger: -> {a} {p.protocol}/{p.port}")
    return probes


# -- checks -------------------------------------------------------------------------------


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _verify(case: Case, probes: Iterable[Probe], path: Path
            ) -> tuple[int, list[dict[str, Any]], str]:
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["src_ip", "dst_ip", "protocol", "dst_port", "connections",
                         "first_seen", "last_seen"])
        for p in probes:
            writer.writerow([p.src_ip, p.dst_ip, p.protocol, p.dst_port, 1, _iso(p.time),
                             _iso(p.time)])
    done = _cli("verify", "--policies", case.policies, "--flows", path, "--inventory",
                case.inventory_path, "--format", "json")
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout), done.stderr


def _evaluate(case: Case, probes: Iterable[Probe]) -> list[tuple[Probe, bool, str]]:
    evaluator = PolicyEvaluator(load_policy_file(case.policies).policies)
    out = []
    for p in probes:
        verdict = evaluator.check(p.src, p.dst, p.protocol, p.pod_port)
        out.append((p, verdict.allowed, verdict.reason))
    return out


def _fqdn_found(case: Case) -> set[tuple[str, str, str, tuple[str, ...], frozenset[Any]]]:
    text = (case.proposal / "fqdn-dependencies.yaml").read_text(encoding="utf-8")
    docs = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    document = next(d for d in docs if d.get("kind") == "FqdnDependencies")
    found = set()
    for dep in document.get("dependencies") or []:
        namespace, _kind, name = str(dep["workload"]).split("/")
        ports = frozenset((p["protocol"], int(p["port"])) for p in dep["ports"])
        found.add((namespace, name, dep["fqdn"], tuple(dep.get("cnameChain") or ()), ports))
    return found


def _fqdn_expected(case: Case) -> set[tuple[str, str, str, tuple[str, ...], frozenset[Any]]]:
    grouped: dict[tuple[str, str, str, tuple[str, ...]], set[tuple[str, int]]] = {}
    for dep in case.truth["fqdn_dependencies"]:
        namespace, name = dep["workload"].split("/")
        key = (namespace, name, dep["fqdn"], tuple(dep["cname_chain"]))
        grouped.setdefault(key, set()).add((dep["protocol"], dep["port"]))
    return {(*key, frozenset(ports)) for key, ports in grouped.items()}


def check_made_allowed(case: Case, tmp_path: Path) -> None:
    probes = made(case)
    assert len(probes) > 20
    code, verdicts, stderr = _verify(case, probes, tmp_path / "made.csv")
    denied = [v for v in verdicts if not v["allowed"]]
    assert code == 0 and not denied, (denied[:5], stderr)
    assert len(verdicts) == len(probes)
    assert any(p.from_node for p in probes), "the scenario has kubelet-like probes"
    # The evaluator alone knows nothing of the node exemption `verify` applies.
    pod_traffic = [p for p in probes if not p.from_node]
    wrong = [(p.what, reason) for p, allowed, reason in _evaluate(case, pod_traffic)
             if not allowed]
    assert not wrong, wrong[:5]


def check_never_made_denied(case: Case, tmp_path: Path) -> None:
    probes = never_made(case)
    kinds = {p.what.split(":")[0] for p in probes}
    assert {"other pair", "other port", "external", "stranger"} <= kinds, kinds
    wrong = [(p.what, reason) for p, allowed, reason in _evaluate(case, probes) if allowed]
    assert not wrong, wrong[:5]
    code, verdicts, stderr = _verify(case, probes, tmp_path / "never.csv")
    assert code == 1, stderr
    allowed = [v for v in verdicts if v["allowed"]]
    assert not allowed, allowed[:5]
    assert len(verdicts) == len(probes)


# -- the small scenario, run here (root) --------------------------------------------------


@pytest.mark.root
@pytest.mark.slow
def test_small_flows_csv_keeps_wire_addresses(small: Case) -> None:
    with (small.proposal / "flows.csv").open(encoding="utf-8") as stream:
        rows = {(r["src_ip"], r["dst_ip"], r["protocol"], int(r["dst_port"]))
                for r in csv.DictReader(stream)}
    edges = {(c["client"]["ip"], c["server_address"], c["protocol"], c["server_port"])
             for c in small.truth["connections"]}
    assert edges <= rows, sorted(edges - rows)[:5]


@pytest.mark.root
@pytest.mark.slow
def test_small_every_connection_made_is_allowed(small: Case, tmp_path: Path) -> None:
    check_made_allowed(small, tmp_path)


@pytest.mark.root
@pytest.mark.slow
def test_small_connections_never_made_are_denied(small: Case, tmp_path: Path) -> None:
    check_never_made_denied(small, tmp_path)


@pytest.mark.root
@pytest.mark.slow
def test_small_fqdn_dependencies_are_the_scenarios(small: Case) -> None:
    expected = _fqdn_expected(small)
    assert expected, "the small scenario has an FQDN dependency"
    assert _fqdn_found(small) == expected


# -- the committed shop sample (a file: no root) ------------------------------------------


@pytest.mark.slow
def test_shop_sample_every_connection_made_is_allowed(shop: Case, tmp_path: Path) -> None:
    check_made_allowed(shop, tmp_path)


@pytest.mark.slow
def test_shop_sample_connections_never_made_are_denied(shop: Case, tmp_path: Path) -> None:
    check_never_made_denied(shop, tmp_path)


@pytest.mark.slow
def test_shop_sample_fqdn_dependencies_are_the_scenarios(shop: Case) -> None:
    expected = _fqdn_expected(shop)
    assert {e[2] for e in expected} == {"api.payments.example.com", "objects.example.net"}
    assert _fqdn_found(shop) == expected


@pytest.mark.slow
def test_shop_sample_deleted_pod_is_not_allowed_by_its_successor(shop: Case) -> None:
    """The IP reused by shop/newsletter: what coupon-sync did before must not show up as
    newsletter's traffic (no policy lets newsletter call cart, which coupon-sync did)."""
    deleted = next(p for p in shop.truth["pods"] if not p["in_inventory"])
    successor = next(p for p in shop.truth["pods"]
                     if p["ip"] == deleted["ip"] and p["in_inventory"] and not p["host_network"])
    targets = {c["resolved"]["workload"] for c in shop.truth["connections"]
               if c["client"].get("pod") == deleted["pod"] and c["purpose"] == "app"}
    successor_targets = {c["resolved"]["workload"] for c in shop.truth["connections"]
                         if c["client"].get("pod") == successor["pod"] and
                         c["purpose"] == "app"}
    only_old = targets - successor_targets
    assert only_old, "the scenario gives the deleted pod a destination of its own"
    endpoints = _Endpoints(shop.inventory)
    newsletter = endpoints.pods[(successor["namespace"], successor["pod"])]
    evaluator = PolicyEvaluator(load_policy_file(shop.policies).policies)
    for workload in only_old:
        pod = next(p for p in shop.inventory.pods
                   if f"{p.workload.namespace}/{p.workload.name}" == workload)
        for port in pod.ports:
            verdict = evaluator.check(endpoints.pod(newsletter), endpoints.pod(pod),
                                      port.protocol, port.port)
            assert not verdict.allowed, (workload, port, verdict.reason)


# -- what keeps the cluster running: the control-plane scenario, run here (root) ----------

API_SERVER = "203.0.113.200"
UPSTREAM_DNS = "192.0.2.53"
# analyze's options per case; "unseen-webhook" analyzes the capture without the API
# server's webhook calls: the webhook rule comes from the configuration, called or not.
CONTROL_PLANE_CASES = {
    "default": (),
    "system": ("--include-system-namespaces",),
    "unseen-webhook": ("--include-system-namespaces",),
}


@pytest.fixture(scope="module")
def control_plane_run(tmp_path_factory: pytest.TempPathFactory) -> ScenarioRun:
    if ANALYZE_MISSING:
        pytest.skip("`netpol-discover analyze` is not in this checkout yet")
    return cached_run("control-plane", tmp_path_factory.mktemp("testbed"))


def _without_webhook_calls(capture: Path, out: Path) -> Path:
    done = subprocess.run(["tcpdump", "-r", str(capture), "-w", str(out),
                           f"not (host {API_SERVER} and (port 443 or port 8443))"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module", params=sorted(CONTROL_PLANE_CASES))
def control_plane(request: pytest.FixtureRequest, control_plane_run: ScenarioRun,
                  tmp_path_factory: pytest.TempPathFactory) -> Case:
    name: str = request.param
    work = tmp_path_factory.mktemp(f"control-plane-{name}")
    capture = control_plane_run.capture
    if name == "unseen-webhook":
        capture = _without_webhook_calls(capture, work / "capture.pcap")
    return _case(control_plane_run.truth, control_plane_run.inventory, capture,
                 work / "proposal", *CONTROL_PLANE_CASES[name])


def what_runs_the_cluster(case: Case) -> dict[str, list[Probe]]:
    """The connections the cluster can't lose, as the wire showed them (before and after
    DNAT): the API server calling the webhook's pods, the host-network client's lookups,
    the cluster DNS forwarding upstream, the watches of the API server."""
    endpoints = _Endpoints(case.inventory)
    dns = [p for p in case.inventory.pods if p.workload.name == "coredns"]
    found: dict[str, list[Probe]] = {"webhook": [], "host-network dns": [], "upstream": [],
                                     "watch": []}
    for c in case.truth["connections"]:
        src, dst = endpoints.of(c["client"]), endpoints.of(c["resolved"])
        if not c["ok"] or src is None or dst is None:
            continue
        kind = c["client"]["kind"]
        if kind == "api-server":
            what = "webhook"
        elif kind == "node" and c["purpose"] == "dns":
            what = "host-network dns"
        elif c["resolved"]["kind"] == "api-server":
            what = "watch"
        else:
            continue
        pod_port = c["resolved"]["port"]
        for dst_ip, port in ((c["server_address"], c["server_port"]),
                             (c["resolved"]["ip"], pod_port)):
            found[what].append(Probe(c["client"]["ip"], dst_ip, c["protocol"], port, src,
                                     dst, pod_port, c["time"], f"{what}: {c['client']['ip']}"
                                     f" -> {dst_ip}:{port}", from_node=kind == "node"))
    at = datetime.fromisoformat(case.truth["end"]).timestamp()
    for pod in dns:
        found["upstream"].append(Probe(str(pod.ips[0]), UPSTREAM_DNS, "UDP", 53,
                                       endpoints.pod(pod), IpEndpoint(ip_address(UPSTREAM_DNS)),
                                       53, at, f"upstream: {pod.name} -> {UPSTREAM_DNS}:53"))
    return found


@pytest.mark.root
@pytest.mark.slow
def test_control_plane_connections_are_on_the_wire(control_plane_run: ScenarioRun,
                                                   tmp_path: Path) -> None:
    """The scenario really makes each of them (else the checks below prove nothing): the
    analysis of the full capture lists them."""
    case = _case(control_plane_run.truth, control_plane_run.inventory,
                 control_plane_run.capture, tmp_path / "proposal")
    with (case.proposal / "flows.csv").open(encoding="utf-8") as stream:
        rows = {(r["src_ip"], r["dst_ip"], r["protocol"], int(r["dst_port"]))
                for r in csv.DictReader(stream)}
    for what, probes in what_runs_the_cluster(case).items():
        assert probes, what
        # the node's own lookups are DNATed before any interface: only the pod IP shows
        missing = [p.what for p in probes
                   if (p.src_ip, p.dst_ip, p.protocol, p.dst_port) not in rows
                   and not (p.from_node and ip_address(p.dst_ip) in SERVICE_RANGE)]
        assert not missing, missing[:5]
    watchers = {c["client"].get("workload") for c in case.truth["connections"]
                if (c["resolved"] or {}).get("kind") == "api-server"}
    assert watchers == {"web/config-watcher", "kube-system/coredns"}


@pytest.mark.root
@pytest.mark.slow
def test_control_plane_proposal_keeps_what_runs_the_cluster(control_plane: Case,
                                                            tmp_path: Path) -> None:
    probes = [p for group in what_runs_the_cluster(control_plane).values() for p in group]
    if control_plane.proposal.parent.name.startswith("control-plane-unseen-webhook"):
        with (control_plane.proposal / "flows.csv").open(encoding="utf-8") as stream:
            assert not [r for r in csv.DictReader(stream) if r["src_ip"] == API_SERVER]
    code, verdicts, stderr = _verify(control_plane, probes, tmp_path / "cluster.csv")
    denied = [v for v in verdicts if not v["allowed"]]
    assert code == 0 and not denied, (denied[:5], stderr)
    # The evaluator alone, without verify's exemption for a node and its own pods: a
    # host-network client on another node has none.
    wrong = [(p.what, reason) for p, allowed, reason in _evaluate(control_plane, probes)
             if not allowed]
    assert not wrong, wrong[:5]


@pytest.mark.root
@pytest.mark.slow
def test_control_plane_every_connection_made_is_allowed(control_plane: Case,
                                                        tmp_path: Path) -> None:
    check_made_allowed(control_plane, tmp_path)


@pytest.mark.root
@pytest.mark.slow
def test_control_plane_connections_never_made_are_denied(control_plane: Case,
                                                         tmp_path: Path) -> None:
    check_never_made_denied(control_plane, tmp_path)


@pytest.mark.root
@pytest.mark.slow
def test_control_plane_system_namespaces_are_opt_in(control_plane: Case) -> None:
    documents = [d for d in yaml.safe_load_all(control_plane.policies.read_text(
        encoding="utf-8")) if isinstance(d, dict)]
    in_kube_system = [d["metadata"]["name"] for d in documents
                      if d["metadata"].get("namespace") == "kube-system"]
    report = (control_plane.proposal / "report.md").read_text(encoding="utf-8")
    assert "control-plane-unknown" not in report and "dns-upstream-unknown" not in report
    if control_plane.proposal.parent.name.startswith("control-plane-default"):
        assert not in_kube_system
        assert "system-namespace-held-back" in report
    else:
        assert "coredns-netpol" in in_kube_system
        assert "system-namespace-held-back" not in report
