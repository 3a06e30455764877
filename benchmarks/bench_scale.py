"""Cluster scale: `analyze` end to end and stage by stage at several cluster sizes.

    python benchmarks/bench_scale.py [--sizes 500,5000,20000] [--timeout 600]
        [--mem-limit-gb 12] [--edges-per-workload 20] [--keep DIR] [--profile SIZES] [--no-stages]

For each size W (workloads; W x 20 workload edges by default) it generates a cluster with
`make_cluster.py`, then, each in a child process of its own with the same --timeout and
address-space limit (--mem-limit-gb, RLIMIT_AS):

- **end to end**: `python -m discover analyze summary.json --inventory inventory.json
  --out DIR --quiet`: wall time, and the peak RSS of the largest process of its tree
  (`wait4`'s ru_maxrss, which covers Graphviz's `dot` when it is the largest); the sizes
  of the outputs;
- **stages**: the same work called stage by stage in one process, in `analyze`'s order
  (discover/commands/analyze.py, discover/analysis.py, discover/outputs.py): wall time,
  the peak RSS during the stage (VmHWM, reset before each stage through
  /proc/self/clear_refs) and the RSS after it;
- with --profile SIZES, at those sizes: the end-to-end command once more under cProfile
  (DIR/W/analyze.prof) and its top functions by cumulative and by own time.

A child past --timeout is killed with its process group and reported as "timeout"; one
that hits the memory limit as "out of memory". It prints a table per size and the growth
exponent of every stage between consecutive sizes, log(t2/t1) / log(W2/W1): 1 is linear,
2 quadratic.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MB = 1e6
OUTPUTS = ("policies.yaml", "report.html", "report.md", "flows.csv", "cilium-policies.yaml",
           "fqdn-dependencies.yaml")


@dataclass
class ChildRun:
    """One child process: how it ended, its wall time and the peak RSS of its tree."""

    status: str  # "ok", "exit N", "timeout", "out of memory", "signal N"
    seconds: float
    peak_mb: float
    stdout: str
    stderr: str


@dataclass
class SizeResult:
    workloads: int
    counts: dict[str, int] = field(default_factory=dict)
    generate_s: float = 0.0
    end_to_end: ChildRun | None = None
    output_bytes: dict[str, int] = field(default_factory=dict)
    stages: list[dict[str, Any]] = field(default_factory=list)
    stages_status: str = "not run"


# -- child processes -----------------------------------------------------------------------


def run_child(argv: list[str], timeout: float, mem_limit_gb: float | None,
              log_prefix: Path) -> ChildRun:
    """Run `argv` in a new session (so a timeout kills `dot` too) under RLIMIT_AS; wait4
    gives the child's own rusage, whose ru_maxrss is the largest process of its tree."""
    limit = int(mem_limit_gb * 1e9) if mem_limit_gb else None

    def limit_memory() -> None:
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    # this checkout first, ahead of an editable install that may point at another one
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    out_path = log_prefix.with_suffix(".stdout")
    err_path = log_prefix.with_suffix(".stderr")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, cwd=ROOT, env=env,
                                start_new_session=True, preexec_fn=limit_memory)
        timed_out = False
        while True:
            pid, wait_status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - start > timeout:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)
                pid, wait_status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(wait_status)  # reaped here, not by Popen
    stdout = out_path.read_text(errors="replace")
    stderr = err_path.read_text(errors="replace")
    if timed_out:
        status = "timeout"
    elif proc.returncode == 0:
        status = "ok"
    elif "MemoryError" in stderr or "Cannot allocate memory" in stderr or (
            proc.returncode < 0 and limit is not None):
        status = "out of memory"
    elif proc.returncode < 0:
        status = f"signal {-proc.returncode}"
    else:
        status = f"exit {proc.returncode}"
    return ChildRun(status, seconds, usage.ru_maxrss * 1024 / MB, stdout, stderr)


def analyze_argv(size_dir: Path) -> list[str]:
    return ["-m", "discover", "analyze", str(size_dir / "summary.json"), "--inventory",
            str(size_dir / "inventory.json"), "--out", str(size_dir / "out"), "--quiet"]


# -- the stage harness (runs in its own process: `bench_scale.py _stages DIR`) --------------


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024 / MB  # kB
    raise RuntimeError(f"{key} not in /proc/self/status")


def _reset_peak() -> None:
    # "5" resets VmHWM to the current RSS (Linux >= 4.0): a peak per stage
    Path("/proc/self/clear_refs").write_text("5")


def run_stages(size_dir: Path) -> int:
    """`analyze`'s work, stage by stage; one JSON line per stage on stdout as it ends, so
    a run killed at the timeout still tells how far it got and what each stage cost."""

    def stage(name: str, work: Callable[[], Any]) -> Any:
        _reset_peak()
        before = _status_mb("VmRSS")
        start = time.perf_counter()
        result = work()
        seconds = time.perf_counter() - start
        line = {"stage": name, "seconds": round(seconds, 4), "rss_before_mb": before,
                "peak_mb": _status_mb("VmHWM"), "rss_after_mb": _status_mb("VmRSS")}
        print(json.dumps(line), flush=True)
        return result

    # imports inside: the modules under discover/ move between stages' packages
    stage("imports", _import_pipeline)
    from dataclasses import replace

    from discover.cli import build_parser
    from discover.commands.analyze import _options

    summary, inventory_file = size_dir / "summary.json", size_dir / "inventory.json"
    args = build_parser().parse_args(
        ["analyze", str(summary), "--inventory", str(inventory_file), "--out",
         str(size_dir / "stages-out")])
    options = _options(args)

    def load_inventory() -> Any:
        from discover.inventory.files import load_inventory_files
        return load_inventory_files([inventory_file])

    def load_flows() -> Any:
        from discover.flows.sources import load_inputs
        loaded = load_inputs([summary], jobs=1)
        return loaded, tuple(loaded.table.flow_rows()), tuple(loaded.table.dns_rows())

    inventory = stage("inventory", load_inventory)
    loaded, flows, dns = stage("flow table", load_flows)

    def graph_stage() -> Any:
        from discover.enrichment.workload_graph import build_graph
        return build_graph(flows, dns, inventory)

    graph = stage("graph", graph_stage)

    def synthesis() -> Any:
        from discover.synthesis.fqdn import dns_observations
        from discover.synthesis.synthesize import propose
        return propose(graph, inventory, replace(options, self_check=False),
                       dns_observations(dns))

    proposal = stage("synthesis", synthesis)

    def self_check() -> None:
        from discover.synthesis.selfcheck import check_proposal
        check_proposal(proposal, inventory)

    stage("self-check", self_check)

    def verification() -> Any:
        from discover.analysis import _check_denials
        from discover.netpol import PolicyEvaluator
        from discover.verification.verify import verify_flows
        verdicts = tuple(verify_flows(flows, PolicyEvaluator(proposal.policies), inventory))
        _check_denials(verdicts, proposal)
        return verdicts

    verdicts = stage("verify flows", verification)

    def newly_denied() -> Any:
        from discover.verification.changes import compute_changes
        return compute_changes(inventory, proposal)

    changes = stage("changes", newly_denied)

    def yaml_policies() -> str:
        from discover.synthesis.render import render_policies_yaml
        return render_policies_yaml(proposal)

    def yaml_others() -> tuple[str, str]:
        from discover.synthesis.render import render_cilium_yaml, render_fqdn_yaml
        return render_fqdn_yaml(proposal), render_cilium_yaml(proposal)

    stage("policies.yaml", yaml_policies)
    stage("fqdn+cilium yaml", yaml_others)

    from reports.model import ReportInput
    report = ReportInput(
        proposal=proposal, graph=graph, flows=flows, dns=dns, inventory=inventory,
        sources=tuple(f.path for f in loaded.files),
        counters={"packets": loaded.packets, "dns_answers": loaded.dns_answers,
                  "flows": len(flows), "edges": len(graph.edges)},
        warnings=tuple(loaded.warnings) + tuple(inventory.notes), changes=changes)

    def markdown() -> str:
        from reports.markdown import render_markdown
        return render_markdown(report)

    def html() -> str:
        from reports.graph_svg import choose_layout
        from reports.html import render_html
        return render_html(report, choose_layout("auto"))

    def flows_csv() -> None:
        from discover.flows.flowfiles import write_table
        from reports.tables import flows_with_verdicts
        write_table(flows_with_verdicts(flows, verdicts), size_dir / "stages-flows.csv")

    stage("report.md", markdown)
    stage("report.html", html)
    stage("flows.csv", flows_csv)
    return 0


def _import_pipeline() -> None:
    import discover.analysis  # noqa: F401
    import discover.outputs  # noqa: F401


# -- the driver ----------------------------------------------------------------------------


def bench_size(workloads: int, args: argparse.Namespace, base: Path) -> SizeResult:
    result = SizeResult(workloads)
    size_dir = base / str(workloads)
    size_dir.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    start = time.perf_counter()
    generated = subprocess.run(
        [python, str(ROOT / "benchmarks" / "make_cluster.py"), str(size_dir), "--workloads",
         str(workloads), "--edges-per-workload", str(args.edges_per_workload), "--seed",
         str(args.seed)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, check=False)
    result.generate_s = time.perf_counter() - start
    if generated.returncode != 0:
        raise SystemExit(f"make_cluster.py failed: {generated.stderr.strip()}")
    for part in generated.stdout.strip().split(", "):
        key, value = part.rsplit(" ", 1)
        result.counts[key] = int(value.replace(",", ""))
    _say(f"\n== {workloads:,} workloads: {_counts_text(result)}; generated in "
         f"{result.generate_s:.1f} s (inventory.json "
         f"{(size_dir / 'inventory.json').stat().st_size / MB:.1f} MB, summary.json "
         f"{(size_dir / 'summary.json').stat().st_size / MB:.1f} MB)")

    run = run_child([python, *analyze_argv(size_dir)], args.timeout, args.mem_limit_gb,
                    size_dir / "analyze")
    result.end_to_end = run
    for name in OUTPUTS:
        path = size_dir / "out" / name
        if run.status == "ok" and path.exists():
            result.output_bytes[name] = path.stat().st_size
    _say(f"end to end: {_run_text(run)}")
    if run.status not in ("ok", "timeout"):
        _say("  " + "\n  ".join(run.stderr.strip().splitlines()[-5:]))
    if result.output_bytes:
        _say("outputs: " + ", ".join(f"{name} {size / MB:.2f} MB"
                                     for name, size in result.output_bytes.items()))

    if not args.no_stages:
        stages = run_child([python, str(Path(__file__).resolve()), "_stages", str(size_dir)],
                           args.timeout, args.mem_limit_gb, size_dir / "stages")
        result.stages = [json.loads(line) for line in stages.stdout.splitlines()
                         if line.startswith("{")]
        result.stages_status = stages.status
        _say(f"stages in one process: {_run_text(stages)}")
        if stages.status not in ("ok", "timeout"):
            _say("  " + "\n  ".join(stages.stderr.strip().splitlines()[-5:]))
        _say(_stage_table(result.stages))
    if workloads in args.profile_sizes:
        prof = size_dir / "analyze.prof"
        profiled = run_child([python, "-m", "cProfile", "-o", str(prof),
                              *analyze_argv(size_dir)], args.timeout, args.mem_limit_gb,
                             size_dir / "profile")
        _say(f"under cProfile: {_run_text(profiled)}")
        if profiled.status == "ok":
            _say(profile_text(prof, args.profile_lines))
        else:
            _say("  " + "\n  ".join(profiled.stderr.strip().splitlines()[-5:]))
    return result


# The functions that begin each stage of `analyze` (name, file ending): the profile's
# cumulative time of each is that stage's share.
STAGE_FUNCTIONS = (
    ("load_inventory_files", "files.py"), ("load_inputs", "sources.py"),
    ("build_graph", "workload_graph.py"), ("propose", "synthesize.py"),
    ("check_proposal", "selfcheck.py"), ("verify_flows", "verify.py"),
    ("render_policies_yaml", "render.py"), ("render_markdown", "markdown.py"),
    ("render_html", "html.py"), ("flows_with_verdicts", "tables.py"),
    ("write_table", "flowfiles.py"), ("replace_directory", "atomic.py"),
)


def profile_text(path: Path, lines: int) -> str:
    """The stages' cumulative times and the top functions by cumulative and own time,
    each as file:function with its share of the whole run."""
    import pstats

    stats = pstats.Stats(str(path))
    table: dict[tuple[str, int, str], tuple[int, int, float, float, dict[Any, Any]]]
    table = stats.stats  # type: ignore[attr-defined]
    total = max(cum for _cc, _nc, _tt, cum, _callers in table.values())

    def where(key: tuple[str, int, str]) -> str:
        file, line, name = key
        for prefix in (str(ROOT) + "/", *(p + "/" for p in sys.path if "-packages" in p)):
            file = file.removeprefix(prefix)
        return f"{file}:{line}:{name}" if not file.startswith(("<", "~")) else f"{file}{name}"

    def row(key: tuple[str, int, str]) -> str:
        _cc, calls, own, cum, _callers = table[key]
        return (f"  {cum:8.2f} s {100 * cum / total:5.1f} %  own {own:7.2f} s "
                f"{100 * own / total:5.1f} %  {calls:>9,}  {where(key)}")

    out = [f"profile {path}: {total:.1f} s in all; cumulative s, share, own s, share, "
           "calls, function", "-- stages"]
    for name, file in STAGE_FUNCTIONS:
        out += [row(k) for k in table if k[2] == name and k[0].endswith(file)]
    # runpy, exec and the CLI's own wrappers cover everything: leave them out
    ranked = [k for k in table if not k[0].startswith("<") and "runpy" not in k[0]
              and k[0] != "~" and table[k][3] < 0.999 * total]
    out.append(f"-- top {lines} by cumulative time")
    out += [row(k) for k in sorted(ranked, key=lambda k: -table[k][3])[:lines]]
    out.append(f"-- top {lines} by own time")
    out += [row(k) for k in sorted(table, key=lambda k: -table[k][2])[:lines]]
    return "\n".join(out)


def _counts_text(result: SizeResult) -> str:
    c = result.counts
    return (f"{c.get('workload_edges', 0):,} workload edges, {c.get('edges', 0):,} flow edges "
            f"in all (with DNS and external), {c.get('dns_rows', 0):,} DNS rows, "
            f"{c.get('pods', 0):,} pods, {c.get('namespaces', 0):,} namespaces, "
            f"{c.get('nodes', 0):,} nodes")


def _run_text(run: ChildRun) -> str:
    return f"{run.status}, {run.seconds:.1f} s, peak RSS {run.peak_mb:,.0f} MB"


def _stage_table(stages: list[dict[str, Any]]) -> str:
    rows = [f"{'stage':<18} {'time s':>9} {'peak RSS MB':>12} {'RSS after MB':>13}"]
    for s in stages:
        rows.append(f"{s['stage']:<18} {s['seconds']:>9.2f} {s['peak_mb']:>12,.0f} "
                    f"{s['rss_after_mb']:>13,.0f}")
    if stages:
        total = sum(s["seconds"] for s in stages)
        peak = max(s["peak_mb"] for s in stages)
        rows.append(f"{'total':<18} {total:>9.2f} {peak:>12,.0f}")
    return "\n".join(rows)


def growth_table(results: list[SizeResult]) -> str:
    """log(t2/t1) / log(W2/W1) between consecutive sizes; '-' where a time is under 50 ms
    (noise) or missing."""
    pairs = list(zip(results, results[1:], strict=False))
    if not pairs:
        return ""
    header = f"{'stage':<18}" + "".join(f" {f'{a.workloads}->{b.workloads}':>13}"
                                        for a, b in pairs)
    names: list[str] = []
    for r in results:
        names += [s["stage"] for s in r.stages if s["stage"] not in names]
    rows = [header]

    def exponent(t1: float | None, t2: float | None, a: SizeResult, b: SizeResult) -> str:
        if t1 is None or t2 is None or t1 < 0.05 or t2 < 0.05:
            return "-"
        return f"{math.log(t2 / t1) / math.log(b.workloads / a.workloads):.2f}"

    def e2e(r: SizeResult) -> float | None:
        run = r.end_to_end
        return run.seconds if run is not None and run.status == "ok" else None

    for name in names:
        cells = []
        for a, b in pairs:
            t1 = next((s["seconds"] for s in a.stages if s["stage"] == name), None)
            t2 = next((s["seconds"] for s in b.stages if s["stage"] == name), None)
            cells.append(exponent(t1, t2, a, b))
        rows.append(f"{name:<18}" + "".join(f" {c:>13}" for c in cells))
    rows.append(f"{'end to end':<18}" + "".join(
        f" {exponent(e2e(a), e2e(b), a, b):>13}" for a, b in pairs))
    return "\n".join(rows)


def _say(text: str) -> None:
    print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_stages"]:
        sys.path.insert(0, str(ROOT))
        return run_stages(Path(argv[1]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500,5000,20000",
                        help="workload counts, comma-separated (default 500,5000,20000)")
    parser.add_argument("--edges-per-workload", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds for each child process at each size (default 600)")
    parser.add_argument("--mem-limit-gb", type=float, default=12.0,
                        help="address-space limit of each child, GB (default 12; 0: none)")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="generate into DIR and keep the inputs, outputs and logs")
    parser.add_argument("--profile", default="", metavar="SIZES",
                        help="also run analyze under cProfile at these sizes (e.g. 500)")
    parser.add_argument("--profile-lines", type=int, default=30)
    parser.add_argument("--no-stages", action="store_true",
                        help="only the end-to-end run")
    args = parser.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes {args.sizes!r}: expected comma-separated integers")
    try:
        args.profile_sizes = {int(s) for s in args.profile.split(",") if s.strip()}
    except ValueError:
        parser.error(f"--profile {args.profile!r}: expected comma-separated integers")
    if not sizes or min(sizes) < 2:
        parser.error("--sizes: at least one size of at least 2 workloads")
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as scratch:
        base = args.keep or Path(scratch)
        _say(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load average "
             f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}; timeout {args.timeout:.0f} s, "
             f"memory limit {args.mem_limit_gb:g} GB a process; files in {base}")
        results = [bench_size(w, args, base) for w in sizes]
        if len(results) > 1:
            _say("\ngrowth exponent log(t2/t1)/log(W2/W1) (1 linear, 2 quadratic):")
            _say(growth_table(results))
        if args.keep:
            (base / "results.json").write_text(json.dumps(
                [{"workloads": r.workloads, "counts": r.counts, "generate_s": r.generate_s,
                  "end_to_end": None if r.end_to_end is None else {
                      "status": r.end_to_end.status, "seconds": r.end_to_end.seconds,
                      "peak_mb": r.end_to_end.peak_mb},
                  "outputs": r.output_bytes, "stages_status": r.stages_status,
                  "stages": r.stages} for r in results], indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
