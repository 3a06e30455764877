"""DNS responses to `DnsAnswer` records: which addresses a client was told a name has.

dnspython is the reference parser (it copes with compression, EDNS and odd record types),
but it costs ~115 µs a response. Two things keep that off the hot path:

- the same answer arrives over and over (every pod asks for the same few names; answers
  differ only in their 2-byte ID), so each distinct payload, ID aside, is parsed once and
  the outcome kept in a bounded LRU cache;
- `fast_parse` below reads the common shape itself (one question; an answer section of
  A, AAAA and CNAME records in class IN; names of letters, digits, '-' and '_'), ~10x
  faster, following dnspython's rules for compression pointers, TTLs and record sets.
  Anything else returns None and goes to dnspython. Tests check that both agree.

Nothing here raises on bad bytes: a payload that can't be read is counted and skipped.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from struct import unpack_from
from typing import Any
from typing import Protocol as TypingProtocol

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype

from discover.flows.events import DnsAnswer, DnsRecordAddress, IPAddress, Protocol

# A CNAME chain longer than this is a loop or an attack; resolvers give up at 8-16 too.
MAX_CNAME_CHAIN = 16
# Payloads longer than this (large TCP answers) are parsed but not cached, so that the
# cache stays within ~DEFAULT_CACHE_SIZE * 4 KiB of memory.
MAX_CACHED_PAYLOAD = 4096
DEFAULT_CACHE_SIZE = 4096
# Answer records read from one response; the rest are dropped (counted, and warned about by
# the caller). A UDP answer within EDNS's 4096 bytes holds at most 254 A records: more come
# only over TCP, up to ~4,000 in 64 KB. Every record becomes a DNS row that each later stage
# handles, so 500 responses of 4,000 answers (32 MB) took analyze 100 s and 3.1 GB; capped,
# the same capture is read in a tenth of that.
MAX_ANSWER_RECORDS = 256

COUNTER_NAMES = (
    "responses",  # payloads offered to decode()
    "parsed",  # payloads actually parsed (cache misses)
    "dnspython",  # of those, the ones the fast path left to dnspython
    "cache_hits",
    "answers",  # DnsAnswer records returned
    "malformed",  # dnspython could not read the payload
    "not_response",  # QR bit clear: a query, not an answer
    "no_question",  # no (or more than one) question, or a question for the root
    "no_addresses",  # readable, but no A/AAAA for the query name (NXDOMAIN, SOA, MX...)
    "capped",  # responses with more than MAX_ANSWER_RECORDS answer records
    "records_dropped",  # the answer records of those beyond the cap
)


class DnsPayloadLike(TypingProtocol):
    """What `decode` needs from `discover.reading.packets.DnsPayload` (a server-to-client
    message)."""

    @property
    def time(self) -> float: ...
    @property
    def client_ip(self) -> IPAddress: ...
    @property
    def server_ip(self) -> IPAddress: ...
    @property
    def transport(self) -> Protocol: ...
    @property
    def payload(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class ParsedResponse:
    """The part of a response that doesn't depend on who received it or when."""

    query_name: str
    cname_chain: tuple[str, ...]
    addresses: tuple[DnsRecordAddress, ...]


# A cached outcome: the parsed response, or the name of the counter that says why not.
_Outcome = ParsedResponse | str


class DnsDecoder:
    """Turns DNS response payloads into `DnsAnswer`s, parsing each distinct one once."""

    def __init__(
        self, cache_size: int = DEFAULT_CACHE_SIZE, max_records: int = MAX_ANSWER_RECORDS
    ) -> None:
        self.cache_size = cache_size
        self.max_records = max_records
        self.counters: dict[str, int] = dict.fromkeys(COUNTER_NAMES, 0)
        self._cache: OrderedDict[bytes, _Outcome] = OrderedDict()

    def decode(self, payload: DnsPayloadLike) -> DnsAnswer | None:
        """The answer this payload carried to its client, or None (counted) if it carried none."""
        counters = self.counters
        counters["responses"] += 1
        wire = payload.payload
        if len(wire) >= 12:
            answers = int.from_bytes(wire[6:8], "big")
            if answers > self.max_records:
                # Read as if the message had only the first records: ANCOUNT lowered, the
                # authority and additional sections dropped (their records follow the
                # answers, so ignore_trailing skips them with the rest).
                counters["capped"] += 1
                counters["records_dropped"] += answers - self.max_records
                wire = wire[:6] + self.max_records.to_bytes(2, "big") + bytes(4) + wire[12:]
        outcome = self._outcome(wire)
        if isinstance(outcome, str):
            counters[outcome] += 1
            return None
        counters["answers"] += 1
        return DnsAnswer(
            time=payload.time,
            client_ip=payload.client_ip,
            server_ip=payload.server_ip,
            query_name=outcome.query_name,
            cname_chain=outcome.cname_chain,
            addresses=outcome.addresses,
            transport=payload.transport,
        )

    def cap_warning(self, source: str) -> str | None:
        """The warning for responses cut at the cap, or None when none was."""
        if not self.counters["capped"]:
            return None
        return (
            f"{source}: {self.counters['capped']} DNS responses had more than "
            f"{self.max_records} answer records: only the first {self.max_records} of each "
            f"were read ({self.counters['records_dropped']} records dropped)"
        )

    def _outcome(self, wire: bytes) -> _Outcome:
        key = wire[2:]  # the ID differs between otherwise identical answers
        cache = self._cache
        cached = cache.get(key)
        if cached is not None:
            cache.move_to_end(key)
            self.counters["cache_hits"] += 1
            return cached
        self.counters["parsed"] += 1
        outcome = fast_parse(wire)
        if outcome is None:
            self.counters["dnspython"] += 1
            outcome = parse_response(wire)
        if len(wire) <= MAX_CACHED_PAYLOAD and self.cache_size > 0:
            cache[key] = outcome
            if len(cache) > self.cache_size:
                cache.popitem(last=False)
        return outcome


def parse_response(wire: bytes) -> ParsedResponse | str:
    """Parse one DNS message; on failure, the name of the counter that says why."""
    try:
        message = dns.message.from_wire(wire, ignore_trailing=True)
    except dns.exception.DNSException:
        return "malformed"
    except (ValueError, IndexError, UnicodeError, TypeError, KeyError, OverflowError):
        # dnspython raises plain Python errors for some corrupt records (bad IPv6 rdata
        # lengths, out-of-range values); the bytes came off the wire, so they are data errors.
        return "malformed"
    if not message.flags & dns.flags.QR:
        return "not_response"
    if len(message.question) != 1:
        return "no_question"
    qname = message.question[0].name
    if qname == dns.name.root:
        return "no_question"
    return _follow_answer(message, qname)


def _follow_answer(message: dns.message.Message, qname: dns.name.Name) -> ParsedResponse | str:
    """Walk the CNAMEs from the query name to the name that holds the addresses."""
    cnames: dict[dns.name.Name, dns.name.Name] = {}
    addresses: dict[dns.name.Name, list[DnsRecordAddress]] = {}
    for rrset in message.answer:
        if rrset.rdclass != dns.rdataclass.IN:
            continue
        if rrset.rdtype == dns.rdatatype.CNAME:
            for rdata in rrset:
                cnames.setdefault(rrset.name, rdata.target)
        elif rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            found = addresses.setdefault(rrset.name, [])
            for rdata in rrset:
                found.append(DnsRecordAddress(ip_address(rdata.address), rrset.ttl))
    current = qname
    chain: list[str] = []
    seen = {qname}
    while current not in addresses and current in cnames and len(chain) < MAX_CNAME_CHAIN:
        current = cnames[current]
        if current in seen:
            break  # a CNAME loop: no addresses at its end
        seen.add(current)
        chain.append(_name_text(current))
    records = addresses.get(current)
    if not records:
        return "no_addresses"
    # The same address twice in one response (duplicate records): keep the first.
    unique: dict[IPAddress, DnsRecordAddress] = {}
    for record in records:
        unique.setdefault(record.address, record)
    return ParsedResponse(_name_text(qname), tuple(chain), tuple(unique.values()))


def _name_text(name: dns.name.Name) -> str:
    """Lower case, no trailing dot: the form every table and policy uses."""
    return name.to_text(omit_final_dot=True).lower()


# -- the fast path ---------------------------------------------------------------------

_A, _CNAME, _AAAA, _CLASS_IN = 1, 5, 28, 1
# Label bytes that dnspython's to_text() leaves as they are; any other byte sends the
# payload to dnspython, which knows how to escape it.
_PLAIN = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
_MAX_NAME_WIRE = 255


def fast_parse(wire: bytes) -> ParsedResponse | str | None:
    """What `parse_response` would say, for the common shapes only; None: ask dnspython.

    Reads the header, the single question and the answer section (authority and additional
    aren't needed). Follows dnspython where it matters: compression pointers must point
    strictly backwards and not into the name that holds them, a TTL above 2^31-1 counts
    as 0, records of one (name, type) form one set whose TTL is the smallest.
    """
    size = len(wire)
    if size < 12:
        return None
    flags, questions, answers = unpack_from("!HHH", wire, 2)
    # Queries, opcodes other than QUERY (UPDATE has other sections) and truncated answers
    # are rare: dnspython decides.
    if not flags & 0x8000 or flags & 0x7A00 or questions != 1:
        return None
    qname, pos = _read_name(wire, 12, size)
    if not qname or pos + 4 > size:
        return None
    pos += 4  # qtype, qclass
    cnames: dict[str, str] = {}
    # (name, type) -> [ttl, addresses]: dnspython's record sets, in order of appearance.
    rrsets: dict[tuple[str, int], list[Any]] = {}
    for _ in range(answers):
        name, pos = _read_name(wire, pos, size)
        if name is None or pos + 10 > size:
            return None
        rtype, rclass, ttl, length = unpack_from("!HHIH", wire, pos)
        pos += 10
        end = pos + length
        if end > size or rclass != _CLASS_IN:
            return None
        if ttl > 0x7FFFFFFF:
            ttl = 0
        if rtype == _A and length == 4:
            address: IPAddress = IPv4Address(wire[pos:end])
        elif rtype == _AAAA and length == 16:
            address = IPv6Address(wire[pos:end])
        elif rtype == _CNAME:
            target, after = _read_name(wire, pos, end)
            if target is None or after != end or cnames.get(name, target) != target:
                return None
            cnames[name] = target
            pos = end
            continue
        else:
            return None
        rrset = rrsets.setdefault((name, rtype), [ttl, {}])
        rrset[0] = min(rrset[0], ttl)
        rrset[1].setdefault(address, None)
        pos = end
    current, seen = qname, {qname}
    chain: list[str] = []
    has_addresses = {name for name, _ in rrsets}
    while current not in has_addresses and current in cnames and len(chain) < MAX_CNAME_CHAIN:
        current = cnames[current]
        if current in seen:
            break
        seen.add(current)
        chain.append(current)
    records: dict[IPAddress, DnsRecordAddress] = {}
    for (name, _), (ttl, addresses) in rrsets.items():
        if name == current:
            for found in addresses:
                records.setdefault(found, DnsRecordAddress(found, ttl))
    if not records:
        return "no_addresses"
    return ParsedResponse(qname, tuple(chain), tuple(records.values()))


def _read_name(wire: bytes, pos: int, end: int) -> tuple[str | None, int]:
    """A name at `pos` (lower case, no trailing dot) and the position after it; (None, 0)
    when it breaks a rule or has a byte that needs escaping."""
    labels: list[bytes] = []
    wire_length = 1
    lowest_pointer = pos  # every pointer must go below the previous one
    segment = pos
    after = -1
    while True:
        if pos >= end:
            return None, 0
        count = wire[pos]
        if count == 0:
            pos += 1
            break
        if count < 64:
            label = wire[pos + 1 : pos + 1 + count]
            if pos + 1 + count > end or not _PLAIN.issuperset(label):
                return None, 0
            labels.append(label)
            wire_length += count + 1
            pos += count + 1
        elif count >= 192 and pos + 2 <= end:
            target = (count & 0x3F) << 8 | wire[pos + 1]
            if target >= lowest_pointer:
                return None, 0
            if after < 0:
                after = pos + 2
            lowest_pointer = target
            end = min(end, segment)  # the target must not run into this name
            segment = pos = target
        else:
            return None, 0
    if wire_length > _MAX_NAME_WIRE:
        return None, 0
    return b".".join(labels).decode("ascii").lower(), after if after >= 0 else pos
