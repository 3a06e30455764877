"""Run a scenario: build the namespaces, DNAT and DNS, start the capture and the traffic,
play the timeline (DNS rotation, pods deleted and created), stop, and write the capture,
the inventory and the ground truth into the output directory.

Everything created is removed in a `finally`, also on SIGINT/SIGTERM and when the global
timeout (SIGALRM) fires.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from tests.testbed.capture import Capture
from tests.testbed.cluster import Cluster, PodPlan, build_cluster
from tests.testbed.dnat import choose_iptables, load_nat_table, render_nat_table
from tests.testbed.dns import ClusterDns, parse_query_log
from tests.testbed.ground_truth import build_ground_truth
from tests.testbed.inventory_writer import build_inventory
from tests.testbed.netns import Sandbox, TestbedError
from tests.testbed.plan import API_AGENT, EXTERNAL_AGENT, NODE_AGENT, AgentPlan, plan_agents
from tests.testbed.scenario import API_SERVER_IP, Scenario

REPO = Path(__file__).resolve().parents[2]
START_DELAY = 0.5  # seconds between "go" and the traffic's time zero
DRAIN = 1.5  # seconds after the last planned connection before stopping


class Interrupted(TestbedError):
    def __init__(self, what: str) -> None:
        super().__init__("run", what)


@dataclass
class RunResult:
    out_dir: Path
    capture: Path
    pod_captures: list[Path]
    inventory: Path
    ground_truth: Path
    prefix: str
    warnings: list[str] = field(default_factory=list)


@dataclass
class Timeline:
    """Real epoch times of what happened, for the inventory and the ground truth."""

    setup: float = 0.0
    start: float = 0.0  # traffic time zero
    end: float = 0.0
    snapshot: float = 0.0
    created: dict[str, float] = field(default_factory=dict)  # pod name -> epoch
    deleted: dict[str, float] = field(default_factory=dict)
    rotations: list[tuple[float, int]] = field(default_factory=list)  # (epoch, phase)


@contextmanager
def _guarded(timeout: float) -> Iterator[None]:
    """SIGINT/SIGTERM/SIGALRM become exceptions, so `finally` blocks clean up."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        raise Interrupted("global timeout reached" if signum == signal.SIGALRM
                          else f"interrupted by {name}")

    previous = {s: signal.signal(s, handler)
                for s in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM)}
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for signum, old in previous.items():
            signal.signal(signum, old)


def run_scenario(scenario: Scenario, out_dir: Path, *, timeout: float = 180.0,
                 prefix: str | None = None, log: Callable[[str], None] | None = None
                 ) -> RunResult:
    say = log or (lambda message: print(f"testbed: {message}", file=sys.stderr))
    cluster = build_cluster(scenario)
    plans = plan_agents(cluster)
    prefix = prefix or f"npd-tb-{os.getpid()}-"
    out_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    sandbox = Sandbox(prefix)
    result = RunResult(out_dir, out_dir / "capture.pcap", [], out_dir / "inventory.json",
                       out_dir / "ground-truth.json", prefix)
    with _guarded(timeout):
        try:
            _Run(cluster, plans, sandbox, workdir, result, say).execute()
        finally:
            result.warnings += sandbox.close()
            shutil.rmtree(workdir, ignore_errors=True)
    for warning in result.warnings:
        say(f"warning: {warning}")
    return result


class _Run:
    def __init__(self, cluster: Cluster, plans: dict[str, AgentPlan], sandbox: Sandbox,
                 workdir: Path, result: RunResult, say: Callable[[str], None]) -> None:
        self.cluster = cluster
        self.scenario = cluster.scenario
        self.plans = plans
        self.sandbox = sandbox
        self.workdir = workdir
        self.result = result
        self.say = say
        self.times = Timeline()
        self.pod_ns: dict[str, str] = {}
        self.agents: dict[str, Any] = {}
        self.iptables = ""
        self.node = ""
        self.dns = ClusterDns(sandbox, cluster, workdir)

    def execute(self) -> None:
        scenario = self.scenario
        self.times.setup = time.time()
        self.say(f"scenario {scenario.name}: {len(self.cluster.pods)} pods, "
                 f"namespaces {self.sandbox.prefix}*")
        self.node = self.sandbox.make_node(scenario.node.ip)
        self.iptables = choose_iptables(self.node)
        self.reload_dnat(None)
        initial = [p for p in self.cluster.pods if p.created_at is None and not p.host_network]
        for index, pod in enumerate(initial):
            self.add_pod(pod, index)
        ext_addresses = sorted({a for e in scenario.externals for a in e.all_addresses}
                               | {c.ip for c in scenario.external_clients}
                               | ({scenario.upstream_dns} if scenario.upstream_dns else set()))
        ext_ns, _ = self.sandbox.attach("ext", ext_addresses, seed=f"{scenario.name}/ext")
        dropped = sorted({a for e in scenario.externals if e.drop for a in e.all_addresses})
        if dropped:  # a firewall in front of them: what is sent to them gets no answer
            rules = "".join(f"-A INPUT -d {a}/32 -j DROP\n" for a in dropped)
            load_nat_table(ext_ns, self.iptables,
                           f"*filter\n:INPUT ACCEPT [0:0]\n{rules}COMMIT\n")
        # the API server, off the node (a managed control plane): its own host
        api_ns, _ = self.sandbox.attach("api", [API_SERVER_IP], seed=f"{scenario.name}/api")
        if scenario.upstream_dns is not None:
            self.dns.start_upstream(ext_ns)
        for pod in initial:
            if pod.runs_dns:
                self.dns.start(pod, self.pod_ns[pod.name])
        self.dns.wait_started()
        for pod in initial:
            self.start_agent(pod.name, self.pod_ns[pod.name])
        self.start_agent(EXTERNAL_AGENT, ext_ns)
        self.start_agent(API_AGENT, api_ns)
        if NODE_AGENT in self.plans:
            self.start_agent(NODE_AGENT, self.node)
        for name in list(self.agents):
            self.wait_ready(name)
        captures = [Capture(self.sandbox, self.node, "any", self.result.capture,
                            scenario.snaplen)]
        if scenario.capture_pod is not None:
            pod = self.cluster.pods_of(scenario.capture_pod)[0]
            path = self.result.out_dir / f"pod-{pod.name}.pcap"
            captures.append(Capture(self.sandbox, self.pod_ns[pod.name], "eth0", path,
                                    scenario.snaplen))
            self.result.pod_captures.append(path)
        for capture in captures:
            capture.wait_listening()
        self.times.start = time.time() + START_DELAY
        for name in list(self.agents):
            self.go(name)
        self.play_timeline()
        self.times.end = time.time()
        for name in list(self.agents):
            self.sandbox.stop(self.agents.pop(name))
        for errors in sorted(self.workdir.glob("agent-*.err")):
            text = errors.read_text(errors="replace").strip()
            if text:  # an agent that complained: say so, the ground truth may lack things
                self.result.warnings.append(f"{errors.stem}: {text[-300:]}")
        time.sleep(0.3)  # the last replies reach the capture
        for capture in captures:
            capture.stop()
            self.say(f"{capture.path.name}: {'; '.join(capture.summary)}")
        self.times.snapshot = time.time()
        inventory = build_inventory(self.cluster, self.times)
        self.result.inventory.write_text(json.dumps(inventory, indent=2, sort_keys=True) + "\n",
                                         encoding="utf-8")
        truth = build_ground_truth(self.cluster, self.times, self._read_logs(), self.result,
                                   self._dns_answerers())
        self.result.ground_truth.write_text(json.dumps(truth, indent=2, sort_keys=True) + "\n",
                                            encoding="utf-8")
        self.say(f"{len(truth['connections'])} connections, {len(truth['dns_queries'])} DNS "
                 f"queries; wrote {self.result.out_dir}")

    # -- pods -----------------------------------------------------------------------------

    def add_pod(self, pod: PodPlan, index: int) -> None:
        namespace, _ = self.sandbox.attach(f"p{index:02d}", [pod.ip],
                                           seed=f"{pod.namespace}/{pod.name}")
        self.pod_ns[pod.name] = namespace
        self.times.created[pod.name] = time.time()

    def delete_pod(self, pod: PodPlan) -> None:
        agent = self.agents.pop(pod.name, None)
        if agent is not None:
            self.sandbox.stop(agent)
        self.sandbox.delete_namespace(self.pod_ns.pop(pod.name))
        self.times.deleted[pod.name] = time.time()
        self.say(f"deleted pod {pod.namespace}/{pod.name} ({pod.ip})")

    def reload_dnat(self, at: float | None) -> None:
        load_nat_table(self.node, self.iptables, render_nat_table(self.cluster, at))

    # -- agents ---------------------------------------------------------------------------

    def start_agent(self, name: str, namespace: str) -> None:
        plan = self.plans[name].to_dict() | {"dns_server": str(self.scenario.dns_ip)}
        plan_path = self.workdir / f"plan-{name}.json"
        plan_path.write_text(json.dumps(plan), encoding="utf-8")
        argv = [sys.executable, "-m", "tests.testbed.traffic", str(plan_path),
                str(self.workdir / f"log-{name}.jsonl")]
        with (self.workdir / f"agent-{name}.err").open("w") as errors:
            self.agents[name] = self.sandbox.start(namespace, argv, cwd=str(REPO),
                                                   stderr=errors.fileno())

    def wait_ready(self, name: str) -> None:
        process = self.agents[name]
        line = process.stdout.readline() if process.stdout is not None else ""
        if line.strip() != "ready":
            try:
                process.wait(2)
            except subprocess.TimeoutExpired:
                process.kill()
            error = (self.workdir / f"agent-{name}.err").read_text(errors="replace")
            raise TestbedError(f"agent {name}", error.strip()[-500:] or f"said {line!r}")

    def go(self, name: str) -> None:
        process = self.agents[name]
        assert process.stdin is not None
        process.stdin.write(f"go {self.times.start!r}\n")
        process.stdin.flush()

    # -- the timeline ---------------------------------------------------------------------

    def play_timeline(self) -> None:
        scenario = self.scenario
        events: list[tuple[float, int, str, Any]] = []
        rotates = any(len(e.rotation) > 1 for e in scenario.externals)
        if rotates:
            phase, at = 1, scenario.rotate_every
            while at < scenario.duration:
                events.append((at, 0, "rotate", phase))
                phase, at = phase + 1, at + scenario.rotate_every
        for pod in self.cluster.pods:
            if pod.deleted_at is not None:
                events.append((pod.deleted_at, 1, "delete", pod))
            if pod.created_at is not None:
                events.append((pod.created_at, 2, "create", pod))
        events.append((scenario.duration + DRAIN, 3, "end", None))
        for at, _order, kind, subject in sorted(events, key=lambda e: (e[0], e[1])):
            delay = self.times.start + at - time.time()
            if delay > 0:
                time.sleep(delay)
            if kind == "rotate":
                self.dns.rotate(subject)
                self.times.rotations.append((time.time(), subject))
            elif kind == "delete":
                self.delete_pod(subject)
                self.reload_dnat(at)
            elif kind == "create":
                self.add_pod(subject, len(self.times.created))
                self.reload_dnat(at)
                self.start_agent(subject.name, self.pod_ns[subject.name])
                self.wait_ready(subject.name)
                self.go(subject.name)
                self.say(f"created pod {subject.namespace}/{subject.name} ({subject.ip})")

    def _dns_answerers(self) -> dict[tuple[str, int, str], list[str]]:
        """(client IP, port, name) -> the CoreDNS pods whose dnsmasq logged that query."""
        found: dict[tuple[str, int, str], list[str]] = {}
        for log_path in self.dns.logs:
            pod = log_path.stem.removeprefix("dnsmasq-")
            for key in parse_query_log(log_path.read_text(encoding="utf-8", errors="replace")):
                found.setdefault(key, []).append(pod)
        return found

    def _read_logs(self) -> dict[str, list[dict[str, Any]]]:
        logs: dict[str, list[dict[str, Any]]] = {}
        for path in sorted(self.workdir.glob("log-*.jsonl")):
            agent = path.stem.removeprefix("log-")
            logs[agent] = [json.loads(line) for line in path.read_text(encoding="utf-8")
                           .splitlines() if line.strip()]
        return logs
