"""Merging many agent summaries: `collect` and `analyze`'s input loading, streaming vs holding all.

    python benchmarks/bench_collect.py [--agents 1000] [--edges 2000] [--dns 50] [--keep DIR]

It writes --agents summaries (compact JSON, as an agent serves /summary) of ~--edges flow edges
each, as node agents see them: every edge joins a pod on one node to a pod on another, so
the client's node and the server's node both record it (each distinct edge is in two
summaries, with their own counts and times; ~--edges / 2 of an agent's edges have a
client on its node), plus --dns DNS rows per agent. Then, each in a child process of its
own (wall time, peak RSS of the process that merges: its VmHWM; for the parallel
loaders also that of the largest worker):

- **json.load all**: only `json.loads` of every file, kept: what holding the documents costs;
- **collect, before**: the old `collect`: every agent's document fetched and kept, every
  one turned into a table, then merged, then the whole merged document built and dumped;
- **collect, after**: the real `netpol-discover collect` code (discover/commands/collect.py
  `run`) with the cluster replaced by the files: each agent's summary is fetched (read),
  checked and folded in before the next, and the merged summary is written row by row;
- **analyze load, before**: every input read by the 2 workers into a list (the old
  `_read_parallel`), then merged;
- **analyze load, after**: `discover.flows.sources.load_inputs`, which folds each input as
  it arrives.

It checks that both collects wrote the same bytes and both loads merged the same table,
and prints the before/after ratios.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
PODS_PER_NODE = 30
MB = 1024 * 1024


# -- generating the agents' summaries -------------------------------------------------------


def pod_ip(node: int, pod: int) -> IPv4Address:
    """10.(node's /24 block) like a pod CIDR per node: 10.0.0.0/8 holds 65,536 nodes."""
    return IPv4Address(0x0A000000 + node * 256 + 2 + pod)


def generate(directory: Path, agents: int, edges: int, dns: int, seed: int = 11) -> list[Path]:
    """One summary per agent; the edges between two nodes are in both nodes' summaries."""
    from discover.flows.events import DirectionEvidence, Outcome, Protocol
    from discover.flows.flowtable import DnsRow, FlowRow, FlowTable
    from discover.flows.summary import SummaryMeta, summary_to_dict

    rng = random.Random(seed)
    tables = [FlowTable() for _ in range(agents)]
    ports = (80, 443, 5432, 6379, 8080, 9090)
    for node in range(agents):
        for _ in range(edges // 2):
            other = (node + rng.randrange(1, agents)) % agents if agents > 1 else node
            client = pod_ip(node, rng.randrange(PODS_PER_NODE))
            server = pod_ip(other, rng.randrange(PODS_PER_NODE))
            port = rng.choice(ports)
            for seen_by, skew in ((node, 0.0), (other, 0.0004)):  # each node its own clock
                first = T0 + rng.uniform(0, 3600)
                tables[seen_by].add_flow_row(FlowRow(
                    client, server, Protocol.TCP, port, rng.randint(1, 50), 0, first + skew,
                    first + rng.uniform(0, 3600), DirectionEvidence.SYN, Outcome.COMPLETED))
        for index in range(dns):
            client = pod_ip(node, rng.randrange(PODS_PER_NODE))
            when = T0 + rng.uniform(0, 7200)
            tables[node].add_dns_row(DnsRow(
                client, f"svc-{index}.ns-{index % 40}.svc.cluster.local",
                IPv4Address(0x0A600000 + index), (), IPv4Address("10.96.0.10"), 30,
                rng.randint(1, 20), when, when + 60))
    paths = []
    for node, table in enumerate(tables):
        path = directory / f"agent-{node:05d}.json"
        meta = SummaryMeta.for_agent(
            node_name=f"node-{node:05d}", interface="any", window_start=T0,
            window_end=T0 + 7200, counters={"packets": table.edge_count * 4},
            agent_name=f"netpol-discover-{node:05d}")
        path.write_text(json.dumps(summary_to_dict(table, meta), separators=(",", ":")))
        paths.append(path)
    return paths


def peak_rss_kb() -> int:
    """This process's peak RSS since its exec (VmHWM; ru_maxrss keeps the parent's from
    before the exec, the generator's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


# -- the modes, each run in a child -----------------------------------------------------------


def mode_json_load(paths: list[Path], out: Path) -> dict[str, Any]:
    documents = [json.loads(p.read_bytes()) for p in paths]
    return {"documents": len(documents)}


def _fetcher(paths: list[Path]) -> Any:
    """`sidecar.collect.fetch_summary` answering from the files, in pod-name order."""
    from sidecar import collect

    by_name = {p.stem: p for p in paths}

    def fetch(core: Any, namespace: str, pod: Any, port: int, timeout: float) -> Any:
        return collect.Fetched(pod, json.loads(by_name[pod.name].read_bytes()))

    def pods(core: Any, namespace: str, selector: str) -> list[Any]:
        return [collect.AgentPod(p.stem, p.stem, "Running", True) for p in paths]

    return fetch, pods


def mode_collect_before(paths: list[Path], out: Path) -> dict[str, Any]:
    """The merge of `collect` before it streamed: every document, then every table."""
    from discover.flows.summary import (
        dumps_summary,
        merge_summaries,
        summary_from_dict,
        summary_to_dict,
    )
    from sidecar.checkpoint import write_atomic

    fetch, list_pods = _fetcher(paths)
    results = [fetch(None, "", pod, 0, 0.0) for pod in list_pods(None, "", "")]
    parts = [summary_from_dict(r.document, f"agent {r.pod.label()}") for r in results]
    table, meta = merge_summaries(parts)
    write_atomic(out, dumps_summary(summary_to_dict(table, meta)).encode())
    return {"edges": table.edge_count, "dns_rows": table.dns_row_count, "sha256": _sha(out)}


def mode_collect_after(paths: list[Path], out: Path) -> dict[str, Any]:
    """`netpol-discover collect`'s own `run`, the cluster replaced by the files."""
    from discover.commands import collect as command
    from discover.flows.summary import read_summary
    from sidecar import collect

    fetch, list_pods = _fetcher(paths)
    collect.core_api = lambda kubeconfig, context: None
    collect.list_agent_pods = list_pods
    collect.fetch_summary = fetch
    args = argparse.Namespace(kubeconfig=None, context=None, namespace="netpol-discover",
                              selector="x", port=9808, timeout=1.0, output=out,
                              inventory_out=None)
    assert command.run(args) == 0
    peak = peak_rss_kb()
    table, _ = read_summary(out)  # after the peak was taken: only to count
    return {"edges": table.edge_count, "dns_rows": table.dns_row_count, "sha256": _sha(out),
            "maxrss_kb": peak}


def mode_load_before(paths: list[Path], out: Path) -> dict[str, Any]:
    """`load_inputs` before it streamed: every FileResult in a list, then merged."""
    from concurrent.futures import ProcessPoolExecutor

    from discover.flows import sources

    with ProcessPoolExecutor(2) as pool:
        results = list(pool.map(sources.read_input, paths))
    loaded = sources._combine(paths, results)
    return _table_facts(loaded.table)


def mode_load_after(paths: list[Path], out: Path) -> dict[str, Any]:
    from discover.flows.sources import load_inputs

    loaded = load_inputs(paths, jobs=2)
    return _table_facts(loaded.table)


def _table_facts(table: Any) -> dict[str, Any]:
    digest = hashlib.sha256()
    for row in table.flow_rows():
        digest.update(repr(row).encode())
    for dns_row in table.dns_rows():
        digest.update(repr(dns_row).encode())
    return {"edges": table.edge_count, "dns_rows": table.dns_row_count,
            "sha256": digest.hexdigest()}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


MODES = {
    "json.load all": mode_json_load,
    "collect, before": mode_collect_before,
    "collect, after": mode_collect_after,
    "analyze load, before": mode_load_before,
    "analyze load, after": mode_load_after,
}


def child_main(mode: str, listing: Path, out: Path) -> None:
    paths = [Path(line) for line in listing.read_text().splitlines()]
    start = time.perf_counter()
    facts = MODES[mode](paths, out)
    facts["seconds"] = time.perf_counter() - start
    facts.setdefault("maxrss_kb", peak_rss_kb())
    facts["workers_maxrss_kb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps(facts))


def run_mode(mode: str, listing: Path, out: Path) -> dict[str, Any]:
    # A fixed hash seed: the children's reprs (sets inside) compare across processes.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "0"}
    done = subprocess.run([sys.executable, __file__, "--child", mode, str(listing), str(out)],
                          capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{done.stderr[-3000:]}")
    facts: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return facts


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--edges", type=int, default=2000, help="flow edges per agent")
    parser.add_argument("--dns", type=int, default=50, help="DNS rows per agent")
    parser.add_argument("--keep", type=Path, default=None,
                        help="write the summaries here and keep them (default: a temporary "
                             "directory)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-collect-") as scratch:
        directory = args.keep or Path(scratch)
        directory.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        paths = generate(directory, args.agents, args.edges, args.dns)
        size = sum(p.stat().st_size for p in paths)
        print(f"{args.agents} summaries, {args.edges} edges and {args.dns} DNS rows each "
              f"({size / MB:,.0f} MB of JSON), written in {time.perf_counter() - start:.1f} s")
        listing = Path(scratch) / "inputs.txt"
        listing.write_text("".join(f"{p}\n" for p in paths))
        results: dict[str, dict[str, Any]] = {}
        print(f"{'mode':<22} {'time s':>8} {'peak RSS MB':>12} {'workers MB':>11}  "
              f"{'edges':>9} {'DNS rows':>9}")
        for mode in MODES:
            facts = run_mode(mode, listing, Path(scratch) / f"{mode.replace(' ', '_')}.json")
            results[mode] = facts
            workers = facts["workers_maxrss_kb"] / 1024 if "load" in mode else 0
            print(f"{mode:<22} {facts['seconds']:>8.1f} {facts['maxrss_kb'] / 1024:>12,.0f} "
                  f"{(f'{workers:,.0f}' if workers else '-'):>11}  "
                  f"{facts.get('edges', '-'):>9} {facts.get('dns_rows', '-'):>9}", flush=True)
    for what in ("collect", "analyze load"):
        before, after = results[f"{what}, before"], results[f"{what}, after"]
        same = "same output" if before["sha256"] == after["sha256"] else "OUTPUTS DIFFER"
        print(f"{what}: before/after time {before['seconds'] / after['seconds']:.2f}x, "
              f"peak RSS {before['maxrss_kb'] / after['maxrss_kb']:.2f}x ({same})")
        if same != "same output":
            raise SystemExit(1)


if __name__ == "__main__":
    main()
