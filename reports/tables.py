"""Tables for pandas: flows (as on the wire, with who they resolved to), the workload
graph and the FQDN dependencies, as CSV or Parquet. Columns: docs/tables.md."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from discover.enrichment.peers import ExternalPeer, Peer, workload_of
from discover.enrichment.workload_graph import WorkloadGraph
from discover.errors import ConfigurationError
from discover.flows.flowfiles import write_table
from discover.flows.flowtable import FlowRow
from discover.flows.frames import flows_frame
from discover.synthesis.proposal import Proposal
from discover.verification.verify import FlowVerdict
from reports.model import ReportInput
from reports.resolved_flows import RESOLVED_COLUMNS, resolve_flows

FORMATS = ("csv", "parquet")
FLOW_EXTRA_COLUMNS = list(RESOLVED_COLUMNS)
GRAPH_COLUMNS = [
    "source", "destination", "source_kind", "destination_kind", "source_namespace",
    "destination_namespace", "source_workload", "destination_workload", "source_ip",
    "destination_ip", "service", "fqdn", "cname_chain", "protocol", "port", "port_name",
    "connections", "packets", "first_seen", "last_seen", "evidence_count", "evidence",
    "note",
]
FQDN_COLUMNS = [
    "workload", "namespace", "fqdn", "cname_chain", "ports", "addresses", "ttls",
    "addresses_changed", "connections", "first_seen", "last_seen", "handling",
]
TABLE_NAMES = ("flows", "workload-graph", "fqdn-dependencies")


class TableFormatError(ConfigurationError):
    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        super().__init__(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")


def resolved_flows(flows: Sequence[FlowRow], graph: WorkloadGraph) -> pd.DataFrame:
    """The flow table with the graph's resolution of each row (see `resolve_flows`):
    FLOW_COLUMNS then FLOW_EXTRA_COLUMNS."""
    resolved = resolve_flows(flows, graph)
    frame = flows_frame([r.flow for r in resolved])
    frame["source"] = pd.Series([r.source for r in resolved], dtype=object)
    frame["destination"] = pd.Series([r.destination for r in resolved], dtype=object)
    frame["service"] = pd.Series([r.service for r in resolved], dtype=object)
    frame["fqdn"] = pd.Series([r.fqdn for r in resolved], dtype=object)
    return frame


def flows_with_verdicts(flows: Sequence[FlowRow], verdicts: Sequence[FlowVerdict]
                        ) -> pd.DataFrame:
    """`analyze`'s flows.csv: the flow table as seen on the wire, plus who each side is and
    the proposal's verdict."""
    by_key = {(v.src_ip, v.dst_ip, v.protocol, v.dst_port): v for v in verdicts}
    found = [by_key.get((f.src_ip, f.dst_ip, f.protocol, f.dst_port)) for f in flows]
    out = flows_frame(flows)
    out["src_peer"] = [v.source if v else "" for v in found]
    out["dst_peer"] = [" | ".join(v.destinations) if v else "" for v in found]
    out["allowed"] = [v.allowed if v else None for v in found]
    out["reason"] = [v.reason if v else "" for v in found]
    return out


def _peer_columns(peer: Peer) -> tuple[str, str, str, str, str]:
    workload = workload_of(peer)
    return (peer.label(), peer.kind, workload.namespace if workload else "",
            f"{workload.kind}/{workload.name}" if workload else "",
            str(peer.ip) if peer.ip is not None else "")


def graph_frame(graph: WorkloadGraph) -> pd.DataFrame:
    """GRAPH_COLUMNS, one row per edge (the `graph` command's table and workload-graph.csv)."""
    records = []
    for edge in graph.edges:
        s_label, s_kind, s_ns, s_wl, s_ip = _peer_columns(edge.source)
        d_label, d_kind, d_ns, d_wl, d_ip = _peer_columns(edge.destination)
        svc = edge.destination.via_service
        named = edge.destination if isinstance(edge.destination, ExternalPeer) else None
        records.append({
            "source": s_label, "destination": d_label, "source_kind": s_kind,
            "destination_kind": d_kind, "source_namespace": s_ns, "destination_namespace": d_ns,
            "source_workload": s_wl, "destination_workload": d_wl, "source_ip": s_ip,
            "destination_ip": d_ip,
            "service": f"{svc.namespace}/{svc.name}:{svc.port}" if svc else "",
            "fqdn": (named.fqdn or "") if named else "",
            "cname_chain": " > ".join(named.cname_chain) if named else "",
            "protocol": str(edge.protocol), "port": edge.port,
            "port_name": edge.port_name or "",
            "connections": edge.connections, "packets": edge.packets,
            "first_seen": edge.first_seen, "last_seen": edge.last_seen,
            "evidence_count": len(edge.evidence),
            "evidence": ";".join(f"{f.src_ip}>{f.dst_ip}/{f.protocol}/{f.dst_port}"
                                 for f in edge.evidence),
            "note": "; ".join(n for n in (edge.source.note, edge.destination.note) if n),
        })
    frame = pd.DataFrame.from_records(records, columns=GRAPH_COLUMNS)
    for column in ("port", "connections", "packets", "evidence_count"):
        frame[column] = frame[column].astype("int64")
    for column in ("first_seen", "last_seen"):
        frame[column] = pd.to_datetime(frame[column], utc=True).astype("datetime64[ns, UTC]")
    return frame


def fqdn_frame(proposal: Proposal) -> pd.DataFrame:
    records = [
        {
            "workload": str(dep.workload),
            "namespace": dep.workload.namespace,
            "fqdn": dep.fqdn,
            "cname_chain": " > ".join(dep.cname_chain),
            "ports": " ".join(str(port) for port in dep.ports),
            "addresses": " ".join(str(address) for address in dep.addresses),
            "ttls": " ".join(str(ttl) for ttl in dep.ttls),
            "addresses_changed": ("" if dep.addresses_changed is None
                                  else str(dep.addresses_changed).lower()),
            "connections": dep.connections,
            "first_seen": dep.first_seen,
            "last_seen": dep.last_seen,
            "handling": dep.handling,
        }
        for dep in sorted(proposal.fqdn_dependencies, key=lambda d: (d.workload, d.fqdn))
    ]
    frame = pd.DataFrame.from_records(records, columns=FQDN_COLUMNS)
    frame["connections"] = frame["connections"].astype("int64")
    for column in ("first_seen", "last_seen"):
        frame[column] = pd.to_datetime(frame[column], utc=True).astype("datetime64[ns, UTC]")
    return frame


def write_tables(report: ReportInput, out_dir: Path, fmt: str = "csv") -> list[Path]:
    """flows, workload-graph and fqdn-dependencies as `<name>.<fmt>` in out_dir; the
    paths written, in that order. OutputError (a ReadError) when a file can't be written."""
    if fmt not in FORMATS:
        raise TableFormatError(fmt)
    out_dir = Path(out_dir)
    frames = {
        "flows": resolved_flows(report.flows, report.graph),
        "workload-graph": graph_frame(report.graph),
        "fqdn-dependencies": fqdn_frame(report.proposal),
    }
    written = []
    for name in TABLE_NAMES:
        path = out_dir / f"{name}.{fmt}"
        write_table(frames[name], path)
        written.append(path)
    return written
