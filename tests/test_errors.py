"""One small error tree (issue 10): every error the project raises on purpose is a
DiscoverError in one category; one class a concept."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path
from typing import Any

import pytest

import discover
import sidecar
from discover import errors
from discover.errors import (
    ClusterUnreachableError,
    ConfigurationError,
    DiscoverError,
    FieldError,
    InventoryError,
    OutputError,
    ReadError,
    SynthesisError,
)

CATEGORIES = (
    ReadError,
    FieldError,
    InventoryError,
    SynthesisError,
    ConfigurationError,
    OutputError,
)
# Raised and caught inside one module, never shown to a user: outside the tree on purpose
# (so are private classes, `_Name`).
INTERNAL = {"YamlShapeError", "ProcNetError", "ForwardError", "NotStreamed", "NotAFlow"}


def _project_errors() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for package in (discover, sidecar):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if module.name.endswith("__main__"):
                continue
            try:
                loaded = importlib.import_module(module.name)
            except ImportError:  # an optional dependency (scapy, pyarrow) is missing
                continue
            for name, value in vars(loaded).items():
                if (
                    inspect.isclass(value)
                    and issubclass(value, BaseException)
                    and value.__module__.startswith(("discover", "sidecar"))
                ):
                    found[f"{value.__module__}.{name}"] = value
    return found


def test_every_error_is_in_one_category() -> None:
    for name, cls in _project_errors().items():
        internal = cls.__name__ in INTERNAL or cls.__name__.startswith("_")
        if internal or cls is DiscoverError or cls in CATEGORIES:
            continue
        assert issubclass(cls, DiscoverError), name
        assert sum(issubclass(cls, c) for c in CATEGORIES) == 1, name


def test_one_class_a_concept() -> None:
    names = {cls.__name__ for cls in _project_errors().values()}
    # 'The cluster is unreachable' and 'the proposal blocks a flow' were two classes each.
    assert "ClusterAccessError" not in names and "ProposalDeniesObservedFlowError" not in names
    assert issubclass(FieldError, DiscoverError) and not issubclass(FieldError, ValueError)


@pytest.mark.parametrize(
    ("module", "name", "args"),
    [
        ("sidecar.checkpoint", "StateDirError", (Path("/state"), "read-only file system")),
        ("sidecar.server", "ListenError", ("127.0.0.1", 9808, "address already in use")),
        ("discover.commands.manifests", "ManifestWriteError", ("out.yaml", "no space left")),
    ],
)
def test_write_and_socket_failures_are_output_errors(
    module: str, name: str, args: tuple[Any, ...]
) -> None:
    error = getattr(importlib.import_module(module), name)(*args)
    assert isinstance(error, OutputError) and not isinstance(error, ConfigurationError)
    assert "\n" not in str(error) and args[-1] in str(error)


def test_collect_and_the_live_inventory_share_the_unreachable_error() -> None:
    from kubernetes.client.exceptions import ApiException

    from sidecar.collect import list_agent_pods

    class Refusing:
        def list_namespaced_pod(self, *args: object, **kwargs: object) -> None:
            raise ApiException(status=403, reason="Forbidden")

    with pytest.raises(ClusterUnreachableError, match=r"^listing pods in ns \(app=x\): Forbidden$"):
        list_agent_pods(Refusing(), "ns", "app=x")
    assert (
        errors.ClusterUnreachableError
        is importlib.import_module("discover.inventory.live").ClusterUnreachableError
    )
