"""Resolver: an address at a time -> pod/workload, Service backends, node, LB, DNS, external."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from discover.enrichment.peers import (
    ClusterUnknownPeer,
    EarlierPodPeer,
    ExternalPeer,
    LoadBalancerPeer,
    NodePeer,
    Peer,
    WorkloadPeer,
    workload_of,
)
from discover.enrichment.resolver import Resolver
from discover.flows.flowtable import DnsRow
from discover.inventory.files import load_inventory_files
from discover.inventory.model import (
    ContainerPort,
    Inventory,
    Pod,
    Service,
    ServicePort,
    WorkloadRef,
)

CLUSTER = Path(__file__).parent / "data" / "inventory" / "cluster.json"
ip = ipaddress.ip_address
ip_address = ipaddress.ip_address


def t(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2024, 5, 1, hour, minute, second, tzinfo=UTC)


def dns_rows(rows: list[tuple[str, str, str, str, int, datetime, datetime]]
             ) -> tuple[DnsRow, ...]:
    """DNS table rows (client, name, address, cname chain, ttl, first, last)."""
    return tuple(
        DnsRow(ip_address(c), n, ip_address(a), tuple(chain.split(" > ")) if chain else (),
               ip_address("10.96.0.10"), ttl, 1, f.timestamp(), last.timestamp())
        for c, n, a, chain, ttl, f, last in rows)


@pytest.fixture(scope="module")
def resolver() -> Resolver:
    dns = dns_rows([
        ("10.244.1.11", "api.stripe.com", "203.0.113.10", "", 300, t(12, 30), t(12, 30)),
        # A CNAME chain; asked again later so the row spans two answers.
        ("10.244.1.11", "cdn.example.com", "203.0.113.20",
         "cdn.example.com.edgekey.net > e123.a.akamaiedge.net", 60, t(12, 40), t(13, 0)),
        # The same address under another name, asked by the same client afterwards.
        ("10.244.1.11", "static.example.com", "203.0.113.20", "", 60, t(13, 10), t(13, 10)),
        ("10.244.2.40", "only-debug.example.org", "203.0.113.30", "", 30, t(11, 0), t(11, 0)),
    ])
    return Resolver(load_inventory_files([CLUSTER]), dns)


WEB = WorkloadRef("shop", "Deployment", "web")
API = WorkloadRef("shop", "Deployment", "api")


@pytest.mark.parametrize(("when", "kind", "workload"), [
    (t(9), EarlierPodPeer, None),  # before the old web pod was created
    (t(11), WorkloadPeer, WEB),  # old web pod
    (t(12, 0, 45), EarlierPodPeer, None),  # between web's deletion and api's creation
    (t(12, 5), WorkloadPeer, API),  # api took the address
])
def test_reused_pod_ip_depends_on_time(resolver: Resolver, when: datetime, kind: type[Peer],
                                       workload: WorkloadRef | None) -> None:
    peer = resolver.resolve_source(ip("10.244.1.10"), when)
    assert type(peer) is kind
    assert workload_of(peer) == workload
    if kind is EarlierPodPeer:
        assert peer.note and peer.ip == ip("10.244.1.10")


def test_dual_stack_address_resolves_to_the_same_pod(resolver: Resolver) -> None:
    peer = resolver.resolve_source(ip("fd00:10:244:1::11"), t(13))
    assert isinstance(peer, WorkloadPeer)
    assert peer.workload == WEB and peer.pod_name == "web-5f6d7c8b9-q7wz4"


def test_finished_job_pod_ip_reused_by_cronjob(resolver: Resolver) -> None:
    # migrate's containers finished at 9:40; report's pod took the address at 10:00.
    assert workload_of(resolver.resolve_source(ip("10.244.2.30"), t(9, 30))) == \
        WorkloadRef("batch", "Job", "migrate")
    between = resolver.resolve_source(ip("10.244.2.30"), t(9, 50))
    assert isinstance(between, EarlierPodPeer)
    assert "released by pod batch/migrate-5k2jd at 2024-05-01T09:40:00Z" in between.note
    [(dest, port, _)] = resolver.resolve_destination(ip("10.244.2.30"), "TCP", 8080, t(9, 50))
    assert isinstance(dest, EarlierPodPeer) and port == 8080
    assert workload_of(resolver.resolve_source(ip("10.244.2.30"), t(10, 30))) == \
        WorkloadRef("batch", "CronJob", "report")


def test_cluster_ip_expands_to_backends_on_the_named_target_port(resolver: Resolver) -> None:
    [(peer, port, name)] = resolver.resolve_destination(ip("10.96.10.10"), "TCP", 80, t(13))
    assert isinstance(peer, WorkloadPeer)
    assert (peer.workload, port, name) == (WEB, 8080, "http")
    assert peer.via_service is not None
    assert (peer.via_service.name, peer.via_service.port, peer.via_service.target_port) == \
        ("web", 80, 8080)
    # The IPv6 ClusterIP of the dual-stack Service too.
    [(peer6, port6, _)] = resolver.resolve_destination(ip("fd00:10:96::a"), "TCP", 80, t(13))
    assert workload_of(peer6) == WEB and port6 == 8080


def test_cluster_ip_before_any_known_backend_uses_the_selector_with_a_note(
        resolver: Resolver) -> None:
    [(peer, port, _)] = resolver.resolve_destination(ip("10.96.10.20"), "TCP", 80, t(11))
    assert workload_of(peer) == API and port == 9090
    assert "selector" in peer.note


def test_service_port_not_declared(resolver: Resolver) -> None:
    [(peer, _, _)] = resolver.resolve_destination(ip("10.96.10.10"), "TCP", 81, t(13))
    assert isinstance(peer, ClusterUnknownPeer) and "has no port 81/TCP" in peer.note


def test_cluster_dns(resolver: Resolver) -> None:
    [(peer, port, name)] = resolver.resolve_destination(ip("10.96.0.10"), "UDP", 53, t(13))
    assert peer.is_cluster_dns and workload_of(peer) == WorkloadRef("kube-system", "Deployment",
                                                                "coredns")
    assert (port, name) == (53, "dns")
    assert resolver.resolve_source(ip("10.244.2.2"), t(13)).is_cluster_dns
    # NodeLocal DNSCache: the cache pod on the client's node.
    [(local, _, _)] = resolver.resolve_destination(ip("169.254.20.10"), "UDP", 53, t(13),
                                                   client_ip=ip("10.244.1.11"))
    assert isinstance(local, NodePeer) and local.is_cluster_dns and local.node_name == "node-a"
    assert local.pod_name is not None  # the cache pod on the node's network


def test_service_without_selector_uses_its_endpoints(resolver: Resolver) -> None:
    [(api_server, port, _)] = resolver.resolve_destination(ip("10.96.0.1"), "TCP", 443, t(13))
    assert isinstance(api_server, NodePeer)
    assert (api_server.node_name, port) == ("node-a", 6443)
    [(ext, port, _)] = resolver.resolve_destination(ip("10.96.20.5"), "TCP", 5432, t(13))
    assert isinstance(ext, ExternalPeer) and ext.ip == ip("192.0.2.50") and port == 5432
    assert ext.via_service is not None and ext.via_service.name == "external-db"


def test_node_and_host_network_pods(resolver: Resolver) -> None:
    probe = resolver.resolve_source(ip("10.0.0.12"), t(13))
    assert isinstance(probe, NodePeer)
    assert (probe.node_name, probe.workload) == ("node-b", None)
    [(peer, port, name)] = resolver.resolve_destination(ip("10.0.0.11"), "TCP", 9100, t(13))
    assert isinstance(peer, NodePeer) and peer.workload is not None  # a host-network pod
    assert peer.pod_name == "node-exporter-4xk7d" and name == "metrics"
    assert peer.label() == str(peer.workload)
    [(kubelet, _, _)] = resolver.resolve_destination(ip("10.0.0.11"), "TCP", 10250, t(13))
    assert isinstance(kubelet, NodePeer) and kubelet.workload is None
    assert kubelet.label() == f"node/{kubelet.node_name}"


def test_load_balancer_ip_expands_to_its_backends(resolver: Resolver) -> None:
    # Like a ClusterIP: the LB DNATs to the pods, so the same connection is seen twice.
    [(peer, port, name)] = resolver.resolve_destination(ip("198.51.100.7"), "TCP", 443, t(13))
    assert isinstance(peer, WorkloadPeer)
    assert (peer.workload, port, name) == (WEB, 8080, "http")
    assert peer.via_service is not None and peer.via_service.name == "web-public"
    assert "load balancer 198.51.100.7" in peer.note
    source = resolver.resolve_source(ip("198.51.100.7"), t(13))
    assert isinstance(source, LoadBalancerPeer)  # a proxying LB as the client
    [(bare, _, _)] = resolver.resolve_destination(ip("198.51.100.7"), "TCP", 8443, t(13))
    assert isinstance(bare, LoadBalancerPeer)  # no such port: the LB itself


@pytest.mark.parametrize(("address", "range_text"), [
    ("10.244.2.99", "pod range 10.244.2.0/24"),
    ("fd00:10:244:1::99", "pod range fd00:10:244:1::/64"),
    ("10.96.99.1", "service range 10.96.0.0/12"),
])
def test_unknown_in_cluster_addresses(resolver: Resolver, address: str, range_text: str) -> None:
    [(peer, _, _)] = resolver.resolve_destination(ip(address), "TCP", 80, t(13))
    assert isinstance(peer, ClusterUnknownPeer) and range_text in peer.note


def test_external_fqdn_from_this_clients_answers(resolver: Resolver) -> None:
    [(peer, _, _)] = resolver.resolve_destination(ip("203.0.113.10"), "TCP", 443, t(12, 31),
                                                  client_ip=ip("10.244.1.11"))
    assert isinstance(peer, ExternalPeer)
    assert (peer.fqdn, peer.note) == ("api.stripe.com", "")
    assert peer.label() == "api.stripe.com (203.0.113.10)"


def test_cname_chain_and_nearest_preceding_answer(resolver: Resolver) -> None:
    client = ip("10.244.1.11")
    [(first, _, _)] = resolver.resolve_destination(ip("203.0.113.20"), "TCP", 443, t(13, 5),
                                                   client_ip=client)
    assert isinstance(first, ExternalPeer) and first.fqdn == "cdn.example.com"
    assert first.cname_chain == ("cdn.example.com.edgekey.net", "e123.a.akamaiedge.net")
    [(later, _, _)] = resolver.resolve_destination(ip("203.0.113.20"), "TCP", 443, t(13, 10, 30),
                                                   client_ip=client)
    assert isinstance(later, ExternalPeer)
    assert later.fqdn == "static.example.com" and later.cname_chain == ()


def test_no_answer_before_the_flow(resolver: Resolver) -> None:
    [(peer, _, _)] = resolver.resolve_destination(ip("203.0.113.10"), "TCP", 443, t(12, 29),
                                                  client_ip=ip("10.244.1.11"))
    assert isinstance(peer, ExternalPeer) and peer.fqdn is None


def test_expired_ttl_is_said(resolver: Resolver) -> None:
    [(peer, _, _)] = resolver.resolve_destination(ip("203.0.113.10"), "TCP", 443,
                                                  t(12, 30) + timedelta(minutes=20),
                                                  client_ip=ip("10.244.1.11"))
    assert isinstance(peer, ExternalPeer)
    assert peer.fqdn == "api.stripe.com" and "TTL 300 s expired" in peer.note


def test_name_other_clients_resolved(resolver: Resolver) -> None:
    [(peer, _, _)] = resolver.resolve_destination(ip("203.0.113.30"), "TCP", 443, t(12),
                                                  client_ip=ip("10.244.1.11"))
    assert isinstance(peer, ExternalPeer)
    assert peer.fqdn == "only-debug.example.org" and "other clients" in peer.note


def test_ipv4_mapped_addresses_are_their_ipv4_address(resolver: Resolver) -> None:
    source = resolver.resolve_source(ip("::ffff:10.244.1.11"), t(13))
    assert isinstance(source, WorkloadPeer)
    assert (source.workload, source.ip) == (WEB, ip("10.244.1.11"))
    [(pod, port, _)] = resolver.resolve_destination(ip("::ffff:af4:10b"), "TCP", 8080, t(13))
    assert (workload_of(pod), port) == (WEB, 8080)  # 10.244.1.11 written in hex
    [(backend, port, _)] = resolver.resolve_destination(ip("::ffff:10.96.10.10"), "TCP", 80,
                                                        t(13))
    assert (workload_of(backend), port) == (WEB, 8080)  # a ClusterIP
    [(external, _, _)] = resolver.resolve_destination(
        ip("::ffff:203.0.113.10"), "TCP", 443, t(12, 31), client_ip=ip("::ffff:10.244.1.11"))
    assert isinstance(external, ExternalPeer)
    assert (external.fqdn, external.ip, external.note) == ("api.stripe.com",
                                                           ip("203.0.113.10"), "")
    assert resolver.instants(ip("::ffff:10.244.1.10"), t(11), t(12, 30)) == \
        resolver.instants(ip("10.244.1.10"), t(11), t(12, 30)) != [t(11), t(12, 30)]
    # Not an IPv4-mapped address: stays IPv6 (here an unknown external one).
    assert isinstance(resolver.resolve_source(ip("64:ff9b::af4:10b"), t(13)), ExternalPeer)


def test_dns_answers_seen_by_a_mapped_client_name_its_flows() -> None:
    dns = dns_rows([("::ffff:10.244.1.11", "api.stripe.com", "::ffff:203.0.113.10", "", 300,
                      t(12, 30), t(12, 30))])
    resolver = Resolver(load_inventory_files([CLUSTER]), dns)
    [(peer, _, _)] = resolver.resolve_destination(ip("203.0.113.10"), "TCP", 443, t(12, 31),
                                                  client_ip=ip("10.244.1.11"))
    assert isinstance(peer, ExternalPeer)
    assert (peer.fqdn, peer.note) == ("api.stripe.com", "")


def test_pod_for(resolver: Resolver) -> None:
    [(peer, _, _)] = resolver.resolve_destination(ip("10.96.10.10"), "TCP", 80, t(13))
    pod = resolver.pod_for(peer)
    assert pod is not None and pod.name == "web-5f6d7c8b9-q7wz4"  # the live one
    direct = resolver.resolve_source(ip("10.244.1.10"), t(11))
    assert resolver.pod_for(direct).name == "web-7d9c5b8f4-k2x9p"  # type: ignore[union-attr]


def test_minikube_host_network_and_reused_job_ips(corpora: Path) -> None:
    inventory = load_inventory_files(
        [corpora / "k8s-objects" / "minikube-services1" / "inventory_list.json"])
    resolver = Resolver(inventory)
    # No Node objects: the host-network pods still mark 192.168.49.2 as a node address.
    api = resolver.resolve_destination(ip("192.168.49.2"), "TCP", 8443, t(13))
    assert isinstance(api[0][0], NodePeer)
    # Succeeded admission Job pods share IPs with Running pods created at the same second;
    # the Running pod is the one holding the address now.
    after = datetime(2022, 1, 28, tzinfo=UTC)
    assert workload_of(resolver.resolve_source(ip("172.17.0.3"), after)) == \
        WorkloadRef("ingress-nginx", "Deployment", "ingress-nginx-controller")
    [(dns, port, name)] = resolver.resolve_destination(ip("10.96.0.10"), "UDP", 53, after)
    assert dns.is_cluster_dns and (port, name) == (53, "dns")
    [(ingress, port, name)] = resolver.resolve_destination(ip("10.110.86.95"), "TCP", 80, after)
    assert isinstance(ingress, WorkloadPeer)
    assert ingress.workload.name == "ingress-nginx-controller"
    assert (port, name) == (80, "http")



def test_minikube_job_pods_hold_their_ips_until_they_finished(corpora: Path) -> None:
    resolver = Resolver(load_inventory_files(
        [corpora / "k8s-objects" / "minikube-services1" / "inventory_list.json"]))

    def at(second: int, minute: int = 7) -> datetime:
        return datetime(2022, 1, 27, 18, minute, second, tzinfo=UTC)

    admission = WorkloadRef("ingress-nginx", "Job", "ingress-nginx-admission-create")
    controller = WorkloadRef("ingress-nginx", "Deployment", "ingress-nginx-controller")
    # 172.17.0.3: the admission-create Job pod (finished 18:07:10), then the controller
    # created in the same second, which can only have had it after that.
    assert workload_of(resolver.resolve_source(ip("172.17.0.3"), at(5))) == admission
    assert workload_of(resolver.resolve_source(ip("172.17.0.3"), at(10))) == controller
    # 172.17.0.4: the admission-patch Job pod finished 18:07:11, demo created 18:17:18.
    patch = resolver.resolve_source(ip("172.17.0.4"), at(8))
    assert workload_of(patch) == WorkloadRef("ingress-nginx", "Job",
                                             "ingress-nginx-admission-patch")
    for when in (at(11), at(0, minute=12)):
        [(gap, _, _)] = resolver.resolve_destination(ip("172.17.0.4"), "TCP", 80, when)
        assert isinstance(gap, EarlierPodPeer)
        assert "taken by pod default/demo-764c97f6fd-452fq at 2022-01-27T18:17:18Z" in gap.note
    [(demo, _, _)] = resolver.resolve_destination(ip("172.17.0.4"), "TCP", 80, at(0, minute=18))
    assert workload_of(demo) == WorkloadRef("default", "Deployment", "demo")


def test_finished_pods_are_no_backends_after_they_finished() -> None:
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    web, probe = WorkloadRef("ns", "Deployment", "web"), WorkloadRef("ns", "Job", "probe")
    http = (ContainerPort(8080, name="http"),)
    pods = (
        Pod("ns", "web-a", "a", {"app": "web"}, (ip("10.244.0.10"),), web, ports=http,
            created=t0, phase="Running"),
        # Evicted later than web-a was created: newer, but gone since it finished.
        Pod("ns", "web-b", "b", {"app": "web"}, (ip("10.244.0.11"),), web, ports=http,
            created=t0 + timedelta(hours=1), phase="Failed",
            finished=t0 + timedelta(hours=2)),
        Pod("ns", "probe-x", "x", {"app": "probe"}, (ip("10.0.0.5"),), probe, ports=http,
            host_network=True, created=t0, phase="Succeeded",
            finished=t0 + timedelta(hours=1)),
    )
    services = tuple(Service("ns", name, selector={"app": name}, cluster_ips=(ip(address),),
                             ports=(ServicePort(80, target_port=8080),))
                     for name, address in (("web", "10.96.0.20"), ("probe", "10.96.0.21")))
    resolver = Resolver(Inventory(pods=pods, services=services))
    [(peer, port, _)] = resolver.resolve_destination(ip("10.96.0.20"), "TCP", 80,
                                                     t0 + timedelta(hours=3))
    assert (workload_of(peer), port) == (web, 8080)
    assert resolver.pod_for(peer).name == "web-a"  # type: ignore[union-attr]
    # A host-network Job pod serves its Service until it finished, not after.
    [(during, _, _)] = resolver.resolve_destination(ip("10.96.0.21"), "TCP", 80,
                                                    t0 + timedelta(minutes=30))
    assert workload_of(during) == probe and during.note == ""
    [(later, _, _)] = resolver.resolve_destination(ip("10.96.0.21"), "TCP", 80,
                                                   t0 + timedelta(hours=2))
    assert workload_of(later) == probe and "no backend pod of the time" in later.note
