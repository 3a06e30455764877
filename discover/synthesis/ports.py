"""NetworkPolicy `ports` lists: named where the container names the port, numeric
otherwise, adjacent numbers folded into an `endPort` range only when many were seen."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from discover.flows.events import Protocol

# A run of at least this many contiguous numeric ports (same protocol) becomes a range:
# fewer are listed one by one, which keeps the rule exact.
MIN_RANGE = 8


@dataclass(frozen=True, slots=True, order=True)
class PortSpec:
    """One observed destination port; `name` only when the destination pod declares it."""

    protocol: Protocol
    port: int
    name: str | None = None

    def __str__(self) -> str:
        shown = f"{self.port} ({self.name})" if self.name else str(self.port)
        return f"{self.protocol} {shown}"


def port_entries(specs: Iterable[PortSpec], *, use_names: bool = True) -> list[dict[str, Any]]:
    """The `ports` list of a rule, sorted: named ports first by name, then numbers."""
    named: set[tuple[str, Protocol]] = set()
    numbers: dict[Protocol, set[int]] = {}
    for spec in specs:
        if use_names and spec.name:
            named.add((spec.name, spec.protocol))
        else:
            numbers.setdefault(spec.protocol, set()).add(spec.port)
    entries: list[dict[str, Any]] = [
        {"protocol": str(protocol), "port": name} for name, protocol in sorted(named)
    ]
    numeric: list[tuple[int, Protocol, int | None]] = []
    for protocol, ports in numbers.items():
        for start, end in _runs(sorted(ports)):
            if end - start + 1 >= MIN_RANGE:
                numeric.append((start, protocol, end))
            else:
                numeric.extend((number, protocol, None) for number in range(start, end + 1))
    for first, protocol, last in sorted(numeric, key=lambda item: (item[0], item[1])):
        # str(): a manifest holds plain strings (PyYAML can't represent a `Protocol`)
        entry: dict[str, Any] = {"protocol": str(protocol), "port": first}
        if last is not None:
            entry["endPort"] = last
        entries.append(entry)
    return entries


def _runs(ports: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for port in ports:
        if runs and runs[-1][1] == port - 1:
            runs[-1] = (runs[-1][0], port)
        else:
            runs.append((port, port))
    return runs
