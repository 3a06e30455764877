"""Drafts to manifests: NetworkPolicy dicts with evidence annotations, and the comment
lines a reviewer reads above each document. Everything is sorted here."""

from __future__ import annotations

import json
from collections.abc import Sequence
from ipaddress import ip_network
from typing import Any

from discover.inventory.model import WorkloadRef
from discover.synthesis.drafts import PolicyDraft, RuleDraft
from discover.synthesis.ports import port_entries
from discover.synthesis.proposal import PolicyDocument, Window, format_time

ANNOTATION_PREFIX = "netpol-discover.io/"
MANAGED_BY = {"app.kubernetes.io/managed-by": "netpol-discover"}
MAX_EVIDENCE_ITEMS = 40  # per policy annotation; the comment header lists them all
DEFAULT_DENY_NAME = "default-deny"


def _rule_manifest(direction: str, rule: RuleDraft) -> dict[str, Any]:
    key = "from" if direction == "ingress" else "to"
    peers = sorted(rule.peers, key=_peer_key)
    return {key: peers, "ports": port_entries(rule.ports, use_names=rule.use_names)}


def _peer_key(peer: dict[str, Any]) -> tuple[int, int, int, int, str]:
    """ipBlocks first in address order (not text order), then selectors by their JSON."""
    text = json.dumps(peer, sort_keys=True)
    if "ipBlock" in peer:
        network = ip_network(str(peer["ipBlock"]["cidr"]))
        return (0, network.version, int(network.network_address), network.prefixlen, text)
    return (1, 0, 0, 0, text)


def _sorted_rules(direction: str, rules: dict[str, RuleDraft]
                  ) -> list[tuple[dict[str, Any], RuleDraft]]:
    built = [(_rule_manifest(direction, rule), rule) for rule in rules.values() if rule.ports]
    key = "from" if direction == "ingress" else "to"
    return sorted(built, key=lambda item: ([_peer_key(p) for p in item[0][key]],
                                           json.dumps(item[0], sort_keys=True)))


def _rule_summary(manifest: dict[str, Any]) -> str:
    peers = manifest.get("from", manifest.get("to", []))
    shown_peers = "; ".join(_peer_text(peer) for peer in peers)
    ports = ", ".join(
        f"{p['protocol']} {p['port']}" + (f"-{p['endPort']}" if "endPort" in p else "")
        for p in manifest["ports"]
    )
    return f"{shown_peers} on {ports}"


def _peer_text(peer: dict[str, Any]) -> str:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        excepts = block.get("except")
        return str(block["cidr"]) + (f" except {', '.join(excepts)}" if excepts else "")
    parts = []
    if "namespaceSelector" in peer:
        labels = peer["namespaceSelector"].get("matchLabels", {})
        parts.append("namespace " + (_labels_text(labels) if labels else "any"))
    if "podSelector" in peer:
        labels = peer["podSelector"].get("matchLabels", {})
        parts.append("pods " + (_labels_text(labels) if labels else "all"))
    return " and ".join(parts)


def _labels_text(labels: dict[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def workload_document(draft: PolicyDraft, name: str, window: Window) -> PolicyDocument:
    ingress = _sorted_rules("ingress", draft.ingress)
    egress = _sorted_rules("egress", draft.egress)
    evidence: list[str] = []
    comments = [f"{draft.workload}: NetworkPolicy {draft.workload.namespace}/{name}"]
    selector = draft.selector.match_labels()
    exactness = "exact" if draft.selector.exact else f"NOT exact: {draft.selector.note}"
    comments.append(f"selects pods {_labels_text(selector) or '(all in namespace)'} "
                    f"({exactness})")
    for direction, rules, verb in (("ingress", ingress, "from"), ("egress", egress, "to")):
        if not rules:
            comments.append(f"{direction}: nothing observed, all {direction} denied")
            continue
        comments.append(f"{direction} ({len(rules)} rule{'s' if len(rules) > 1 else ''}):")
        for index, (manifest, rule) in enumerate(rules):
            comments.append(f"  [{index}] {verb} {_rule_summary(manifest)}")
            if rule.reason:
                comments.append(f"      why: {rule.reason}")
            items = sorted(rule.evidence.values(), key=lambda e: (e.peer, e.port))
            for item in items:
                comments.append(f"      seen: {item.compact()}")
                evidence.append(f"{direction}[{index}]: {item.compact()}")
            if not items:
                comments.append("      seen: not observed in the window (configuration)")
                evidence.append(f"{direction}[{index}]: configured: {rule.reason}")
    comments.extend(draft.notes)
    if draft.flags:
        comments.append("flags: " + ", ".join(sorted(draft.flags)))
    if len(evidence) > MAX_EVIDENCE_ITEMS:
        more = len(evidence) - MAX_EVIDENCE_ITEMS
        evidence = evidence[:MAX_EVIDENCE_ITEMS] + [f"... {more} more (see policies.yaml)"]
    annotations = {
        f"{ANNOTATION_PREFIX}workload": str(draft.workload),
        f"{ANNOTATION_PREFIX}learning-window": str(window),
        f"{ANNOTATION_PREFIX}evidence": "; ".join(evidence) or "no traffic observed",
        f"{ANNOTATION_PREFIX}selector": exactness,
    }
    if draft.flags:
        annotations[f"{ANNOTATION_PREFIX}flags"] = ",".join(sorted(draft.flags))
    spec: dict[str, Any] = {
        "podSelector": {"matchLabels": selector} if selector else {},
        "policyTypes": ["Ingress", "Egress"],
    }
    if ingress:
        spec["ingress"] = [manifest for manifest, _ in ingress]
    if egress:
        spec["egress"] = [manifest for manifest, _ in egress]
    manifest = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": name,
            "namespace": draft.workload.namespace,
            "labels": dict(MANAGED_BY),
            "annotations": dict(sorted(annotations.items())),
        },
        "spec": spec,
    }
    return PolicyDocument(manifest, tuple(comments))


def default_deny_document(namespace: str, written: int, window: Window,
                          unselectable: Sequence[WorkloadRef] = ()) -> PolicyDocument:
    """The namespace's default deny; `written` workload policies follow it, and the
    `unselectable` workloads get none (no label selects exactly their pods)."""
    manifest = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": DEFAULT_DENY_NAME,
            "namespace": namespace,
            "labels": dict(MANAGED_BY),
            "annotations": {
                f"{ANNOTATION_PREFIX}learning-window": str(window),
                f"{ANNOTATION_PREFIX}evidence": "default deny (reference rule 1)",
            },
        },
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }
    observed = f"from {format_time(window.start)} to {format_time(window.end)}"
    comments = [f"namespace {namespace}: default deny, ingress and egress, for every pod"]
    if written:
        comments.append(f"the {written} workload polic{'ies' if written != 1 else 'y'} below "
                        f"allow what was observed {observed}")
    names = ", ".join(str(workload) for workload in sorted(unselectable))
    if unselectable:
        comments.append(
            (f"no workload policy is written in this namespace: no label selects exactly "
             f"the pods of {names}" if not written
             else f"no workload policy for {names}: no label selects exactly their pods")
            + " (see the selector-no-exact-label findings), so this default deny blocks all "
            f"of their traffic, also what was observed {observed}")
    elif not written:
        comments.append("no workload policy is written in this namespace")
    return PolicyDocument(manifest, tuple(comments))
