"""The report helpers beside the proposal: documents per workload, external peers."""

from __future__ import annotations

from reports.changes import documents_by_workload, external_peers
from tests.reports_sample import WEB, tiny_report


def test_documents_and_external_peers() -> None:
    report = tiny_report()
    documents = documents_by_workload(report.proposal)
    assert [d.name for d in documents[str(WEB)]] == ["web-netpol"]
    assert [d.name for d in documents[""]] == ["default-deny"]
    manifest = {"spec": {"egress": [{"to": [{"ipBlock": {"cidr": "192.0.2.0/24",
                                                         "except": ["192.0.2.1/32"]}}],
                                     "ports": [{"protocol": "TCP", "port": 443}]}]}}
    assert external_peers(manifest, "egress") == ["192.0.2.0/24 except 1 range(s) on TCP 443"]
    assert external_peers(manifest, "ingress") == []
