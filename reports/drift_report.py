"""What `netpol-discover drift` prints and writes: Markdown for a pull request or a CI log,
JSON for tools, and the suggested patch as YAML (policies to `kubectl apply -f`, each with
the equivalent `kubectl patch` in its comment header).

Every name here (workloads, policies, labels) comes from the cluster or the traffic and
is escaped for the format: `md_text`/`md_code` for Markdown, comment lines through
`comment_lines`, manifests through the project's YAML writer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from discover.enrichment.peers import GraphEdge
from discover.escaping.markdown_text import md_code, md_text
from discover.escaping.yaml_comment import comment_lines
from discover.synthesis.proposal import format_time
from discover.synthesis.render import manifest_yaml
from discover.verification.drift import DeniedEdge, Drift, PolicyPatch

SCHEMA_VERSION = 1


def edge_text(edge: GraphEdge) -> str:
    return (f"{edge.source.label()} -> {edge.destination.label()} "
            f"{edge.protocol}/{edge.port}")


def summary_line(drift: Drift) -> str:
    return (f"{len(drift.denied)} denied edge(s), {len(drift.blocked_attempts)} blocked "
            f"attempt(s) ({len(drift.intended)} denied as analyze decides), "
            f"{len(drift.unused)} unused rule(s)/peer(s)/port(s), "
            f"{len(drift.unselected)} workload(s) without a policy of their own; "
            f"{drift.edges} edge(s) checked against {drift.policies} policies")


# -- Markdown ----------------------------------------------------------------------------


def render_markdown(drift: Drift, patch_file: str | None = None) -> str:
    lines = ["# Drift: the window against the applied NetworkPolicies", "",
             f"Window {md_code(str(drift.window))}: {md_text(summary_line(drift))}.", ""]
    lines += [f"> note: {md_text(note)}" for note in drift.notes]
    lines += _denied_section(
        "Denied edges", drift.denied,
        "Observed traffic the policies deny: a new dependency, or policies written before "
        "the window saw it. Each needs the change shown (or a reason to keep it denied).")
    lines += _denied_section(
        "Blocked attempts", drift.blocked_attempts,
        "Set-ups refused or never answered, towards a peer the policies deny: after "
        "enforcement, the likely symptom of a dependency the policies broke.")
    if drift.intended:
        lines += ["## Denied as analyze decides", "",
                  "Denied by the policies and by what analyze would propose too (its "
                  "findings say why); not drift:", ""]
        for known in drift.intended:
            lines.append(f"- {md_code(edge_text(known.edge))}: {md_text(known.no_fix)}")
        lines.append("")
    if drift.patches:
        where = f" (written to {md_code(patch_file)})" if patch_file else ""
        lines += ["## Suggested patch", "",
                  f"The rules analyze would write for these edges{where}:", ""]
        for patch in drift.patches:
            lines.append(f"- {_patch_text(patch)}")
        lines.append("")
    if drift.unused:
        lines += ["## Unused rules, peers and ports", "",
                  "Nothing in the window used them: candidates to remove (a longer window "
                  "may still need them).", ""]
        for finding in drift.unused:
            lines.append(f"- {md_code(finding.subject)}: {md_text(finding.message)}")
        lines.append("")
    if drift.unselected:
        lines += ["## Workloads without a policy of their own", "",
                  "In namespaces that have policies; created after the policies were "
                  "written? Run analyze over a window that includes them.", ""]
        for item in drift.unselected:
            state = ("no policy selects it: everything allowed" if item.open
                     else "only namespace-wide policies (a default deny) select it")
            lines.append(f"- {md_code(str(item.workload))}: {state}; "
                         f"{item.edges} edge(s) in the window")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def _denied_section(title: str, items: Sequence[DeniedEdge], intro: str) -> list[str]:
    if not items:
        return []
    lines = [f"## {title}", "", intro, ""]
    for item in items:
        edge = item.edge
        lines.append(f"- {md_code(edge_text(edge))} ({edge.outcome.value}, "
                     f"{edge.connections} connection(s), {format_time(edge.first_seen)} to "
                     f"{format_time(edge.last_seen)})")
        lines.append(f"  - denied by {md_text(', '.join(s.lower() for s in item.sides))}: "
                     f"{md_text(item.reason)}")
        for fix in item.fixes:
            what = ("create the policy analyze proposes" if fix.create is not None
                    else f"add an {fix.direction.lower()} rule")
            lines.append(f"  - change {md_code('networkpolicy/' + fix.ref)}: {what}")
        if item.no_fix:
            lines.append(f"  - no patch: {md_text(item.no_fix)}")
    lines.append("")
    return lines


def _patch_text(patch: PolicyPatch) -> str:
    ref = md_code(f"networkpolicy/{patch.namespace}/{patch.name}")
    if patch.created:
        return f"{ref}: new policy"
    counts = ", ".join(f"{sum(1 for side, _ in patch.added if side == d)} {d.lower()}"
                       for d in sorted({side for side, _ in patch.added}))
    return f"{ref}: {counts} rule(s) appended"


# -- JSON --------------------------------------------------------------------------------


def drift_dict(drift: Drift) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "window": {"start": format_time(drift.window.start),
                   "end": format_time(drift.window.end)},
        "failed": drift.failed,
        "policies": drift.policies,
        "edges": drift.edges,
        "denied": [_denied_dict(d) for d in drift.denied],
        "blocked_attempts": [_denied_dict(d) for d in drift.blocked_attempts],
        "intended": [_denied_dict(d) for d in drift.intended],
        "unused": [{"rule": f.rule, "subject": f.subject, "message": f.message}
                   for f in drift.unused],
        "unselected": [{"workload": str(u.workload), "open": u.open, "edges": u.edges}
                       for u in drift.unselected],
        "patches": [{"namespace": p.namespace, "name": p.name, "created": p.created,
                     "json_patch": p.json_patch(), "manifest": p.manifest}
                    for p in drift.patches],
        "notes": list(drift.notes),
    }


def _denied_dict(item: DeniedEdge) -> dict[str, Any]:
    edge = item.edge
    return {
        "source": edge.source.label(), "destination": edge.destination.label(),
        "protocol": str(edge.protocol), "port": edge.port, "outcome": edge.outcome.value,
        "connections": edge.connections, "first_seen": format_time(edge.first_seen),
        "last_seen": format_time(edge.last_seen), "reason": item.reason,
        "sides": [s.lower() for s in item.sides], "isolating": list(item.isolating),
        "fixes": [{"policy": f.ref, "direction": f.direction.lower(), "rule": f.rule,
                   "create": f.create} for f in item.fixes],
        "no_fix": item.no_fix,
    }


def render_json(drift: Drift) -> str:
    return json.dumps(drift_dict(drift), indent=2, sort_keys=False) + "\n"


# -- the patch as YAML -------------------------------------------------------------------


def render_patch_yaml(drift: Drift) -> str:
    """Each changed or new policy, whole: `kubectl apply -f` this file (or run the
    `kubectl patch` in each header, which appends only the new rules)."""
    parts = [comment_lines([
        f"netpol-discover drift: suggested patch for the window {drift.window}",
        f"{len(drift.patches)} NetworkPolicies; apply with kubectl apply -f, after review",
    ])]
    for patch in drift.patches:
        header = [f"networkpolicy/{patch.namespace}/{patch.name}: "
                  + ("new: the workload had no policy of its own" if patch.created
                     else f"{len(patch.added)} rule(s) appended")]
        if patch.json_patch():
            header.append(f"or: kubectl patch networkpolicy -n {patch.namespace} {patch.name} "
                          f"--type=json -p '{json.dumps(patch.json_patch())}'")
        parts.append("---\n" + comment_lines(header) + manifest_yaml(patch.manifest))
    return "".join(parts)
