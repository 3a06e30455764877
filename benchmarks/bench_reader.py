"""Time the capture reader against tshark on the same job, in one run.

    python benchmarks/make_node_capture.py /tmp/node.pcap
    python benchmarks/bench_reader.py /tmp/node.pcap

Each contender runs in its own child process so that its peak memory (ru_maxrss) is its
own: (a) `CaptureFile` over the file, counting connection starts and DNS responses with
answers; `netpol-discover flows` end to end when that command exists; (b) tshark with TCP
analysis off, printing the same things (pure SYNs, DNS responses with answers). Then every
connection in the generator's ground truth (FILE.truth.json) must have been found.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TSHARK_FILTER = (
    "(tcp.flags.syn == 1 && tcp.flags.ack == 0) || "
    "(dns.flags.response == 1 && dns.count.answers > 0)"
)
TSHARK_FIELDS = ("frame.time_epoch", "ip.src", "ipv6.src", "tcp.srcport", "udp.srcport",
                 "ip.dst", "ipv6.dst", "tcp.dstport", "udp.dstport", "tcp.flags.syn",
                 "dns.flags.response")


def tshark_command(path: Path) -> list[str]:
    cmd = ["tshark", "-n", "-r", str(path),
           "-o", "tcp.analyze_sequence_numbers:FALSE",
           "-o", "tcp.desegment_tcp_streams:FALSE",
           "-Y", TSHARK_FILTER, "-T", "fields", "-E", "separator=\t"]
    for field in TSHARK_FIELDS:
        cmd += ["-e", field]
    return cmd


def child_reader(path: Path) -> dict[str, object]:
    sys.path.insert(0, str(REPO))
    from discover.flows.events import ConnectionOpen
    from discover.reading.capture_file import CaptureFile
    from discover.reading.packets import DnsPayload

    started, cpu_started = time.perf_counter(), time.process_time()
    capture = CaptureFile(path)
    opens: list[list[object]] = []
    dns = 0
    for event in capture:
        if isinstance(event, ConnectionOpen):
            opens.append([str(event.client_ip), event.client_port, str(event.server_ip),
                          event.server_port, event.protocol.value, event.evidence.value])
        elif isinstance(event, DnsPayload):
            dns += 1
    elapsed = time.perf_counter() - started
    return {"seconds": elapsed, "cpu_seconds": time.process_time() - cpu_started,
            "packets": capture.records, "opens": opens, "dns": dns,
            "warnings": capture.warnings}


def child_tshark(path: Path) -> dict[str, object]:
    started = time.perf_counter()
    out = subprocess.run(tshark_command(path), capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    syns: set[tuple[str, str, str, str]] = set()
    dns = 0
    for line in out.stdout.splitlines():
        f = line.split("\t")
        src, dst = f[1] or f[2], f[5] or f[6]
        if f[10] in ("1", "True"):
            dns += 1
        elif f[9] in ("1", "True"):
            syns.add((src, f[3], dst, f[7]))  # a SYN seen on two interfaces counts once
    return {"seconds": elapsed, "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "syns": len(syns), "dns": dns}


def child_flows(path: Path) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "discover", "flows", str(path), "-o", f"{tmp}/flows.csv"],
            capture_output=True, text=True, cwd=REPO,
        )
        elapsed = time.perf_counter() - started
        rows = 0
        if done.returncode == 0 and Path(f"{tmp}/flows.csv").exists():
            rows = len(Path(f"{tmp}/flows.csv").read_text().splitlines()) - 1
    return {"seconds": elapsed, "returncode": done.returncode, "rows": rows,
            "stderr": done.stderr[-500:]}


CHILDREN = {"reader": child_reader, "tshark": child_tshark, "flows": child_flows}


def run_child(kind: str, path: Path) -> dict[str, object]:
    """Run one contender in a fresh interpreter; its result plus its peak memory."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(path)],
        capture_output=True, text=True, check=True,
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def main() -> int:
    parser = argparse.ArgumentParser(description="capture reader vs tshark")
    parser.add_argument("capture", type=Path)
    parser.add_argument("--child", choices=sorted(CHILDREN))
    parser.add_argument("--repeat", type=int, default=3, help="reader runs (best is shown)")
    args = parser.parse_args()
    if args.child:
        result = CHILDREN[args.child](args.capture)
        result["peak_mb"] = max(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
        ) / 1024
        print(json.dumps(result))
        return 0

    truth = json.loads(Path(f"{args.capture}.truth.json").read_text())
    packets = int(truth["packets"])
    runs = [run_child("reader", args.capture) for _ in range(args.repeat)]
    reader = min(runs, key=lambda r: float(r["seconds"]))  # type: ignore[arg-type]
    rate = packets / float(reader["seconds"])  # type: ignore[arg-type]
    opens = reader["opens"]
    assert isinstance(opens, list)
    print(f"capture: {args.capture} ({packets} packets, "
          f"{args.capture.stat().st_size / 1e6:.0f} MB)")
    if len(runs) > 1:
        shown = ", ".join(f"{float(r['seconds']):.2f}" for r in runs)  # type: ignore[arg-type]
        print(f"reader runs (s): {shown}; the best one below (the machine is shared)")
    print(f"reader : {reader['seconds']:.2f} s ({reader['cpu_seconds']:.2f} s CPU), "
          f"{rate:,.0f} packets/s, "
          f"peak {reader['peak_mb']:.0f} MB, {len(opens)} connection starts, "
          f"{reader['dns']} DNS responses with answers")

    found = {(o[0], o[1], o[2], o[3], o[4]): o[5] for o in opens}
    missing = [c for c in truth["connections"]
               if (c["client"], c["client_port"], c["server"], c["server_port"],
                   c["protocol"]) not in found]
    wrong = [c for c in truth["connections"] if found.get(
        (c["client"], c["client_port"], c["server"], c["server_port"], c["protocol"]),
        c["evidence"]) != c["evidence"]]
    extra = len(opens) - len(truth["connections"])
    print(f"truth  : {len(truth['connections'])} connections, missing {len(missing)}, "
          f"wrong evidence {len(wrong)}, extra {extra}; DNS answers expected "
          f"{truth['dns_responses_with_answers']}, found {reader['dns']}")

    ok = not missing and not wrong and extra == 0 and (
        reader["dns"] == truth["dns_responses_with_answers"])
    if (REPO / "discover" / "commands" / "flows.py").exists():
        flows = run_child("flows", args.capture)
        flow_rate = packets / float(flows["seconds"])  # type: ignore[arg-type]
        print(f"flows  : `netpol-discover flows` {flows['seconds']:.2f} s, "
              f"{flow_rate:,.0f} packets/s, peak {flows['peak_mb']:.0f} MB, "
              f"exit {flows['returncode']}, {flows['rows']} rows")
    else:
        print("flows  : `netpol-discover flows` not in this checkout yet")

    if shutil.which("tshark"):
        shark = run_child("tshark", args.capture)
        shark_rate = packets / float(shark["seconds"])  # type: ignore[arg-type]
        print(f"tshark : {shark['seconds']:.2f} s ({shark['cpu_seconds']:.2f} s CPU), "
              f"{shark_rate:,.0f} packets/s, "
              f"peak {shark['peak_mb']:.0f} MB, {shark['syns']} distinct SYNs, "
              f"{shark['dns']} DNS responses with answers")
        cpu_ratio = float(shark["cpu_seconds"]) / float(reader["cpu_seconds"])  # type: ignore[arg-type]
        print(f"ratio  : reader is {rate / shark_rate:.1f}x tshark by wall time, "
              f"{cpu_ratio:.1f}x by CPU time")
        print("tshark command: " + " ".join(
            f"'{a}'" if " " in a else a for a in tshark_command(args.capture)))
    print("ground truth: " + ("all connection starts and DNS answers found" if ok else "MISMATCH"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
