"""Raw API objects (the dicts `kubectl -o json` prints) into the inventory's records.

One function a kind; each raises `FieldError` naming the field that is unusable, and the
caller (`build.py`) turns that into a warning naming the file and the item.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from discover.inventory import fields as f
from discover.inventory.cluster_objects import probe_ports, service_account
from discover.inventory.model import (
    ContainerPort,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    Ingress,
    IngressBackend,
    IPAddress,
    Namespace,
    NetworkPolicy,
    Node,
    Pod,
    Service,
    ServicePort,
    WorkloadRef,
    WorkloadTemplate,
)
from discover.inventory.owners import OwnerResolver, controller_of

Raw = Mapping[str, Any]
FINISHED_PHASES = ("Succeeded", "Failed")  # the pod's containers are all gone, its IP too


def meta(obj: Raw) -> Raw:
    return f.mapping(obj, "metadata", "")


def parse_namespace(obj: Raw) -> Namespace:
    m = meta(obj)
    return Namespace(name=str(m.get("name", "")), labels=f.labels(m, "labels", "metadata"))


def parse_node(obj: Raw) -> Node:
    m, spec = meta(obj), f.mapping(obj, "spec", "")
    status = f.mapping(obj, "status", "")
    addresses: list[IPAddress] = []
    for i, entry in enumerate(f.sequence(status, "addresses", "status")):
        if not isinstance(entry, Mapping) or entry.get("type") not in ("InternalIP", "ExternalIP"):
            continue  # Hostname and InternalDNS entries are names, not addresses
        address = f.ip(entry.get("address"), f"status.addresses[{i}].address")
        if address not in addresses:
            addresses.append(address)
    cidrs = [f.network(c, f"spec.podCIDRs[{i}]")
             for i, c in enumerate(f.sequence(spec, "podCIDRs", "spec"))]
    single = f.string(spec, "podCIDR", "spec")
    if not cidrs and single:
        cidrs = [f.network(single, "spec.podCIDR")]
    return Node(
        name=str(m.get("name", "")),
        addresses=tuple(addresses),
        provider_id=f.string(spec, "providerID", "spec"),
        pod_cidrs=tuple(cidrs),
        labels=f.labels(m, "labels", "metadata"),
    )


def _container_ports(spec: Raw) -> tuple[tuple[ContainerPort, ...], tuple[str, ...]]:
    ports: list[ContainerPort] = []
    images: list[str] = []
    # Init containers with restartPolicy Always are sidecars that serve ports too.
    for path, container in _entries(spec, ("initContainers", "containers"), "spec"):
        image = f.string(container, "image", path)
        if image:
            images.append(image)
        for ppath, port in _entries(container, ("ports",), path):
            number = f.port_number(port, "containerPort", ppath)
            if number is None:
                raise f.FieldError(ppath + ".containerPort", "missing")
            ports.append(ContainerPort(
                port=number,
                protocol=f.protocol(port, "protocol", ppath),
                name=f.string(port, "name", ppath),
                container=str(container.get("name", "")),
            ))
    return tuple(ports), tuple(images)


def _entries(obj: Raw, groups: tuple[str, ...], where: str) -> Iterator[tuple[str, Raw]]:
    """(path, object) of every item of the lists `groups` of `obj` (containers, statuses)."""
    for group in groups:
        for i, entry in enumerate(f.sequence(obj, group, where)):
            path = f"{where}.{group}[{i}]"
            if not isinstance(entry, Mapping):
                raise f.FieldError(path, "expected an object")
            yield path, entry


def pod_ips(status: Raw) -> tuple[IPAddress, ...]:
    ips: list[IPAddress] = []
    for i, entry in enumerate(f.sequence(status, "podIPs", "status")):
        value = entry.get("ip") if isinstance(entry, Mapping) else entry
        address = f.ip(value, f"status.podIPs[{i}].ip")
        if address not in ips:
            ips.append(address)
    single = f.string(status, "podIP", "status")
    if single:
        address = f.ip(single, "status.podIP")
        if address not in ips:
            ips.insert(0, address)
    return tuple(ips)


def finished_at(status: Raw) -> datetime | None:
    """When a Succeeded/Failed pod's last container terminated (None for other phases, or
    when no terminated state carries a time, as for a pod evicted before it started).

    Init containers count too: ordinary ones finish before any main container starts, so
    the latest time is a main container's when one ran and an init container's when none
    did; sidecars (restartable init containers) stop last and hold the IP until then."""
    if f.string(status, "phase", "status") not in FINISHED_PHASES:
        return None
    latest: datetime | None = None
    for path, entry in _entries(status, ("initContainerStatuses", "containerStatuses"),
                                "status"):
        state = f.mapping(entry, "state", path)
        terminated = f.mapping(state, "terminated", path + ".state")
        when = f.timestamp(terminated, "finishedAt", path + ".state.terminated")
        if when is not None and (latest is None or when > latest):
            latest = when
    return latest


def parse_pod(obj: Raw, owners: OwnerResolver) -> Pod:
    m, spec = meta(obj), f.mapping(obj, "spec", "")
    status = f.mapping(obj, "status", "")
    namespace = str(m.get("namespace") or "default")
    name = str(m.get("name", ""))
    pod_labels = f.labels(m, "labels", "metadata")
    ports, images = _container_ports(spec)
    account, token_mounted = service_account(spec)
    return Pod(
        namespace=namespace,
        name=name,
        uid=str(m.get("uid") or ""),
        labels=pod_labels,
        ips=pod_ips(status),
        workload=owners.resolve(namespace, name, m, pod_labels),
        node_name=f.string(spec, "nodeName", "spec"),
        host_network=bool(spec.get("hostNetwork", False)),
        ports=ports,
        created=f.timestamp(m, "creationTimestamp", "metadata"),
        deleted=f.timestamp(m, "deletionTimestamp", "metadata"),
        finished=finished_at(status),
        phase=f.string(status, "phase", "status"),
        images=images,
        service_account=account,
        token_mounted=token_mounted,
        probes=probe_ports(spec, ports),
    )


def _ips(values: list[Any], path: str) -> tuple[IPAddress, ...]:
    out: list[IPAddress] = []
    for i, value in enumerate(values):
        if value in (None, "", "None"):
            continue  # headless: clusterIP "None"
        address = f.ip(value, f"{path}[{i}]")
        if address not in out:
            out.append(address)
    return tuple(out)


def parse_service(obj: Raw) -> Service:
    m, spec = meta(obj), f.mapping(obj, "spec", "")
    status = f.mapping(obj, "status", "")
    cluster_ips = _ips(f.sequence(spec, "clusterIPs", "spec"), "spec.clusterIPs")
    if not cluster_ips:
        cluster_ips = _ips([spec.get("clusterIP")], "spec.clusterIP")
    ports = []
    for path, port in _entries(spec, ("ports",), "spec"):
        number = f.port_number(port, "port", path)
        if number is None:
            raise f.FieldError(path + ".port", "missing")
        ports.append(ServicePort(
            port=number,
            protocol=f.protocol(port, "protocol", path),
            name=f.string(port, "name", path),
            target_port=f.int_or_name(port, "targetPort", path),
            node_port=f.port_number(port, "nodePort", path),
        ))
    lb = f.mapping(status, "loadBalancer", "status")
    lb_ips: list[IPAddress] = []
    hostnames: list[str] = []
    for i, entry in enumerate(f.sequence(lb, "ingress", "status.loadBalancer")):
        path = f"status.loadBalancer.ingress[{i}]"
        if not isinstance(entry, Mapping):
            raise f.FieldError(path, "expected an object")
        if entry.get("ip"):
            lb_ips.append(f.ip(entry["ip"], path + ".ip"))
        if entry.get("hostname"):
            hostnames.append(str(entry["hostname"]))
    selector = f.labels(spec, "selector", "spec")
    return Service(
        namespace=str(m.get("namespace") or "default"),
        name=str(m.get("name", "")),
        type=f.string(spec, "type", "spec") or "ClusterIP",
        selector=selector or None,
        cluster_ips=cluster_ips,
        ports=tuple(ports),
        external_traffic_policy=f.string(spec, "externalTrafficPolicy", "spec"),
        load_balancer_ips=tuple(lb_ips),
        load_balancer_hostnames=tuple(hostnames),
        external_ips=_ips(f.sequence(spec, "externalIPs", "spec"), "spec.externalIPs"),
        labels=f.labels(m, "labels", "metadata"),
    )


def _endpoint_ports(values: list[Any], path: str) -> tuple[EndpointPort, ...]:
    ports = []
    for i, port in enumerate(values):
        ppath = f"{path}[{i}]"
        if not isinstance(port, Mapping):
            raise f.FieldError(ppath, "expected an object")
        number = f.port_number(port, "port", ppath)
        if number is None:
            continue  # a null port means "all ports": nothing to map
        ports.append(EndpointPort(number, f.protocol(port, "protocol", ppath),
                                  f.string(port, "name", ppath)))
    return tuple(ports)


def _target_pod(entry: Raw, path: str) -> str | None:
    ref = f.mapping(entry, "targetRef", path)
    return str(ref["name"]) if ref.get("kind") == "Pod" and ref.get("name") else None


def parse_endpoint_slice(obj: Raw) -> EndpointSlice | None:
    """None for an FQDN slice (its addresses are names, not IPs)."""
    m = meta(obj)
    if obj.get("addressType") == "FQDN":
        return None
    endpoints = []
    for i, entry in enumerate(f.sequence(obj, "endpoints", "")):
        path = f"endpoints[{i}]"
        if not isinstance(entry, Mapping):
            raise f.FieldError(path, "expected an object")
        conditions = f.mapping(entry, "conditions", path)
        topology = f.mapping(entry, "topology", path)  # v1beta1
        node = f.string(entry, "nodeName", path) or topology.get("kubernetes.io/hostname")
        endpoints.append(Endpoint(
            addresses=_ips(f.sequence(entry, "addresses", path), path + ".addresses"),
            pod_name=_target_pod(entry, path),
            node_name=str(node) if node else None,
            ready=conditions.get("ready") is not False,  # null means ready (API docs)
        ))
    slice_labels = f.labels(m, "labels", "metadata")
    return EndpointSlice(
        namespace=str(m.get("namespace") or "default"),
        name=str(m.get("name", "")),
        service_name=slice_labels.get("kubernetes.io/service-name"),
        ports=_endpoint_ports(f.sequence(obj, "ports", ""), "ports"),
        endpoints=tuple(endpoints),
    )


def parse_endpoints(obj: Raw) -> list[EndpointSlice]:
    """Old core/v1 Endpoints: one slice a subset, named after the Service."""
    m = meta(obj)
    namespace, name = str(m.get("namespace") or "default"), str(m.get("name", ""))
    slices = []
    for si, subset in enumerate(f.sequence(obj, "subsets", "")):
        path = f"subsets[{si}]"
        if not isinstance(subset, Mapping):
            raise f.FieldError(path, "expected an object")
        endpoints = []
        for group, ready in (("addresses", True), ("notReadyAddresses", False)):
            for ai, address in enumerate(f.sequence(subset, group, path)):
                apath = f"{path}.{group}[{ai}]"
                if not isinstance(address, Mapping):
                    raise f.FieldError(apath, "expected an object")
                endpoints.append(Endpoint(
                    addresses=(f.ip(address.get("ip"), apath + ".ip"),),
                    pod_name=_target_pod(address, apath),
                    node_name=f.string(address, "nodeName", apath),
                    ready=ready,
                ))
        slices.append(EndpointSlice(
            namespace=namespace, name=name, service_name=name,
            ports=_endpoint_ports(f.sequence(subset, "ports", path), path + ".ports"),
            endpoints=tuple(endpoints),
        ))
    return slices


def _backend(backend: Raw, path: str) -> IngressBackend | None:
    service = f.mapping(backend, "service", path)
    if service:  # networking.k8s.io/v1
        port = f.mapping(service, "port", path + ".service")
        number = f.port_number(port, "number", path + ".service.port")
        return IngressBackend(str(service.get("name", "")),
                              number if number is not None else f.string(port, "name", path))
    if backend.get("serviceName"):  # extensions/v1beta1, networking.k8s.io/v1beta1
        return IngressBackend(str(backend["serviceName"]),
                              f.int_or_name(backend, "servicePort", path))
    return None  # a resource backend (not a Service)


def parse_ingress(obj: Raw) -> Ingress:
    m, spec = meta(obj), f.mapping(obj, "spec", "")
    annotations = f.labels(m, "annotations", "metadata")
    backends: list[IngressBackend] = []
    for key in ("defaultBackend", "backend"):
        default = f.mapping(spec, key, "spec")
        if default:
            found = _backend(default, f"spec.{key}")
            if found:
                backends.append(found)
    for ri, rule in enumerate(f.sequence(spec, "rules", "spec")):
        http = f.mapping(rule, "http", f"spec.rules[{ri}]") if isinstance(rule, Mapping) else {}
        for pi, path_entry in enumerate(f.sequence(http, "paths", f"spec.rules[{ri}].http")):
            path = f"spec.rules[{ri}].http.paths[{pi}]"
            if not isinstance(path_entry, Mapping):
                raise f.FieldError(path, "expected an object")
            found = _backend(f.mapping(path_entry, "backend", path), path + ".backend")
            if found and found not in backends:
                backends.append(found)
    return Ingress(
        namespace=str(m.get("namespace") or "default"),
        name=str(m.get("name", "")),
        ingress_class=f.string(spec, "ingressClassName", "spec")
        or annotations.get("kubernetes.io/ingress.class"),
        backends=tuple(backends),
    )


def parse_network_policy(obj: Raw) -> NetworkPolicy:
    m = meta(obj)
    return NetworkPolicy(str(m.get("namespace") or "default"), str(m.get("name", "")),
                         dict(f.mapping(obj, "spec", "")))


def parse_workload(obj: Raw, kind: str) -> WorkloadTemplate | None:
    """A controller's pod template, or None when it is itself owned (a Deployment's
    ReplicaSet, a CronJob's Job): only the top of a chain is a workload."""
    m, spec = meta(obj), f.mapping(obj, "spec", "")
    namespace, name = str(m.get("namespace") or "default"), str(m.get("name", ""))
    if kind in ("ReplicaSet", "Job") and controller_of(m) is not None:
        return None
    path = "spec"
    if kind == "CronJob":
        spec = f.mapping(f.mapping(spec, "jobTemplate", "spec"), "spec", "spec.jobTemplate")
        path = "spec.jobTemplate.spec"
    template = f.mapping(spec, "template", path)
    selector = f.labels(f.mapping(spec, "selector", path), "matchLabels", path + ".selector")
    return WorkloadTemplate(
        ref=WorkloadRef(namespace, kind, name),
        template_labels=f.labels(f.mapping(template, "metadata", path + ".template"), "labels",
                                 path + ".template.metadata"),
        selector=selector,
    )
