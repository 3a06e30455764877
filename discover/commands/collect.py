"""`netpol-discover collect`: every agent's summary through the API server, merged."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from discover.errors import ReadError

if TYPE_CHECKING:
    from discover.flows.flowtable import FlowTable
    from discover.flows.summary import SummaryMeta
    from sidecar.collect import AgentPod

DESCRIPTION = """\
List the agent pods (by label selector) and fetch each one's /summary through a
port-forward opened with your own credentials (the agents serve their data on loopback
only). RBAC needed in the agents' namespace: list on pods, and create on pods/portforward
(plus get on pods/portforward on clusters before 1.35). Agents that don't answer are
reported one line each; the others are merged into one summary file, which `analyze` and
`flows` accept as INPUT. Exit 1 when none answered.
"""

EXAMPLES = """\
examples:
  netpol-discover collect -n netpol-discover -o summary.json --inventory-out cluster.json
  netpol-discover collect -n shop -l app=web --kubeconfig ~/.kube/prod -o web-summary.json
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "collect",
        help="fetch and merge the agents' summaries through the API server",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--namespace", "-n", required=True, help="the agents' namespace")
    parser.add_argument(
        "--selector",
        "-l",
        default="app.kubernetes.io/name=netpol-discover",
        help="label selector of the agent pods (default: app.kubernetes.io/name=netpol-discover)",
    )
    parser.add_argument("--port", type=int, default=9808,
                        help="the agents' data port on their loopback (9808)")  # fmt: skip
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="FILE",
                        help="merged summary JSON to write")  # fmt: skip
    parser.add_argument(
        "--inventory-out",
        type=Path,
        default=None,
        metavar="FILE",
        help="also write the inventory an agent watched during the window (agents run "
        "with --inventory-watch): pass it to analyze --inventory",
    )
    parser.add_argument("--kubeconfig", default=None,
                        help="default: $KUBECONFIG, ~/.kube/config, else the in-cluster "
                        "service account")
    parser.add_argument("--context", default=None, help="kubeconfig context")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="per agent, seconds (default: %(default)s)")
    parser.set_defaults(run=run)


class NothingCollected(ReadError):
    """No agent answered (or none was found)."""


def run(args: argparse.Namespace) -> int:
    from discover.atomic import replace_file
    from discover.flows.summary import merge_summaries, summary_text
    from sidecar import collect
    from sidecar.checkpoint import write_atomic

    core = collect.core_api(args.kubeconfig, args.context)
    pods = collect.list_agent_pods(core, args.namespace, args.selector)
    where = f"pods {args.selector} in namespace {args.namespace}"
    if not pods:
        raise NothingCollected(where, "no agent pods found")
    answered: list[collect.AgentPod] = []  # a JSON object came back
    used: list[collect.AgentPod] = []  # ... and it was a summary this version reads
    table, meta = merge_summaries(_summaries(core, args, pods, answered, used))
    if not used:
        raise NothingCollected(where, f"none of the {len(pods)} agents answered")
    args.output.parent.mkdir(parents=True, exist_ok=True)

    def write(path: Path) -> None:
        with open(path, "w", encoding="utf-8") as stream:
            stream.writelines(summary_text(table, meta))

    replace_file(args.output, write)
    print(
        f"collected {len(used)} of {len(pods)} agents: {table.edge_count} edges, "
        f"{table.dns_row_count} DNS rows -> {args.output}",
        file=sys.stderr,
    )
    if args.inventory_out is not None:
        found, missing = collect.fetch_inventory(
            core, args.namespace, answered, args.port, args.timeout
        )
        if found is None:
            for gap in missing:
                _warn(f"agent {gap.pod.label()} has no inventory: {gap.reason}")
            raise NothingCollected(
                where, f"no agent served an inventory ({args.output} was written)"
            )
        args.inventory_out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(args.inventory_out, json.dumps(found.document, sort_keys=True).encode())
        items = len(found.document.get("items") or [])
        print(f"inventory of agent {found.pod.label()}: {items} objects -> "
              f"{args.inventory_out}", file=sys.stderr)  # fmt: skip
    return 0


def _summaries(
    core: Any,
    args: argparse.Namespace,
    pods: list[AgentPod],
    answered: list[AgentPod],
    used: list[AgentPod],
) -> Iterator[tuple[FlowTable, SummaryMeta]]:
    """Each agent's summary, fetched and checked one at a time, so that `merge_summaries`
    folds it in before the next is fetched: memory follows the distinct edges, not the
    agents' documents (1,000 agents of 2,000 edges each are ~2 GB of JSON objects).
    Agents that answer are appended to `answered`, those whose summary is read to `used`."""
    from discover.flows.summary import summary_from_dict
    from sidecar import collect

    for pod in pods:
        result = collect.fetch_summary(core, args.namespace, pod, args.port, args.timeout)
        if isinstance(result, collect.Missing):
            _warn(f"agent {result.pod.label()} did not answer: {result.reason}")
            continue
        answered.append(pod)
        source = f"agent {result.pod.label()}"
        try:
            part = summary_from_dict(result.document, source)
        except ReadError as error:
            _warn(f"{error} (left out)")
            continue
        del result  # the document: only the table goes on
        used.append(pod)
        _warn_losses(source, part[1].counters)
        yield part


LOSSES = (
    ("kernel_drops", "packets dropped in the kernel (the agent fell behind)"),
    ("edges_dropped", "events for new edges refused at its --max-edges cap or UDP budget"),
    ("udp_edges_dropped_per_source",
     "of them UDP, over one client's share (--max-udp-edges-per-source)"),
    ("dns_rows_dropped", "DNS rows refused at its cap"),
    ("udp_sampled_out", "UDP datagrams skipped by load sampling"),
)  # fmt: skip


def _warn_losses(source: str, counters: Mapping[str, int]) -> None:
    """What an agent knows it missed: its summary may lack connections."""
    for key, what in LOSSES:
        if counters.get(key, 0):
            _warn(f"{source}: {counters[key]:,} {what}; its summary may miss connections")


def _warn(message: str) -> None:
    print(f"netpol-discover: warning: {message}", file=sys.stderr)
