"""Network namespaces, veth links and the processes started in them, all owned by one
`Sandbox` that removes every one of them in `close()`, whatever happened.

Layout (routed, like Calico, because a Linux bridge would bypass iptables DNAT without
br_netfilter): one "node" namespace; each pod namespace has `eth0` with its /32 address
and a default route via the link-local gateway 169.254.1.1, which the node holds on `lo`
and so answers ARP for on every veth; the node has a /32 route per pod on the pod's
`cali*` veth and forwards. External hosts hang off the node the same way. Nothing is
connected to the host's own namespace, so no packet can leave the testbed.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from ipaddress import IPv4Address

from discover.errors import DiscoverError

GATEWAY = "169.254.1.1"
SERVICE_RANGE = "10.96.0.0/12"  # scenario.SERVICE_RANGE: every ClusterIP
NETNS_DIR = "/run/netns"


class TestbedError(DiscoverError):
    """A testbed step failed: `step` says which (the command line), `detail` why."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, step: str, detail: str) -> None:
        self.step = step
        self.detail = detail
        super().__init__(f"testbed: {step}: {detail}")


def run(argv: Sequence[str], *, input_text: str | None = None, timeout: float = 20) -> str:
    try:
        done = subprocess.run(list(argv), input=input_text, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise TestbedError(" ".join(argv), str(error)) from error
    if done.returncode != 0:
        raise TestbedError(" ".join(argv), done.stderr.strip() or f"exit {done.returncode}")
    return done.stdout


def veth_name(seed: str) -> str:
    """A Calico-style host-side interface name: `cali` + 11 hex digits."""
    return "cali" + hashlib.sha1(seed.encode()).hexdigest()[:11]


class Sandbox:
    """Every namespace and process a run creates, for `close()` to remove."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.namespaces: list[str] = []
        self.processes: list[subprocess.Popen[str]] = []
        self.node: str | None = None

    # -- namespaces -----------------------------------------------------------------------

    def add_namespace(self, suffix: str) -> str:
        name = self.prefix + suffix
        run(["ip", "netns", "add", name])
        self.namespaces.append(name)
        run(["ip", "-n", name, "link", "set", "lo", "up"])
        return name

    def delete_namespace(self, name: str) -> None:
        self.stop_processes_in(name)
        if name in self.namespaces:
            self.namespaces.remove(name)
        run(["ip", "netns", "del", name])

    def make_node(self, node_ip: IPv4Address) -> str:
        node = self.add_namespace("node")
        run(["ip", "-n", node, "addr", "add", f"{GATEWAY}/32", "dev", "lo"])
        run(["ip", "-n", node, "addr", "add", f"{node_ip}/32", "dev", "lo"])
        run(["ip", "netns", "exec", node, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1",
             "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"])
        # A process of the node itself (a host-network pod) dialing a ClusterIP needs a
        # route before OUTPUT's DNAT picks the pod (a real node's default route does
        # that); this one never carries a packet to a Service port, the DNAT re-routes
        # it first (no dummy link: not every kernel has the module).
        run(["ip", "-n", node, "route", "add", SERVICE_RANGE, "dev", "lo"])
        self.node = node
        return node

    def attach(self, suffix: str, addresses: Sequence[IPv4Address], seed: str) -> tuple[str, str]:
        """A namespace linked to the node by a veth, with these addresses on its eth0 and
        routes both ways. Returns (namespace, node-side interface)."""
        assert self.node is not None, "make_node first"
        name = self.add_namespace(suffix)
        host_side = veth_name(seed)
        run(["ip", "-n", self.node, "link", "add", host_side, "type", "veth", "peer", "name",
             "eth0", "netns", name])
        for address in addresses:
            run(["ip", "-n", name, "addr", "add", f"{address}/32", "dev", "eth0"])
        run(["ip", "-n", name, "link", "set", "eth0", "up"])
        run(["ip", "-n", name, "route", "add", GATEWAY, "dev", "eth0", "scope", "link"])
        run(["ip", "-n", name, "route", "add", "default", "via", GATEWAY, "dev", "eth0"])
        run(["ip", "-n", self.node, "link", "set", host_side, "up"])
        for address in addresses:
            run(["ip", "-n", self.node, "route", "add", f"{address}/32", "dev", host_side])
        return name, host_side

    # -- processes ------------------------------------------------------------------------

    def start(self, namespace: str, argv: Sequence[str], *, cwd: str | None = None,
              stdout: int | None = subprocess.PIPE, stderr: int | None = subprocess.PIPE,
              ) -> subprocess.Popen[str]:
        # A new session: a terminal's Ctrl-C reaches the runner only, which stops these.
        process = subprocess.Popen(
            ["ip", "netns", "exec", namespace, *argv], cwd=cwd, stdin=subprocess.PIPE,
            stdout=stdout, stderr=stderr, text=True, start_new_session=True,
        )
        process.namespace = namespace  # type: ignore[attr-defined]
        self.processes.append(process)
        return process

    def stop(self, process: subprocess.Popen[str], sig: int = signal.SIGTERM,
             grace: float = 3.0) -> None:
        if process.poll() is None:
            try:
                process.send_signal(sig)
                process.wait(grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(grace)
            except ProcessLookupError:
                pass
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                stream.close()
        if process in self.processes:
            self.processes.remove(process)

    def stop_processes_in(self, namespace: str) -> None:
        for process in list(self.processes):
            if getattr(process, "namespace", None) == namespace:
                self.stop(process)
        _kill_pids(namespace)

    def close(self) -> list[str]:
        """Stop every process, delete every namespace; returns what failed (for a
        warning), never raises: this runs in `finally` blocks and signal handlers."""
        problems: list[str] = []
        for process in reversed(list(self.processes)):
            try:
                self.stop(process, grace=2.0)
            except (OSError, subprocess.SubprocessError) as error:
                problems.append(f"pid {process.pid}: {error}")
        for name in reversed(list(self.namespaces)):
            _kill_pids(name)
            try:
                run(["ip", "netns", "del", name])
                self.namespaces.remove(name)
            except TestbedError as error:
                problems.append(str(error))
        return problems


def _pids_in(namespace: str) -> list[int]:
    if not os.path.exists(os.path.join(NETNS_DIR, namespace)):
        return []
    try:
        return [int(p) for p in run(["ip", "netns", "pids", namespace]).split()]
    except TestbedError:
        return []


def _kill_pids(namespace: str) -> None:
    """Whatever still runs in one of our namespaces is ours: stop it by pid."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = _pids_in(namespace)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        time.sleep(0.3)


def leftover_namespaces(prefix: str) -> list[str]:
    """Namespaces whose name starts with `prefix` (for tests: nothing must be left)."""
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []


def cleanup_stale(base: str = "npd-tb-") -> list[str]:
    """Remove the namespaces of testbed runs that died without cleaning up (killed with
    SIGKILL): names `npd-tb-<pid>-*` whose runner pid is gone. Returns what it removed.
    Namespaces of runs still alive are left alone."""
    removed = []
    for name in leftover_namespaces(base):
        pid_text = name.removeprefix(base).split("-", 1)[0]
        if not pid_text.isdigit() or os.path.exists(f"/proc/{pid_text}"):
            continue
        _kill_pids(name)
        try:
            run(["ip", "netns", "del", name])
        except TestbedError:
            continue
        removed.append(name)
    return removed
