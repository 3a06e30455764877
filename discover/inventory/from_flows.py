"""An Inventory from what Hubble flows say of their endpoints, for `analyze` without cluster
access; and, beside a real inventory, the flows' endpoints compared with it.

Hubble endpoints carry a namespace, Cilium identity labels, a pod name and (Cilium 1.12+)
workloads. Identity labels are "source:key=value": `k8s:` ones are the pod's labels, except
`k8s:io.cilium.k8s.namespace.labels.*` (its namespace's labels), `io.cilium.k8s.policy.*`
(Cilium's own: the ServiceAccount, the cluster name) and `io.kubernetes.pod.namespace`.
`reserved:host` is the node the flow was observed on; `reserved:remote-node` another node.

What flows can't say (container named ports, Services and their ClusterIPs, load balancers
and Ingresses, pod CIDRs, pod templates) is said in findings rather than guessed. Pods
declare the ports they were seen serving, so port checks compare the flows with themselves.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from discover.flows.events import IPAddress, Outcome, Protocol
from discover.flows.flowtable import FlowRow
from discover.flows.hubble_facts import EndpointSighting, HubbleFacts
from discover.inventory.model import ContainerPort, Inventory, Namespace, Node, Pod, WorkloadRef
from discover.synthesis.proposal import Finding, Severity

NAMESPACE_LABEL_PREFIX = "io.cilium.k8s.namespace.labels."
SERVICE_ACCOUNT_LABEL = "io.cilium.k8s.policy.serviceaccount"
CILIUM_OWN_PREFIXES = ("io.cilium.k8s.policy.", "io.kubernetes.pod.namespace")
# Pods whose flows carry no `workloads` are grouped by their identity labels: pods with the
# same labels in a namespace are one workload to a policy selector anyway.
IDENTITY_KIND = "CiliumIdentity"
SOURCE = "hubble flows"


@dataclass(frozen=True, slots=True)
class FlowsInventory:
    inventory: Inventory
    findings: tuple[Finding, ...]


def split_labels(labels: Iterable[str]) -> tuple[dict[str, str], dict[str, str], str]:
    """(pod labels, namespace labels, ServiceAccount) from identity labels."""
    pod: dict[str, str] = {}
    namespace: dict[str, str] = {}
    account = ""
    for label in labels:
        if not label.startswith("k8s:"):
            continue  # reserved:, cidr:, fqdn:, container: ... are no pod labels
        key, _, value = label[4:].partition("=")
        if key.startswith(NAMESPACE_LABEL_PREFIX):
            namespace[key[len(NAMESPACE_LABEL_PREFIX):]] = value
        elif key == SERVICE_ACCOUNT_LABEL:
            account = value
        elif not key.startswith(CILIUM_OWN_PREFIXES) and key:
            pod[key] = value
    return pod, namespace, account


def inventory_from_flows(facts: HubbleFacts, flows: Sequence[FlowRow]) -> FlowsInventory:
    pods, grouped = _pods(facts.endpoints, _served_ports(flows))
    namespaces = _namespaces(facts.endpoints)
    nodes = _nodes(facts.endpoints)
    inventory = Inventory(
        namespaces=namespaces, nodes=nodes, pods=pods, sources=(SOURCE,),
    )
    findings = [Finding(
        severity=Severity.WARNING,
        rule="inventory-from-flows",
        subject="inventory",
        message=(
            f"no inventory was given: {len(pods)} pods, {len(namespaces)} namespaces and "
            f"{len(nodes)} nodes were taken from the Hubble flows' endpoints. An inventory "
            "(--inventory or --kubeconfig) would add: container port names (rules here use "
            "numbers, the ports each pod was seen serving), Services with their ClusterIPs "
            "and targetPorts (flows show backend addresses), LoadBalancer Services and "
            "Ingresses (external sources are reported, not allowed), pod CIDRs and the "
            "addresses of nodes that sent nothing, and pods that were idle during the window"
        ),
        evidence=", ".join(os.path.basename(f) for f in facts.files),
    )]
    unlabelled = sorted(f"{p.namespace}/{p.name}" for p in pods if not p.labels)
    if unlabelled:
        findings.append(Finding(
            severity=Severity.WARNING,
            rule="hubble-pod-without-labels",
            subject="inventory",
            message=(
                f"{len(unlabelled)} pods appear in the flows by name only (Cilium had not "
                "resolved their identity: no labels, or reserved:world): no selector can "
                "name them, so their connections are not allowed; an inventory gives their "
                f"labels: {', '.join(unlabelled)}"
            ),
        ))
    if grouped:
        findings.append(Finding(
            severity=Severity.INFO,
            rule="inventory-from-flows-identity",
            subject="inventory",
            message=(
                "these flows carry no `workloads` (Cilium before 1.12): pods with the same "
                f"identity labels in a namespace were taken as one workload ({IDENTITY_KIND}, "
                f"named by their common name prefix): {', '.join(sorted(grouped))}"
            ),
        ))
    return FlowsInventory(inventory, tuple(findings))


def merge_with_inventory(inventory: Inventory, facts: HubbleFacts,
                         flows: Sequence[FlowRow]) -> FlowsInventory:
    """The inventory wins where both speak; a pod the flows name at an address no
    inventory pod holds is added; every disagreement is a finding."""
    from_flows = inventory_from_flows(facts, flows).inventory
    by_ip: dict[IPAddress, Pod] = {ip: pod for pod in inventory.pods for ip in pod.ips}
    findings: list[Finding] = []
    added: list[Pod] = []
    for pod in from_flows.pods:
        known = [by_ip[ip] for ip in pod.ips if ip in by_ip]
        if not known:
            added.append(pod)
            continue
        for other in {(p.namespace, p.name): p for p in known}.values():
            differences = _differences(pod, other)
            if differences:
                findings.append(Finding(
                    severity=Severity.WARNING,
                    rule="hubble-inventory-disagreement",
                    subject=f"{other.namespace}/{other.name}",
                    message=(
                        f"the flows and the inventory disagree on the pod at "
                        f"{', '.join(str(ip) for ip in pod.ips)}: {'; '.join(differences)}; "
                        "the inventory is used (a pod replaced between the flows and the "
                        "snapshot, or an address reused)"
                    ),
                ))
    if added:
        findings.append(Finding(
            severity=Severity.WARNING,
            rule="hubble-pod-not-in-inventory",
            subject="inventory",
            message=(
                f"{len(added)} pods seen in the flows are not in the inventory (gone before "
                "it was taken?) and were added from the flows: "
                + ", ".join(f"{p.namespace}/{p.name}" for p in added)
            ),
        ))
    known_namespaces = {n.name for n in inventory.namespaces}
    extra_namespaces = tuple(n for n in from_flows.namespaces if n.name not in known_namespaces
                             and any(p.namespace == n.name for p in added))
    merged = replace(inventory, pods=inventory.pods + tuple(added),
                     namespaces=inventory.namespaces + extra_namespaces)
    return FlowsInventory(merged, tuple(findings))


# -- internals ----------------------------------------------------------------------------


def _served_ports(flows: Sequence[FlowRow]) -> dict[IPAddress, set[tuple[int, Protocol]]]:
    served: dict[IPAddress, set[tuple[int, Protocol]]] = {}
    for row in flows:
        if row.outcome in (Outcome.COMPLETED, Outcome.UNKNOWN):
            served.setdefault(row.dst_ip, set()).add((row.dst_port, row.protocol))
    return served


def _pods(endpoints: Sequence[EndpointSighting],
          served: dict[IPAddress, set[tuple[int, Protocol]]]) -> tuple[tuple[Pod, ...], set[str]]:
    latest: dict[tuple[str, str], EndpointSighting] = {}
    ips: dict[tuple[str, str], set[IPAddress]] = {}
    for sighting in endpoints:
        if not sighting.pod_name or not sighting.namespace:
            continue
        key = (sighting.namespace, sighting.pod_name)
        ips.setdefault(key, set()).add(sighting.ip)
        # The sighting that knows most: a flow whose endpoint Cilium had not resolved
        # carries the pod's name with `reserved:world` or no labels at all.
        if key not in latest or _richness(sighting) >= _richness(latest[key]):
            latest[key] = sighting
    # Without `workloads`, pods of one namespace with the same labels are one workload.
    groups: dict[tuple[str, tuple[tuple[str, str], ...]], list[str]] = {}
    for (namespace, name), sighting in latest.items():
        same = tuple(sorted(split_labels(sighting.labels)[0].items()))
        if not sighting.workloads and same:
            groups.setdefault((namespace, same), []).append(name)
    identity_names = {
        (namespace, name): _common_name(names)
        for (namespace, _labels), names in groups.items() for name in names
    }
    pods = []
    for (namespace, name), sighting in sorted(latest.items()):
        labels, _, account = split_labels(sighting.labels)
        if sighting.workloads:
            kind, owner = sighting.workloads[0]
            workload = WorkloadRef(namespace, kind, owner)
        elif (namespace, name) in identity_names:
            workload = WorkloadRef(namespace, IDENTITY_KIND, identity_names[(namespace, name)])
        else:
            workload = WorkloadRef(namespace, "Pod", name)  # no labels known: itself alone
        addresses = tuple(sorted(ips[(namespace, name)], key=lambda ip: (ip.version, int(ip))))
        ports = sorted({port for ip in addresses for port in served.get(ip, ())})
        pods.append(Pod(
            namespace=namespace,
            name=name,
            uid=f"hubble:{namespace}/{name}",
            labels=labels,
            ips=addresses,
            workload=workload,
            ports=tuple(ContainerPort(port, protocol) for port, protocol in ports),
            service_account=account or "default",
            phase="Running",
        ))
    grouped = {f"{namespace}/{identity_names[(namespace, name)]}"
               for (namespace, _labels), names in groups.items() for name in names}
    return tuple(pods), grouped


def _richness(sighting: EndpointSighting) -> tuple[int, int, float]:
    labels = split_labels(sighting.labels)[0]
    return bool(sighting.workloads), len(labels), sighting.last


def _common_name(names: list[str]) -> str:
    if len(names) == 1:
        return names[0]
    prefix = os.path.commonprefix(sorted(names)).rstrip("-")
    return prefix or sorted(names)[0]


def _namespaces(endpoints: Sequence[EndpointSighting]) -> tuple[Namespace, ...]:
    labels: dict[str, dict[str, str]] = {}
    for sighting in endpoints:
        if sighting.namespace:
            labels.setdefault(sighting.namespace, {}).update(split_labels(sighting.labels)[1])
    return tuple(Namespace(name, labels[name]) for name in sorted(labels))


def _nodes(endpoints: Sequence[EndpointSighting]) -> tuple[Node, ...]:
    named: dict[str, set[IPAddress]] = {}
    remote: set[IPAddress] = set()
    for sighting in endpoints:
        if sighting.node_name:
            named.setdefault(sighting.node_name, set()).add(sighting.ip)
        elif "reserved:remote-node" in sighting.labels:
            remote.add(sighting.ip)
    remote -= {ip for addresses in named.values() for ip in addresses}
    nodes = [Node(name, tuple(sorted(addresses, key=lambda ip: (ip.version, int(ip)))))
             for name, addresses in sorted(named.items())]
    # A remote node's name isn't in the flow: its address stands for it.
    nodes += [Node(f"remote-node-{ip}", (ip,))
              for ip in sorted(remote, key=lambda ip: (ip.version, int(ip)))]
    return tuple(nodes)


def _differences(seen: Pod, known: Pod) -> list[str]:
    differences = []
    if (seen.namespace, seen.name) != (known.namespace, known.name):
        differences.append(f"flows name {seen.namespace}/{seen.name}, the inventory "
                           f"{known.namespace}/{known.name}")
    changed = sorted(k for k, v in seen.labels.items() if known.labels.get(k) != v)
    if changed:
        differences.append("labels differ: " + ", ".join(
            f"{k}={seen.labels[k]!r} in flows, {known.labels.get(k)!r} in the inventory"
            for k in changed))
    if seen.workload.kind != IDENTITY_KIND and seen.workload != known.workload:
        differences.append(f"workload {seen.workload} in flows, {known.workload} in the "
                           "inventory")
    return differences
