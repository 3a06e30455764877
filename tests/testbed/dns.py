"""The cluster DNS: dnsmasq in each CoreDNS pod namespace, reached through the kube-dns
ClusterIP's DNAT. It answers the Services' names, headless Services with pod IPs,
StatefulSet pod names, external names (CNAME chains included), NXDOMAIN for everything
else (so search-list misses look as they do in a cluster), and never forwards anywhere.
In a scenario with `upstream_dns` it answers cluster.local alone and forwards every
other name to a second dnsmasq at that address (CoreDNS's `forward .`), which holds the
external names instead.

External names live in an additional hosts file that `rotate()` rewrites and reloads
(SIGHUP) between phases, so a name's answers move between address sets during a run.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

from tests.testbed.cluster import Cluster, PodPlan
from tests.testbed.netns import Sandbox, TestbedError

LOCAL_TTL = 2  # seconds: short, so rotated answers are used at once
# `--log-queries=extra` lines: "<serial> <client>/<port> query[A] <name> from <client>"
_QUERY_LINE = re.compile(r"dnsmasq\[\d+\]: \d+ (\S+)/(\d+) query\[\w+\] (\S+) from ")


def parse_query_log(text: str) -> set[tuple[str, int, str]]:
    """(client IP, client port, name) of every query a dnsmasq log shows: which CoreDNS
    replica answered which query, for the ground truth."""
    return {(m[1], int(m[2]), m[3].lower().rstrip(".")) for m in _QUERY_LINE.finditer(text)}


def dnsmasq_binary() -> str:
    found = shutil.which("dnsmasq") or (
        "/usr/sbin/dnsmasq" if Path("/usr/sbin/dnsmasq").exists() else None)
    if found is None:
        raise TestbedError("dnsmasq", "not installed (Debian package dnsmasq-base)")
    return found


def static_records(cluster: Cluster, externals: bool = True) -> list[str]:
    """dnsmasq options for the in-cluster names and (`externals`) the CNAME chains."""
    options: list[str] = []
    for service in sorted(cluster.services, key=lambda s: s.key):
        if service.cluster_ip is not None:
            options.append(f"--host-record={service.fqdn},{service.cluster_ip}")
            continue
        pods = [p for p in cluster.endpoints(service) if p.created_at is None]
        for pod in pods:
            options.append(f"--host-record={service.fqdn},{pod.ip}")
            if pod.workload.kind == "StatefulSet":
                options.append(f"--host-record={pod.name}.{service.fqdn},{pod.ip}")
    for external in cluster.scenario.externals if externals else ():
        if external.name is None:
            continue
        names = (external.name, *external.cname_chain)
        for alias, target in zip(names, names[1:], strict=False):
            options.append(f"--cname={alias},{target}")
    return options


def hosts_file_text(cluster: Cluster, phase: int) -> str:
    """The external names' addresses for one rotation phase (hosts file format)."""
    lines = []
    for external in cluster.scenario.externals:
        if external.name is None:
            continue
        holder = (external.name, *external.cname_chain)[-1]
        for address in external.rotation[phase % len(external.rotation)]:
            lines.append(f"{address} {holder}")
    return "\n".join(lines) + "\n"


def phase_addresses(cluster: Cluster, phase: int) -> dict[str, list[str]]:
    return {
        str(e.name): [str(a) for a in e.rotation[phase % len(e.rotation)]]
        for e in cluster.scenario.externals if e.name is not None
    }


class ClusterDns:
    def __init__(self, sandbox: Sandbox, cluster: Cluster, workdir: Path) -> None:
        self.sandbox = sandbox
        self.cluster = cluster
        self.hosts = workdir / "dns-hosts"
        self.workdir = workdir
        self.processes: list[subprocess.Popen[str]] = []
        self.logs: list[Path] = []  # the CoreDNS pods' query logs
        self.upstream_log: Path | None = None
        self.phase = 0

    def _argv(self, address: str, log: Path) -> list[str]:
        return [
            dnsmasq_binary(), "--no-daemon", "--conf-file=/dev/null", "--no-resolv",
            "--no-hosts", "--bind-interfaces", f"--listen-address={address}",
            "--port=53", "--user=root", "--pid-file=", f"--local-ttl={LOCAL_TTL}",
            "--log-queries=extra", f"--log-facility={log}",
        ]

    def start(self, pod: PodPlan, namespace: str) -> None:
        self.hosts.write_text(hosts_file_text(self.cluster, self.phase), encoding="utf-8")
        log = self.workdir / f"dnsmasq-{pod.name}.log"
        self.logs.append(log)
        upstream = self.cluster.scenario.upstream_dns
        if upstream is None:
            names = [f"--addn-hosts={self.hosts}", "--address=/#/",
                     *static_records(self.cluster)]
        else:  # cluster.local here, never forwarded; the rest to the upstream
            names = ["--local=/cluster.local/", f"--server={upstream}",
                     *static_records(self.cluster, externals=False)]
        process = self.sandbox.start(namespace, self._argv(str(pod.ip), log) + names,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.processes.append(process)

    def start_upstream(self, namespace: str) -> None:
        """The resolver the cluster DNS forwards to: the external names, NXDOMAIN else."""
        upstream = self.cluster.scenario.upstream_dns
        assert upstream is not None
        self.hosts.write_text(hosts_file_text(self.cluster, self.phase), encoding="utf-8")
        self.upstream_log = self.workdir / "dnsmasq-upstream.log"
        cnames = [o for o in static_records(self.cluster) if o.startswith("--cname=")]
        argv = self._argv(str(upstream), self.upstream_log) + [
            f"--addn-hosts={self.hosts}", "--address=/#/", *cnames]
        self.processes.append(self.sandbox.start(namespace, argv, stdout=subprocess.DEVNULL,
                                                 stderr=subprocess.DEVNULL))

    def wait_started(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        for log in self.logs + ([self.upstream_log] if self.upstream_log else []):
            while not log.exists() or "started" not in log.read_text(errors="replace"):
                if time.monotonic() > deadline:
                    raise TestbedError("dnsmasq", f"did not start; its log: {log}")
                time.sleep(0.05)

    def rotate(self, phase: int) -> None:
        self.phase = phase
        self.hosts.write_text(hosts_file_text(self.cluster, phase), encoding="utf-8")
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGHUP)
