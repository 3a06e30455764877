"""The network-namespace testbed: scenario checks, the planned cluster, DNAT and DNS
rendering, the inventory it writes (pure, no root), and real runs (root)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest
import yaml

from discover.flows.events import ConnectionOpen
from discover.inventory.facts import find_api_server
from discover.inventory.files import load_inventory_files
from discover.reading.capture_file import CaptureFile
from tests.testbed.cluster import build_cluster
from tests.testbed.dnat import render_nat_table
from tests.testbed.dns import hosts_file_text, parse_query_log, static_records
from tests.testbed.ground_truth import build_ground_truth
from tests.testbed.inventory_writer import build_inventory
from tests.testbed.plan import API_AGENT, EXTERNAL_AGENT, NODE_AGENT, plan_agents
from tests.testbed.pytest_support import REPO, cached_run, leftovers, processes_mentioning
from tests.testbed.runner import RunResult, Timeline
from tests.testbed.scenario import DOCUMENTATION_RANGES, POD_RANGE, ScenarioError
from tests.testbed.scenario_load import SCENARIO_DIR, load_scenario

SCENARIOS = ["small", "shop", "control-plane"]


# -- scenarios ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", SCENARIOS)
def test_bundled_scenarios_load(name: str) -> None:
    scenario = load_scenario(name)
    assert scenario.name == name
    assert scenario.traffic and scenario.workloads


def test_shop_has_what_the_issue_asks_for() -> None:
    shop = load_scenario("shop")
    assert len(shop.workloads) >= 12
    assert len({w.namespace for w in shop.workloads}) >= 3
    assert any(len(e.rotation) > 1 for e in shop.externals), "a rotating payment API"
    assert any(len(e.cname_chain) >= 2 for e in shop.externals), "a CNAME chain"
    assert any(e.name is None for e in shop.externals), "a service reached by IP only"
    assert any(t.target.every_pod for t in shop.traffic), "a metrics scraper"
    assert any(w.reuse_ip_of for w in shop.workloads), "a pod IP reused"
    assert any(s.type == "LoadBalancer" for s in shop.services)
    assert any(s.cluster_ip is None for s in shop.services), "a headless Service"
    assert shop.ingresses
    talkers = {t.source for t in shop.traffic}
    served = {t.target.service for t in shop.traffic}
    assert "shop/recommender" not in talkers and "shop/recommender" in served


def _write(tmp_path: Path, doc: dict[str, Any]) -> str:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return str(path)


def _small_doc() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((SCENARIO_DIR / "small.yaml").read_text())
    return doc


@pytest.mark.parametrize(("change", "where"), [
    (lambda d: d["externals"][0].update(addresses=["8.8.8.8"]), "externals[0]"),
    (lambda d: d["external_clients"][0].update(ip="10.0.0.1"), "external_clients[0]"),
    (lambda d: d["node"].update(pod_cidr="10.1.0.0/24"), "node.pod_cidr"),
    (lambda d: d["services"][1].update(cluster_ip="10.200.0.1"), "services[1].cluster_ip"),
    (lambda d: d["services"][1]["ports"][0].update(target_port="nope"), "services[1].ports[0]"),
    (lambda d: d["traffic"][1]["to"].update(service="web/missing"), "traffic[1].to"),
    (lambda d: d["workloads"][0].update(colour="red"), "workloads[0]"),
    (lambda d: d["traffic"][0]["to"].update(ip="192.0.2.1"), "traffic[0].to"),
    (lambda d: d.update(webhooks=[{"name": "w", "service": "web/missing"}]),
     "webhooks[0].service"),
    (lambda d: d.update(webhooks=[{"name": "w", "service": "web/api", "port": 8443}]),
     "webhooks[0].port"),
    (lambda d: d["traffic"][0].update(hold=10, protocol="UDP"), "traffic[0].hold"),
    (lambda d: d.update(upstream_dns="8.8.8.8"), "upstream_dns"),
    (lambda d: d["traffic"][0].update({"from": "api-server"}) or d["traffic"][0].update(
        to={"workload": "web/api", "port": 8000}), "traffic[0].to"),
])
def test_bad_scenarios_name_the_file_and_place(tmp_path: Path, change: Any, where: str) -> None:
    doc = _small_doc()
    change(doc)
    path = _write(tmp_path, doc)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert caught.value.path == path
    assert caught.value.where == where
    assert str(caught.value).startswith(f"{path}: {where}: ")


def test_unreadable_scenario(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(str(tmp_path / "absent.yaml"))
    (tmp_path / "bad.yaml").write_text("name: [", encoding="utf-8")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(str(tmp_path / "bad.yaml"))


# -- the planned cluster ------------------------------------------------------------------


@pytest.mark.parametrize("name", SCENARIOS)
def test_pod_ips_unique_among_pods_alive_together(name: str) -> None:
    cluster = build_cluster(load_scenario(name))
    in_netns = [p for p in cluster.pods if not p.host_network]
    for at in [0.0] + [float(t) for t in range(1, int(cluster.scenario.duration) + 1)]:
        alive = [p.ip for p in in_netns if p.alive(at)]
        assert len(alive) == len(set(alive)), at
    assert all(p.ip in cluster.scenario.node.pod_cidr and p.ip in POD_RANGE for p in in_netns)
    assert len({p.name for p in cluster.pods}) == len(cluster.pods)


def test_shop_reuses_the_deleted_pods_ip() -> None:
    cluster = build_cluster(load_scenario("shop"))
    old = cluster.pods_of("shop/coupon-sync")[0]
    new = cluster.pods_of("shop/newsletter")[0]
    assert old.ip == new.ip
    assert old.deleted_at is not None and new.created_at is not None
    assert new.created_at >= old.deleted_at + 1.5


def test_pods_carry_kubernetes_owner_labels() -> None:
    cluster = build_cluster(load_scenario("shop"))
    storefront = cluster.pods_of("shop/storefront")
    assert len(storefront) == 2
    hashes = {p.labels["pod-template-hash"] for p in storefront}
    assert len(hashes) == 1
    assert all(p.name.startswith(f"storefront-{hashes.pop()}-") for p in storefront[:1])
    redis = cluster.pods_of("shop/cart-redis")[0]
    assert redis.name == "cart-redis-0" and redis.owner_kind == "StatefulSet"
    calico = cluster.pods_of("kube-system/calico-node")[0]
    assert calico.host_network and calico.ip == cluster.scenario.node.ip


@pytest.mark.parametrize("name", SCENARIOS)
def test_plans_only_use_pods_alive_and_documentation_addresses(name: str) -> None:
    cluster = build_cluster(load_scenario(name))
    plans = plan_agents(cluster)
    pods = {p.name: p for p in cluster.pods}
    allowed = list(DOCUMENTATION_RANGES) + [POD_RANGE, IPv4Network("10.96.0.0/12")]
    for agent, plan in plans.items():
        for action in plan.actions:
            if agent not in (EXTERNAL_AGENT, NODE_AGENT, API_AGENT):
                assert pods[agent].alive(action.at)
            assert action.address is not None or action.query
            if action.address is not None:
                ip = IPv4Address(action.address)
                assert any(ip in net for net in allowed), (agent, action)
                target = cluster.pod_by_ip(ip, action.at)
                if ip in POD_RANGE:
                    assert target is not None and target.alive(action.at), (agent, action)
            assert 0 <= action.at < cluster.scenario.duration
    if cluster.scenario.external_clients:
        assert plans[EXTERNAL_AGENT].actions, "the external clients call the LoadBalancer"
    assert plans[API_AGENT].listen == (("TCP", 6443),), "every cluster has an API server"


def test_scraper_reaches_every_pod_with_a_metrics_port() -> None:
    cluster = build_cluster(load_scenario("shop"))
    plans = plan_agents(cluster)
    scraper = cluster.pods_of("monitoring/prometheus")[0]
    scraped = {a.address for a in plans[scraper.name].actions}
    expected = {str(p.ip) for p in cluster.pods
                if p.port_named("metrics") and p.workload.key != "monitoring/prometheus"}
    assert scraped == expected


# -- DNAT and DNS -------------------------------------------------------------------------


def test_nat_table_balances_every_endpoint() -> None:
    cluster = build_cluster(load_scenario("shop"))
    table = render_nat_table(cluster, None)
    assert table.startswith("*nat\n") and table.endswith("COMMIT\n")
    catalog = [p.ip for p in cluster.pods_of("shop/catalog")]
    for ip in catalog:
        assert f"--to-destination {ip}:8080" in table
    assert "-m statistic --mode random --probability 0.50000000000" in table
    assert re.search(r"-d 203\.0\.113\.10/32 -p tcp .*--dport 443 -j KUBE-SVC-", table)
    assert "-d 10.96.0.10/32 -p udp" in table
    # The headless Service gets no rule; the deleted pod none once it is gone.
    assert "orders-db" not in table
    coupon = cluster.pods_of("shop/coupon-sync")[0]
    later = render_nat_table(cluster, 10.0)
    assert f"{coupon.ip}:" not in later.replace(f"{coupon.ip}:9090", "")


def test_dns_records_and_rotation() -> None:
    cluster = build_cluster(load_scenario("shop"))
    records = static_records(cluster)
    assert "--host-record=cart.shop.svc.cluster.local,10.96.10.13" in records
    db = cluster.pods_of("shop/orders-db")[0]
    assert f"--host-record=orders-db-0.orders-db.shop.svc.cluster.local,{db.ip}" in records
    assert "--cname=objects.example.net,objects.cdn.example.org" in records
    assert "--cname=objects.cdn.example.org,s3.eu-west.store.example.com" in records
    phases = [hosts_file_text(cluster, k) for k in range(3)]
    assert "192.0.2.10 api.payments.example.com" in phases[0]
    assert "192.0.2.10" not in phases[1] and "192.0.2.12 api.payments.example.com" in phases[1]
    assert phases[0] == hosts_file_text(cluster, 3), "phases cycle"
    assert "192.0.2.20 s3.eu-west.store.example.com" in phases[0]


def test_dnsmasq_query_log_names_client_port_and_name() -> None:
    text = (
        "Nov 26 04:34:51 dnsmasq[18207]: started, version 2.90 cachesize 150\n"
        "Nov 26 04:34:52 dnsmasq[18207]: 1 10.244.0.5/35636 query[A] Cart.shop.svc.cluster"
        ".local from 10.244.0.5\n"
        "Nov 26 04:34:52 dnsmasq[18207]: 1 10.244.0.5/35636 config cart.shop.svc.cluster"
        ".local is 10.96.10.13\n"
    )
    assert parse_query_log(text) == {("10.244.0.5", 35636, "cart.shop.svc.cluster.local")}


def test_node_probes_and_dns_over_tcp_are_planned() -> None:
    cluster = build_cluster(load_scenario("shop"))
    plans = plan_agents(cluster)
    node = plans[NODE_AGENT]
    assert node.actions and node.listen == ()
    assert {a.source for a in node.actions} == {str(cluster.scenario.node.ip)}
    catalog = {str(p.ip) for p in cluster.pods_of("shop/catalog")}
    assert catalog <= {a.address for a in node.actions}
    media = cluster.pods_of("shop/media")[0]
    assert all(a.dns_tcp for a in plans[media.name].actions)


# -- inventory and ground truth, from a made-up timeline ----------------------------------


def _timeline(cluster: Any) -> Timeline:
    times = Timeline(setup=1_800_000_000.2, start=1_800_000_002.0)
    for pod in cluster.pods:
        if pod.created_at is None:
            times.created[pod.name] = times.setup + 0.5
        else:
            times.created[pod.name] = times.start + pod.created_at
        if pod.deleted_at is not None:
            times.deleted[pod.name] = times.start + pod.deleted_at
    times.end = times.start + cluster.scenario.duration
    times.snapshot = times.end + 1
    return times


def test_inventory_loads_with_the_project_loader(tmp_path: Path) -> None:
    cluster = build_cluster(load_scenario("shop"))
    times = _timeline(cluster)
    document = build_inventory(cluster, times)
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    inventory = load_inventory_files([path])
    names = {p.name for p in inventory.pods}
    coupon = cluster.pods_of("shop/coupon-sync")[0]
    newsletter = cluster.pods_of("shop/newsletter")[0]
    assert coupon.name not in names and newsletter.name in names
    reused = next(p for p in inventory.pods if p.name == newsletter.name)
    assert reused.ips == (coupon.ip,)
    assert reused.created is not None
    assert reused.created.timestamp() > times.deleted[coupon.name]
    storefront = next(p for p in inventory.pods if p.workload.name == "storefront")
    assert storefront.workload.kind == "Deployment"
    assert {p.name for p in storefront.ports} == {"http", "metrics"}
    kinds = [item["kind"] for item in document["items"]]
    assert kinds == sorted(kinds, key=["Namespace", "Node", "Pod", "Service", "EndpointSlice",
                                       "Ingress", "Deployment", "ReplicaSet", "StatefulSet",
                                       "DaemonSet", "ValidatingWebhookConfiguration",
                                       "ConfigMap"].index)
    lb = next(s for s in inventory.services if s.type == "LoadBalancer")
    assert lb.load_balancer_ips == (IPv4Address("203.0.113.10"),)
    assert lb.external_traffic_policy == "Local"
    headless = next(s for s in inventory.services if s.name == "orders-db")
    assert headless.cluster_ips == ()
    assert any(p.host_network and "calico" in " ".join(p.images) for p in inventory.pods)
    node = inventory.nodes[0]
    assert node.provider_id and node.pod_cidrs == (IPv4Network("10.244.0.0/24"),)
    slice_ = next(s for s in inventory.endpoint_slices if s.service_name == "catalog")
    assert {ep.addresses[0] for ep in slice_.endpoints} == {
        p.ip for p in cluster.pods_of("shop/catalog")}
    assert slice_.ports[0].port == 8080
    assert inventory.ingresses and inventory.ingresses[0].backends[0].service_name == "storefront"
    assert datetime.fromisoformat(document["items"][0]["metadata"]["creationTimestamp"]
                                  .replace("Z", "+00:00")).timestamp() == int(times.setup)


@pytest.mark.parametrize("name", SCENARIOS)
def test_inventory_has_the_api_server_off_the_node(tmp_path: Path, name: str) -> None:
    """Every cluster has default/kubernetes and its EndpointSlice; here the API server is
    a host beside the node (a managed control plane), and DNAT sends 10.96.0.1:443 there."""
    cluster = build_cluster(load_scenario(name))
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps(build_inventory(cluster, _timeline(cluster))), encoding="utf-8")
    inventory = load_inventory_files([path])
    api = find_api_server(inventory)
    assert api.addresses == (IPv4Address("203.0.113.200"),) and api.ports == (6443,)
    assert api.service_ips == (IPv4Address("10.96.0.1"),) and not api.on_nodes
    assert "default" in {n.name for n in inventory.namespaces}
    table = render_nat_table(cluster, None)
    assert "-j DNAT --to-destination 203.0.113.200:6443" in table
    assert re.search(r"-d 10\.96\.0\.1/32 -p tcp .*--dport 443 ", table)
    if name == "control-plane":
        assert [(c.kind, [(s.namespace, s.name, s.port) for s in c.services])
                for c in inventory.api_callbacks] == [
            ("ValidatingWebhookConfiguration", [("policy", "policy-webhook", 443)])]
        assert [(d.upstreams, d.ports) for d in inventory.dns_forwarding] == [
            ((IPv4Address("192.0.2.53"),), (53,))]
    else:
        assert not inventory.api_callbacks and not inventory.dns_forwarding


def test_control_plane_plans_watches_webhook_calls_and_host_dns() -> None:
    cluster = build_cluster(load_scenario("control-plane"))
    plans = plan_agents(cluster)
    watches = {plans[p.name].workload: a for p in cluster.pods if p.name in plans
               for a in plans[p.name].actions if a.hold}
    assert set(watches) == {"web/config-watcher", "kube-system/coredns"}
    assert all(a.address == "10.96.0.1" and a.port == 443 for a in watches.values())
    assert plans[API_AGENT].stream == (6443,)
    assert {(a.address, a.port) for a in plans[API_AGENT].actions} == {("10.96.30.20", 443)}
    node = plans[NODE_AGENT]
    assert node.bind == "172.18.0.2" and node.search and all(a.query for a in node.actions)
    # the cluster DNS forwards what is not cluster.local; the upstream has the externals
    assert not [o for o in static_records(cluster, externals=False) if "example" in o]


@pytest.mark.slow
@pytest.mark.parametrize("name", SCENARIOS)
def test_inventory_objects_validate_against_the_kubernetes_schema(name: str) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    cluster = build_cluster(load_scenario(name))
    document = build_inventory(cluster, _timeline(cluster))
    assert document["apiVersion"] == "v1" and document["kind"] == "List"
    for item in document["items"]:
        kubernetes_validate.validate(item, "1.29", strict=True)


def test_ground_truth_joins_connects_with_accepts(tmp_path: Path) -> None:
    cluster = build_cluster(load_scenario("small"))
    times = _timeline(cluster)
    api = cluster.pods_of("web/api")[0]
    frontend = cluster.pods_of("web/frontend")[0]
    t = times.start + 1
    logs = {
        frontend.name: [
            {"event": "dns", "time": t, "qname": "api.web.svc.cluster.local",
             "server": "10.96.0.10", "sport": 40000, "rcode": "NOERROR",
             "addresses": ["10.96.20.11"], "cname_chain": []},
            {"event": "connect", "time": t + 0.01, "traffic": 1, "protocol": "TCP",
             "query": "api", "dport": 80, "dst": "10.96.20.11", "src": str(frontend.ip),
             "sport": 40001, "ok": True, "error": None},
        ],
        api.name: [
            # The same client port used earlier by another connection: must not match.
            {"event": "accept", "time": t - 30, "protocol": "TCP", "local": str(api.ip),
             "lport": 9, "peer": str(frontend.ip), "pport": 40001},
            {"event": "accept", "time": t + 0.02, "protocol": "TCP", "local": str(api.ip),
             "lport": 8000, "peer": str(frontend.ip), "pport": 40001},
            {"event": "connect", "time": t + 0.5, "traffic": 4, "protocol": "TCP",
             "query": "api.weather.example.com", "dport": 443, "dst": "192.0.2.30",
             "src": str(api.ip), "sport": 40100, "ok": True, "error": None},
        ],
        EXTERNAL_AGENT: [
            {"event": "accept", "time": t + 0.51, "protocol": "TCP", "local": "192.0.2.30",
             "lport": 443, "peer": str(api.ip), "pport": 40100},
        ],
    }
    result = RunResult(tmp_path, tmp_path / "capture.pcap", [], tmp_path / "inventory.json",
                       tmp_path / "ground-truth.json", "npd-tb-1-")
    truth = build_ground_truth(cluster, times, logs, result)
    app = [c for c in truth["connections"] if c["purpose"] == "app"]
    first = app[0]
    assert first["server_kind"] == "cluster-ip" and first["service"] == "web/api"
    assert first["resolved"]["workload"] == "web/api" and first["resolved"]["port"] == 8000
    assert first["resolved"]["port_name"] == "http"
    external = app[1]
    assert external["server_kind"] == "external"
    assert external["resolved"]["names"] == ["api.weather.example.com"]
    assert truth["fqdn_dependencies"] == [{
        "workload": "web/api", "workload_kind": "Deployment",
        "fqdn": "api.weather.example.com", "cname_chain": [], "protocol": "TCP", "port": 443,
        "addresses_used": ["192.0.2.30"], "addresses_all": ["192.0.2.30", "192.0.2.31"],
    }]
    dns = [c for c in truth["connections"] if c["purpose"] == "dns"]
    assert dns[0]["resolved"]["workload"] == "kube-system/coredns"
    assert truth["dns_queries"][0]["name"] == "api.web.svc.cluster.local"


# -- real runs (root) ---------------------------------------------------------------------


def _syns(capture: Path) -> set[tuple[str, int, str, int]]:
    """(src, sport, dst, dport) of every client SYN, read by tcpdump itself."""
    done = subprocess.run(
        ["tcpdump", "-nn", "-r", str(capture),
         "tcp[tcpflags] & tcp-syn != 0 and tcp[tcpflags] & tcp-ack == 0"],
        capture_output=True, text=True, check=True)
    pattern = re.compile(r"IP (\d+\.\d+\.\d+\.\d+)\.(\d+) > (\d+\.\d+\.\d+\.\d+)\.(\d+): "
                         r"Flags \[S\]")
    return {(m[1], int(m[2]), m[3], int(m[4])) for m in pattern.finditer(done.stdout)}


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return cached_run("small", tmp_path_factory.mktemp("testbed"))


@pytest.mark.root
@pytest.mark.slow
def test_small_run_captures_every_connection(small_run: Any) -> None:
    truth = small_run.truth
    assert small_run.capture.stat().st_size > 10_000
    connections = truth["connections"]
    assert connections and all(c["ok"] for c in connections), [
        c for c in connections if not c["ok"]][:3]
    tcp = [c for c in connections if c["protocol"] == "TCP"]
    syns = _syns(small_run.capture)
    missing = [c for c in tcp if (c["client"]["ip"], c["client_port"], c["server_address"],
                                  c["server_port"]) not in syns]
    assert not missing, missing[:3]
    # After DNAT, the same SYN to the pod IP and targetPort (the capture is on `any`).
    via_service = [c for c in tcp if c["server_kind"] in ("cluster-ip", "load-balancer")]
    assert via_service
    for c in via_service:
        assert (c["client"]["ip"], c["client_port"], c["resolved"]["ip"],
                c["resolved"]["port"]) in syns
    # The project's reader sees one connection per ground-truth TCP connection.
    reader = CaptureFile(small_run.capture)
    opens = {(str(e.client_ip), e.client_port) for e in reader if isinstance(e, ConnectionOpen)}
    assert reader.complete and not reader.warnings
    assert {(c["client"]["ip"], c["client_port"]) for c in connections} <= opens
    pod_capture = small_run.out / truth["pod_captures"][0]
    assert _syns(pod_capture), "the pod's own eth0 capture has its connections"


@pytest.mark.root
@pytest.mark.slow
def test_small_run_truth_matches_the_scenario(small_run: Any) -> None:
    truth = small_run.truth
    scenario = load_scenario("small")
    made = {c["traffic"] for c in truth["connections"] if c["purpose"] == "app"}
    assert made == set(range(len(scenario.traffic))), "every traffic item made connections"
    answered = {q["name"] for q in truth["dns_queries"] if q["rcode"] == "NOERROR"}
    assert "api.weather.example.com" in answered
    misses = {q["name"] for q in truth["dns_queries"] if q["rcode"] == "NXDOMAIN"}
    assert "api.weather.example.com.web.svc.cluster.local" in misses, "ndots:5 search list"
    used = {c["server_address"] for c in truth["connections"]
            if c["query"] == "api.weather.example.com" and c["purpose"] == "app"}
    assert used == {"192.0.2.30", "192.0.2.31"}, "the answers rotated"
    assert [d["fqdn"] for d in truth["fqdn_dependencies"]] == ["api.weather.example.com"]
    lb = [c for c in truth["connections"] if c["server_kind"] == "load-balancer"]
    assert lb and all(c["resolved"]["workload"] == "web/frontend" for c in lb)
    udp = [c for c in truth["connections"] if c["protocol"] == "UDP" and c["purpose"] == "app"]
    assert udp and all(c["resolved"]["port_name"] == "statsd" for c in udp)


@pytest.mark.root
@pytest.mark.slow
def test_small_run_inventory_matches_the_pods_used(small_run: Any) -> None:
    inventory = load_inventory_files([small_run.inventory])
    by_name = {p.name: p for p in inventory.pods}
    for pod in small_run.truth["pods"]:
        assert pod["in_inventory"] == (pod["pod"] in by_name)
        if pod["in_inventory"]:
            assert by_name[pod["pod"]].ips == (IPv4Address(pod["ip"]),)
    clients = {c["client"]["ip"] for c in small_run.truth["connections"]
               if c["client"]["kind"] == "pod"}
    assert clients <= {str(ip) for p in inventory.pods for ip in p.ips}


@pytest.mark.root
@pytest.mark.slow
def test_small_run_leaves_nothing_behind(small_run: Any) -> None:
    prefix = small_run.truth["netns_prefix"]
    assert prefix.startswith("npd-tb-")
    assert leftovers(prefix) == []
    assert processes_mentioning(str(small_run.out)) == []


@pytest.mark.root
def test_cleanup_removes_namespaces_of_dead_runs_only() -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale, alive = f"npd-tb-{dead.pid}-node", f"npd-tb-{os.getpid()}-live"
    subprocess.run(["ip", "netns", "add", stale], check=True)
    subprocess.run(["ip", "netns", "add", alive], check=True)
    try:
        done = subprocess.run([sys.executable, "-m", "tests.testbed", "cleanup"], cwd=REPO,
                              capture_output=True, text=True, check=True)
        assert f"removed {stale}" in done.stdout
        assert leftovers(f"npd-tb-{dead.pid}-") == []
        assert leftovers(alive) == [alive]
    finally:
        for name in (stale, alive):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


@pytest.mark.root
@pytest.mark.slow
def test_shop_run_plays_its_timeline(tmp_path_factory: pytest.TempPathFactory) -> None:
    run = cached_run("shop", tmp_path_factory.mktemp("testbed"))
    truth = run.truth
    bad = [c for c in truth["connections"] if not c["ok"] or c["resolved"] is None]
    assert not bad, bad[:3]
    pods = {p["workload"]: p for p in truth["pods"]}
    old, new = pods["shop/coupon-sync"], pods["shop/newsletter"]
    assert old["ip"] == new["ip"] and old["deleted"] and not old["in_inventory"]
    assert new["created"] > old["deleted"] and new["in_inventory"]
    inventory = load_inventory_files([run.inventory])
    reused = next(p for p in inventory.pods if p.name == new["pod"])
    assert reused.created is not None
    assert reused.created > datetime.fromisoformat(old["deleted"])
    used = {c["server_address"] for c in truth["connections"] if c["purpose"] == "app"
            and c["query"] == "api.payments.example.com"}
    assert used == {"192.0.2.10", "192.0.2.11", "192.0.2.12", "192.0.2.13"}
    chains = {tuple(q["cname_chain"]) for q in truth["dns_queries"]
              if q["name"] == "objects.example.net"}
    assert chains == {("objects.cdn.example.org", "s3.eu-west.store.example.com")}
    assert {q["transport"] for q in truth["dns_queries"]} == {"UDP", "TCP"}
    replicas = {c["resolved"]["pod"] for c in truth["connections"] if c["purpose"] == "dns"}
    assert len(replicas) == 2, "both CoreDNS replicas answered through the DNAT"
    assert any(c["client"]["kind"] == "node" for c in truth["connections"])
    assert leftovers(truth["netns_prefix"]) == []


def test_committed_sample_matches_the_shop_scenario() -> None:
    """samples/shop is a recording of shop.yaml: re-record it when the scenario changes
    (`python -m tests.testbed run shop --out samples/shop`, as root)."""
    sample = REPO / "samples" / "shop"
    truth = json.loads((sample / "ground-truth.json").read_text(encoding="utf-8"))
    cluster = build_cluster(load_scenario("shop"))
    assert {(p["pod"], p["ip"]) for p in truth["pods"]} == {
        (p.name, str(p.ip)) for p in cluster.pods}
    inventory = load_inventory_files([sample / "inventory.json"])
    assert {p.name for p in inventory.pods} == {
        p["pod"] for p in truth["pods"] if p["in_inventory"]}
    assert truth["capture"] == "capture.pcap" and (sample / "capture.pcap").is_file()
    assert (sample / "capture.pcap").stat().st_size < 5_000_000
    readme = (sample / "README.md").read_text(encoding="utf-8")
    assert "python -m tests.testbed run shop --out samples/shop" in readme


def _start_run(out: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.testbed", "run", "small", "--out", str(out), *extra],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_cleans_up(tmp_path: Path, sig: signal.Signals) -> None:
    process = _start_run(tmp_path / "out")
    prefix = f"npd-tb-{process.pid}-"
    try:
        deadline = time.monotonic() + 30
        while not any(n.endswith("ext") for n in leftovers(prefix)):
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "the run never built its namespaces"
            time.sleep(0.05)
        os.kill(process.pid, sig)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 1
    assert f"interrupted by {sig.name}" in stderr
    assert leftovers(prefix) == []


@pytest.mark.root
@pytest.mark.slow
def test_global_timeout_stops_and_cleans_up(tmp_path: Path) -> None:
    process = _start_run(tmp_path / "out", "--timeout", "2")
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "global timeout reached" in stderr
    assert leftovers(f"npd-tb-{process.pid}-") == []

