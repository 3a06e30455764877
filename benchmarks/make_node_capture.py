"""Write a realistic node-like capture for the reader benchmark, plus its ground truth.

What `tcpdump -i any -w` writes on a Kubernetes node: Linux cooked v2 frames, pods on
10.244.0.0/16 (and some on fd00:10:244::/64), ~2,000 TCP connections with data segments,
some seen on two interfaces (the pod's veth and the node's eth0), some already running
when the capture starts, and DNS through CoreDNS: search-list misses (NXDOMAIN), CNAME
chains, A and AAAA answers. Bytes are packed with struct into one buffer, no scapy.

    python benchmarks/make_node_capture.py /tmp/node.pcap --packets 1000000

writes /tmp/node.pcap and /tmp/node.pcap.truth.json (every connection start and the
number of DNS responses carrying answers).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
import struct
from pathlib import Path

import numpy as np

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
DURATION = 600.0
COREDNS = ("10.244.0.2", "10.244.0.3")
SEARCH = ("default.svc.cluster.local", "svc.cluster.local", "cluster.local")
EXTERNAL = ("api.github.com", "sts.us-east-1.amazonaws.com", "storage.googleapis.com",
            "registry-1.docker.io", "hooks.slack.com", "pypi.org")
SERVER_PORTS = (80, 443, 5432, 6379, 8080, 9090, 3306, 8443)
# (kind, ifindex) of the two interfaces a pod-to-pod packet crosses on this node.
VETH, ETH0 = 7, 2


def _dns_name(name: str) -> bytes:
    out = b""
    for label in name.split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def dns_query(qid: int, name: str, qtype: int) -> bytes:
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + _dns_name(name) + struct.pack(
        ">HH", qtype, 1)


def dns_response(qid: int, name: str, qtype: int, rcode: int,
                 cnames: list[str], addresses: list[bytes]) -> bytes:
    question = _dns_name(name) + struct.pack(">HH", qtype, 1)
    answers = b""
    owner = name
    for target in cnames:
        rdata = _dns_name(target)
        answers += _dns_name(owner) + struct.pack(">HHIH", 5, 1, 30, len(rdata)) + rdata
        owner = target
    for addr in addresses:
        answers += _dns_name(owner) + struct.pack(">HHIH", qtype, 1, 30, len(addr)) + addr
    count = len(cnames) + len(addresses)
    authority = b""
    if rcode == 3:  # NXDOMAIN carries the zone's SOA
        soa = _dns_name("ns.dns.cluster.local") + _dns_name("hostmaster.cluster.local")
        soa += struct.pack(">IIIII", 1, 7200, 1800, 86400, 30)
        authority = _dns_name("cluster.local") + struct.pack(">HHIH", 6, 1, 30, len(soa)) + soa
    header = struct.pack(">HHHHHH", qid, 0x8180 | rcode, 1, count, 1 if authority else 0, 0)
    return header + question + answers + authority


class Writer:
    """Collects packets as (time, bytes) and writes them sorted by time."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.frames: list[bytes] = []

    def add(self, when: float, ifindex: int, src: str, dst: str, l4: bytes, proto: int,
            outgoing: bool) -> None:
        s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
        if s.version == 4:
            ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0x4000, 64, proto, 0,
                             s.packed, d.packed)
            ethertype = 0x0800
        else:
            ip = struct.pack(">IHBB16s16s", 0x60000000, len(l4), proto, 64, s.packed, d.packed)
            ethertype = 0x86DD
        sll2 = struct.pack(">HHIHBB8s", ethertype, 0, ifindex, 1, 4 if outgoing else 0, 6,
                           b"\x02\x42\xac\x11\x00\x02\x00\x00")
        self.times.append(when)
        self.frames.append(sll2 + ip + l4)

    def write(self, path: Path) -> int:
        order = np.argsort(np.array(self.times), kind="stable")
        out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 276))
        for i in order.tolist():
            when, frame = self.times[i], self.frames[i]
            sec = int(when)
            out += struct.pack("<IIII", sec, int((when - sec) * 1e6), len(frame), len(frame))
            out += frame
        path.write_bytes(out)
        return len(order)


def tcp(sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">HHIIBBHHH", sport, dport, seq, ack, 0x50, flags, 64240, 0, 0) + payload


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload


def pods(rng: random.Random, count: int) -> list[str]:
    return [f"10.244.{rng.randrange(0, 4)}.{rng.randrange(4, 250)}" for _ in range(count)]


def generate(packets: int, seed: int) -> tuple[Writer, dict[str, object]]:
    rng = random.Random(seed)
    w = Writer()
    clients = pods(rng, 120)
    servers = pods(rng, 40)
    v6_clients = [f"fd00:10:244::{i:x}" for i in range(10, 40)]
    v6_servers = [f"fd00:10:244::{i:x}" for i in range(100, 110)]
    truth_conns: list[dict[str, object]] = []
    used_ports: set[tuple[str, int]] = set()

    def ephemeral(ip: str) -> int:
        while True:
            port = rng.randrange(32768, 61000)
            if (ip, port) not in used_ports:
                used_ports.add((ip, port))
                return port

    # DNS first: it sets how many packets the TCP connections get.
    dns_lookups = max(packets // 40, 10)
    dns_answers = 0
    for _ in range(dns_lookups):
        client = rng.choice(clients)
        server = rng.choice(COREDNS)
        when = START + rng.random() * DURATION
        port = ephemeral(client)
        if rng.random() < 0.6:
            base = rng.choice(EXTERNAL)
            names = [f"{base}.{s}" for s in SEARCH] + [base]  # ndots:5 misses, then a hit
        else:
            svc = f"svc{rng.randrange(40)}.default.svc.cluster.local"
            names = [svc]
        qtype = 28 if rng.random() < 0.2 else 1
        for k, name in enumerate(names):
            qid = rng.randrange(65536)
            hit = k == len(names) - 1
            t = when + k * 0.002
            w.add(t, VETH, client, server, udp(port, 53, dns_query(qid, name, qtype)), 17, False)
            if hit:
                size = 16 if qtype == 28 else 4
                addrs = [rng.randbytes(size) for _ in range(rng.randrange(1, 4))]
                chain = [f"edge{j}.{name}" for j in range(rng.randrange(0, 3))]
                body = dns_response(qid, name, qtype, 0, chain, addrs)
                dns_answers += 1
            else:
                body = dns_response(qid, name, qtype, 3, [], [])
            w.add(t + 0.0005, VETH, server, client, udp(53, port, body), 17, True)
        truth_conns.append({"client": client, "client_port": port, "server": server,
                            "server_port": 53, "protocol": "UDP", "evidence": "udp-first"})
    remaining = packets - len(w.frames)
    conns = 2000
    per_conn = max(remaining // conns, 8)
    for c in range(conns):
        v6 = c % 20 == 0
        client = rng.choice(v6_clients if v6 else clients)
        server = rng.choice(v6_servers if v6 else servers)
        sport, dport = ephemeral(client), rng.choice(SERVER_PORTS)
        mid = c % 25 == 1  # already open when the capture started: no SYN
        twice = c % 3 == 0  # crosses the pod's veth and eth0: every packet seen twice
        start = START + rng.random() * DURATION * 0.9
        budget = per_conn // (2 if twice else 1)
        ifaces = (VETH, ETH0) if twice else (VETH,)
        seq_c, seq_s = rng.getrandbits(32), rng.getrandbits(32)
        t = start
        steps: list[tuple[bool, int, bytes]] = []
        if not mid:
            steps += [(True, 0x02, b""), (False, 0x12, b""), (True, 0x10, b"")]
        for _ in range(max(budget - len(steps) - 2, 1)):
            from_client = rng.random() < 0.5
            size = rng.choice((0, 0, 64, 180, 520, 1200))
            steps.append((from_client, 0x18 if size else 0x10, b"\x17" * size))
        steps += [(True, 0x11, b""), (False, 0x10, b"")]
        for from_client, flags, payload in steps:
            t += rng.random() * 0.004
            for k, iface in enumerate(ifaces):
                if from_client:
                    seg = tcp(sport, dport, seq_c, seq_s, flags, payload)
                    w.add(t + k * 1e-5, iface, client, server, seg, 6, k == 0)
                else:
                    seg = tcp(dport, sport, seq_s, seq_c, flags, payload)
                    w.add(t + k * 1e-5, iface, server, client, seg, 6, k == 1)
            if from_client:
                seq_c = (seq_c + len(payload) + (flags & 0x03 != 0)) & 0xFFFFFFFF
            else:
                seq_s = (seq_s + len(payload) + (flags & 0x03 != 0)) & 0xFFFFFFFF
        truth_conns.append({
            "client": client, "client_port": sport, "server": server, "server_port": dport,
            "protocol": "TCP", "evidence": "inferred" if mid else "syn",
        })
    _fill(w, rng, packets, truth_conns)
    truth = {"connections": truth_conns, "dns_responses_with_answers": dns_answers,
             "tcp_syn_connections": sum(1 for c in truth_conns if c["evidence"] == "syn")}
    return w, truth


def _fill(w: Writer, rng: random.Random, packets: int, truth: list[dict[str, object]]) -> None:
    """Top up to exactly `packets` with one long-lived connection open before the capture."""
    missing = packets - len(w.frames)
    if missing <= 0:
        return
    client, server = "10.244.3.3", "10.244.2.2"
    for k in range(missing):
        when = START + (k + 0.5) * DURATION / missing
        if k % 2:
            w.add(when, VETH, server, client, tcp(6379, 40000, k, k, 0x18, b"+OK\r\n"), 6, True)
        else:
            w.add(when, VETH, client, server, tcp(40000, 6379, k, k, 0x18, b"PING\r\n"), 6, False)
    truth.append({"client": client, "client_port": 40000, "server": server,
                  "server_port": 6379, "protocol": "TCP", "evidence": "inferred"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    writer, truth = generate(args.packets, args.seed)
    written = writer.write(args.out)
    truth["packets"] = written
    Path(f"{args.out}.truth.json").write_text(json.dumps(truth, indent=1, sort_keys=True))
    print(f"{args.out}: {written} packets, {len(truth['connections'])} connections "  # type: ignore[arg-type]
          f"({truth['tcp_syn_connections']} with SYN), "
          f"{truth['dns_responses_with_answers']} DNS responses with answers")


if __name__ == "__main__":
    main()
