"""Deployment manifests for the agent: YAML templates in this package, filled in here.

The templates (`manifest-*.yaml`) carry comments that say why each security setting is
what it is, and those comments belong in what the user applies, so templates are filled
as text (`${NAME}` placeholders) with JSON-encoded values, which are valid YAML flow
scalars, lists and mappings whatever the user typed. `objects()` parses the result, for
tests and for callers that want dicts. Output is deterministic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from string import Template
from typing import Any

import yaml

from discover import __version__

NAME = "netpol-discover"
DEFAULT_NAMESPACE = "netpol-discover"
DEFAULT_IMAGE = f"ghcr.io/netpol-discover/netpol-discover:{__version__}"
DEFAULT_PORT = 9808  # data (/summary, /inventory): loopback only, read via port-forward
DEFAULT_HEALTH_PORT = 9809  # /healthz and /metrics: every address, for probes and scrapes
STATE_DIR = "/var/lib/netpol-discover"
SELECTOR_LABEL = "app.kubernetes.io/name"
LABELS = {SELECTOR_LABEL: NAME, "app.kubernetes.io/component": "agent"}


@dataclass(frozen=True, slots=True)
class ManifestOptions:
    namespace: str = DEFAULT_NAMESPACE
    image: str = DEFAULT_IMAGE
    port: int = DEFAULT_PORT
    health_port: int = DEFAULT_HEALTH_PORT
    duration: str | None = "24h"
    checkpoint_interval: int = 60
    max_edges: int = 100_000
    inventory_watch: bool = True  # sidecar: False gives the RBAC-less variant
    service_account: str = NAME  # sidecar with RBAC: the Deployment's own account
    host_path: str = STATE_DIR  # DaemonSet: the node directory that keeps checkpoints


def agent_args(options: ManifestOptions) -> list[str]:
    args = [
        "agent",
        "--interface", "any",
        "--state-dir", STATE_DIR,
        "--listen", f"127.0.0.1:{options.port}",
        "--health-listen", f"0.0.0.0:{options.health_port}",
        "--node-name", "$(NODE_NAME)",
        "--checkpoint-interval", str(options.checkpoint_interval),
        "--max-edges", str(options.max_edges),
    ]  # fmt: skip
    if options.duration:
        args += ["--duration", options.duration]
    if options.inventory_watch:
        args.append("--inventory-watch")
    return args


DAEMONSET_ROLE = "netpol-discover-reader"
SIDECAR_ROLE = "netpol-discover-sidecar-reader"


def rbac_names(options: ManifestOptions, sidecar: bool) -> tuple[str, str]:
    """(ClusterRole, ClusterRoleBinding) names. The sidecar's differ from the DaemonSet's
    (applying one must not overwrite the other), and its binding is named after the
    namespace and account it binds, so that two patched Deployments don't share one."""
    if not sidecar:
        return DAEMONSET_ROLE, DAEMONSET_ROLE
    return SIDECAR_ROLE, f"{SIDECAR_ROLE}:{options.namespace}:{options.service_account}"


def _fill(template: str, options: ManifestOptions, sidecar: bool = False) -> str:
    text = resources.files("sidecar").joinpath(f"manifest-{template}.yaml").read_text()
    role, binding = rbac_names(options, sidecar)
    values = {
        "NAMESPACE": options.namespace,
        "IMAGE": options.image,
        "PORT": options.port,
        "HEALTH_PORT": options.health_port,
        "ARGS": agent_args(options),
        "LABELS": LABELS,
        "SERVICE_ACCOUNT": options.service_account,
        "HOST_PATH": options.host_path,
        "ROLE_NAME": role,
        "BINDING_NAME": binding,
    }
    return Template(text).substitute({k: json.dumps(v) for k, v in values.items()})


def _namespace_and_account(options: ManifestOptions) -> str:
    labels = json.dumps(LABELS)
    namespace = json.dumps(options.namespace)
    return (
        "apiVersion: v1\nkind: Namespace\nmetadata:\n"
        f"  name: {namespace}\n  labels: {labels}\n"
        "---\n"
        "# The identity the agent's inventory watch uses; it can only read (below).\n"
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n"
        f"  name: {json.dumps(NAME)}\n  namespace: {namespace}\n  labels: {labels}\n"
    )


def _header(lines: list[str]) -> str:
    return "".join(f"# {line}".rstrip() + "\n" for line in lines)


def render_daemonset(options: ManifestOptions) -> str:
    """Namespace, ServiceAccount, ClusterRole, ClusterRoleBinding, DaemonSet."""
    header = _header([
        f"netpol-discover {__version__}: one capture agent a node (DaemonSet).",
        "kubectl apply -f this file; after the learning window:",
        f"  netpol-discover collect --namespace {options.namespace} -o summary.json",
    ])  # fmt: skip
    parts = [_namespace_and_account(options)]
    if options.inventory_watch:  # without the watch the agent never talks to the API
        parts.append(_fill("rbac", options))
    parts.append(_fill("daemonset", options))
    return header + "".join("---\n" + part for part in parts)


def render_sidecar(options: ManifestOptions) -> str:
    """A strategic-merge patch adding the agent to a Deployment (+ RBAC with the watch)."""
    lines = [
        f"netpol-discover {__version__}: the capture agent as a sidecar.",
        "Add it to a Deployment: kubectl patch deployment NAME -n NS --patch-file FILE",
        "(kubectl patch takes one document: the first one below).",
        "Collect: netpol-discover collect --namespace NS --selector <the Deployment's labels>",
    ]
    parts = [_fill("sidecar", options)]
    if options.inventory_watch:
        lines.append(
            f"The RBAC after the patch binds ServiceAccount {options.service_account}"
            " to read the inventory; apply it with kubectl apply -f."
        )
        lines.append(
            "That account is the application's own: its containers get the same read-only"
            " view of the cluster."
        )
        parts.append(_fill("rbac", options, sidecar=True))
    else:
        lines.append("RBAC-less variant: no inventory watch; give `analyze` an inventory file.")
    return _header(lines) + "".join("---\n" + part for part in parts)


def objects(text: str) -> list[dict[str, Any]]:
    """The documents of rendered YAML, as dicts (comments and empty documents dropped)."""
    return [doc for doc in yaml.safe_load_all(text) if doc]
