"""Read a scenario YAML file into `Scenario`, and check it before anything runs.

Every error names the file and the place (`workloads[2].ports[0]`), so a typo in a
scenario fails in a second, not after namespaces were built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tests.testbed.scenario import (
    API_SERVER_IP,
    API_SERVER_SOURCE,
    DOCUMENTATION_RANGES,
    POD_RANGE,
    SERVICE_RANGE,
    SYSTEM_SERVICES,
    SYSTEM_WORKLOADS,
    WORKLOAD_KINDS,
    ExternalClientSpec,
    ExternalSpec,
    IngressSpec,
    NodeSpec,
    PortSpec,
    Scenario,
    ScenarioError,
    ServicePortSpec,
    ServiceSpec,
    TargetSpec,
    TrafficSpec,
    WebhookSpec,
    WorkloadSpec,
    as_ipv4,
    in_documentation_range,
)

T = TypeVar("T")
SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"


def resolve_scenario_path(name_or_path: str) -> Path:
    """A bare name ("small") means the bundled `scenarios/small.yaml`."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    return SCENARIO_DIR / f"{name_or_path}.yaml"


def load_scenario(name_or_path: str) -> Scenario:
    path = resolve_scenario_path(name_or_path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ScenarioError(str(path), "file", f"cannot read: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise ScenarioError(str(path), "file", f"not valid YAML: {error}") from error
    scenario = _Parser(str(path)).scenario(doc)
    check_scenario(scenario)
    return scenario


class _Parser:
    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, where: str, message: str) -> ScenarioError:
        return ScenarioError(self.path, where, message)

    def mapping(self, value: Any, where: str, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping, got {type(value).__name__}")
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise self.fail(where, f"unknown keys {unknown}; allowed: {sorted(allowed)}")
        return value

    def items(self, value: Any, where: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(where, "expected a list")
        return value

    def each(self, doc: dict[str, Any], key: str, parse: Callable[[Any, str], T],
             prefix: str = "") -> tuple[T, ...]:
        """`parse` applied to each item of the list `doc[key]`, with its place."""
        where = f"{prefix}{key}"
        return tuple(parse(item, f"{where}[{i}]")
                     for i, item in enumerate(self.items(doc.get(key), where)))

    def labels(self, value: Any, where: str) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(where, "labels must be a mapping")
        return {str(k): str(v) for k, v in value.items()}

    def number(self, value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(where, f"expected a number, got {value!r}")
        return float(value)

    def optional_number(self, value: Any, where: str) -> float | None:
        return None if value is None else self.number(value, where)

    def port(self, value: Any, where: str) -> PortSpec:
        doc = self.mapping(value, where, {"name", "port", "protocol"})
        return PortSpec(
            name=doc.get("name"),
            port=int(self.number(doc.get("port"), f"{where}.port")),
            protocol=self.protocol(doc.get("protocol", "TCP"), f"{where}.protocol"),
        )

    def protocol(self, value: Any, where: str) -> str:
        if value not in ("TCP", "UDP"):
            raise self.fail(where, f"protocol must be TCP or UDP, got {value!r}")
        return str(value)

    def scenario(self, doc: Any) -> Scenario:
        top = self.mapping(doc, "top level", {
            "name", "duration", "rotate_every", "snaplen", "node", "cluster_dns",
            "capture_pod", "namespaces", "workloads", "services", "ingresses", "externals",
            "external_clients", "traffic", "webhooks", "upstream_dns",
        })
        node = self.mapping(top.get("node"), "node", {"name", "ip", "pod_cidr", "provider_id"})
        dns = self.mapping(top.get("cluster_dns", {}), "cluster_dns", {"ip", "replicas"})
        namespaces = self.mapping(top.get("namespaces"), "namespaces", set(top["namespaces"]))
        return Scenario(
            name=str(top.get("name")),
            path=self.path,
            duration=self.number(top.get("duration"), "duration"),
            rotate_every=self.number(top.get("rotate_every", 5), "rotate_every"),
            snaplen=int(self.number(top.get("snaplen", 512), "snaplen")),
            node=NodeSpec(
                name=str(node["name"]),
                ip=as_ipv4(node.get("ip"), self.path, "node.ip"),
                pod_cidr=IPv4Network(str(node.get("pod_cidr"))),
                provider_id=str(node.get("provider_id", f"kind://docker/testbed/{node['name']}")),
            ),
            dns_ip=as_ipv4(dns.get("ip", "10.96.0.10"), self.path, "cluster_dns.ip"),
            dns_replicas=int(self.number(dns.get("replicas", 1), "cluster_dns.replicas")),
            capture_pod=top.get("capture_pod"),
            namespaces={
                str(name): self.labels(
                    self.mapping(spec or {}, f"namespaces.{name}", {"labels"}).get("labels"),
                    f"namespaces.{name}.labels",
                )
                for name, spec in namespaces.items()
            },
            workloads=self.each(top, "workloads", self.workload),
            services=self.each(top, "services", self.service),
            ingresses=self.each(top, "ingresses", self.ingress),
            externals=self.each(top, "externals", self.external),
            external_clients=self.each(top, "external_clients", self.external_client),
            traffic=self.each(top, "traffic", self.traffic),
            webhooks=self.each(top, "webhooks", self.webhook),
            upstream_dns=None if top.get("upstream_dns") is None else as_ipv4(
                top["upstream_dns"], self.path, "upstream_dns"),
        )

    def webhook(self, value: Any, where: str) -> WebhookSpec:
        doc = self.mapping(value, where, {"name", "service", "port", "path"})
        return WebhookSpec(
            name=str(doc.get("name")), service=str(doc.get("service")),
            port=int(self.number(doc.get("port", 443), f"{where}.port")),
            path=str(doc.get("path", "/validate")),
        )

    def workload(self, value: Any, where: str) -> WorkloadSpec:
        doc = self.mapping(value, where, {
            "namespace", "name", "kind", "labels", "replicas", "ports", "image", "delete_at",
            "create_at", "reuse_ip_of",
        })
        kind = doc.get("kind", "Deployment")
        if kind not in WORKLOAD_KINDS:
            raise self.fail(f"{where}.kind", f"must be one of {WORKLOAD_KINDS}, got {kind!r}")
        return WorkloadSpec(
            namespace=str(doc.get("namespace")),
            name=str(doc.get("name")),
            kind=kind,
            labels=self.labels(doc.get("labels"), f"{where}.labels"),
            replicas=int(self.number(doc.get("replicas", 1), f"{where}.replicas")),
            ports=self.each(doc, "ports", self.port, f"{where}."),
            image=str(doc.get("image", f"registry.example.com/testbed/{doc.get('name')}:1.0")),
            delete_at=self.optional_number(doc.get("delete_at"), f"{where}.delete_at"),
            create_at=self.optional_number(doc.get("create_at"), f"{where}.create_at"),
            reuse_ip_of=doc.get("reuse_ip_of"),
        )

    def service(self, value: Any, where: str) -> ServiceSpec:
        doc = self.mapping(value, where, {
            "namespace", "name", "type", "cluster_ip", "selector", "ports",
            "load_balancer_ip", "external_traffic_policy",
        })
        raw_ip = doc.get("cluster_ip")
        cluster_ip = None if raw_ip in (None, "None") else as_ipv4(
            raw_ip, self.path, f"{where}.cluster_ip")
        ports = []
        for j, p in enumerate(self.items(doc.get("ports"), f"{where}.ports")):
            pw = f"{where}.ports[{j}]"
            pd = self.mapping(p, pw, {"name", "port", "target_port", "protocol", "node_port"})
            port = int(self.number(pd.get("port"), f"{pw}.port"))
            target = pd.get("target_port", port)
            ports.append(ServicePortSpec(
                name=pd.get("name"),
                port=port,
                target_port=target if isinstance(target, str) else int(target),
                protocol=self.protocol(pd.get("protocol", "TCP"), f"{pw}.protocol"),
                node_port=pd.get("node_port"),
            ))
        lb = doc.get("load_balancer_ip")
        return ServiceSpec(
            namespace=str(doc.get("namespace")),
            name=str(doc.get("name")),
            type=str(doc.get("type", "ClusterIP")),
            cluster_ip=cluster_ip,
            selector=self.labels(doc.get("selector"), f"{where}.selector"),
            ports=tuple(ports),
            load_balancer_ip=None if lb is None else as_ipv4(
                lb, self.path, f"{where}.load_balancer_ip"),
            external_traffic_policy=doc.get("external_traffic_policy"),
        )

    def ingress(self, value: Any, where: str) -> IngressSpec:
        doc = self.mapping(value, where, {
            "namespace", "name", "class", "host", "service", "service_port"})
        return IngressSpec(
            namespace=str(doc["namespace"]), name=str(doc["name"]),
            ingress_class=str(doc.get("class", "nginx")), host=str(doc["host"]),
            service=str(doc["service"]), service_port=doc["service_port"],
        )

    def external(self, value: Any, where: str) -> ExternalSpec:
        doc = self.mapping(value, where, {"name", "addresses", "cname", "ports", "drop"})
        raw = self.items(doc.get("addresses"), f"{where}.addresses")
        phases = raw if raw and all(isinstance(p, list) for p in raw) else [raw]
        rotation = tuple(
            tuple(as_ipv4(a, self.path, f"{where}.addresses") for a in phase)
            for phase in phases
        )
        return ExternalSpec(
            name=doc.get("name"),
            rotation=rotation,
            cname_chain=tuple(str(c) for c in self.items(doc.get("cname"), f"{where}.cname")),
            ports=self.each(doc, "ports", self.port, f"{where}."),
            drop=bool(doc.get("drop", False)),
        )

    def external_client(self, value: Any, where: str) -> ExternalClientSpec:
        doc = self.mapping(value, where, {"name", "ip"})
        return ExternalClientSpec(str(doc["name"]), as_ipv4(doc.get("ip"), self.path, where))

    def traffic(self, value: Any, where: str) -> TrafficSpec:
        doc = self.mapping(value, where, {"from", "to", "protocol", "every", "start", "stop",
                                          "hold"})
        to = self.mapping(doc.get("to"), f"{where}.to", {
            "service", "workload", "external", "ip", "load_balancer", "every_pod", "port",
            "resolve", "dns_tcp",
        })
        refs = [k for k in ("service", "workload", "external", "ip", "load_balancer",
                            "every_pod") if to.get(k)]
        if len(refs) != 1:
            raise self.fail(f"{where}.to", f"needs exactly one destination, got {refs}")
        if "port" not in to:
            raise self.fail(f"{where}.to", "needs a port")
        target = TargetSpec(
            port=to["port"],
            service=to.get("service"),
            workload=to.get("workload"),
            external=to.get("external"),
            ip=None if to.get("ip") is None else as_ipv4(to["ip"], self.path, f"{where}.to.ip"),
            load_balancer=to.get("load_balancer"),
            every_pod=bool(to.get("every_pod", False)),
            resolve=to.get("resolve"),
            dns_tcp=bool(to.get("dns_tcp", False)),
        )
        return TrafficSpec(
            source=str(doc.get("from")),
            target=target,
            protocol=self.protocol(doc.get("protocol", "TCP"), f"{where}.protocol"),
            every=self.number(doc.get("every", 1), f"{where}.every"),
            start=self.number(doc.get("start", 0), f"{where}.start"),
            stop=self.optional_number(doc.get("stop"), f"{where}.stop"),
            hold=self.optional_number(doc.get("hold"), f"{where}.hold"),
        )


def check_scenario(scenario: Scenario) -> None:
    """Cross-reference checks: ranges, names, ports, the lifecycle's timing."""
    path = scenario.path

    def fail(where: str, message: str) -> ScenarioError:
        return ScenarioError(path, where, message)

    if not scenario.node.pod_cidr.subnet_of(POD_RANGE):
        raise fail("node.pod_cidr", f"must be inside {POD_RANGE}")
    if scenario.dns_ip not in SERVICE_RANGE:
        raise fail("cluster_dns.ip", f"must be inside {SERVICE_RANGE}")
    if scenario.duration <= 0 or scenario.duration > 120:
        raise fail("duration", "must be in (0, 120] seconds")
    keys = [w.key for w in scenario.workloads]
    if len(set(keys)) != len(keys):
        raise fail("workloads", "duplicate ns/name")
    if API_SERVER_IP in {a for e in scenario.externals for a in e.all_addresses} | {
            c.ip for c in scenario.external_clients} or scenario.upstream_dns == API_SERVER_IP:
        raise fail("externals", f"{API_SERVER_IP} is the API server's address")
    if scenario.upstream_dns is not None and not in_documentation_range(scenario.upstream_dns):
        raise fail("upstream_dns", "must be in a documentation range")
    service_keys = [s.key for s in scenario.services] + list(SYSTEM_SERVICES)
    for i, hook in enumerate(scenario.webhooks):
        where = f"webhooks[{i}]"
        _lookup([s.key for s in scenario.services], hook.service, fail, f"{where}.service")
        service = next(s for s in scenario.services if s.key == hook.service)
        if not any(p.port == hook.port and p.protocol == "TCP" for p in service.ports):
            raise fail(f"{where}.port", f"{hook.service} has no TCP port {hook.port}")
    for i, w in enumerate(scenario.workloads):
        where = f"workloads[{i}]"
        if w.namespace not in scenario.namespaces:
            raise fail(where, f"namespace {w.namespace!r} is not declared")
        if w.reuse_ip_of is not None:
            other = _lookup(keys, w.reuse_ip_of, fail, f"{where}.reuse_ip_of")
            gone = scenario.workloads[other].delete_at
            if gone is None or w.create_at is None or w.create_at < gone + 1.5:
                raise fail(where, "reuse_ip_of needs the other workload deleted at least "
                                  "1.5 s before this one's create_at")
            if scenario.workloads[other].replicas != 1 or w.replicas != 1:
                raise fail(where, "reuse_ip_of works with one replica on each side")
    for i, s in enumerate(scenario.services):
        where = f"services[{i}]"
        if s.namespace not in scenario.namespaces:
            raise fail(where, f"namespace {s.namespace!r} is not declared")
        if s.cluster_ip is not None and s.cluster_ip not in SERVICE_RANGE:
            raise fail(f"{where}.cluster_ip", f"must be inside {SERVICE_RANGE}")
        if s.type == "LoadBalancer" and (
            s.load_balancer_ip is None or not in_documentation_range(s.load_balancer_ip)
        ):
            raise fail(where, "a LoadBalancer needs load_balancer_ip in a documentation range")
        selected = [w for w in scenario.workloads if w.namespace == s.namespace
                    and selects(s.selector, w.labels)]
        for j, port in enumerate(s.ports):
            if isinstance(port.target_port, str) and not any(
                p.name == port.target_port for w in selected for p in w.ports
            ):
                raise fail(f"{where}.ports[{j}]",
                           f"no selected pod declares a port named {port.target_port!r}")
    for i, e in enumerate(scenario.externals):
        for address in e.all_addresses:
            if not in_documentation_range(address):
                raise fail(f"externals[{i}]", f"{address} is outside "
                           f"{', '.join(map(str, DOCUMENTATION_RANGES))}")
    for i, c in enumerate(scenario.external_clients):
        if not in_documentation_range(c.ip):
            raise fail(f"external_clients[{i}]", f"{c.ip} is outside the documentation ranges")
    clients = {c.name for c in scenario.external_clients}
    for i, t in enumerate(scenario.traffic):
        where = f"traffic[{i}]"
        if t.from_external is not None:
            if t.from_external not in clients:
                raise fail(f"{where}.from", f"no external client {t.from_external!r}")
        elif t.source == "node":
            if t.target.workload is None and t.target.ip is None and \
                    t.target.external is None:
                raise fail(f"{where}.to", "the node probes pods by IP (workload, ip) or "
                                          "resolves an external (a host-network client)")
        elif t.source == API_SERVER_SOURCE:
            if t.target.service is None:
                raise fail(f"{where}.to", "the API server calls a Service (a webhook)")
        else:
            _lookup(keys + list(SYSTEM_WORKLOADS), t.source, fail, f"{where}.from")
        if t.hold is not None and (t.protocol != "TCP" or t.hold <= 0):
            raise fail(f"{where}.hold", "a held connection is TCP, for > 0 seconds")
        if t.target.service is not None:
            _lookup(service_keys, t.target.service, fail, f"{where}.to")
        if t.target.workload is not None:
            _lookup(keys, t.target.workload, fail, f"{where}.to")
        if t.target.external is not None:
            _lookup([str(e.name) for e in scenario.externals], t.target.external, fail,
                    f"{where}.to")
        if t.target.ip is not None and not any(
            t.target.ip in e.all_addresses for e in scenario.externals
        ):
            raise fail(f"{where}.to.ip", "not an address of a declared external")
        if t.every <= 0:
            raise fail(f"{where}.every", "must be > 0")


def _lookup(keys: list[str], key: str, fail: Any, where: str) -> int:
    try:
        return keys.index(key)
    except ValueError:
        raise fail(where, f"{key!r} is not declared") from None


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """A Service selector (non-empty, equality only) matching a pod's labels."""
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())
