"""report.md: short enough for a pull-request description. What changes per namespace,
and what needs a human decision (warning/critical findings, FQDN dependencies); the rest
is in report.html. Deterministic: sorted, no time of the run."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from discover.enrichment.peers import ExternalPeer, Peer, workload_of
from discover.escaping.markdown_text import md_code, md_text
from discover.inventory.model import WorkloadRef
from discover.synthesis.proposal import EdgeDecision, Proposal, Severity, format_time
from discover.verification.changes import Changes
from discover.verification.convergence import assess_convergence
from reports.changes import documents_by_workload
from reports.learning_md import learning_lines
from reports.model import ReportInput, sorted_findings, summarize

WORKLOADS_LISTED = 12  # per namespace; the rest is counted
PEERS_LISTED = 6
FINDINGS_LISTED = 25
md = md_text  # every name from the cluster or DNS goes through it


def _peer_name(peer: Peer, home: str) -> str:
    if peer.is_cluster_dns:
        return "DNS"
    ref = workload_of(peer)
    if ref is not None:
        return ref.name if ref.namespace == home else f"{ref.namespace}/{ref.name}"
    if isinstance(peer, ExternalPeer) and peer.fqdn:
        return peer.fqdn
    return peer.label()


def _peers(decisions: Iterable[EdgeDecision], home: str, direction: str) -> str:
    ports: dict[str, set[tuple[str, int]]] = defaultdict(set)
    for decision in decisions:
        if decision.direction != direction or decision.allowed is not True:
            continue
        edge = decision.edge
        peer = edge.source if direction == "ingress" else edge.destination
        ports[_peer_name(peer, home)].add((edge.protocol, edge.port))
    items = []
    for name in sorted(ports):
        if name == "DNS":
            items.append("DNS")
            continue
        shown = ", ".join(f"{proto} {port}" for proto, port in sorted(ports[name]))
        items.append(f"{name} ({shown})")
    if len(items) > PEERS_LISTED:
        items = items[:PEERS_LISTED] + [f"+{len(items) - PEERS_LISTED} more"]
    return md("; ".join(items)) if items else "nothing"


def _namespace_table(report: ReportInput, changes: Changes) -> list[str]:
    proposal = report.proposal
    documents = documents_by_workload(proposal)
    by_ns: dict[str, list[WorkloadRef]] = defaultdict(list)
    for label, docs in documents.items():
        for document in docs:
            if label:
                by_ns[document.namespace].append(_ref(label))
    lines = ["| namespace | default deny | policies | allowed edges | denied on purpose | "
             "workload pairs newly denied |", "|---|---|--:|--:|--:|--:|"]
    policies: dict[str, int] = defaultdict(int)
    for document in proposal.documents:
        policies[document.namespace] += 1
    allowed: dict[str, int] = defaultdict(int)
    denied: dict[str, int] = defaultdict(int)
    for decision in proposal.decisions:
        if decision.policy:
            namespace = decision.policy.split("/", 1)[0]
            if decision.allowed is True:
                allowed[namespace] += 1
            elif decision.allowed is False:
                denied[namespace] += 1
    namespaces = sorted(set(policies) | set(proposal.namespaces))
    for namespace in namespaces:
        lost = sum(c.ingress.lost for c in changes.for_namespace(namespace))
        lines.append(f"| {md(namespace)} | {'yes' if namespace in proposal.namespaces else 'no'}"
                     f" | {policies[namespace]} | {allowed[namespace]} | {denied[namespace]} | "
                     f"{lost} |")
    return lines


def _changes(report: ReportInput, changes: Changes) -> list[str]:
    return [
        *_namespace_table(report, changes),
        "",
        "Each workload then accepts and sends only what was observed:",
        *_workload_lines(report.proposal),
    ]


def _ref(label: str) -> WorkloadRef:
    namespace, kind, name = label.split("/", 2)
    return WorkloadRef(namespace, kind, name)


def _workload_lines(proposal: Proposal) -> list[str]:
    documents = documents_by_workload(proposal)
    decisions: dict[str, list[EdgeDecision]] = defaultdict(list)
    for decision in proposal.decisions:
        end = decision.edge.destination if decision.direction == "ingress" else \
            decision.edge.source
        workload = workload_of(end)
        if workload is not None:
            decisions[str(workload)].append(decision)
    refs = sorted((_ref(label) for label in documents if label),
                  key=lambda r: (r.namespace, r.name, r.kind))
    lines: list[str] = []
    for namespace in sorted({r.namespace for r in refs}):
        in_ns = [r for r in refs if r.namespace == namespace]
        lines.append(f"\n**{md(namespace)}**\n")
        for ref in in_ns[:WORKLOADS_LISTED]:
            own = decisions.get(str(ref), [])
            lines.append(f"- {md(ref.name)} ({md(ref.kind.lower())}): from "
                         f"{_peers(own, namespace, 'ingress')}; to "
                         f"{_peers(own, namespace, 'egress')}")
        if len(in_ns) > WORKLOADS_LISTED:
            lines.append(f"- and {len(in_ns) - WORKLOADS_LISTED} more workloads (report.html)")
    return lines


def render_markdown(report: ReportInput) -> str:
    summary = summarize(report)
    proposal = report.proposal
    changes = report.changes
    counts = summary.findings
    packets = f"{summary.packets:,} packets, " if summary.packets is not None else ""
    sources = ", ".join(md_code(s) for s in summary.sources)
    lines = [
        "# NetworkPolicy proposal",
        "",
        f"Learning window {format_time(summary.window_start)} .. "
        f"{format_time(summary.window_end)} ({summary.duration}) from {sources or 'no input'}: "
        f"{packets}{summary.flows:,} flows ({summary.connections:,} connections), "
        f"{len(summary.workloads)} workloads in {len(summary.namespaces)} namespaces.",
        "",
        f"Proposes **{summary.policies} NetworkPolicies** with a default deny in "
        f"{len(proposal.namespaces)} namespace(s). Findings: "
        f"{counts.get(Severity.CRITICAL, 0)} critical, {counts.get(Severity.WARNING, 0)} "
        f"warning, {counts.get(Severity.INFO, 0)} info. Workload pairs that may connect: "
        f"{changes.pairs_open_before} today, {changes.pairs_open_after} after.",
        "",
        "## What changes",
        "",
        *(_changes(report, changes) if proposal.documents else
          ["Nothing: no policy is proposed (no traffic of workloads in scope)."]),
        "",
        *_learning(report),
        "",
        "## Needs a human decision",
        "",
        *_decision_lines(proposal),
        "",
        "Details, evidence per rule and the service graph: `report.html`.",
    ]
    if summary.warnings:
        lines[-1:-1] = [f"Reading gave {len(summary.warnings)} warning(s); see "
                        "`report.html`.", ""]
    return "\n".join(lines).rstrip() + "\n"


def _learning(report: ReportInput) -> list[str]:
    convergence = assess_convergence(report.graph.edges, report.inventory,
                                     report.proposal.window)
    return learning_lines(convergence)


def _decision_lines(proposal: Proposal) -> list[str]:
    findings = [f for f in sorted_findings(proposal) if f.severity is not Severity.INFO]
    fqdn = proposal.fqdn_dependencies
    if not findings and not fqdn:
        return ["Nothing: no warning or critical finding, no FQDN dependency."]
    lines: list[str] = []
    if findings:
        lines.append(f"### Findings ({len(findings)})")
        lines.append("")
        for finding in findings[:FINDINGS_LISTED]:
            evidence = f" ({md(finding.evidence)})" if finding.evidence else ""
            lines.append(f"- **{finding.severity.value}** {md_code(finding.rule)} "
                         f"{md(finding.subject)}: {md(finding.message)}{evidence}")
        if len(findings) > FINDINGS_LISTED:
            lines.append(f"- and {len(findings) - FINDINGS_LISTED} more (report.html)")
        lines.append("")
    if fqdn:
        lines.append(f"### FQDN dependencies ({len(fqdn)}, handled as {md(proposal.fqdn_mode)})")
        lines.append("")
        lines.append("NetworkPolicy cannot allow egress by name: review the handling, the "
                     "proxy allowlist and the CiliumNetworkPolicy alternative.")
        lines.append("")
        lines.append("| workload | fqdn | ports | addresses seen | handling |")
        lines.append("|---|---|---|---|---|")
        for dep in fqdn:
            lines.append(f"| {md(dep.workload)} | {md(dep.fqdn)} | "
                         f"{md(', '.join(str(p) for p in dep.ports))} | "
                         f"{md(', '.join(str(a) for a in dep.addresses))} | "
                         f"{md(dep.handling)} |")
    return lines
