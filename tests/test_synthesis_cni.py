"""CNI detection from the inventory, and a loud finding when nothing enforces policy."""

from __future__ import annotations

import pytest

from discover.synthesis.cni import cni_findings, detect_cni
from tests.factories import make_inventory, make_pod


def _agent(name: str, *images: str) -> object:
    return make_pod("kube-system", name, {"k8s-app": name}, "10.0.0.1", kind="DaemonSet",
                    host_network=True, images=images)


@pytest.mark.parametrize(
    ("pods", "names", "rule"),
    [
        ([_agent("calico-node", "docker.io/calico/node:v3.27.0")], ("calico",), "cni-detected"),
        ([_agent("cilium", "quay.io/cilium/cilium:v1.15.0")], ("cilium",), "cni-detected"),
        ([_agent("kube-flannel-ds", "docker.io/flannel/flannel:v0.24.0")], ("flannel",),
         "cni-no-networkpolicy"),
        ([_agent("canal", "docker.io/calico/node:v3.27.0", "docker.io/flannel/flannel:v0.24")],
         ("calico", "canal", "flannel"), "cni-detected"),
        ([_agent("aws-node", "602401143452.dkr.ecr.us-west-2.amazonaws.com/amazon-k8s-cni:v1.18")],
         ("aws-vpc-cni",), "cni-no-networkpolicy"),
        ([_agent("aws-node", "x/amazon-k8s-cni:v1.18", "x/aws-network-policy-agent:v1.1")],
         ("aws-network-policy-agent", "aws-vpc-cni"), "cni-detected"),
        ([_agent("kindnet", "docker.io/kindest/kindnetd:v20230511-dc714da8")], ("kindnet",),
         "cni-no-networkpolicy"),
        ([_agent("kindnet", "docker.io/kindest/kindnetd:v20241108-5c6d2daf")], ("kindnet",),
         "cni-detected"),
        ([], (), "cni-unknown"),
    ],
)
def test_detection(pods: list[object], names: tuple[str, ...], rule: str) -> None:
    detection = detect_cni(make_inventory(pods))  # type: ignore[arg-type]
    assert tuple(sorted(detection.names)) == tuple(sorted(names))
    findings = cni_findings(detection)
    assert [f.rule for f in findings] == [rule]
    if rule == "cni-no-networkpolicy":
        assert findings[0].severity.value == "critical"
