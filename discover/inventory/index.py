"""IP -> pod at a given time: the intervals in which each pod held each of its addresses.

A pod holds its IP from its creation until it is deleted or, for a finished pod
(Succeeded/Failed, whose status still shows the released IP), until its containers
terminated (`Pod.finished`). Kubernetes never gives one IP to two live pods, so a
finished pod without that time held the IP at most until a later pod with it was created,
and a pod still holding it at the end got it only after every other holder let go (a Job
pod and a Deployment's pod created in the same second). A snapshot only knows pods alive
when it was taken: a time before the first known holder's creation (or in a gap between
holders) belongs to some pod the inventory never saw, which `lookup` reports as such
instead of guessing.
An inventory that shows two live pods with one IP contradicts that rule (a stale pod
object, or files taken at different times): the conflict is kept in `conflicts`. The
later-created pod takes the IP at its creation, as for any reuse; when no creation time
tells them apart, every one of them is an answer (`Lookup.also`), so that no workload
loses its traffic on a guess.
Host-network pods are not indexed: their address is the node's (see the Resolver).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from ipaddress import IPv6Address

from discover.inventory.fields import format_time
from discover.inventory.model import IPAddress, Pod
from discover.inventory.objects import FINISHED_PHASES as _FINISHED

_EPOCH = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Holding:
    """`pod` held `ip` from `start` (None: since ever) until `end` (None: still)."""

    ip: IPAddress
    pod: Pod
    start: datetime | None
    end: datetime | None

    def contains(self, when: datetime) -> bool:
        return (self.start is None or self.start <= when) and (self.end is None or when < self.end)


@dataclass(frozen=True, slots=True)
class Lookup:
    """The answer for one IP at one time: `pod` when known, else why not in `note`."""

    pod: Pod | None
    earlier: bool = False  # the IP was held by some pod the inventory does not have
    note: str = ""
    also: tuple[Pod, ...] = ()  # other live pods claiming the IP then (see IpConflict)


@dataclass(frozen=True, slots=True)
class IpConflict:
    """Live pods (not finished, not deleted) that all show `ip`. `by_time` when their
    creation times order them (each later one took the IP at its creation), else traffic
    is attributed to every one of them."""

    ip: IPAddress
    pods: tuple[Pod, ...]
    by_time: bool


class PodIndex:
    def __init__(self, pods: Iterable[Pod]) -> None:
        by_ip: dict[IPAddress, list[Pod]] = {}
        for pod in pods:
            if pod.host_network:
                continue
            for ip in pod.ips:
                by_ip.setdefault(ip, []).append(pod)
        self._holdings: dict[IPAddress, list[Holding]] = {
            ip: _intervals(ip, holders) for ip, holders in by_ip.items()
        }
        self.conflicts = tuple(
            conflict for ip in sorted(by_ip, key=lambda a: (a.version, a))
            if (conflict := _conflict(ip, by_ip[ip])) is not None)

    def __contains__(self, ip: IPAddress) -> bool:
        return ip in self._holdings

    def holdings(self, ip: IPAddress) -> list[Holding]:
        return list(self._holdings.get(ip, ()))

    def lookup(self, ip: IPAddress, when: datetime) -> Lookup | None:
        """None when no known pod ever held `ip`."""
        holdings = self._holdings.get(ip)
        if not holdings:
            return None
        matching = [h for h in holdings if h.contains(when)]
        if matching:
            # Overlaps only come from inconsistent inputs: prefer the newest live pod.
            best = max(matching, key=lambda h: (h.pod.phase not in _FINISHED,
                                                 h.start or _EPOCH))
            also = tuple(h.pod for h in matching if h is not best and _live(h.pod)
                         and h.start == best.start) if _live(best.pod) else ()
            return Lookup(best.pod, also=also)
        # The earliest start (a start moved past other holders' ends is not a creation).
        first = min(holdings, key=lambda h: (h.start or _EPOCH, h.start != h.pod.created))
        if first.start is not None and when < first.start:
            return Lookup(None, earlier=True, note=(
                f"{ip} is held by pod {first.pod.namespace}/{first.pod.name} created "
                f"{format_time(first.start)}; earlier traffic came from a pod the "
                "inventory does not have"))
        before = [h for h in holdings if h.end is not None and h.end <= when]
        last = max(before, key=lambda h: h.end or when)
        after = [h for h in holdings if h.start is not None and h.start > when]
        if after:
            nxt = min(after, key=lambda h: h.start or when)
            return Lookup(None, earlier=True, note=(
                f"{ip} was released by pod {last.pod.namespace}/{last.pod.name} at "
                f"{format_time(last.end or when)} and taken by pod "
                f"{nxt.pod.namespace}/{nxt.pod.name} at {format_time(nxt.start or when)}; "
                "in between it belonged to a pod the inventory does not have"))
        return Lookup(None, earlier=True, note=(
            f"{ip} was released by pod {last.pod.namespace}/{last.pod.name} at "
            f"{format_time(last.end or when)}; later traffic came from a pod the inventory "
            "does not have"))


def unmapped(ip: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address (::ffff:10.244.0.5, what a dual-stack socket reports for
    an IPv4 peer) as the IPv4 address pods, Services and nodes are known by."""
    return (ip.ipv4_mapped or ip) if isinstance(ip, IPv6Address) else ip


def released(pod: Pod) -> datetime | None:
    """When `pod` let go of its addresses by its own record: deleted or finished."""
    ends = [t for t in (pod.deleted, pod.finished) if t is not None]
    return min(ends) if ends else None


def _live(pod: Pod) -> bool:
    return pod.phase not in _FINISHED and released(pod) is None


def _conflict(ip: IPAddress, holders: list[Pod]) -> IpConflict | None:
    live = sorted((p for p in holders if _live(p)), key=lambda p: (p.created or _EPOCH, p.name))
    if len(live) < 2:
        return None
    # a pod without creation time holds the IP "since ever", before any dated one
    created = [p.created for p in live]
    by_time = len(set(created)) == len(created)
    return IpConflict(ip, tuple(live), by_time)


def _intervals(ip: IPAddress, holders: list[Pod]) -> list[Holding]:
    ordered = sorted(holders, key=lambda p: (p.created or _EPOCH, p.name))
    out: list[Holding] = []
    for i, pod in enumerate(ordered):
        end = released(pod)
        later = [p.created for p in ordered[i + 1:] if p.created is not None
                 and (pod.created is None or p.created > pod.created)]
        if later and (pod.phase in _FINISHED or end is None or min(later) < end):
            # The next holder's creation bounds this one: no two live pods share an IP.
            end = min(later) if end is None else min(end, min(later))
        out.append(Holding(ip, pod, pod.created, end))
    ends = [h.end for h in out if h.end is not None]
    if not ends:
        return out
    # A holder with no end still has the IP, so it got it after the others let go of it.
    return [h if h.end is not None or (h.start is not None and h.start >= max(ends))
            else Holding(ip, h.pod, max(ends), None) for h in out]
