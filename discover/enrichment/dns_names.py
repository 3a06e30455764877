"""Address -> the DNS name a client resolved to it shortly before a flow.

The FQDN of an external address is what that very client asked (never a reverse lookup):
rows of the DNS table (`DnsRow`s) with the same client and address whose answer came at or
before the flow. A row aggregates repeated answers between first_seen and last_seen, so an
answer was valid at time t when first_seen <= t and t <= last_seen + ttl. Among valid rows
the one answered most recently wins; if none is valid any more (clients and connection
pools keep addresses past the TTL) the most recent one is used and the note says so. When
this client never asked, a name other clients resolved to the address is used, said so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from discover.flows.events import IPAddress
from discover.flows.flowtable import DnsRow, utc_time
from discover.inventory.index import unmapped


@dataclass(frozen=True, slots=True)
class NameAnswer:
    name: str
    cname_chain: tuple[str, ...]
    first_seen: datetime
    last_seen: datetime
    ttl: int

    def valid_at(self, when: datetime) -> bool:
        return self.first_seen <= when <= self.last_seen + timedelta(seconds=self.ttl)


@dataclass(frozen=True, slots=True)
class NameMatch:
    name: str
    cname_chain: tuple[str, ...]
    note: str = ""


class NameIndex:
    def __init__(self, dns: Sequence[DnsRow] | None) -> None:
        self._by_client: dict[tuple[IPAddress, IPAddress], list[NameAnswer]] = {}
        self._by_address: dict[IPAddress, list[NameAnswer]] = {}
        for row in dns or ():
            answer = NameAnswer(row.name, row.cname_chain, utc_time(row.first_seen),
                                utc_time(row.last_seen), row.ttl)
            client = unmapped(row.client_ip)
            address = unmapped(row.address)
            self._by_client.setdefault((client, address), []).append(answer)
            self._by_address.setdefault(address, []).append(answer)
        for answers in (*self._by_client.values(), *self._by_address.values()):
            answers.sort(key=lambda a: (a.first_seen, a.name))

    def lookup(self, client: IPAddress | None, address: IPAddress,
               when: datetime) -> NameMatch | None:
        if client is not None:
            found = _nearest(self._by_client.get((client, address), []), when)
            if found is not None:
                answer, valid = found
                note = "" if valid else (
                    f"{client} resolved {answer.name} to {address} last at "
                    f"{answer.last_seen.isoformat()}, TTL {answer.ttl} s expired before the flow")
                return NameMatch(answer.name, answer.cname_chain, note)
        found = _nearest(self._by_address.get(address, []), when)
        if found is None:
            return None
        answer, _ = found
        return NameMatch(answer.name, answer.cname_chain,
                         f"name from DNS answers to other clients: "
                         f"{'this client' if client is None else client} was not seen asking")


def _nearest(answers: list[NameAnswer], when: datetime) -> tuple[NameAnswer, bool] | None:
    before = [a for a in answers if a.first_seen <= when]
    if not before:
        return None
    valid = [a for a in before if a.valid_at(when)]
    pool = valid or before
    # The answer received most recently before the flow: the one the client used.
    best = max(pool, key=lambda a: (min(a.last_seen, when), a.first_seen, a.name))
    return best, bool(valid)
