"""Loading `kubectl get ... -o json|yaml` output into the inventory."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from discover.errors import InventoryError
from discover.inventory.dump import dump_inventory
from discover.inventory.files import load_inventory_files
from discover.inventory.model import ContainerPort, IngressBackend, ServicePort, WorkloadRef

DATA = Path(__file__).parent / "data" / "inventory"
CLUSTER = DATA / "cluster.json"
ip = ipaddress.ip_address


@pytest.fixture(scope="module")
def cluster():  # type: ignore[no-untyped-def]
    return load_inventory_files([CLUSTER])


def pod(inventory, name):  # type: ignore[no-untyped-def]
    return next(p for p in inventory.pods if p.name == name)


def test_every_kind_is_loaded(cluster) -> None:  # type: ignore[no-untyped-def]
    assert [n.name for n in cluster.namespaces] == ["batch", "default", "kube-system", "shop"]
    assert cluster.namespaces[3].labels["team"] == "shop"
    assert len(cluster.pods) == 10
    assert {s.name for s in cluster.services} == {
        "web", "api", "db", "web-public", "kube-dns", "kubernetes", "external-db"}
    assert len(cluster.endpoint_slices) == 6  # 5 EndpointSlices + 1 from an old Endpoints
    assert [i.name for i in cluster.ingresses] == ["web"]
    assert [p.name for p in cluster.network_policies] == ["allow-web", "default-deny"]
    assert cluster.network_policies[0].spec["ingress"][0]["ports"][0]["port"] == "http"
    assert cluster.sources == (str(CLUSTER),)


def test_unknown_kinds_are_noted(cluster) -> None:  # type: ignore[no-untyped-def]
    assert "ignored 1 object(s) of kind ConfigMap (not used by the inventory)" in cluster.notes


def test_nodes(cluster) -> None:  # type: ignore[no-untyped-def]
    node = cluster.nodes[0]
    assert node.name == "node-a"
    assert node.addresses == (ip("10.0.0.11"),)  # Hostname/InternalDNS entries are not IPs
    assert [str(c) for c in node.pod_cidrs] == ["10.244.1.0/24", "fd00:10:244:1::/64"]
    assert node.provider_id == "aws:///eu-west-1a/i-0aabc"


def test_owner_chains(cluster) -> None:  # type: ignore[no-untyped-def]
    expect = {
        "web-7d9c5b8f4-k2x9p": WorkloadRef("shop", "Deployment", "web"),  # via ReplicaSet
        "api-6c8d9e7f5-zt5vn": WorkloadRef("shop", "Deployment", "api"),  # ReplicaSet absent
        "db-0": WorkloadRef("shop", "StatefulSet", "db"),
        "node-exporter-4xk7d": WorkloadRef("kube-system", "DaemonSet", "node-exporter"),
        "migrate-5k2jd": WorkloadRef("batch", "Job", "migrate"),
        "report-28620000-qwert": WorkloadRef("batch", "CronJob", "report"),  # Job absent
        "debug": WorkloadRef("default", "Pod", "debug"),
    }
    for name, ref in expect.items():
        assert pod(cluster, name).workload == ref, name
    notes = " ".join(cluster.notes)
    assert "pod-template-hash" in notes and "shop/deployment/api" in notes
    assert "scheduled-time suffix for batch/cronjob/report" in notes


def test_pod_fields(cluster) -> None:  # type: ignore[no-untyped-def]
    old = pod(cluster, "web-7d9c5b8f4-k2x9p")
    assert old.ips == (ip("10.244.1.10"), ip("fd00:10:244:1::10"))  # dual stack
    assert old.created == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert old.deleted == datetime(2024, 5, 1, 12, 0, 30, tzinfo=UTC)
    assert old.ports == (ContainerPort(8080, "TCP", "http", "web"),)
    assert old.images == ("ghcr.io/example/web:1.4",)
    exporter = pod(cluster, "node-exporter-4xk7d")
    assert exporter.host_network and exporter.ips == (ip("10.0.0.11"),)
    dns = pod(cluster, "coredns-5d78c9869d-8vh2m")
    assert {(c.port, c.protocol, c.name) for c in dns.ports} == {
        (53, "UDP", "dns"), (53, "TCP", "dns-tcp"), (9153, "TCP", "metrics")}
    migrate = pod(cluster, "migrate-5k2jd")
    assert migrate.phase == "Succeeded"
    assert migrate.finished == datetime(2024, 5, 1, 9, 40, tzinfo=UTC)  # containers' finishedAt
    assert old.finished is None  # Running: no finish time


def finished_pod(name: str, phase: str, **status: object) -> dict[str, object]:
    return {"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": "batch",
                         "creationTimestamp": "2024-05-01T09:00:00Z"},
            "spec": {"containers": [{"name": "main"}]},
            "status": {"phase": phase, "podIP": "10.244.2.50", **status}}


def terminated(name: str, finished: object) -> dict[str, object]:
    return {"name": name, "state": {"terminated": {"exitCode": 0, "finishedAt": finished}}}


def test_finished_time_of_completed_and_failed_pods(tmp_path: Path) -> None:
    path = tmp_path / "pods.json"
    path.write_text(json.dumps({"kind": "List", "items": [
        # The latest container's finish (a sidecar init container stops after the others).
        finished_pod("done", "Succeeded",
                     initContainerStatuses=[terminated("setup", "2024-05-01T09:00:05Z"),
                                            terminated("proxy", "2024-05-01T09:30:02Z")],
                     containerStatuses=[terminated("main", "2024-05-01T09:30:00Z"),
                                        terminated("side", "2024-05-01T09:20:00Z")]),
        # Failed in an init container: no main container ran, the init one's time counts.
        finished_pod("init-failed", "Failed",
                     initContainerStatuses=[terminated("setup", "2024-05-01T09:01:00Z")],
                     containerStatuses=[{"name": "main",
                                         "state": {"waiting": {"reason": "PodInitializing"}}}]),
        # Evicted before any status carried a time: unknown, not guessed.
        finished_pod("evicted", "Failed", reason="Evicted"),
        # A Running pod whose container restarted: lastState is not the pod finishing.
        finished_pod("restarted", "Running", containerStatuses=[
            {"name": "main", "state": {"running": {"startedAt": "2024-05-01T09:10:00Z"}},
             "lastState": {"terminated": {"finishedAt": "2024-05-01T09:09:00Z"}}}]),
        finished_pod("bad-time", "Succeeded",
                     containerStatuses=[terminated("main", "yesterday")]),
    ]}))
    inventory = load_inventory_files([path])
    finished = {p.name: p.finished for p in inventory.pods}
    assert finished == {"done": datetime(2024, 5, 1, 9, 30, 2, tzinfo=UTC),
                        "init-failed": datetime(2024, 5, 1, 9, 1, tzinfo=UTC),
                        "evicted": None, "restarted": None}
    assert ("skipped: pods.json: items[4] (Pod batch/bad-time): "
            "status.containerStatuses[0].state.terminated.finishedAt: 'yesterday' is not an "
            "RFC 3339 timestamp") in inventory.notes


def test_dump_then_load_keeps_finished_times(tmp_path: Path, cluster) -> None:  # type: ignore[no-untyped-def]
    failed = replace(pod(cluster, "debug"), name="crashed", uid="crashed", phase="Failed",
                     workload=WorkloadRef("default", "Pod", "crashed"), ports=(), images=(),
                     finished=datetime(2024, 5, 1, 11, 5, 0, 250000, tzinfo=UTC))
    inventory = replace(cluster, pods=(*cluster.pods, failed))
    dump_inventory(inventory, tmp_path / "dump.json")
    back = load_inventory_files([tmp_path / "dump.json"])
    assert sorted(back.pods, key=lambda p: p.uid) == sorted(inventory.pods, key=lambda p: p.uid)
    assert pod(back, "migrate-5k2jd").finished == datetime(2024, 5, 1, 9, 40, tzinfo=UTC)
    items = {i["metadata"]["name"]: i for i in json.loads(
        (tmp_path / "dump.json").read_text())["items"] if i["kind"] == "Pod"}
    # As kubectl shows it (container names are kept only with ports); a Failed pod's exit
    # code is not known, so not written.
    assert items["migrate-5k2jd"]["status"]["containerStatuses"] == [
        {"name": "container-0", "ready": False, "image": "ghcr.io/example/migrate:1",
         "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                                  "finishedAt": "2024-05-01T09:40:00Z"}}}]
    assert items["crashed"]["status"]["containerStatuses"][0]["state"] == {
        "terminated": {"finishedAt": "2024-05-01T11:05:00.250000Z"}}
    assert "containerStatuses" not in items["debug"]["status"]


def test_services(cluster) -> None:  # type: ignore[no-untyped-def]
    by_name = {s.name: s for s in cluster.services}
    web = by_name["web"]
    assert web.cluster_ips == (ip("10.96.10.10"), ip("fd00:10:96::a"))
    assert web.ports == (ServicePort(80, "TCP", "http", "http"),)  # named targetPort
    assert by_name["db"].cluster_ips == ()  # headless
    public = by_name["web-public"]
    assert public.type == "LoadBalancer" and public.external_traffic_policy == "Local"
    assert public.load_balancer_ips == (ip("198.51.100.7"),)
    assert public.load_balancer_hostnames == ("web-public.elb.example.com",)
    assert public.ports[0].node_port == 31443
    assert by_name["kubernetes"].selector is None


def test_endpoint_slices(cluster) -> None:  # type: ignore[no-untyped-def]
    slices = {s.name: s for s in cluster.endpoint_slices}
    dns = slices["kube-dns-x7b2q"]  # discovery.k8s.io/v1beta1: node from topology
    assert dns.service_name == "kube-dns"
    assert dns.endpoints[0].node_name == "node-b"
    assert dns.endpoints[0].pod_name == "coredns-5d78c9869d-8vh2m"
    old = slices["external-db"]  # core/v1 Endpoints
    assert old.endpoints[0].addresses == (ip("192.0.2.50"),)
    assert old.ports[0].port == 5432 and old.ports[0].name == "pg"


def test_ingress_and_templates(cluster) -> None:  # type: ignore[no-untyped-def]
    ingress = cluster.ingresses[0]
    assert ingress.ingress_class == "nginx"
    assert ingress.backends == (IngressBackend("web", "http"), IngressBackend("web", 80),
                                IngressBackend("api", 80))
    refs = {t.ref for t in cluster.workloads}
    assert WorkloadRef("shop", "Deployment", "web") in refs
    assert WorkloadRef("batch", "CronJob", "report") in refs
    assert not any(r.kind == "ReplicaSet" for r in refs)  # owned ReplicaSets are not workloads
    web = next(t for t in cluster.workloads if t.ref.name == "web")
    assert web.template_labels == {"app": "web", "tier": "front"}
    assert web.selector == {"app": "web"}


def test_multi_document_yaml_and_several_files(cluster) -> None:  # type: ignore[no-untyped-def]
    inventory = load_inventory_files([CLUSTER, DATA / "extra.yaml"])
    cache = pod(inventory, "cache")
    # An unquoted YAML timestamp and a "true" label value survive as the API meant them.
    assert cache.created == datetime(2024, 5, 1, 11, 30, tzinfo=UTC)
    assert cache.labels["enabled"] == "true"
    assert cache.workload == WorkloadRef("shop", "Pod", "cache")
    metrics = next(s for s in inventory.services if s.name == "metrics")
    assert metrics.ports[0].target_port == "metrics"
    assert any("kind Secret" in n for n in inventory.notes)
    assert len(inventory.pods) == len(cluster.pods) + 1


def test_yaml_list_equals_json_list(tmp_path: Path, cluster) -> None:  # type: ignore[no-untyped-def]
    as_yaml = tmp_path / "cluster.yaml"
    as_yaml.write_text(yaml.safe_dump(json.loads(CLUSTER.read_text())))
    from_yaml = load_inventory_files([as_yaml])
    assert from_yaml.pods == cluster.pods
    assert from_yaml.services == cluster.services
    assert from_yaml.endpoint_slices == cluster.endpoint_slices


def test_typed_lists_and_single_objects(tmp_path: Path) -> None:
    doc = json.loads(CLUSTER.read_text())
    pods = [{k: v for k, v in i.items() if k not in ("kind", "apiVersion")}
            for i in doc["items"] if i["kind"] == "Pod"]
    (tmp_path / "pods.json").write_text(json.dumps({"kind": "PodList", "apiVersion": "v1",
                                                    "items": pods}))
    single = next(i for i in doc["items"] if i["kind"] == "Service")
    (tmp_path / "svc.json").write_text(json.dumps(single))
    inventory = load_inventory_files([tmp_path / "pods.json", tmp_path / "svc.json"])
    assert len(inventory.pods) == 10 and len(inventory.services) == 1


def test_bad_object_is_skipped_with_a_note_naming_file_and_field() -> None:
    inventory = load_inventory_files([DATA / "bad-objects.json"])
    assert [p.name for p in inventory.pods] == ["web-2"]
    assert inventory.services == ()
    assert ("skipped: bad-objects.json: items[0] (Pod default/web-1): status.podIP: "
            "'10.0.0.999' is not an IP address") in inventory.notes
    assert any("items[2] (Service default/web): spec.ports[0].port: 70000 is not a port"
               in n for n in inventory.notes)


@pytest.mark.parametrize(("name", "content", "message"), [
    ("truncated.json", None, "truncated.json: line 3 column 1: invalid JSON"),
    ("empty.yaml", "", "empty.yaml: empty file"),
    ("bad.yaml", "kind: Pod\n  - x: [", "bad.yaml: line 2 column"),
    ("scalar.yaml", "just text\n", "scalar.yaml: expected a Kubernetes object or List, got str"),
    ("nokind.json", '{"metadata": {}}', "nokind.json: not a Kubernetes object (no `kind`)"),
])
def test_unusable_files_raise_naming_the_file(tmp_path: Path, name: str, content: str | None,
                                              message: str) -> None:
    path = DATA / name if content is None else tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(InventoryError) as caught:
        load_inventory_files([path])
    assert message in str(caught.value)


def test_missing_file() -> None:
    with pytest.raises(InventoryError, match="no such file"):
        load_inventory_files([DATA / "absent.json"])


def test_minikube_snapshot(corpora: Path) -> None:
    inventory = load_inventory_files(
        [corpora / "k8s-objects" / "minikube-services1" / "inventory_list.json"])
    assert len(inventory.pods) == 11 and len(inventory.namespaces) == 6
    host = [p for p in inventory.pods if p.host_network]
    assert len(host) == 6 and all(p.ips == (ip("192.168.49.2"),) for p in host)
    etcd = pod(inventory, "etcd-minikube")
    assert etcd.workload == WorkloadRef("kube-system", "Pod", "etcd-minikube")  # static pod
    controller = next(s for s in inventory.services if s.name == "ingress-nginx-controller")
    assert controller.ports[0].target_port == "http"
    # The admission Job pods completed within seconds of their creation.
    finished = {p.name: p.finished for p in inventory.pods if p.finished is not None}
    assert finished == {
        "ingress-nginx-admission-create-jxzfd": datetime(2022, 1, 27, 18, 7, 10, tzinfo=UTC),
        "ingress-nginx-admission-patch-bg8tm": datetime(2022, 1, 27, 18, 7, 11, tzinfo=UTC)}
    assert all(p.phase == "Succeeded" for p in inventory.pods if p.finished is not None)


def test_minikube_yaml_lists_match_the_json(corpora: Path) -> None:
    folder = corpora / "k8s-objects" / "minikube-services1"
    from_json = load_inventory_files([folder / "inventory_list.json"])
    from_yaml = load_inventory_files([folder / "ns_list.yaml", folder / "pods_list.yaml",
                                      folder / "services_list.yaml", folder / "policies.yaml"])
    assert from_yaml.pods == from_json.pods
    assert from_yaml.services == from_json.services
    assert any("IngressClass" in n for n in from_yaml.notes)


def test_single_object_corpus(corpora: Path) -> None:
    folder = corpora / "k8s-objects"
    files = sorted((folder / "k9s-render-testdata").glob("*.json"))
    files += sorted((folder / "victoriametrics-kind").glob("*.json"))
    inventory = load_inventory_files(files)
    slices = {s.name: s for s in inventory.endpoint_slices}
    assert slices["kube-dns-22mvb"].endpoints[0].node_name == "kind-control-plane"
    assert {p.name for p in slices["kube-dns-22mvb"].ports} == {"dns", "metrics"}
    assert slices["fred"].endpoints[1].addresses == (ip("172.20.0.3"),)
    assert [p.name for p in inventory.network_policies] == ["fred"]
    assert any(t.ref.kind == "StatefulSet" for t in inventory.workloads)


def test_online_boutique_kubectl_yaml(corpora: Path) -> None:
    folder = corpora / "netpol-oracle" / "np-guard-netpol-analyzer" / "tests" / "onlineboutique"
    inventory = load_inventory_files([folder / "pods.yaml", folder / "ns.yaml",
                                      folder / "netpols.yaml"])
    assert len(inventory.pods) == 12 and len(inventory.network_policies) == 11
    currency = next(p for p in inventory.pods if p.name.startswith("currencyservice-"))
    assert currency.workload == WorkloadRef("default", "Deployment", "currencyservice")
    assert currency.ports == (ContainerPort(7000, "TCP", "grpc", "server"),)


def test_older_api_versions(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump_all([
        {"apiVersion": "extensions/v1beta1", "kind": "Ingress",
         "metadata": {"name": "legacy", "namespace": "web",
                      "annotations": {"kubernetes.io/ingress.class": "nginx"}},
         "spec": {"backend": {"serviceName": "site", "servicePort": "http"},
                  "rules": [{"http": {"paths": [
                      {"backend": {"serviceName": "api", "servicePort": 8080}}]}}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "FQDN",
         "metadata": {"name": "ext", "namespace": "web"},
         "endpoints": [{"addresses": ["db.example.com"]}]},
    ]))
    inventory = load_inventory_files([path])
    [ingress] = inventory.ingresses
    assert ingress.ingress_class == "nginx"
    assert ingress.backends == (IngressBackend("site", "http"), IngressBackend("api", 8080))
    assert inventory.endpoint_slices == ()  # FQDN slices hold names, not addresses


def test_list_item_that_is_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "odd.json"
    path.write_text(json.dumps({"kind": "List", "items": [
        "text", {"kind": "Namespace", "metadata": {"name": "a"}}]}))
    inventory = load_inventory_files([path])
    assert [n.name for n in inventory.namespaces] == ["a"]
    assert "skipped: odd.json: items[0]: not an object (str)" in inventory.notes
