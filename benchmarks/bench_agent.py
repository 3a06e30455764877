"""Agent benchmark: CPU and kernel drops of the live agent under bulk TCP and connection storms.

Two test hosts in network namespaces (a veth pair, 10.244.240.0/24, no route out). The
agent captures on the server host's interface (or `any`). Phases:

1. idle, for a baseline;
2. bulk: iperf3 pushes TCP at full speed for --bulk-seconds (the BPF filter must keep the
   data segments out of Python: target < 5% of one core);
3. connection rates: a generator opens and resets short TCP connections to a listener at
   1k, 2k, 5k, 10k/s for --rate-seconds each (target: no kernel drops up to 5,000/s, and
   every connection counted in the summary). Each connection binds its own source port;
   with --kernel-ports the kernel picks them and reuses them within a phase, so the same
   4-tuple comes back with a new initial sequence number.

Agent CPU is utime+stime from /proc/PID/stat over each phase; drops and packets come from
the agent's /metrics; connections counted from its /summary. Needs root, iproute2, iperf3.

    sudo python benchmarks/bench_agent.py [--interface any] [--kernel-ports]
                                          [--rates 1000,2000,5000,10000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sidecar.netns import HostPair, TestHost  # noqa: E402

SUBNET = 240
AGENT = "127.0.0.1:9808"
LISTEN_PORT = 7000
IPERF_PORT = 5201
FIXED_PORTS = (1024, 59999)  # the generator's bind() ports, outside the client's ...
CLIENT_EPHEMERAL = {False: "60000 65535", True: "1024 65535"}  # ... ephemeral range
TICKS = os.sysconf("SC_CLK_TCK")

# One listening port per rate phase: the agent's /summary counts connections per destination
# port, so each phase's count is its own.
ACCEPTOR = """
import selectors, socket, sys
selector = selectors.DefaultSelector()
for port in map(int, sys.argv[1:]):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(65535)
    s.setblocking(False)
    selector.register(s, selectors.EVENT_READ)
print("ready", flush=True)
while True:
    for key, _ in selector.select():
        try:
            while True:
                c, _ = key.fileobj.accept()
                c.close()
        except BlockingIOError:
            pass
"""

# The rate phases' client. By default each connection bind()s the next port of FIXED_PORTS,
# a fresh 4-tuple per connection until the range wraps. The client namespace's ephemeral
# range is moved out of FIXED_PORTS: the iperf3 client of the bulk phase often leaves its data
# connection in TIME_WAIT (60 s) on an ephemeral port, and bind() to that port fails with
# EADDRINUSE even with SO_REUSEADDR (iperf3 doesn't set it on its side). With --kernel-ports
# it connect()s unbound: the kernel picks ephemeral ports and hands one out again as soon as
# an RST has freed it, so the same 4-tuple comes back with a new ISN (what
# discover/reading/conntrack.py tells apart from a retransmit). Failures are counted by errno
# and the port advances anyway; what a slow generator skips is counted as well.
GENERATOR = """
import collections, errno, json, socket, struct, sys, time
host, port, rate, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
first, last = int(sys.argv[5]), int(sys.argv[6])  # 0 0: no bind(), the kernel picks
reset = struct.pack("ii", 1, 0)  # close with RST: no TIME_WAIT left behind
source_port = first
target = round(rate * seconds)  # connection i is due at start + i / rate
cap = max(1, round(rate * 0.05))  # never burst more than 50 ms behind: give up the rest
tick = 0.002  # wake every 2 ms and make what is due, not one sleep per connection
done = behind = 0  # done: connections made, failed or given up
failed = collections.Counter()
used = collections.Counter()  # source port -> connections made from it
start = time.monotonic()
next_tick = start
while done < target:
    now = time.monotonic()
    if now < next_tick:
        time.sleep(next_tick - now)
        continue
    due = min(target, int((now - start) * rate) + 1)
    if due - done > cap:
        behind += due - done - cap
        done = due - cap
    while done < due:
        done += 1
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, reset)
            try:
                if first:
                    s.bind(("", source_port))
                s.connect((host, port))
                used[s.getsockname()[1]] += 1
            except OSError as error:
                failed[errno.errorcode.get(error.errno, str(error.errno))] += 1
        if first:
            source_port = first if source_port == last else source_port + 1
    next_tick = max(next_tick + tick, now)
made = sum(used.values())
print(json.dumps({"target": target, "made": made, "failed": dict(failed), "behind": behind,
                  "reused": made - len(used), "seconds": time.monotonic() - start}))
"""


@dataclass(frozen=True, slots=True)
class Row:
    phase: str
    seconds: float
    cpu_percent: float
    packets: int
    kernel_drops: int
    filter_passed: int
    note: str


class Agent:
    def __init__(
        self, host: TestHost, interface: str, state_dir: Path, log: Path, extra: list[str]
    ) -> None:
        self.host = host
        argv = [sys.executable, "-m", "discover.cli", "agent", "--interface", interface,
                "--state-dir", str(state_dir), "--listen", AGENT, "--checkpoint-interval",
                "10", "--max-edges", "100000", "--log-level", "warning", *extra]  # fmt: skip
        with log.open("wb") as handle:
            # `ip netns exec` execs the agent: the Popen pid is the agent's.
            self.process = host.popen(argv, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while self.get("/healthz") != "capturing":
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise SystemExit(f"agent did not start: {log.read_text()}")
            time.sleep(0.2)

    def get(self, path: str) -> str:
        return self.host.http_get(f"http://{AGENT}{path}")[1].strip()

    def metrics(self) -> dict[str, float]:
        values: dict[str, float] = {}
        for line in self.get("/metrics").splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                values[name.removeprefix("netpol_discover_")] = float(value)
        return values

    def connections(self, server: str, port: int) -> int:
        document = json.loads(self.get("/summary"))
        return sum(
            f["connections"]
            for f in document["flows"]
            if f["dst_ip"] == server and f["dst_port"] == port and f["protocol"] == "TCP"
        )

    def cpu_seconds(self) -> float:
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def measure(agent: Agent, phase: str, action: object) -> tuple[Row, object]:
    before_m, before_cpu, start = agent.metrics(), agent.cpu_seconds(), time.monotonic()
    result = action() if callable(action) else None
    seconds = time.monotonic() - start
    time.sleep(1.5)  # let the agent drain its ring; /summary is cached for 1 s
    after_m, after_cpu = agent.metrics(), agent.cpu_seconds()
    row = Row(
        phase=phase,
        seconds=seconds,
        # All the CPU used until the ring was drained, over the traffic's duration only:
        # errs high by the idle cost of the drain wait (~0.3% of 1.5 s).
        cpu_percent=100 * (after_cpu - before_cpu) / seconds,
        packets=int(after_m["packets_total"] - before_m["packets_total"]),
        kernel_drops=int(after_m["kernel_drops_total"] - before_m["kernel_drops_total"]),
        filter_passed=int(after_m["kernel_received_total"] - before_m["kernel_received_total"]),
        note="",
    )
    return row, result


def bulk(pair: HostPair, seconds: float) -> str:
    server = pair.server.popen(["iperf3", "-s", "-1", "-p", str(IPERF_PORT)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    time.sleep(0.5)
    try:
        out = pair.client.run(["iperf3", "-c", str(pair.server.ipv4), "-p", str(IPERF_PORT),
                               "-t", str(seconds), "-J"], timeout=seconds + 30).stdout  # fmt: skip
    finally:
        server.wait(timeout=10)
    bits = json.loads(out)["end"]["sum_received"]["bits_per_second"]
    return f"iperf3 {bits / 1e9:.1f} Gbit/s"


@dataclass(frozen=True, slots=True)
class Storm:
    target: int  # connections due in the phase: made + failed + behind
    made: int
    failed: dict[str, int]  # errno name -> connections that failed with it
    behind: int  # connections given up because the generator fell behind
    reused: int  # connections on a 4-tuple an earlier one of the phase had
    seconds: float


def storm(pair: HostPair, rate: int, port: int, seconds: float, kernel_ports: bool) -> Storm:
    first, last = (0, 0) if kernel_ports else FIXED_PORTS
    out = pair.client.run([sys.executable, "-c", GENERATOR, str(pair.server.ipv4), str(port),
                           str(rate), str(seconds), str(first), str(last)],
                          timeout=seconds + 60).stdout  # fmt: skip
    return Storm(**json.loads(out))


def storm_note(result: Storm, counted: int) -> str:
    """The phase's notes: every connection short of the target says why."""
    parts = [
        f"achieved {result.made / result.seconds:,.0f}/s",
        f"{result.made:,} of {result.target:,} made, {counted:,} counted",
    ]
    if result.reused:
        parts.append(f"{result.reused:,} on a reused 4-tuple")
    if result.failed:
        causes = ", ".join(f"{n:,} {name}" for name, n in sorted(result.failed.items()))
        parts.append(f"**{sum(result.failed.values()):,} failed** ({causes})")
    if result.behind:
        parts.append(f"**{result.behind:,} not attempted** (generator behind)")
    unaccounted = result.target - result.made - sum(result.failed.values()) - result.behind
    if unaccounted:
        parts.append(f"**{unaccounted:,} unaccounted**")
    return "; ".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--interface", default="veth0", help="veth0 (default) or any")
    parser.add_argument("--bulk-seconds", type=float, default=10)
    parser.add_argument("--rate-seconds", type=float, default=5)
    parser.add_argument("--rates", default="1000,2000,5000,10000")
    parser.add_argument("--no-ring", action="store_true", help="the agent's --no-ring")
    parser.add_argument(
        "--kernel-ports",
        action="store_true",
        help="rate phases: let the kernel pick (and quickly reuse) the source ports instead of "
        "bind()ing a new one per connection",
    )
    parser.add_argument(
        "--established-interval",
        default=None,
        help="the agent's --established-interval (socket-table reads; default: the agent's, 60)",
    )
    parser.add_argument(
        "--receive-buffer",
        type=int,
        default=None,
        help="the agent's --receive-buffer (e.g. 212992, a common net.core.rmem_max)",
    )
    parser.add_argument(
        "--markdown", type=Path, default=None, help="also write the table as Markdown to this file"
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces, packet sockets)")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp, HostPair("npdbench", SUBNET) as pair:
        ephemeral = CLIENT_EPHEMERAL[args.kernel_ports]
        pair.client.run(["sysctl", "-qw", f"net.ipv4.ip_local_port_range={ephemeral}"])
        rates = [int(r) for r in args.rates.split(",")]
        ports = [LISTEN_PORT + i for i in range(len(rates))]
        acceptor = pair.server.popen([sys.executable, "-c", ACCEPTOR, *map(str, ports)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)  # fmt: skip
        assert acceptor.stdout is not None and acceptor.stdout.readline().strip() == b"ready"
        extra = ["--no-ring"] if args.no_ring else []
        if args.receive_buffer is not None:
            extra += ["--receive-buffer", str(args.receive_buffer)]
        if args.established_interval is not None:
            extra += ["--established-interval", args.established_interval]
        agent = Agent(
            pair.server, args.interface, Path(tmp) / "state", Path(tmp) / "agent.log", extra
        )
        try:
            row, _ = measure(agent, "idle 3 s", lambda: time.sleep(3))
            rows.append(row)
            row, note = measure(agent, f"bulk TCP {args.bulk_seconds:g} s",
                                lambda: bulk(pair, args.bulk_seconds))  # fmt: skip
            rows.append(replace(row, note=str(note)))
            server = str(pair.server.ipv4)
            for rate, port in zip(rates, ports, strict=True):
                row, result = measure(
                    agent,
                    f"{rate:,} conn/s target",
                    lambda r=rate, p=port: storm(pair, r, p, args.rate_seconds, args.kernel_ports),
                )
                assert isinstance(result, Storm)
                note = storm_note(result, agent.connections(server, port))
                rows.append(replace(row, note=note))
        finally:
            agent.stop()
            acceptor.kill()
            acceptor.wait()
    label = ", recv()" if args.no_ring else ""
    if args.kernel_ports:
        label += ", kernel ports"
    if args.receive_buffer is not None:
        label += f", buffer {args.receive_buffer:,} B"
    if args.established_interval is not None:
        label += f", socket tables every {args.established_interval} s"
    table = render(rows, args.interface, label)
    print(table)
    if args.markdown is not None:
        args.markdown.write_text(table + "\n")
    return 0


def render(rows: list[Row], interface: str, label: str = "") -> str:
    lines = [
        f"| phase (agent on {interface}{label}) | seconds | agent CPU (% of one core) | passed the "
        "kernel filter | read by Python | kernel drops | notes |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r.phase} | {r.seconds:.1f} | {r.cpu_percent:.1f} | "
            f"{r.filter_passed:,} | {r.packets:,} | {r.kernel_drops:,} | {r.note} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
