"""The per-namespace, per-workload part of the HTML report: the proposed policy YAML,
each observed edge with the rule (or the reason) that decides it, and what the policy
newly denies."""

from __future__ import annotations

from collections import defaultdict

from discover.enrichment.peers import workload_of
from discover.inventory.model import WorkloadRef
from discover.synthesis.proposal import EdgeDecision, PolicyDocument, format_time
from discover.synthesis.render import ManifestTexts
from discover.verification.changes import Changes, WorkloadChange
from reports.changes import documents_by_workload, external_peers
from reports.html_util import Cell, anchor, badge, code, data_table, esc, number, text
from reports.html_workloads_data import workload_finder, workload_rows
from reports.model import ReportInput, inventory_workloads, observed_workloads

WORKLOADS_INLINE_UP_TO = 150  # workloads whose sections are written out in the page


def _document_block(document: PolicyDocument, manifests: ManifestTexts,
                    open_yaml: bool = False) -> str:
    comments = "\n".join(document.comments)
    opened = " open" if open_yaml else ""
    return (
        f'<pre class="rules">{esc(comments)}</pre>' if comments else ""
    ) + (
        f'<details class="yaml"{opened}><summary>YAML of NetworkPolicy '
        f"{esc(document.namespace)}/{esc(document.name)}</summary>"
        f"<pre>{esc(manifests.text(document))}</pre></details>"
    )


def decisions_by_workload(decisions: tuple[EdgeDecision, ...]
                          ) -> dict[WorkloadRef, list[EdgeDecision]]:
    out: dict[WorkloadRef, list[EdgeDecision]] = defaultdict(list)
    for decision in decisions:
        end = decision.edge.destination if decision.direction == "ingress" else \
            decision.edge.source
        workload = workload_of(end)
        if workload is not None:
            out[workload].append(decision)
    return out


def _verdict(decision: EdgeDecision) -> Cell:
    if decision.allowed is True:
        return Cell(badge("allowed", "b-allowed") + f" {esc(decision.policy or '')}"
                    f'<div class="muted">{esc(decision.reason)}</div>', sort="allowed")
    if decision.allowed is False:
        return Cell(badge("denied", "b-denied") + f" {esc(decision.reason)}", sort="denied")
    return Cell(badge("not governed", "b-none") + f" {esc(decision.reason)}", sort="none")


def _decision_table(table_id: str, decisions: list[EdgeDecision]) -> str:
    rows = []
    for decision in sorted(decisions, key=lambda d: (d.direction, d.edge.source.label(),
                                                     d.edge.destination.label(),
                                                     d.edge.protocol, d.edge.port)):
        edge = decision.edge
        peer = edge.source if decision.direction == "ingress" else edge.destination
        port = f"{edge.protocol} {edge.port}" + (f" ({edge.port_name})" if edge.port_name
                                                 else "")
        via = edge.destination.via_service
        rows.append([
            text(decision.direction),
            Cell(esc(peer.label()) + (f'<div class="muted">via Service {esc(via.namespace)}/'
                                      f"{esc(via.name)}:{via.port}</div>" if via else "")),
            Cell(esc(port), sort=f"{edge.protocol}{edge.port:05d}"),
            number(edge.connections),
            code(format_time(edge.first_seen)),
            code(format_time(edge.last_seen)),
            _verdict(decision),
        ])
    return data_table(table_id, ["direction", "peer", "port", "connections", "first seen",
                                 "last seen", "decision"], rows,
                      filter_hint="filter this workload's edges", tall=False)


def _workload_block(ref: WorkloadRef, documents: list[PolicyDocument],
                    decisions: list[EdgeDecision], change: WorkloadChange | None,
                    flagged: list[str], seen: bool, manifests: ManifestTexts) -> str:
    ingress = sum(1 for d in decisions if d.direction == "ingress")
    egress = len(decisions) - ingress
    denied = sum(1 for d in decisions if d.allowed is False)
    bits = [f"<b>{esc(ref.name)}</b>", badge(ref.kind.lower(), "b-kind")]
    if documents:
        bits.append(f'<span class="muted">{len(documents)} polic'
                    f'{"y" if len(documents) == 1 else "ies"} · {ingress} ingress, '
                    f"{egress} egress edge(s)</span>")
    else:
        bits.append('<span class="muted">no own policy (the namespace default applies, '
                    "or NetworkPolicy does not apply to it)</span>")
    if not seen:
        bits.append(badge("no traffic seen", "b-none"))
    if denied:
        bits.append(badge(f"{denied} denied on purpose", "sev-warning"))
    for rule in flagged:
        bits.append(badge(rule, "sev-warning"))
    parts = [f'<details class="wl" id="{esc(anchor("wl", str(ref)))}"><summary>'
             f'{" ".join(bits)}</summary>']
    if change is not None and change.lines():
        parts.append("<h4>Newly denied</h4><ul class=\"plain\">" +
                     "".join(f"<li>{esc(line)}</li>" for line in change.lines()) + "</ul>")
    for document in documents:
        outside_in = external_peers(document.manifest, "ingress")
        outside_out = external_peers(document.manifest, "egress")
        parts.append("<h4>Outside the cluster</h4><ul class=\"plain\">"
                     f"<li>ingress from: {esc('; '.join(outside_in) or 'nothing')}</li>"
                     f"<li>egress to: {esc('; '.join(outside_out) or 'nothing')}</li></ul>")
    if decisions:
        parts.append("<h4>Observed edges and their rules</h4>")
        parts.append(_decision_table(anchor("edges", str(ref)), decisions))
    if documents:
        parts.append("<h4>Proposed policy, rules with evidence</h4>")
        parts.extend(_document_block(document, manifests) for document in documents)
    parts.append("</details>")
    return "".join(parts)


def namespaces_section(report: ReportInput, changes: Changes) -> str:
    proposal = report.proposal
    documents = documents_by_workload(proposal)
    decisions = decisions_by_workload(proposal.decisions)
    seen = set(observed_workloads(report.graph))
    manifests = (report.manifests if report.manifests is not None
                 else ManifestTexts(proposal.documents))
    workloads = sorted(set(inventory_workloads(report.inventory)) | seen,
                       key=lambda w: (w.namespace, w.name, w.kind))
    flagged: dict[str, list[str]] = defaultdict(list)
    for finding in proposal.findings:
        if finding.severity.value != "info":
            flagged[finding.subject].append(finding.rule)
    namespaces = sorted({w.namespace for w in workloads} | set(proposal.namespaces))
    # Past this many, sections come from data on demand (reports/html_workloads_data.py).
    large = len(workloads) > WORKLOADS_INLINE_UP_TO
    parts = ['<section id="namespaces"><h2>Policies per namespace and workload</h2>']
    if changes.note:
        parts.append(f'<p class="muted">{esc(changes.note)}</p>')
    parts.append(f'<p class="muted">Workload pairs that may connect: {changes.pairs_open_before}'
                 f" today, {changes.pairs_open_after} with the proposal applied (of "
                 "every ordered pair of workloads, on any port).</p>")
    for namespace in namespaces:
        in_ns = [w for w in workloads if w.namespace == namespace]
        ns_docs = [d for d in documents.get("", []) if d.namespace == namespace]
        policy_count = len(ns_docs) + sum(len(documents.get(str(w), [])) for w in in_ns)
        header = [f"<span>{esc(namespace)}</span>"]
        if namespace in proposal.namespaces:
            header.append(badge("default deny", "b-allowed"))
        else:
            header.append(badge("no default deny proposed", "b-none"))
        header.append(f'<span class="muted">{policy_count} policies · {len(in_ns)} '
                      "workloads</span>")
        for rule in flagged.get(namespace, []) + flagged.get(f"namespace/{namespace}", []):
            header.append(badge(rule, "sev-warning"))
        parts.append(f'<div class="ns" id="{esc(anchor("namespace", namespace))}">'
                     f'<h3>{" ".join(header)}</h3>')
        summary = _namespace_changes(changes.for_namespace(namespace))
        if summary:
            parts.append('<ul class="changes">' + "".join(f"<li>{esc(s)}</li>"
                                                         for s in summary) + "</ul>")
        if large:
            parts.append("</div>")
            continue
        for document in ns_docs:
            parts.append(_document_block(document, manifests))
        for ref in in_ns:
            parts.append(_workload_block(ref, documents.get(str(ref), []),
                                         decisions.get(ref, []), changes.by_workload.get(ref),
                                         flagged.get(str(ref), []), ref in seen, manifests))
        parts.append("</div>")
    if large:
        parts.append(_large_note(len(workloads)))
        parts.append(workload_finder(workload_rows(
            workloads, documents, decisions, changes.by_workload, flagged, seen), namespaces))
    parts.append("</section>")
    return "".join(parts)


def _large_note(count: int) -> str:
    return (f'<p class="muted">{count:,} workloads: each one\'s section (its observed edges '
            "with the rule or reason that decides them, what it newly denies, what stays "
            "open outside the cluster) is drawn when you find it below. The policies' rules "
            "with their evidence and the YAML are in policies.yaml (documents named in each "
            "section); the default denies are the same for every namespace.</p>")


def _namespace_changes(changes: list[WorkloadChange]) -> list[str]:
    if not changes:
        return []
    lost = sum(c.ingress.lost for c in changes)
    limited = sum(c.ingress.limited for c in changes)
    out_lost = sum(c.egress.lost for c in changes)
    out_limited = sum(c.egress.limited for c in changes)
    return [
        f"ingress to its workloads: {lost} workload pair(s) that may connect today are "
        f"denied, {limited} limited to the ports seen",
        f"egress from its workloads: {out_lost} workload pair(s) denied, {out_limited} "
        "limited to the ports seen",
    ]
