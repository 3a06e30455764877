"""The traffic a scenario makes, expanded into timed actions per agent (one agent a pod
namespace, one for the external hosts, one for the API server host, one for the node when
it makes connections). Pure: the runner ships each plan as JSON to
`traffic.py` running inside the namespace.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from tests.testbed.cluster import Cluster, PodPlan, target_port_of
from tests.testbed.scenario import (
    API_SERVER_IP,
    API_SERVER_PORT,
    API_SERVER_SOURCE,
    API_SERVICE,
    ScenarioError,
    ServiceSpec,
    TrafficSpec,
)

EXTERNAL_AGENT = "external"
NODE_AGENT = "node"  # kubelet-like probes and host-network clients, from the node's address
API_AGENT = API_SERVER_SOURCE  # the API server host: serves watches, calls webhooks


@dataclass(frozen=True, slots=True)
class Action:
    at: float  # seconds after traffic start
    traffic: int  # index of the scenario's traffic item
    protocol: str
    port: int  # destination port on the wire
    address: str | None  # literal destination; None: the answer to `query`
    query: str | None = None  # name to resolve (search list applies, as with ndots:5)
    pick: int = 0  # which of the answers to use (round robin over ticks)
    source: str | None = None  # source address to bind (external clients, the node)
    dns_tcp: bool = False  # resolve `query` over TCP
    hold: float | None = None  # keep the connection open this long (a watch)


@dataclass(frozen=True, slots=True)
class AgentPlan:
    agent: str  # pod name, or EXTERNAL_AGENT
    namespace: str | None
    workload: str | None  # "ns/name"
    listen: tuple[tuple[str, int], ...]  # (protocol, port)
    search: tuple[str, ...]
    actions: tuple[Action, ...]
    stream: tuple[int, ...] = ()  # TCP ports answered as a watch: kept open, data sent on
    bind: str | None = None  # the address its DNS queries come from (the node's)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def search_list(namespace: str) -> tuple[str, ...]:
    return (f"{namespace}.svc.cluster.local", "svc.cluster.local", "cluster.local")


def plan_agents(cluster: Cluster) -> dict[str, AgentPlan]:
    scenario = cluster.scenario
    actions: dict[str, list[Action]] = {}
    for index, item in enumerate(scenario.traffic):
        for agent, source, client, offset in _clients(cluster, item):
            for tick, at in enumerate(_ticks(item, scenario.duration, index, offset)):
                if client is not None and not client.alive(at):
                    continue
                for action in _targets(cluster, item, index, client, at, tick):
                    actions.setdefault(agent, []).append(
                        Action(action.at, action.traffic, action.protocol, action.port,
                               action.address, action.query, action.pick, source,
                               item.target.dns_tcp, item.hold))
    plans: dict[str, AgentPlan] = {}
    for pod in cluster.pods:
        if pod.host_network:
            continue
        listen = sorted({(p.protocol, p.port) for p in pod.ports
                         if not (pod.runs_dns and p.port == 53)})
        plans[pod.name] = AgentPlan(
            agent=pod.name, namespace=pod.namespace, workload=pod.workload.key,
            listen=tuple(listen), search=search_list(pod.namespace),
            actions=tuple(sorted(actions.get(pod.name, []), key=lambda a: a.at)),
        )
    ext_listen = sorted({(p.protocol, p.port) for e in scenario.externals for p in e.ports})
    plans[EXTERNAL_AGENT] = AgentPlan(
        agent=EXTERNAL_AGENT, namespace=None, workload=None, listen=tuple(ext_listen),
        search=(), actions=tuple(sorted(actions.get(EXTERNAL_AGENT, []), key=lambda a: a.at)),
    )
    plans[API_AGENT] = AgentPlan(
        agent=API_AGENT, namespace=None, workload=None, listen=(("TCP", API_SERVER_PORT),),
        search=(), actions=tuple(sorted(actions.get(API_AGENT, []), key=lambda a: a.at)),
        stream=(API_SERVER_PORT,),
    )
    if actions.get(NODE_AGENT):
        node_actions = tuple(sorted(actions[NODE_AGENT], key=lambda a: a.at))
        # a host-network pod (dnsPolicy ClusterFirstWithHostNet) resolves through the
        # cluster DNS like a pod of its namespace, from the node's address
        plans[NODE_AGENT] = AgentPlan(
            agent=NODE_AGENT, namespace=None, workload=None, listen=(),
            search=search_list("kube-system") if any(a.query for a in node_actions) else (),
            actions=node_actions, bind=str(scenario.node.ip),
        )
    return plans


def _clients(cluster: Cluster, item: TrafficSpec
             ) -> list[tuple[str, str | None, PodPlan | None, float]]:
    """(agent, source address to bind, client pod, phase offset) for each client."""
    if item.from_external is not None:
        client = next(c for c in cluster.scenario.external_clients if c.name == item.from_external)
        return [(EXTERNAL_AGENT, str(client.ip), None, 0.0)]
    if item.source == NODE_AGENT:
        return [(NODE_AGENT, str(cluster.scenario.node.ip), None, 0.0)]
    if item.source == API_AGENT:
        return [(API_AGENT, str(API_SERVER_IP), None, 0.0)]
    pods = [p for p in cluster.pods_of(item.source) if not p.host_network]
    return [(p.name, None, p, 0.29 * i) for i, p in enumerate(pods)]


def _ticks(item: TrafficSpec, duration: float, index: int, offset: float) -> list[float]:
    # Spread items over the period so that connections don't all start at once.
    first = item.start + (0.05 + 0.173 * index + offset) % item.every
    end = min(duration, item.stop if item.stop is not None else duration)
    ticks = []
    at = first
    while at < end:
        ticks.append(round(at, 3))
        at += item.every
    return ticks


def _targets(cluster: Cluster, item: TrafficSpec, index: int, client: PodPlan | None,
             at: float, tick: int) -> list[Action]:
    target = item.target
    where = f"traffic[{index}].to"
    if target.service is not None:
        service = cluster.service(target.service)
        port = _service_port(cluster, service, target.port, where)
        if service.key == API_SERVICE or (client is None and item.source == API_AGENT):
            # by its ClusterIP, no DNS: pods take the API server's from the environment
            # (KUBERNETES_SERVICE_HOST), the API server resolves a webhook's Service itself
            return [Action(at, index, item.protocol, port.port, str(service.cluster_ip))]
        backends = [p for p in cluster.endpoints(service, at)]
        if not backends:
            return []
        query = target.resolve or _service_name(service, client)
        if service.cluster_ip is None:  # headless: DNS gives the pods, use the targetPort
            pod_port = target_port_of(port, backends[0])
            if pod_port is None:
                raise ScenarioError(cluster.scenario.path, where, "target port not found")
            return [Action(at, index, item.protocol, pod_port, None, query, tick)]
        return [Action(at, index, item.protocol, port.port, None, query, tick)]
    if target.load_balancer is not None:
        service = cluster.service(target.load_balancer)
        port = _service_port(cluster, service, target.port, where)
        if not cluster.endpoints(service, at):
            return []
        return [Action(at, index, item.protocol, port.port, str(service.load_balancer_ip))]
    if target.workload is not None or target.every_pod:
        pods = (cluster.pods_of(target.workload) if target.workload is not None else [
            p for p in cluster.pods
            if not p.host_network and (client is None or p.workload.key != client.workload.key)
            and isinstance(target.port, str) and p.port_named(target.port) is not None
        ])
        out = []
        for pod in pods:
            if not pod.alive(at):
                continue
            number = _pod_port(pod, target.port)
            if number is not None:
                out.append(Action(at, index, item.protocol, number, str(pod.ip)))
        return out
    if target.external is not None:
        external = cluster.scenario.external(target.external)
        number = _external_port(external.ports, target.port, cluster.scenario.path, where)
        return [Action(at, index, item.protocol, number, None,
                       target.resolve or target.external, tick)]
    assert target.ip is not None
    external = next(e for e in cluster.scenario.externals if target.ip in e.all_addresses)
    number = _external_port(external.ports, target.port, cluster.scenario.path, where)
    return [Action(at, index, item.protocol, number, str(target.ip))]


def _service_name(service: ServiceSpec, client: PodPlan | None) -> str:
    if client is not None and client.namespace == service.namespace:
        return service.name
    return f"{service.name}.{service.namespace}"


def _service_port(cluster: Cluster, service: ServiceSpec, port: int | str, where: str) -> Any:
    for candidate in service.ports:
        if candidate.port == port or (candidate.name is not None and candidate.name == port):
            return candidate
    raise ScenarioError(cluster.scenario.path, where, f"{service.key} has no port {port!r}")


def _pod_port(pod: PodPlan, port: int | str) -> int | None:
    if isinstance(port, int):
        return port
    found = pod.port_named(port)
    return None if found is None else found.port


def _external_port(ports: Any, port: int | str, path: str, where: str) -> int:
    if isinstance(port, int):
        return port
    for candidate in ports:
        if candidate.name == port:
            return int(candidate.port)
    raise ScenarioError(path, where, f"no external port named {port!r}")
