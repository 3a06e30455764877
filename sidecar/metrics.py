"""Prometheus text exposition (format 0.0.4) of the agent's counters, without a client
library: a handful of samples rendered on each scrape."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

PREFIX = "netpol_discover_"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Sample:
    name: str  # without the prefix; counters end in `_total`
    kind: str  # "counter" or "gauge"
    help: str
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def render(samples: Iterable[Sample]) -> str:
    """The exposition text: one HELP/TYPE block per metric name, samples in given order."""
    lines: list[str] = []
    seen: set[str] = set()
    for sample in samples:
        name = PREFIX + sample.name
        if name not in seen:
            seen.add(name)
            lines.append(f"# HELP {name} {sample.help}")
            lines.append(f"# TYPE {name} {sample.kind}")
        labels = ""
        if sample.labels:
            inner = ",".join(
                f'{key}="{_escape_label(value)}"' for key, value in sorted(sample.labels.items())
            )
            labels = "{" + inner + "}"
        lines.append(f"{name}{labels} {_format_value(sample.value)}")
    return "\n".join(lines) + "\n"
