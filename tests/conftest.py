"""Shared fixtures: where the public corpora are, and skips for root-only tests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CORPORA = REPO.parent / "shared" / "corpora"
TESTDATA = REPO / "tests" / "data"


def _can_use_netns() -> str | None:
    """Why network-namespace tests can't run here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root for network namespaces (CI runs as root)"
    if shutil.which("ip") is None:
        return "needs iproute2's `ip` command"
    return None


NETNS_SKIP_REASON = _can_use_netns()


@pytest.fixture(scope="session")
def corpora() -> Path:
    if not CORPORA.is_dir():
        pytest.skip(f"public corpora not found at {CORPORA} (only beside the dev checkout)")
    return CORPORA


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "root" in item.keywords and NETNS_SKIP_REASON:
            item.add_marker(pytest.mark.skip(reason=NETNS_SKIP_REASON))
