"""The proposal's typed fields: how an FQDN dependency is handled, edge directions."""

from __future__ import annotations

from discover.synthesis.options import FqdnMode
from discover.synthesis.proposal import Direction, FqdnHandling


def test_no_policy_is_a_handling_without_mode() -> None:
    none = FqdnHandling(None, "no label selects exactly its pods")
    assert str(none) == "none (no policy: no label selects exactly its pods)"
    assert str(FqdnHandling(FqdnMode.PIN)) == "pin"
    # a mode whose name starts like "none" can't be mistaken for no policy any more
    assert FqdnHandling(FqdnMode.ANY_IP).mode is FqdnMode.ANY_IP and none.mode is None


def test_directions_read_as_the_words_the_reports_print() -> None:
    assert [f"{d}" for d in Direction] == ["ingress", "egress"]
    assert Direction("egress") is Direction.EGRESS
