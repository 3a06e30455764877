"""Tables for pandas: flows (as on the wire, with who they resolved to), the workload
graph and the FQDN dependencies, as CSV or Parquet. Columns: docs/tables.md."""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from pathlib import Path

import pandas as pd

from discover.errors import ConfigurationError
from discover.flowfiles import write_table
from discover.flowtable import FLOW_COLUMNS
from discover.peers import FlowKey
from discover.synthesis.proposal import Proposal
from discover.workload_graph import WorkloadGraph, graph_frame
from reports.model import ReportInput

FORMATS = ("csv", "parquet")
FLOW_EXTRA_COLUMNS = ["source", "destination", "service", "fqdn"]
FQDN_COLUMNS = [
    "workload", "namespace", "fqdn", "cname_chain", "ports", "addresses", "ttls",
    "addresses_changed", "connections", "first_seen", "last_seen", "handling",
]
TABLE_NAMES = ("flows", "workload-graph", "fqdn-dependencies")


class TableFormatError(ConfigurationError):
    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        super().__init__(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")


def _joined(values: set[str]) -> str:
    return "; ".join(sorted(v for v in values if v))


def resolved_flows(flows: pd.DataFrame, graph: WorkloadGraph) -> pd.DataFrame:
    """The flow table with the graph's resolution of each row: source and destination
    labels (several when an IP changed owner or a Service has several backends, joined
    by "; "), the Service reached, the FQDN the client resolved."""
    found: dict[FlowKey, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for edge in graph.edges:
        service = edge.destination.via_service
        for flow in edge.evidence:
            row = found[flow]
            row["source"].add(edge.source.label())
            row["destination"].add(edge.destination.label())
            if service is not None:
                row["service"].add(f"{service.namespace}/{service.name}:{service.port}")
            row["fqdn"].add(edge.destination.fqdn or "")
    frame = flows.copy()
    # A flows file may carry only the four contract columns: the others get the defaults
    # read_flows_file gives them.
    defaults: dict[str, int | str] = {"connections": 1, "packets": 0, "direction": "inferred"}
    for column in FLOW_COLUMNS:
        if column not in frame:
            if column in ("first_seen", "last_seen"):
                frame[column] = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns, UTC]")
            else:
                frame[column] = defaults[column]
    extra: dict[str, list[str]] = {column: [] for column in FLOW_EXTRA_COLUMNS}
    for src, dst, protocol, port in zip(frame["src_ip"], frame["dst_ip"], frame["protocol"],
                                        frame["dst_port"], strict=True):
        key = FlowKey(ipaddress.ip_address(str(src)), ipaddress.ip_address(str(dst)),
                      str(protocol), int(port))
        row = found.get(key, {})
        for column in FLOW_EXTRA_COLUMNS:
            extra[column].append(_joined(row.get(column, set())))
    for column in FLOW_EXTRA_COLUMNS:
        frame[column] = pd.Series(extra[column], index=frame.index, dtype=object)
    return frame[[*FLOW_COLUMNS, *FLOW_EXTRA_COLUMNS]]


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
