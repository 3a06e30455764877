"""Options: the egress proxy reference and contradictory choices."""

from __future__ import annotations

import pytest

from discover.errors import ConfigurationError
from discover.synthesis.options import FqdnMode, ProxyRef, SynthesisOptions


def test_proxy_ref_parses_with_and_without_port() -> None:
    assert ProxyRef.parse("egress/squid") == ProxyRef("egress", "squid")
    assert ProxyRef.parse("egress/squid:3128") == ProxyRef("egress", "squid", 3128)
    assert str(ProxyRef("egress", "squid", 3128)) == "egress/squid:3128"


@pytest.mark.parametrize("text", ["squid", "/squid", "egress/", "a/b/c", "a/b:0", "a/b:x"])
def test_bad_proxy_refs_name_the_option(text: str) -> None:
    with pytest.raises(ConfigurationError, match="--egress-proxy"):
        ProxyRef.parse(text)


def test_default_fqdn_mode_depends_on_the_proxy() -> None:
    assert SynthesisOptions().effective_fqdn_mode is FqdnMode.ANY_IP
    with_proxy = SynthesisOptions(egress_proxy=ProxyRef("e", "p"))
    assert with_proxy.effective_fqdn_mode is FqdnMode.PROXY
    pinned = SynthesisOptions(egress_proxy=ProxyRef("e", "p"), fqdn_mode=FqdnMode.PIN)
    assert pinned.effective_fqdn_mode is FqdnMode.PIN


def test_proxy_mode_needs_a_proxy() -> None:
    with pytest.raises(ConfigurationError, match="--fqdn-mode"):
        SynthesisOptions(fqdn_mode=FqdnMode.PROXY)


def test_scope() -> None:
    assert SynthesisOptions().in_scope("x")
    assert not SynthesisOptions(namespaces=("a",)).in_scope("x")
