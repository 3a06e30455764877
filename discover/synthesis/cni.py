"""Which CNI runs the cluster, from its pods' images and workload names, and whether it
enforces NetworkPolicy at all: without one, every proposal does nothing."""

from __future__ import annotations

import re
from dataclasses import dataclass

from discover.inventory.model import Inventory, Pod
from discover.synthesis.proposal import Finding, Severity

# (name, fragments of an image or workload name, enforces NetworkPolicy)
KNOWN_CNIS: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("calico", ("calico/node", "calico-node", "tigera/"), True),
    ("cilium", ("cilium/cilium", "cilium-agent", "/cilium:", "anetd"), True),
    ("antrea", ("antrea-agent", "antrea/antrea"), True),
    ("weave-net", ("weave-kube", "weave-net", "weaveworks/weave"), True),
    ("kube-router", ("kube-router",), True),
    ("azure-npm", ("azure-npm",), True),
    ("ovn-kubernetes", ("ovn-kubernetes", "ovnkube"), True),
    ("kube-network-policies", ("kube-network-policies",), True),
    ("aws-network-policy-agent", ("aws-network-policy-agent",), True),
    ("aws-vpc-cni", ("amazon-k8s-cni", "aws-node"), False),
    ("kindnet", ("kindnetd", "kindnet"), False),
    ("flannel", ("flannel",), False),
)
# kindnetd enforces NetworkPolicy since the image of 2024-08-13 (kind v0.24).
KINDNET_POLICY_SINCE = 20240813
_KINDNET_TAG = re.compile(r"kindnetd:v(\d{8})")


@dataclass(frozen=True, slots=True)
class CniDetection:
    names: tuple[str, ...]  # detected, sorted
    enforcing: tuple[str, ...]
    evidence: tuple[str, ...]  # "calico: pod kube-system/calico-node-abc image ..."


def _texts(pod: Pod) -> list[str]:
    return [pod.workload.name.lower(), pod.name.lower(), *(i.lower() for i in pod.images)]


def _kindnet_enforces(pods: list[Pod]) -> bool:
    for pod in pods:
        for image in pod.images:
            match = _KINDNET_TAG.search(image)
            if match and int(match.group(1)) >= KINDNET_POLICY_SINCE:
                return True
    return False


def detect_cni(inventory: Inventory) -> CniDetection:
    found: dict[str, list[Pod]] = {}
    enforces: dict[str, bool] = {}
    for name, fragments, enforcing in KNOWN_CNIS:
        pods = [pod for pod in inventory.pods
                if any(f in text for f in fragments for text in _texts(pod))]
        if pods:
            found[name] = sorted(pods, key=lambda p: (p.namespace, p.name))
            enforces[name] = enforcing
    if "kindnet" in found:
        enforces["kindnet"] = _kindnet_enforces(found["kindnet"])
    if "calico" in found and "flannel" in found:
        found["canal"] = found["calico"] + found["flannel"]
        enforces["canal"] = True
    names = tuple(sorted(found))
    evidence = tuple(
        f"{name}: pod {pods[0].namespace}/{pods[0].name}"
        + (f" image {pods[0].images[0]}" if pods[0].images else "")
        for name, pods in sorted(found.items())
    )
    return CniDetection(names, tuple(n for n in names if enforces[n]), evidence)


def cni_findings(detection: CniDetection) -> list[Finding]:
    subject = "cluster/cni"
    evidence = "; ".join(detection.evidence)
    if not detection.names:
        return [Finding(
            Severity.WARNING, "cni-unknown", subject,
            "no known CNI found in the inventory (no pods of calico, cilium, antrea, "
            "weave, kube-router, aws-node, kindnet, flannel): check that the cluster's "
            "network plugin enforces NetworkPolicy, or these policies do nothing",
        )]
    if not detection.enforcing:
        return [Finding(
            Severity.CRITICAL, "cni-no-networkpolicy", subject,
            f"the cluster's CNI ({', '.join(detection.names)}) does not enforce "
            "NetworkPolicy: the proposed policies would do NOTHING until a policy engine "
            "runs (calico, cilium, antrea, ...; on EKS enable the VPC CNI's network "
            "policy agent; kindnet enforces only since kind v0.24)", evidence,
        )]
    return [Finding(
        Severity.INFO, "cni-detected", subject,
        f"CNI: {', '.join(detection.names)}; enforcing NetworkPolicy: "
        f"{', '.join(detection.enforcing)}", evidence,
    )]
