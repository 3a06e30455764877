"""`ipBlock` peers (a CIDR minus `except` CIDRs) and splitting the address space at
their boundaries, so that every resulting range is either wholly inside or wholly
outside each block.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from discover.inventory.model import IPAddress, IPNetwork
from discover.netpol.selectors import InvalidPolicyError

AddressRange = tuple[IPAddress, IPAddress]  # inclusive


@dataclass(frozen=True, slots=True)
class IpBlock:
    cidr: IPNetwork
    excepts: tuple[IPNetwork, ...] = ()

    def contains(self, ip: IPAddress) -> bool:
        if ip.version != self.cidr.version or ip not in self.cidr:
            return False
        return not any(ip in excluded for excluded in self.excepts)

    def intervals(self) -> list[tuple[int, int]]:
        """The block as sorted, disjoint integer intervals (the CIDR with holes cut out)."""
        out: list[tuple[int, int]] = []
        start = int(self.cidr.network_address)
        end = int(self.cidr.broadcast_address)
        for hole in sorted(self.excepts, key=lambda n: int(n.network_address)):
            low, high = int(hole.network_address), int(hole.broadcast_address)
            if low > start:
                out.append((start, min(low - 1, end)))
            start = max(start, high + 1)
        if start <= end:
            out.append((start, end))
        return out

    def __str__(self) -> str:
        if not self.excepts:
            return str(self.cidr)
        return f"{self.cidr} except {', '.join(str(n) for n in self.excepts)}"


def parse_ip_block(raw: Any, *, policy: str, field: str) -> IpBlock:
    if not isinstance(raw, Mapping) or "cidr" not in raw:
        raise InvalidPolicyError(policy, field, "ipBlock needs a cidr")
    cidr = _network(raw["cidr"], policy=policy, field=f"{field}.cidr")
    excepts = []
    for index, item in enumerate(raw.get("except") or []):
        where = f"{field}.except[{index}]"
        excluded = _network(item, policy=policy, field=where)
        if excluded.version != cidr.version or not excluded.subnet_of(cidr):  # type: ignore[arg-type]
            raise InvalidPolicyError(policy, where, f"{excluded} is not inside {cidr}")
        excepts.append(excluded)
    return IpBlock(cidr, tuple(excepts))


def _network(raw: Any, *, policy: str, field: str) -> IPNetwork:
    try:
        # strict=False: the API accepts host bits (`10.0.0.1/8`) and means the network.
        return ipaddress.ip_network(str(raw), strict=False)
    except ValueError as error:
        raise InvalidPolicyError(policy, field, f"not a CIDR: {raw!r}") from error


def split_address_space(blocks: Iterable[IpBlock], version: int = 4) -> list[AddressRange]:
    """Partition the whole IPv4 (or IPv6) space at the boundaries of the blocks' pieces.

    Each contiguous piece of each block (its CIDR minus excepts) starts and ends a range;
    the result covers the space without overlap, sorted by address. With no blocks it is
    the whole space in one range.
    """
    bits = 32 if version == 4 else 128
    cuts = {0, 1 << bits}  # range starts, plus one past the end
    for block in blocks:
        if block.cidr.version != version:
            continue
        for low, high in block.intervals():
            cuts.add(low)
            cuts.add(high + 1)
    ordered = sorted(cuts)
    make = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    return [(make(low), make(nxt - 1)) for low, nxt in zip(ordered, ordered[1:], strict=False)]
