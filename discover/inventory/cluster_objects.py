"""The objects that say how the cluster itself runs, into the inventory's records: the
Services the API server calls (webhook configurations, APIServices), who RBAC grants
verbs to (RoleBindings, ClusterRoleBindings), what the cluster DNS forwards to (its
ConfigMap's Corefile), and a pod's ServiceAccount token and kubelet probes.

Like `objects.py`: one function a kind, `FieldError` naming the unusable field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from ipaddress import ip_address
from typing import Any

from discover.inventory import fields as f
from discover.inventory.model import (
    ApiCallback,
    CalledService,
    ContainerPort,
    DnsForwarding,
    IPAddress,
    ProbePort,
    RoleBinding,
)

Raw = Mapping[str, Any]
WEBHOOK_KINDS = ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")
RBAC_KINDS = ("RoleBinding", "ClusterRoleBinding")
# kube-system ConfigMaps holding a Corefile: CoreDNS (kubeadm, RKE2) and NodeLocal DNSCache
DNS_CONFIG_MAPS = ("coredns", "rke2-coredns-rke2-coredns", "node-local-dns")
DNS_CONFIG_NAMESPACE = "kube-system"
PROBE_KINDS = (("livenessProbe", "liveness"), ("readinessProbe", "readiness"),
               ("startupProbe", "startup"))
WEBHOOK_DEFAULT_PORT = 443  # admissionregistration/v1 ServiceReference.port default


def _name(obj: Raw) -> str:
    return str(f.mapping(obj, "metadata", "").get("name") or "")


def _service_ref(ref: Raw, path: str) -> CalledService | None:
    if not ref:
        return None
    name = f.string(ref, "name", path)
    namespace = f.string(ref, "namespace", path)
    if not name or not namespace:
        raise f.FieldError(path, "a service reference needs namespace and name")
    port = f.port_number(ref, "port", path)
    return CalledService(namespace, name, port if port is not None else WEBHOOK_DEFAULT_PORT)


def parse_webhook_configuration(obj: Raw, kind: str) -> ApiCallback:
    services: list[CalledService] = []
    for i, hook in enumerate(f.sequence(obj, "webhooks", "")):
        path = f"webhooks[{i}]"
        if not isinstance(hook, Mapping):
            raise f.FieldError(path, "expected an object")
        config = f.mapping(hook, "clientConfig", path)
        found = _service_ref(f.mapping(config, "service", path + ".clientConfig"),
                             path + ".clientConfig.service")
        if found is not None and found not in services:
            services.append(found)  # a webhook called by url is outside the cluster
    return ApiCallback(kind, _name(obj), tuple(sorted(services)))


def parse_api_service(obj: Raw) -> ApiCallback:
    """An APIService with spec.service is served by that Service (aggregation); one
    without (a local group like apps/v1) is the API server itself."""
    spec = f.mapping(obj, "spec", "")
    found = _service_ref(f.mapping(spec, "service", "spec"), "spec.service")
    return ApiCallback("APIService", _name(obj), (found,) if found else ())


def parse_role_binding(obj: Raw, kind: str) -> RoleBinding:
    m = f.mapping(obj, "metadata", "")
    namespace = str(m.get("namespace") or "default") if kind == "RoleBinding" else None
    role = f.mapping(obj, "roleRef", "")
    accounts: list[tuple[str, str]] = []
    groups: list[str] = []
    for i, subject in enumerate(f.sequence(obj, "subjects", "")):
        path = f"subjects[{i}]"
        if not isinstance(subject, Mapping):
            raise f.FieldError(path, "expected an object")
        subject_kind = f.string(subject, "kind", path)
        name = f.string(subject, "name", path) or ""
        if subject_kind == "ServiceAccount":
            # a RoleBinding's subject defaults to the binding's own namespace
            account_ns = f.string(subject, "namespace", path) or namespace or ""
            accounts.append((account_ns, name))
        elif subject_kind == "Group":
            groups.append(name)
    return RoleBinding(
        namespace=namespace, name=_name(obj),
        role=f"{f.string(role, 'kind', 'roleRef') or '?'}/{f.string(role, 'name', 'roleRef')}",
        service_accounts=tuple(sorted(set(accounts))), groups=tuple(sorted(set(groups))),
    )


def is_dns_config_map(metadata: Raw) -> bool:
    """By its metadata (a mapping even when the object's is broken: see RawObject)."""
    return (metadata.get("namespace") == DNS_CONFIG_NAMESPACE
            and metadata.get("name") in DNS_CONFIG_MAPS)


_FORWARD = re.compile(r"^\s*forward\s+(\S+)\s+([^{#\n]*)", re.MULTILINE)
_DEFAULT_PORT = {"dns": 53, "tls": 853}


def parse_dns_config_map(obj: Raw) -> DnsForwarding:
    """Every `forward ZONE TO...` of the Corefile: IP addresses (with an optional port and
    a dns:// or tls:// scheme) are upstreams; a path (/etc/resolv.conf) means the node's
    resolvers. Templated placeholders of NodeLocal DNSCache (__PILLAR__...) are skipped."""
    m = f.mapping(obj, "metadata", "")
    data = f.mapping(obj, "data", "")
    text = f.string(data, "Corefile", "data") or ""
    upstreams: list[IPAddress] = []
    ports: set[int] = set()
    resolv = False
    for _zone, targets in _FORWARD.findall(text):
        for target in targets.split():
            if target.startswith("/"):
                resolv = True
                continue
            parsed = _upstream(target)
            if parsed is None:
                continue
            address, port = parsed
            if address not in upstreams:
                upstreams.append(address)
            ports.add(port)
    return DnsForwarding(f"{m.get('namespace')}/{m.get('name')}", tuple(upstreams),
                         tuple(sorted(ports)), resolv)


def _upstream(target: str) -> tuple[IPAddress, int] | None:
    scheme, sep, rest = target.partition("://")
    if not sep:
        scheme, rest = "dns", target
    port = _DEFAULT_PORT.get(scheme.lower())
    if port is None:
        return None  # grpc:// and other forms: not a plain resolver address
    host = rest
    if rest.startswith("["):  # [2001:db8::1]:53
        host, _, tail = rest[1:].partition("]")
        if tail.startswith(":") and tail[1:].isdigit():
            port = int(tail[1:])
    elif rest.count(":") == 1:
        host, _, number = rest.partition(":")
        if number.isdigit():
            port = int(number)
    try:
        return ip_address(host), port
    except ValueError:
        return None  # a name or a __PILLAR__ placeholder


def service_account(spec: Raw) -> tuple[str, bool]:
    """The pod's ServiceAccount and whether its token is mounted (automount is on unless
    the pod says false; a ServiceAccount's own false is not in the pod spec)."""
    name = f.string(spec, "serviceAccountName", "spec") or f.string(
        spec, "serviceAccount", "spec") or "default"
    automount = spec.get("automountServiceAccountToken")
    return name, automount is not False


def probe_ports(spec: Raw, ports: tuple[ContainerPort, ...]) -> tuple[ProbePort, ...]:
    """The ports the kubelet probes, names resolved against the same container's ports."""
    found: list[ProbePort] = []
    for group in ("initContainers", "containers"):
        for i, container in enumerate(f.sequence(spec, group, "spec")):
            if not isinstance(container, Mapping):
                continue  # objects.py reports a malformed container
            cpath = f"spec.{group}[{i}]"
            cname = str(container.get("name", ""))
            for key, kind in PROBE_KINDS:
                probe = f.mapping(container, key, cpath)
                for handler in ("httpGet", "tcpSocket", "grpc"):
                    action = f.mapping(probe, handler, f"{cpath}.{key}")
                    if not action:
                        continue
                    path = f"{cpath}.{key}.{handler}"
                    port = (f.port_number(action, "port", path) if handler == "grpc"
                            else f.int_or_name(action, "port", path))
                    if port is None:
                        raise f.FieldError(path + ".port", "missing")
                    if isinstance(port, str):
                        port = next((p.port for p in ports if p.name == port
                                     and p.container == cname), port)
                    entry = ProbePort(kind, port, cname)
                    if entry not in found:
                        found.append(entry)
    return tuple(found)
