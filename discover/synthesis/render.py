"""YAML for people and for `kubectl apply -f`: one document per policy with a comment
header, grouped by namespace; byte-identical for the same proposal."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from discover.escaping.yaml_comment import comment_lines
from discover.synthesis.proposal import PolicyDocument, Proposal, format_time
from discover.synthesis.yaml_writer import write_yaml

SCHEMA_VERSION = 1
WIDTH = 100  # PyYAML folds long strings past this column


class _Dumper(yaml.SafeDumper):
    """Block style everywhere, lists indented under their key like kubectl prints."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    # With allow_unicode, PyYAML writes NEL, U+2028 and U+2029 raw inside plain or quoted
    # scalars, and its reader folds them as line breaks: the value would not read back.
    # Double quotes escape them (\N, \L, \P).
    style = '"' if any(ch in data for ch in "\x85\u2028\u2029") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _represent_str)


def _pyyaml_dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                     allow_unicode=True, width=WIDTH)


def _dump(data: Any) -> str:
    # The same bytes as _pyyaml_dump, written without PyYAML's per-character emitter for
    # the shape manifests have (discover/synthesis/yaml_writer.py).
    return write_yaml(data, _pyyaml_dump, WIDTH)


def manifest_yaml(manifest: Mapping[str, Any]) -> str:
    """One manifest as the YAML policies.yaml holds (without its comment header)."""
    return _dump(dict(manifest))


class ManifestTexts:
    """Each document's YAML, written once and shared by policies.yaml and the HTML report
    (dumping every manifest twice was a third of `analyze` at 500 workloads)."""

    def __init__(self, documents: Sequence[PolicyDocument]) -> None:
        self._texts = {id(d): (d, manifest_yaml(d.manifest)) for d in documents}

    def text(self, document: PolicyDocument) -> str:
        entry = self._texts.get(id(document))
        if entry is not None and entry[0] is document:
            return entry[1]
        return manifest_yaml(document.manifest)


def _comment(lines: Sequence[str]) -> str:
    # Comment lines carry names from the inventory and DNS: a line break in one would
    # start a document of its own in a file people apply.
    return comment_lines(lines)


def _file_header(proposal: Proposal, what: str) -> list[str]:
    counts = Counter(finding.severity.value for finding in proposal.findings)
    return [
        f"netpol-discover: {what}",
        f"learning window: {format_time(proposal.window.start)} .. "
        f"{format_time(proposal.window.end)}",
        f"findings: {counts.get('critical', 0)} critical, {counts.get('warning', 0)} "
        f"warning, {counts.get('info', 0)} info (see report.md)",
    ]


def _documents(header: list[str], documents: Sequence[PolicyDocument],
               texts: ManifestTexts | None = None) -> str:
    parts = [_comment(header)]
    for document in documents:
        text = texts.text(document) if texts is not None else manifest_yaml(document.manifest)
        parts.append("---\n" + _comment(document.comments) + text)
    return "".join(parts)


def render_policies_yaml(proposal: Proposal, texts: ManifestTexts | None = None) -> str:
    """policies.yaml; `texts` the documents' YAML when already written (for the report)."""
    critical = [f for f in proposal.findings if f.severity.value == "critical"]
    header = _file_header(
        proposal,
        f"{len(proposal.documents)} NetworkPolicies in {len(proposal.namespaces)} "
        f"namespace(s); apply with kubectl apply -f",
    )
    header += [f"CRITICAL {f.rule} {f.subject}: {f.message}" for f in critical]
    return _documents(header, proposal.documents, texts)


def render_cilium_yaml(proposal: Proposal) -> str:
    header = _file_header(
        proposal,
        f"{len(proposal.cilium_documents)} CiliumNetworkPolicies (cilium.io/v2) allowing "
        "egress by FQDN, an alternative to the any-ip / pinned rules",
    )
    return _documents(header, proposal.cilium_documents)


def render_fqdn_yaml(proposal: Proposal) -> str:
    unhandled = sum(1 for dep in proposal.fqdn_dependencies if not dep.has_policy)
    header = _file_header(
        proposal,
        f"{len(proposal.fqdn_dependencies)} dependencies on external names, handled as "
        f"{proposal.fqdn_mode or ''}"
        + (f"; {unhandled} of them by no rule (their workload gets no policy: see "
           "handling)" if unhandled else ""),
    )
    document = {
        "kind": "FqdnDependencies",
        "schemaVersion": SCHEMA_VERSION,
        "mode": str(proposal.fqdn_mode or ""),
        "egressProxy": proposal.egress_proxy,
        "window": {"start": format_time(proposal.window.start),
                   "end": format_time(proposal.window.end)},
        "proxyAllowlist": list(proposal.proxy_allowlist),
        "dependencies": [
            {
                "workload": str(dep.workload),
                "namespace": dep.workload.namespace,
                "fqdn": dep.fqdn,
                "cnameChain": list(dep.cname_chain),
                "ports": [{"protocol": str(p.protocol), "port": p.port} for p in dep.ports],
                "addresses": [str(a) for a in dep.addresses],
                "ttls": list(dep.ttls),
                "addressesChanged": dep.addresses_changed,
                "connections": dep.connections,
                "firstSeen": format_time(dep.first_seen),
                "lastSeen": format_time(dep.last_seen),
                "handling": dep.handling,
            }
            for dep in proposal.fqdn_dependencies
        ],
    }
    return _comment(header) + "---\n" + _dump(document)
