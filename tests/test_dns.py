"""DnsDecoder: real wire bytes in, DnsAnswer (or a counted skip) out, never an exception."""

from __future__ import annotations

import json
import re
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from discover.flows.events import DnsAnswer, DnsRecordAddress, IPAddress, Protocol
from discover.reading.dns_wire import DnsDecoder, ParsedResponse, fast_parse, parse_response

CLIENT = IPv4Address("10.244.0.9")
# Counters beside the one outcome each response gets
SIDE_COUNTERS = ("parsed", "responses", "dnspython", "capped", "records_dropped")
SERVER = IPv4Address("10.244.0.2")


@dataclass(frozen=True, slots=True)
class Payload:
    """Shaped like discover.reading.packets.DnsPayload, as far as DnsDecoder is concerned."""

    payload: bytes
    time: float = 1_600_000_000.0
    client_ip: IPAddress = CLIENT
    server_ip: IPAddress = SERVER
    client_port: int = 40000
    server_port: int = 53
    transport: Protocol = Protocol.UDP


def response(
    qname: str,
    answers: list[tuple[str, str, int, list[str]]],
    *,
    rdtype: str = "A",
    message_id: int = 4660,
    rcode: int = dns.rcode.NOERROR,
) -> bytes:
    """Wire bytes of a response to `qname`; answers are (name, type, ttl, [rdata...])."""
    query = dns.message.make_query(qname, rdtype)
    query.id = message_id
    reply = dns.message.make_response(query)
    reply.set_rcode(rcode)
    for name, rtype, ttl, values in answers:
        reply.answer.append(dns.rrset.from_text_list(name, ttl, "IN", rtype, values))
    return reply.to_wire()


def test_a_answer_becomes_a_dns_answer_for_the_client() -> None:
    decoder = DnsDecoder()
    wire = response("api.example.com.", [("api.example.com.", "A", 300, ["192.0.2.10"])])
    answer = decoder.decode(Payload(wire, time=12.5, transport=Protocol.TCP))
    assert answer == DnsAnswer(
        time=12.5,
        client_ip=CLIENT,
        server_ip=SERVER,
        query_name="api.example.com",
        cname_chain=(),
        addresses=(DnsRecordAddress(IPv4Address("192.0.2.10"), 300),),
        transport=Protocol.TCP,
    )
    assert decoder.counters["answers"] == 1


def test_cname_chain_is_followed_in_order_even_when_listed_out_of_order() -> None:
    wire = response(
        "WWW.Example.COM.",
        [
            # Deliberately not in chain order: the decoder must follow, not list.
            ("edge.cdn.example.net.", "CNAME", 60, ["host.cdn.example.net."]),
            ("host.cdn.example.net.", "A", 20, ["198.51.100.7", "198.51.100.8"]),
            ("www.example.com.", "CNAME", 300, ["edge.cdn.example.net."]),
            ("unrelated.example.org.", "A", 20, ["203.0.113.99"]),
        ],
    )
    parsed = parse_response(wire)
    assert not isinstance(parsed, str)
    assert parsed.query_name == "www.example.com"
    assert parsed.cname_chain == ("edge.cdn.example.net", "host.cdn.example.net")
    assert sorted(str(a.address) for a in parsed.addresses) == ["198.51.100.7", "198.51.100.8"]
    assert {a.ttl for a in parsed.addresses} == {20}


def test_aaaa_answers_and_duplicate_addresses() -> None:
    wire = response(
        "v6.example.com.",
        [
            ("v6.example.com.", "AAAA", 30, ["2001:db8::1"]),
            ("v6.example.com.", "A", 30, ["192.0.2.1"]),
        ],
        rdtype="AAAA",
    )
    # A second, separately encoded copy of an address must not give it twice.
    message = dns.message.from_wire(wire)
    message.answer.append(dns.rrset.from_text("v6.example.com.", 99, "IN", "AAAA", "2001:db8::1"))
    parsed = parse_response(message.to_wire())
    assert not isinstance(parsed, str)
    addresses = [a.address for a in parsed.addresses]
    assert len(addresses) == 2
    assert set(addresses) == {IPv6Address("2001:db8::1"), IPv4Address("192.0.2.1")}


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (response("gone.example.com.", [], rcode=dns.rcode.NXDOMAIN), "no_addresses"),
        (
            response("mx.example.com.", [("mx.example.com.", "MX", 5, ["10 m.example.com."])]),
            "no_addresses",
        ),
        (
            response(
                "loop.example.com.",
                [
                    ("loop.example.com.", "CNAME", 5, ["b.example.com."]),
                    ("b.example.com.", "CNAME", 5, ["loop.example.com."]),
                ],
            ),
            "no_addresses",
        ),
        (dns.message.make_query("q.example.com.", "A").to_wire(), "not_response"),
        (b"", "malformed"),
        (b"\x00" * 11, "malformed"),
        (
            response("cut.example.com.", [("cut.example.com.", "A", 5, ["192.0.2.1"])])[:-3],
            "malformed",
        ),
        # Header with QR set and one question whose name points at itself: a compression loop.
        (struct.pack("!HHHHHH", 1, 0x8180, 1, 1, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01", "malformed"),
    ],
    ids=[
        "nxdomain",
        "mx-only",
        "cname-loop",
        "query",
        "empty",
        "short-header",
        "truncated",
        "compression-loop",
    ],
)
def test_payloads_without_addresses_are_counted_and_skipped(wire: bytes, reason: str) -> None:
    decoder = DnsDecoder()
    assert decoder.decode(Payload(wire)) is None
    assert decoder.counters[reason] == 1
    assert decoder.counters["answers"] == 0


def test_identical_answers_with_other_ids_are_parsed_once() -> None:
    decoder = DnsDecoder()
    answers = [("db.example.com.", "A", 30, ["192.0.2.5"])]
    first = decoder.decode(Payload(response("db.example.com.", answers, message_id=1), time=1.0))
    second = decoder.decode(Payload(response("db.example.com.", answers, message_id=2), time=2.0))
    assert first is not None and second is not None
    assert (first.time, second.time) == (1.0, 2.0)
    assert first.addresses == second.addresses
    assert decoder.counters["parsed"] == 1
    assert decoder.counters["cache_hits"] == 1
    # Skips are cached too, and still counted every time.
    bad = Payload(b"\xff" * 20)
    decoder.decode(bad)
    decoder.decode(bad)
    assert decoder.counters["malformed"] == 2
    assert decoder.counters["parsed"] == 2


def test_cache_is_bounded_and_evicts_least_recently_used() -> None:
    decoder = DnsDecoder(cache_size=2)
    wires = [
        response(f"n{i}.example.com.", [(f"n{i}.example.com.", "A", 5, [f"192.0.2.{i}"])])
        for i in range(3)
    ]
    for wire in wires:  # n0, n1, n2: n0 falls out
        decoder.decode(Payload(wire))
    decoder.decode(Payload(wires[2]))  # still cached
    decoder.decode(Payload(wires[0]))  # parsed again
    assert decoder.counters["parsed"] == 4
    assert decoder.counters["cache_hits"] == 1
    assert len(decoder._cache) == 2


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_any_bytes_give_none_or_an_answer(data: bytes) -> None:
    decoder = DnsDecoder()
    result = decoder.decode(Payload(data))
    assert result is None or isinstance(result, DnsAnswer)
    assert (
        sum(v for k, v in decoder.counters.items() if k not in SIDE_COUNTERS) == 1
    )


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=60), st.integers(min_value=12, max_value=200))
def test_corrupted_real_answers_never_raise(noise: bytes, position: int) -> None:
    wire = response(
        "a.example.com.",
        [
            ("a.example.com.", "CNAME", 5, ["b.example.com."]),
            ("b.example.com.", "A", 5, ["192.0.2.1"]),
            ("b.example.com.", "AAAA", 5, ["2001:db8::1"]),
        ],
    )
    corrupted = wire[:position] + noise + wire[position + len(noise) :]
    result = DnsDecoder().decode(Payload(corrupted))
    assert result is None or isinstance(result, DnsAnswer)


# -- public captures --------------------------------------------------------------------


def test_otterize_coredns_answers(corpora: Path) -> None:
    """Real in-cluster frames with another project's expected name -> IP for the client."""
    cases = json.loads((corpora / "k8s-traffic/otterize-network-mapper/cases.json").read_text())
    dns_cases = [c for c in cases if c["name"].startswith("dns_")]
    assert len(dns_cases) == 2
    for case in dns_cases:
        frame = bytes.fromhex(case["hex"])
        ip_header = frame[14:]
        header_length = (ip_header[0] & 0x0F) * 4
        destination = ip_address(ip_header[16:20])
        payload = ip_header[header_length + 8 :]
        answer = DnsDecoder().decode(Payload(payload, client_ip=destination))
        expected = case["expected"]
        assert answer is not None, case["name"]
        assert str(answer.client_ip) == expected["SrcIp"]
        assert answer.query_name == expected["Destination"]
        assert [str(a.address) for a in answer.addresses] == [expected["DestinationIP"]]
        assert answer.addresses[0].ttl == expected["TTL"]
    cname = DnsDecoder().decode(Payload(bytes.fromhex(dns_cases[1]["hex"])[42:]))
    assert cname is not None
    assert cname.cname_chain == ("internal.otterize-dev.com",)


def _dns_payloads(path: Path) -> dict[int, bytes]:
    """Packet number (1-based) -> DNS message, for packets from port 53/8053."""
    from scapy.layers.inet import TCP, UDP
    from scapy.utils import rdpcap

    payloads = {}
    for number, packet in enumerate(rdpcap(str(path)), 1):
        layer = packet.getlayer(UDP) or packet.getlayer(TCP)
        if layer is None or layer.sport not in (53, 8053):
            continue
        data = bytes(layer.payload)
        if isinstance(layer, TCP):
            if len(data) < 14:
                continue  # a bare ACK (plus Ethernet padding)
            data = data[2:]  # DNS over TCP: drop the 2-byte length prefix
        payloads[number] = data
    return payloads


def _expected_addresses(out_text: str) -> dict[int, set[str]]:
    """Packet number -> A/AAAA addresses of the answer section, from tcpdump's decode."""
    expected = {}
    for block in re.split(r"\n(?=\s+\d+\s{2})", out_text.strip()):
        number = int(block.split()[0])
        text = " ".join(block.split())
        counts = re.search(r" (\d+)/(\d+)/(\d+) ", text)
        if not re.search(r"\.(53|8053) > ", text) or counts is None:
            continue
        answer_section = re.split(r" ns: | ar: | \(\d+\)$", text[counts.end() :])[0]
        found = re.findall(r"\bA (\d+\.\d+\.\d+\.\d+)", answer_section)
        found += re.findall(r"\bAAAA ([0-9a-f:]+)", answer_section)
        expected[number] = set(found)
    return expected


@pytest.mark.parametrize(
    ("pcap", "out"),
    [
        ("dns_udp.pcap", "dns_udp.out"),
        ("dns_tcp.pcap", "dns_tcp.out"),
        ("dns_udp_8053.pcap", "dns_udp_8053-T.out"),
        ("dns_tcp_8053.pcap", "dns_tcp_8053-T.out"),
        ("edns-opts.pcap", "edns-opts.out"),
        ("dnssec.pcap", "dnssec-vv.out"),
        ("dns-uri.pcap", "dns-uri.out"),
    ],
)
def test_answers_match_tcpdump_decodes(corpora: Path, pcap: str, out: str) -> None:
    root = corpora / "tcpdump-tests"
    payloads = _dns_payloads(root / "pcaps" / pcap)
    expected = _expected_addresses((root / "expected_out" / out).read_text())
    assert expected, f"no responses found in {out}"
    decoder = DnsDecoder()
    for number, addresses in expected.items():
        answer = decoder.decode(Payload(payloads[number]))
        got = set() if answer is None else {str(a.address) for a in answer.addresses}
        assert got == addresses, f"{pcap} packet {number}"


def test_every_dns_capture_in_the_tcpdump_corpus_decodes_without_raising(corpora: Path) -> None:
    root = corpora / "tcpdump-tests"
    names = (root / "DNS_FILES.txt").read_text().split()
    decoder = DnsDecoder()
    seen = 0
    for name in names:
        try:
            payloads = _dns_payloads(root / "pcaps" / name)
        except Exception:  # noqa: BLE001 - scapy's own limits on broken files aren't ours
            continue
        for data in payloads.values():
            seen += 1
            result = decoder.decode(Payload(data))
            assert result is None or isinstance(result, DnsAnswer)
    assert seen >= 30
    # dns-badlabel and dns_fwdptr are crafted to break label parsing.
    assert decoder.counters["malformed"] >= 2
    assert decoder.counters["answers"] >= 20


# -- the fast path agrees with dnspython ---------------------------------------------------

label = st.text(alphabet="abcXYZ09-_", min_size=1, max_size=8)
zone = st.sampled_from(["example.com.", "cdn.example.net.", "svc.cluster.local."])
name_strategy = st.builds(lambda first, rest: f"{first}.{rest}", label, zone)


@st.composite
def dns_messages(draw: st.DrawFn) -> bytes:
    """Responses as dnspython writes them: compressed, in any order, with extra sections."""
    names = draw(st.lists(name_strategy, min_size=1, max_size=4, unique=True))
    query = dns.message.make_query(
        names[0], draw(st.sampled_from(["A", "AAAA"])), use_edns=draw(st.booleans())
    )
    query.id = draw(st.integers(0, 65535))
    reply = dns.message.make_response(query)
    for _ in range(draw(st.integers(1, 6))):
        owner = draw(st.sampled_from(names))
        kind = draw(st.sampled_from(["A", "AAAA", "CNAME"]))
        ttl = draw(st.sampled_from([0, 5, 300, 2**31 - 1, 2**31, 2**32 - 1]))
        if kind == "A":
            value = draw(st.sampled_from(["192.0.2.1", "192.0.2.2", "198.51.100.3"]))
        elif kind == "AAAA":
            value = draw(st.sampled_from(["2001:db8::1", "2001:db8::2"]))
        else:
            value = draw(st.sampled_from(names))
        reply.answer.append(dns.rrset.from_text(owner, ttl, "IN", kind, value))
    if draw(st.booleans()):
        reply.authority.append(
            dns.rrset.from_text(
                "example.com.", 60, "IN", "SOA", "ns.example.com. admin.example.com. 1 2 3 4 5"
            )
        )
    return reply.to_wire()


@settings(max_examples=400, deadline=None)
@given(dns_messages())
def test_fast_path_agrees_with_dnspython_on_well_formed_answers(wire: bytes) -> None:
    fast = fast_parse(wire)
    # CNAME sets with two targets are the one shape of these the fast path hands over.
    assert fast is not None or wire.count(b"\x00\x05\x00\x01") > 1
    if fast is not None:
        assert fast == parse_response(wire)


@settings(max_examples=400, deadline=None)
@given(dns_messages(), st.binary(min_size=1, max_size=4), st.integers(0, 120))
def test_fast_path_never_contradicts_dnspython_on_damaged_answers(
    wire: bytes, noise: bytes, position: int
) -> None:
    damaged = wire[:position] + noise + wire[position + len(noise) :]
    fast = fast_parse(damaged)
    slow = parse_response(damaged)
    if fast is not None and not isinstance(slow, str):
        assert fast == slow
    if isinstance(fast, ParsedResponse):
        # When dnspython can't read it, it is only for a section the fast path never reads.
        assert slow == fast or slow == "malformed"


@pytest.mark.parametrize(
    "wire",
    [
        # A pointer forward (to the answer's own name) instead of backward.
        struct.pack("!HHHHHH", 1, 0x8180, 1, 1, 0, 0)
        + b"\x01a\x00\x00\x01\x00\x01"
        + b"\xc0\x1d\x00\x01\x00\x01\x00\x00\x00\x05\x00\x04\xc0\x00\x02\x01"
        + b"\x01b\x00",
        # A label with a space: dnspython escapes it ("a\\032b").
        response("a b.example.com.", [("a b.example.com.", "A", 5, ["192.0.2.1"])]),
        # An MX record in the answer: not a shape the fast path reads.
        response("m.example.com.", [("m.example.com.", "MX", 5, ["10 x.example.com."])]),
        # Truncated (TC) answers.
        bytes([0, 1, 0x83, 0x80])
        + response("t.example.com.", [("t.example.com.", "A", 5, ["192.0.2.1"])])[4:],
    ],
    ids=["forward-pointer", "escaped-label", "mx", "tc-bit"],
)
def test_unusual_shapes_go_to_dnspython(wire: bytes) -> None:
    assert fast_parse(wire) is None
    decoder = DnsDecoder()
    decoder.decode(Payload(wire))
    assert decoder.counters["dnspython"] == 1


def test_escaped_names_come_out_as_dnspython_writes_them() -> None:
    wire = response("a b.example.com.", [("a b.example.com.", "A", 5, ["192.0.2.1"])])
    answer = DnsDecoder().decode(Payload(wire))
    assert answer is not None
    assert answer.query_name == "a\\032b.example.com"


# -- a real DNS server's answers -------------------------------------------------------

DNS_DATA = Path(__file__).parent / "data" / "dns"
CHAIN = ("web.example.org", "edge.example.net")
DNSMASQ_ARGS = [
    "--no-resolv",
    "--no-hosts",
    "--conf-file=/dev/null",
    "--cname=www.example.com,web.example.org",
    "--cname=web.example.org,edge.example.net",
    "--host-record=edge.example.net,192.0.2.10,2001:db8::10",
]


@pytest.mark.parametrize(
    ("fixture", "address"),
    [("dnsmasq-cname-chain-a.bin", "192.0.2.10"), ("dnsmasq-cname-chain-aaaa.bin", "2001:db8::10")],
)
def test_dnsmasq_answers_with_a_cname_chain(fixture: str, address: str) -> None:
    wire = (DNS_DATA / fixture).read_bytes()
    answer = DnsDecoder().decode(Payload(wire))
    assert answer is not None
    assert answer.query_name == "www.example.com"  # asked as WWW.example.com
    assert answer.cname_chain == CHAIN
    assert answer.addresses == (DnsRecordAddress(ip_address(address), 0),)
    assert fast_parse(wire) == parse_response(wire)


@pytest.fixture
def dnsmasq_port() -> Iterator[int]:
    """A dnsmasq on 127.0.0.1 serving the chain above, on a free port."""
    binary = shutil.which("dnsmasq")
    if binary is None:
        pytest.skip("dnsmasq is not installed")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free for TCP; dnsmasq fails loudly if not for UDP
    server = subprocess.Popen(
        [
            binary,
            "--keep-in-foreground",
            f"--port={port}",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--user=root",
            *DNSMASQ_ARGS,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"dnsmasq did not start: {server.stderr.read()!r}")  # type: ignore[union-attr]
                time.sleep(0.05)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=10)
        if server.stderr is not None:
            server.stderr.close()


def _ask_udp(port: int, name: str, rdtype: str, message_id: int) -> bytes:
    query = dns.message.make_query(name, rdtype)
    query.id = message_id
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.settimeout(5)
        udp.sendto(query.to_wire(), ("127.0.0.1", port))
        return udp.recv(65535)


def _ask_tcp(port: int, name: str, rdtype: str) -> bytes:
    wire = dns.message.make_query(name, rdtype).to_wire()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as tcp:
        tcp.sendall(struct.pack("!H", len(wire)) + wire)
        data = b""
        while len(data) < 2 or len(data) < 2 + struct.unpack("!H", data[:2])[0]:
            chunk = tcp.recv(65535)
            if not chunk:
                break
            data += chunk
    return data[2:]  # what DnsPayload carries for TCP: no length prefix


def test_live_dnsmasq_answers_over_udp_and_tcp(dnsmasq_port: int) -> None:
    decoder = DnsDecoder()
    udp = decoder.decode(Payload(_ask_udp(dnsmasq_port, "www.example.com", "A", 1)))
    again = decoder.decode(Payload(_ask_udp(dnsmasq_port, "www.example.com", "A", 2)))
    tcp = decoder.decode(
        Payload(_ask_tcp(dnsmasq_port, "WWW.EXAMPLE.COM", "AAAA"), transport=Protocol.TCP)
    )
    assert udp is not None and again is not None and tcp is not None
    assert udp.cname_chain == tcp.cname_chain == CHAIN
    assert [str(a.address) for a in udp.addresses] == ["192.0.2.10"]
    assert [str(a.address) for a in tcp.addresses] == ["2001:db8::10"]
    assert tcp.transport is Protocol.TCP
    assert decoder.counters["cache_hits"] == 1  # the second UDP answer differs only by ID
    missing = decoder.decode(Payload(_ask_udp(dnsmasq_port, "nothing.example.com", "A", 3)))
    assert missing is None
