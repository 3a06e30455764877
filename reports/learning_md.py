"""report.md's "Has the window seen enough?" section: how many workloads converged, the
ones still gaining edges late in the window (a finding each, with the growth of their
distinct edges as a sparkline), and the CronJobs that did not show."""

from __future__ import annotations

from collections.abc import Sequence

from discover.escaping.markdown_text import md_code, md_text
from discover.synthesis.proposal import format_time
from discover.verification.convergence import (
    CRONJOB_UNSEEN,
    NOT_CONVERGED,
    Convergence,
)

LISTED = 30  # report.md stays readable on a big cluster
_BARS = "▁▂▃▄▅▆▇█"


def sparkline(counts: Sequence[int]) -> str:
    """One bar a point, scaled to the last (the largest: the counts only grow)."""
    top = max(counts, default=0)
    if top == 0:
        return _BARS[0] * len(counts)
    return "".join(_BARS[min(len(_BARS) - 1, n * (len(_BARS) - 1) // top)] for n in counts)


def learning_lines(convergence: Convergence) -> list[str]:
    lines = ["## Has the window seen enough?", "",
             f"{md_text(convergence.summary())}."]
    late = [w for w in convergence.workloads if not w.converged]
    if late:
        lines += ["", f"The last part of the window began at "
                  f"{format_time(convergence.late_from)}; these workloads still gained new "
                  "edges after it:", "",
                  "| finding | workload | edges | last new edge | growth |",
                  "|---|---|---|---|---|"]
        for item in late[:LISTED]:
            lines.append(f"| {md_code(NOT_CONVERGED, in_table=True)} | "
                         f"{md_code(str(item.workload), in_table=True)} | {item.edges} | "
                         f"{format_time(item.last_new_edge)} | {sparkline(item.growth)} |")
        if len(late) > LISTED:
            lines.append(f"| | and {len(late) - LISTED} more | | | |")
        lines += ["", "Extend the learning window (or record another one and run analyze "
                  "over both) before enforcing their policies."]
    if convergence.silent_cronjobs:
        names = ", ".join(md_code(str(ref)) for ref in convergence.silent_cronjobs[:LISTED])
        lines += ["", f"{md_code(CRONJOB_UNSEEN)}: CronJobs with no traffic in the window "
                  f"(their peers are unknown): {names}."]
    return lines
