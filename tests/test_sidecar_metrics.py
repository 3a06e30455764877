from __future__ import annotations

import math
import re

from hypothesis import given
from hypothesis import strategies as st

from sidecar.metrics import PREFIX, Sample, render

LINE = re.compile(r'^[a-z_:][a-z0-9_:]*(\{([a-z_]+="([^"\\]|\\.)*",?)*\})? \S+$')


def test_help_and_type_once_per_name_then_samples() -> None:
    text = render([
        Sample("packets_total", "counter", "Packets.", 12),
        Sample("edges", "gauge", "Edges.", 3, {"node": "n1"}),
        Sample("edges", "gauge", "Edges.", 4, {"node": "n2"}),
        Sample("checkpoint_age_seconds", "gauge", "Age.", 1.5),
    ])  # fmt: skip
    assert text.splitlines() == [
        f"# HELP {PREFIX}packets_total Packets.",
        f"# TYPE {PREFIX}packets_total counter",
        f"{PREFIX}packets_total 12",
        f"# HELP {PREFIX}edges Edges.",
        f"# TYPE {PREFIX}edges gauge",
        f'{PREFIX}edges{{node="n1"}} 3',
        f'{PREFIX}edges{{node="n2"}} 4',
        f"# HELP {PREFIX}checkpoint_age_seconds Age.",
        f"# TYPE {PREFIX}checkpoint_age_seconds gauge",
        f"{PREFIX}checkpoint_age_seconds 1.5",
    ]
    assert text.endswith("\n")


def test_special_values() -> None:
    text = render([
        Sample("a", "gauge", "h", math.nan),
        Sample("b", "gauge", "h", math.inf),
        Sample("c", "gauge", "h", -math.inf),
    ])  # fmt: skip
    assert [line.split()[-1] for line in text.splitlines() if not line.startswith("#")] == [
        "NaN", "+Inf", "-Inf",
    ]  # fmt: skip


@given(
    st.text(max_size=20),
    st.floats(allow_nan=False) | st.integers(min_value=-(2**60), max_value=2**60),
)
def test_any_label_value_and_number_render_as_one_valid_line(label: str, value: float) -> None:
    text = render([Sample("x", "gauge", "h", value, {"node": label})])
    sample_line = text.split("\n")[-2]  # the format splits on \n only
    assert LINE.match(sample_line), sample_line
    assert float(sample_line.rsplit(" ", 1)[1].replace("+Inf", "inf")) == float(value)
