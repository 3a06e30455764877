"""ClusterNetworkPolicy guardrails (policy.networking.k8s.io/v1alpha2): what the proposal
says once per namespace, said once for the cluster, plus two things NetworkPolicy can't say.

- Baseline tier, priority 100: deny ingress from pods and egress to everything, after
  accepting the cluster DNS. Its subject is every namespace except the system namespaces
  left out and the existing namespaces that were not analysed, by name (NotIn): each
  namespace it closes today was analysed (their NetworkPolicies, a tier above, decide
  for their pods), and a namespace created tomorrow starts closed. Ingress peers can only
  be pods, so traffic from outside the cluster and from nodes is not denied here.
- Admin tier, priorities 100 and 110: cloud metadata (169.254.169.254, fd00:ec2::254)
  is denied to every pod outside the system namespaces left out; a workload observed
  using it gets a Pass first, so its NetworkPolicy (least privilege) decides instead.
- Admin tier, priority 200, experimental channel: each workload's observed FQDN
  dependencies accepted by `domainNames` on their ports. Accept is final: with these
  applied, the any-IP / pinned rules policies.yaml has for those names can go.

Pure: graph, proposal and inventory in, documents out.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from ipaddress import ip_address
from typing import Any

from discover.enrichment.peers import WorkloadPeer
from discover.enrichment.workload_graph import WorkloadGraph
from discover.flows.events import Protocol
from discover.inventory.facts import SYSTEM_NAMESPACES
from discover.inventory.model import Inventory, WorkloadRef
from discover.netpol.cluster_policy import API_VERSION, DOMAIN_NAME, KIND, MAX_RULES
from discover.netpol.endpoints import NAMESPACE_NAME_LABEL
from discover.synthesis.cluster_dns import DNS_PORT, GUESSED_DNS_LABEL, find_cluster_dns
from discover.synthesis.options import SynthesisOptions
from discover.synthesis.proposal import (
    Finding,
    FqdnDependency,
    PolicyDocument,
    PortUse,
    Proposal,
    Severity,
)
from discover.synthesis.render import _documents, _file_header
from discover.synthesis.selectors import SelectorTable

METADATA_ADDRESSES = (ip_address("169.254.169.254"), ip_address("fd00:ec2::254"))
METADATA_NETWORKS = ("169.254.169.254/32", "fd00:ec2::254/128")
NODELOCAL_NETWORK = "169.254.20.10/32"
BASELINE_PRIORITY = 100
METADATA_PASS_PRIORITY = 100
METADATA_DENY_PRIORITY = 110
FQDN_PRIORITY = 200
PREFIX = "netpol-discover"
EXPERIMENTAL = "experimental"
MAX_NAME = 253


@dataclass(frozen=True, slots=True)
class ClusterPolicies:
    """The documents of cluster-policies.yaml: the standard channel's, then the
    experimental channel's (`experimental` of them, at the end)."""

    documents: tuple[PolicyDocument, ...]
    experimental: int

    @property
    def manifests(self) -> tuple[dict[str, Any], ...]:
        return tuple(dict(d.manifest) for d in self.documents)


def cluster_policies(graph: WorkloadGraph, proposal: Proposal, inventory: Inventory,
                     options: SynthesisOptions) -> ClusterPolicies:
    selectors = SelectorTable(inventory)
    system, left_out = _left_out(proposal, inventory, options)
    standard = [_baseline(graph, inventory, selectors, left_out),
                *_metadata(graph, selectors, system)]
    experimental = _fqdn_documents(proposal.fqdn_dependencies, selectors)
    return ClusterPolicies(tuple(standard + experimental), len(experimental))


def _left_out(proposal: Proposal, inventory: Inventory, options: SynthesisOptions
              ) -> tuple[list[str], list[str]]:
    """(system namespaces not opted into, every namespace the baseline must not close:
    those, and existing ones that got no default deny: not analysed, or filtered out)."""
    analysed = set(proposal.namespaces)
    system = {n for n in (*SYSTEM_NAMESPACES, *options.system_namespaces)
              if options.held_back(n)}
    existing = {ns.name for ns in inventory.namespaces} | {p.namespace for p in inventory.pods}
    return sorted(system - analysed), sorted((system | existing) - analysed)


def _namespaces_except(names: Sequence[str]) -> dict[str, Any]:
    if not names:
        return {}
    return {"matchExpressions": [{"key": NAMESPACE_NAME_LABEL, "operator": "NotIn",
                                  "values": list(names)}]}


def _namespace(name: str) -> dict[str, Any]:
    return {"matchLabels": {NAMESPACE_NAME_LABEL: name}}


def _pods_of(workload: WorkloadRef, selectors: SelectorTable) -> dict[str, Any]:
    labels = selectors[workload].match_labels()
    return {"namespaceSelector": _namespace(workload.namespace),
            "podSelector": {"matchLabels": labels} if labels else {}}


def _manifest(name: str, tier: str, priority: int, subject: dict[str, Any],
              ingress: list[dict[str, Any]] | None, egress: list[dict[str, Any]],
              channel: str | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name,
                                "labels": {"app.kubernetes.io/managed-by": PREFIX}}
    if channel:
        metadata["annotations"] = {"netpol-discover.io/needs-channel": channel}
    spec: dict[str, Any] = {"tier": tier, "priority": priority, "subject": subject}
    if ingress:
        spec["ingress"] = ingress
    spec["egress"] = egress
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}


def _ports(uses: Sequence[PortUse]) -> list[dict[str, Any]]:
    return [{protocol.lower(): {"destinationPort": {"number": port}}}
            for protocol, port in sorted({(str(u.protocol), u.port) for u in uses})]


def _baseline(graph: WorkloadGraph, inventory: Inventory, selectors: SelectorTable,
              left_out: Sequence[str]) -> PolicyDocument:
    dns = find_cluster_dns(graph.edges, inventory)
    peers: list[dict[str, Any]] = [
        {"pods": _pods_of(w, selectors)} for w in dns.workloads if selectors[w].exact]
    if not dns.workloads:
        key, value = GUESSED_DNS_LABEL
        peers.append({"pods": {"namespaceSelector": _namespace("kube-system"),
                               "podSelector": {"matchLabels": {key: value}}}})
    if dns.node_local:
        peers.append({"networks": [NODELOCAL_NETWORK]})
    ports = sorted({*dns.ports, DNS_PORT})
    egress = []
    if peers:
        egress.append({"name": "cluster-dns", "action": "Accept", "to": peers,
                       "protocols": _ports([PortUse(p, n) for n in ports
                                            for p in (Protocol.TCP, Protocol.UDP)])})
    egress.append({"name": "default-deny", "action": "Deny",
                   "to": [{"namespaces": {}}, {"networks": ["0.0.0.0/0", "::/0"]}]})
    ingress = [{"name": "default-deny", "action": "Deny", "from": [{"namespaces": {}}]}]
    manifest = _manifest(f"{PREFIX}-baseline", "Baseline", BASELINE_PRIORITY,
                         {"namespaces": _namespaces_except(left_out)}, ingress, egress)
    comments = [
        "Baseline tier: the default deny of every namespace but those listed (system ones "
        "left out, and existing ones not analysed), so a namespace created later starts "
        "closed; NetworkPolicies override it for the pods they select",
        "egress: cluster DNS accepted on " + ", ".join(str(p) for p in ports)
        + " (TCP and UDP), everything else denied; ingress: denied from every pod (ingress "
        "peers are pods only: external and node sources are not covered)",
    ]
    if dns.workloads and not any(selectors[w].exact for w in dns.workloads):
        comments.append("no exact selector for the cluster DNS pods: DNS is not accepted here")
    if not dns.workloads:
        comments.append("cluster DNS pods unknown: k8s-app=kube-dns in kube-system is a guess")
    return PolicyDocument(manifest, tuple(comments))


def _metadata(graph: WorkloadGraph, selectors: SelectorTable,
              system: Sequence[str]) -> list[PolicyDocument]:
    users: dict[WorkloadRef, set[str]] = defaultdict(set)
    for edge in graph.edges:
        if edge.destination.ip in METADATA_ADDRESSES and isinstance(edge.source, WorkloadPeer):
            users[edge.source.workload].add(f"{edge.destination.ip} {edge.protocol}/{edge.port}")
    documents = []
    for workload in sorted(users):
        choice = selectors[workload]
        comments = [f"{workload} was seen using the cloud metadata service "
                    f"({', '.join(sorted(users[workload]))}): Pass, so its NetworkPolicy "
                    "decides, not the Admin deny below"]
        if not choice.exact:
            comments.append(f"its selector also matches other pods ({choice.note}); they "
                            "pass too, to their own NetworkPolicies")
        egress = [{"name": "metadata-observed", "action": "Pass",
                   "to": [{"networks": list(METADATA_NETWORKS)}]}]
        manifest = _manifest(_name("metadata-pass", workload), "Admin", METADATA_PASS_PRIORITY,
                             {"pods": _pods_of(workload, selectors)}, None, egress)
        documents.append(PolicyDocument(manifest, tuple(comments)))
    deny = _manifest(f"{PREFIX}-metadata-deny", "Admin", METADATA_DENY_PRIORITY,
                     {"namespaces": _namespaces_except(system)},
                     None, [{"name": "cloud-metadata", "action": "Deny",
                             "to": [{"networks": list(METADATA_NETWORKS)}]}])
    documents.append(PolicyDocument(deny, (
        "Admin tier: no pod reaches the cloud metadata service (credentials of the node's "
        "cloud identity) unless it was seen doing so (the Pass policies above); no "
        "NetworkPolicy can reopen it",
    )))
    return documents


def _fqdn_documents(dependencies: Sequence[FqdnDependency],
                    selectors: SelectorTable) -> list[PolicyDocument]:
    by_workload: dict[WorkloadRef, list[FqdnDependency]] = defaultdict(list)
    for dependency in dependencies:
        if dependency.has_policy:
            by_workload[dependency.workload].append(dependency)
    documents = []
    for workload in sorted(by_workload):
        if not selectors[workload].exact:
            continue  # its NetworkPolicy was not written either (selector-no-exact-label)
        by_ports: dict[tuple[PortUse, ...], list[str]] = defaultdict(list)
        skipped = []
        for dependency in by_workload[workload]:
            name = dependency.fqdn.rstrip(".")
            if DOMAIN_NAME.match(name):
                ports = tuple(sorted(set(dependency.ports), key=lambda u: (u.protocol, u.port)))
                by_ports[ports].append(name)
            else:
                skipped.append(name)
        rules = []
        for ports, names in sorted(by_ports.items()):
            unique = sorted(set(names))
            chunks = [unique[i:i + MAX_RULES] for i in range(0, len(unique), MAX_RULES)]
            for start in range(0, len(chunks), MAX_RULES):  # 25 peers a rule
                rules.append({"name": "observed-fqdns", "action": "Accept",
                              "to": [{"domainNames": c} for c in chunks[start:start + MAX_RULES]],
                              "protocols": _ports(ports)})
        for part, start in enumerate(range(0, len(rules), MAX_RULES)):
            suffix = f"-{part + 1}" if len(rules) > MAX_RULES else ""
            manifest = _manifest(_name("fqdn", workload) + suffix, "Admin", FQDN_PRIORITY,
                                 {"pods": _pods_of(workload, selectors)}, None,
                                 rules[start:start + MAX_RULES], channel=EXPERIMENTAL)
            comments = [f"experimental channel: {workload}'s observed external names, "
                        "accepted by domainNames (needs a CNI that implements it); with it, "
                        "the any-IP / pinned rules for these names in policies.yaml can go"]
            if skipped:
                comments.append("not valid domainNames, left to policies.yaml: "
                                + ", ".join(sorted(skipped)))
            documents.append(PolicyDocument(manifest, tuple(comments)))
    return documents


_NOT_NAME = re.compile(r"[^a-z0-9-]+")


def _name(what: str, workload: WorkloadRef) -> str:
    """A valid object name (DNS subdomain) per workload; a hash when cleaning changed it or
    it is too long, so two workloads never share one."""
    raw = f"{workload.namespace}-{workload.kind}-{workload.name}".lower()
    clean = _NOT_NAME.sub("-", raw).strip("-")
    name = f"{PREFIX}-{what}-{clean}"
    if clean != raw or len(name) > MAX_NAME:
        digest = hashlib.sha256(str(workload).encode()).hexdigest()[:10]
        name = f"{name[:MAX_NAME - 11].rstrip('-')}-{digest}"
    return name


def render_cluster_policies_yaml(result: ClusterPolicies, proposal: Proposal) -> str:
    """cluster-policies.yaml, written by the machinery of policies.yaml (escaped comments,
    the same YAML writer, deterministic)."""
    standard = len(result.documents) - result.experimental
    header = _file_header(
        proposal,
        f"{len(result.documents)} ClusterNetworkPolicies ({API_VERSION}): guardrails beside "
        "policies.yaml; they need a CNI that implements ClusterNetworkPolicy "
        "(docs/cluster-policies.md)",
    )
    header.append(f"the first {standard} need the standard channel's CRD"
                  + (f"; the last {result.experimental} the experimental channel's "
                     "(domainNames): leave them out elsewhere" if result.experimental else ""))
    return _documents(header, result.documents)


def with_cni_finding(proposal: Proposal, result: ClusterPolicies) -> Proposal:
    """The proposal with the finding the reports show: the file needs a CNI that implements
    ClusterNetworkPolicy (which ones: docs/cluster-policies.md, from network-policy-api's
    implementations page)."""
    finding = Finding(
        # a warning: whether to apply it is the reviewer's call on what their CNI does
        Severity.WARNING, "cluster-policies-cni", "cluster/cluster-policies.yaml",
        f"cluster-policies.yaml holds {len(result.documents)} ClusterNetworkPolicies "
        f"({API_VERSION}: a Baseline default deny with cluster DNS, an Admin deny of the "
        "cloud metadata service"
        + (f", {result.experimental} domainNames allowlist(s) of the experimental channel"
           if result.experimental else "")
        + "): they need the CRD and a CNI that implements ClusterNetworkPolicy (network-"
        "policy-api lists kube-network-policies, Calico v3.32 and Kube-OVN, experimental, as "
        "of April 2026: docs/cluster-policies.md); without one they enforce nothing. "
        "policies.yaml does not depend on them",
    )
    findings = sorted((*proposal.findings, finding), key=Finding.sort_key)
    return replace(proposal, findings=tuple(findings))
