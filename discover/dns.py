"""DNS responses to `DnsAnswer` records: which addresses a client was told a name has.

dnspython does the parsing (it copes with compression, EDNS and odd record types), but it
costs ~115 µs a response, and the same answer arrives over and over (every pod asks for
the same few names, each answer differs from the last only in its 2-byte ID). So each
distinct payload, ID aside, is parsed once and the outcome kept in a bounded LRU cache.

Nothing here raises on bad bytes: a payload dnspython can't read is counted and skipped.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Protocol as TypingProtocol

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype

from discover.events import DnsAnswer, DnsRecordAddress, IPAddress, Protocol

# A CNAME chain longer than this is a loop or an attack; resolvers give up at 8-16 too.
MAX_CNAME_CHAIN = 16
# Payloads longer than this (large TCP answers) are parsed but not cached, so that the
# cache stays within ~DEFAULT_CACHE_SIZE * 4 KiB of memory.
MAX_CACHED_PAYLOAD = 4096
DEFAULT_CACHE_SIZE = 4096

COUNTER_NAMES = (
    "responses",  # payloads offered to decode()
    "parsed",  # payloads dnspython actually parsed (cache misses)
    "cache_hits",
    "answers",  # DnsAnswer records returned
    "malformed",  # dnspython could not read the payload
    "not_response",  # QR bit clear: a query, not an answer
    "no_question",  # no (or more than one) question, or a question for the root
    "no_addresses",  # readable, but no A/AAAA for the query name (NXDOMAIN, SOA, MX...)
)


class DnsPayloadLike(TypingProtocol):
    """What `decode` needs from `discover.packets.DnsPayload` (a server-to-client message)."""

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

    def __init__(self, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        self.cache_size = cache_size
        self.counters: dict[str, int] = dict.fromkeys(COUNTER_NAMES, 0)
        self._cache: OrderedDict[bytes, _Outcome] = OrderedDict()

    def decode(self, payload: DnsPayloadLike) -> DnsAnswer | None:
        """The answer this payload carried to its client, or None (counted) if it carried none."""
        counters = self.counters
        counters["responses"] += 1
        outcome = self._outcome(payload.payload)
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

    def _outcome(self, wire: bytes) -> _Outcome:
        key = wire[2:]  # the ID differs between otherwise identical answers
        cache = self._cache
        cached = cache.get(key)
        if cached is not None:
            cache.move_to_end(key)
            self.counters["cache_hits"] += 1
            return cached
        self.counters["parsed"] += 1
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
