"""`netpol-discover graph INPUT... --inventory FILE... -o FILE`: the workload graph.

Heavy imports (pandas, the kubernetes client) happen inside `run`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from discover.commands.inputs import (
    add_inputs_argument,
    add_inventory_arguments,
    add_reading_options,
    load_inventory_from_args,
    read_traffic_from_args,
)

if TYPE_CHECKING:
    from discover.enrichment.workload_graph import WorkloadGraph
    from reports.graph_svg import GraphLayout

OUTPUT_SUFFIXES = (".csv", ".parquet", ".json", ".svg", ".png")
PICTURE_SUFFIXES = (".svg", ".png")

DESCRIPTION = """\
Resolve every observed connection edge to who talks to whom: pods to their workloads
(Deployment, StatefulSet, DaemonSet, CronJob, ...) at the time of the flow, Service
ClusterIPs to the backing workloads on the port the pods really listen on (targetPort),
node and load balancer addresses, the cluster DNS, and external addresses to the DNS name
the client resolved shortly before. A connection seen both to a ClusterIP and, after DNAT,
to the pod is counted once. Each edge lists the flow rows behind it as evidence.
"""

EPILOG = """\
examples:
  netpol-discover graph node-a.pcap node-b.pcap --inventory cluster.json -o graph.csv
  netpol-discover graph capture.pcapng --inventory pods.yaml --inventory svc.yaml -o graph.json
  netpol-discover graph flows.parquet --inventory cluster.json -o graph.parquet
  netpol-discover graph agent-summary.json --kubeconfig ~/.kube/config --context prod \\
      -o graph.csv

INPUT is a pcap, pcapng or agent summary (recognised by content) or a flows file written
by `netpol-discover flows` (.csv/.parquet; it carries no DNS answers, so no FQDNs).
The inventory is the JSON or YAML of `kubectl get namespaces,nodes,pods,services,
endpointslices,ingresses,networkpolicies,deployments,replicasets,statefulsets,daemonsets,
jobs,cronjobs -A -o json` (any subset, several files), or the live cluster.
Output by extension: .csv, .parquet (one row per edge) or .json (edges, notes, ports that
no container declares); .svg or .png (or --render) draw the service graph instead:
  netpol-discover graph capture.pcap --inventory cluster.json -o graph.svg --render svg
The picture is laid out by Graphviz `dot` when it is installed (PNG needs it); SVG falls
back to a built-in layered layout without it.
Exit status: 0 written, 1 error explained on stderr, 2 usage error.
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "graph", help="write the workload graph (who talks to whom) of captures",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_inputs_argument(parser, flows_files=True)
    parser.add_argument("-o", "--output", required=True, type=_output_path, metavar="FILE",
                        help="where to write the graph: .csv, .parquet or .json")
    add_inventory_arguments(parser)
    parser.add_argument("--render", choices=("svg", "png"), metavar="svg|png",
                        help="write the service graph picture instead of the table "
                        "(default when -o ends in .svg or .png)")
    from discover.commands.analyze import add_graph_layout_argument

    add_graph_layout_argument(parser)
    add_reading_options(parser)
    parser.set_defaults(run=run, usage_error=parser.error)


def _output_path(text: str) -> Path:
    path = Path(text)
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise argparse.ArgumentTypeError(
            f"{text!r}: the output format comes from the extension; use .csv, .parquet "
            "or .json")
    return path


def graph_document(graph: WorkloadGraph) -> dict[str, Any]:
    """The JSON output: edges as rows plus what does not fit in a row."""
    from reports.tables import graph_frame

    frame = graph_frame(graph)
    edges = []
    for record in frame.to_dict(orient="records"):
        row = dict(record)
        row["first_seen"] = row["first_seen"].isoformat()
        row["last_seen"] = row["last_seen"].isoformat()
        row["evidence"] = row["evidence"].split(";") if row["evidence"] else []
        edges.append(row)
    return {
        "schema_version": 1,
        "kind": "netpol-discover-graph",
        "window_start": graph.window_start.isoformat() if graph.window_start else None,
        "window_end": graph.window_end.isoformat() if graph.window_end else None,
        "notes": list(graph.notes),
        "undeclared_ports": [
            {"workload": str(u.workload), "protocol": u.protocol, "port": u.port,
             "pod_declares_ports": u.pod_declares_ports} for u in graph.undeclared_ports],
        "edges": edges,
    }


def write_graph(graph: WorkloadGraph, path: Path) -> None:
    from discover.flows.flowfiles import write_table
    from reports.tables import graph_frame

    if path.suffix.lower() == ".json":
        from discover.atomic import replace_file
        from discover.errors import OutputError

        text = json.dumps(graph_document(graph), indent=2) + "\n"
        try:
            replace_file(path, lambda temporary: _write_text(temporary, text))
        except OSError as error:
            raise OutputError(str(path), f"cannot write: {error.strerror or error}") from error
        return
    write_table(graph_frame(graph), path)


def _write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def _write_bytes(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def _picture_format(args: argparse.Namespace) -> str | None:
    """"svg"/"png" when a picture is asked for (by --render or the extension), else None."""
    suffix = args.output.suffix.lower()
    if args.render is None:
        return suffix[1:] if suffix in PICTURE_SUFFIXES else None
    if suffix != f".{args.render}":
        args.usage_error(f"--render {args.render} writes a .{args.render} file, "
                         f"not {args.output.name}")
    return str(args.render)


def write_picture(graph: WorkloadGraph, path: Path, fmt: str, layout: GraphLayout) -> None:
    from discover.atomic import replace_file
    from discover.errors import OutputError
    from reports.graph_render import render_graph

    picture = render_graph(graph, None, fmt, layout)
    try:
        replace_file(path, lambda temporary: _write_bytes(temporary, picture))
    except OSError as error:
        raise OutputError(str(path), f"cannot write: {error.strerror or error}") from error


def run(args: argparse.Namespace) -> int:
    from discover.enrichment.workload_graph import build_graph
    from reports.graph_svg import choose_layout

    picture = _picture_format(args)
    # PNG is always drawn by dot; an SVG by the engine chosen here, once.
    layout = choose_layout(args.graph_layout if picture == "svg" else "builtin")
    inventory = load_inventory_from_args(args)
    traffic = read_traffic_from_args(args)
    flows = traffic.flows
    graph = build_graph(flows, traffic.dns, inventory)
    if picture:
        write_picture(graph, args.output, picture, layout)
    else:
        write_graph(graph, args.output)
    if not args.quiet:
        print(f"netpol-discover: {len(flows):,} flow rows -> {len(graph.edges):,} edges; "
              f"wrote {args.output}", file=sys.stderr)
    return 0
