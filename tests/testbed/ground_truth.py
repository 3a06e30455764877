"""The ground truth of a run, from what the agents logged: every connection made (client,
address used, the pod or external host that accepted it), every DNS query and answer, the
pods' lifetimes, and the FQDN dependencies the scenario should produce.

Format (`ground-truth.json`, `schema_version` 1): see `samples/shop/README.md`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from ipaddress import IPv4Address
from typing import TYPE_CHECKING, Any

from tests.testbed.cluster import Cluster, PodPlan
from tests.testbed.plan import API_AGENT, EXTERNAL_AGENT, NODE_AGENT
from tests.testbed.scenario import API_SERVER_IP, POD_RANGE

if TYPE_CHECKING:
    from tests.testbed.runner import RunResult, Timeline

SCHEMA_VERSION = 1
KIND = "netpol-discover-testbed-ground-truth"
ACCEPT_WINDOW = 2.0  # seconds between a client's connect and the server's accept, at most


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


def _pod_ref(pod: PodPlan) -> dict[str, Any]:
    return {"kind": "pod", "namespace": pod.namespace, "pod": pod.name,
            "workload": pod.workload.key, "workload_kind": pod.workload.kind,
            "ip": str(pod.ip)}


class _Truth:
    def __init__(self, cluster: Cluster, times: Timeline,
                 logs: Mapping[str, list[dict[str, Any]]],
                 dns_answerers: Mapping[tuple[str, int, str], list[str]]) -> None:
        self.cluster = cluster
        self.dns_answerers = dns_answerers
        self.times = times
        self.pods = {p.name: p for p in cluster.pods}
        # Keyed by the client's address and port; a list because ephemeral ports get
        # reused during a run: the accept nearest after the connect is the one.
        self.accepts: dict[tuple[str, int, str], list[tuple[str, dict[str, Any]]]] = {}
        for agent, records in logs.items():
            for record in records:
                if record["event"] == "accept":
                    key = (record["peer"], record["pport"], record["protocol"])
                    self.accepts.setdefault(key, []).append((agent, record))

    def client(self, agent: str, src: str | None) -> dict[str, Any]:
        if agent == API_AGENT:
            return {"kind": "api-server", "name": "kube-apiserver", "ip": str(API_SERVER_IP)}
        if agent == NODE_AGENT:
            node = self.cluster.scenario.node
            return {"kind": "node", "name": node.name, "ip": str(node.ip)}
        if agent == EXTERNAL_AGENT:
            name = next((c.name for c in self.cluster.scenario.external_clients
                         if str(c.ip) == src), None)
            return {"kind": "external", "name": name, "ip": src}
        return _pod_ref(self.pods[agent])

    def destination(self, address: str, port: int, protocol: str, at: float
                    ) -> tuple[str, str | None]:
        ip = IPv4Address(address)
        for service in self.cluster.services:
            if service.cluster_ip == ip:
                return "cluster-ip", service.key
            if service.load_balancer_ip == ip:
                return "load-balancer", service.key
        if ip in POD_RANGE:
            return "pod-ip", None
        return "external", None

    def resolved(self, src: str | None, sport: int | None, protocol: str, at: float
                 ) -> dict[str, Any] | None:
        if src is None or sport is None:
            return None
        candidates = [(record["time"] - at, agent, record)
                      for agent, record in self.accepts.get((src, sport, protocol), [])
                      if -0.05 <= record["time"] - at <= ACCEPT_WINDOW]
        if not candidates:
            return None
        _, agent, record = min(candidates, key=lambda c: c[0])
        if agent == API_AGENT:
            return {"kind": "api-server", "ip": record["local"], "port": record["lport"]}
        if agent == EXTERNAL_AGENT:
            names = sorted(str(e.name) for e in self.cluster.scenario.externals
                           if e.name is not None and IPv4Address(record["local"])
                           in e.all_addresses)
            return {"kind": "external", "ip": record["local"], "port": record["lport"],
                    "names": names}
        pod = self.pods[agent]
        port_name = next((p.name for p in pod.ports
                          if p.port == record["lport"] and p.protocol == protocol), None)
        return _pod_ref(pod) | {"port": record["lport"], "port_name": port_name}

    def connection(self, agent: str, record: dict[str, Any]) -> dict[str, Any]:
        at = record["time"]
        dst = record.get("dst")
        kind, service = (None, None) if dst is None else self.destination(
            dst, record["dport"], record["protocol"], at - self.times.start)
        return {
            "time": round(at, 6), "time_iso": iso(at), "purpose": "app",
            "traffic": record["traffic"], "ok": record["ok"], "error": record["error"],
            "protocol": record["protocol"], "client": self.client(agent, record.get("src")),
            "client_port": record.get("sport"), "server_address": dst,
            "server_port": record["dport"], "server_kind": kind, "service": service,
            "query": record["query"],
            "resolved": self.resolved(record.get("src"), record.get("sport"),
                                      record["protocol"], at),
        }

    def dns_connection(self, agent: str, record: dict[str, Any]) -> dict[str, Any]:
        at = record["time"]
        client = self.client(agent, None)
        transport = record.get("transport", "UDP")
        dns_pods = [p for p in self.cluster.pods if p.runs_dns]
        answerers = self.dns_answerers.get((client["ip"], record["sport"], record["qname"]), [])
        if len(dns_pods) == 1:
            answerers = [dns_pods[0].name]
        resolved = None
        if len(answerers) == 1:  # else: not logged, or ambiguous (a port reused)
            resolved = _pod_ref(self.pods[answerers[0]]) | {
                "port": 53, "port_name": "dns" if transport == "UDP" else "dns-tcp"}
        return {
            "time": round(at, 6), "time_iso": iso(at), "purpose": "dns", "traffic": None,
            "ok": record["rcode"] != "ERROR", "error": record.get("error"),
            "protocol": transport, "client": client, "client_port": record["sport"],
            "server_address": record["server"], "server_port": 53,
            "server_kind": "cluster-ip", "service": "kube-system/kube-dns",
            "query": record["qname"], "resolved": resolved,
        }


def build_ground_truth(cluster: Cluster, times: Timeline,
                       logs: Mapping[str, list[dict[str, Any]]], result: RunResult,
                       dns_answerers: Mapping[tuple[str, int, str], list[str]] | None = None,
                       ) -> dict[str, Any]:
    """`dns_answerers`: (client IP, port, name) -> CoreDNS pods that logged the query."""
    truth = _Truth(cluster, times, logs, dns_answerers or {})
    connections: list[dict[str, Any]] = []
    queries: list[dict[str, Any]] = []
    for agent, records in sorted(logs.items()):
        for record in records:
            if record["event"] == "connect":
                connections.append(truth.connection(agent, record))
            elif record["event"] == "dns":
                connection = truth.dns_connection(agent, record)
                connections.append(connection)
                queries.append({
                    "time": round(record["time"], 6), "time_iso": iso(record["time"]),
                    "client": connection["client"], "name": record["qname"],
                    "rcode": record["rcode"], "addresses": record["addresses"],
                    "transport": connection["protocol"],
                    "cname_chain": record["cname_chain"],
                })
    connections.sort(key=lambda c: (c["time"], c["client"]["ip"] or "", c["client_port"] or 0))
    queries.sort(key=lambda q: (q["time"], q["client"]["ip"], q["name"]))
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": KIND,
        "scenario": cluster.scenario.name,
        "netns_prefix": result.prefix,
        "capture": result.capture.name,
        "pod_captures": [p.name for p in result.pod_captures],
        "inventory": result.inventory.name,
        "setup": iso(times.setup),
        "start": iso(times.start),
        "end": iso(times.end),
        "snapshot": iso(times.snapshot),
        "pods": _pods(cluster, times),
        "dns_rotations": [{"time_iso": iso(t), "phase": phase} for t, phase in times.rotations],
        "connections": connections,
        "dns_queries": queries,
        "fqdn_dependencies": fqdn_dependencies(cluster, connections),
    }


def _pods(cluster: Cluster, times: Timeline) -> list[dict[str, Any]]:
    out = []
    for pod in cluster.pods:
        created = times.created.get(pod.name, times.setup)
        deleted = times.deleted.get(pod.name)
        out.append(_pod_ref(pod) | {
            "created": iso(created), "deleted": None if deleted is None else iso(deleted),
            "host_network": pod.host_network, "in_inventory": deleted is None,
        })
    return out


def fqdn_dependencies(cluster: Cluster, connections: list[dict[str, Any]]
                      ) -> list[dict[str, Any]]:
    """One entry per (client workload, external name, protocol, port) that the scenario
    asks for and that at least one successful connection really used."""
    made: dict[tuple[str, str, str, int], set[str]] = {}
    for c in connections:
        if c["purpose"] != "app" or not c["ok"] or c["server_kind"] != "external" \
                or not c["query"] or c["client"]["kind"] != "pod":
            continue
        key = (c["client"]["workload"], c["query"], c["protocol"], c["server_port"])
        made.setdefault(key, set()).add(c["server_address"])
    out = []
    for (workload, name, protocol, port), addresses in sorted(made.items()):
        external = cluster.scenario.external(name)
        out.append({
            "workload": workload,
            "workload_kind": cluster.pods_of(workload)[0].workload.kind,
            "fqdn": name, "cname_chain": list(external.cname_chain), "protocol": protocol,
            "port": port, "addresses_used": sorted(addresses),
            "addresses_all": [str(a) for a in external.all_addresses],
        })
    return out
