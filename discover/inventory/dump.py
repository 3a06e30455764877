"""Inventory -> the `kind: List` JSON `kubectl get ... -o json` prints (for `inventory --out`).

`files.load_inventory_files` reads it back into an equal inventory (sources and notes
aside), so an offline run reproduces a live one. What the records do not keep is not
invented: pods point at their workload directly (a Deployment's pods at its ReplicaSet
`<deployment>-<pod-template-hash>`, as the API names it, without the ReplicaSet object),
and the snapshot time is kept in the List's metadata under COLLECTED_AT_KEY.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from discover.inventory.fields import format_time
from discover.inventory.files import COLLECTED_AT_KEY, RBAC_LISTED_KEY
from discover.inventory.model import (
    ApiCallback,
    DnsForwarding,
    EndpointSlice,
    Ingress,
    Inventory,
    Namespace,
    Node,
    Pod,
    RoleBinding,
    Service,
    WorkloadTemplate,
)

Json = dict[str, Any]
_API_VERSIONS = {"Deployment": "apps/v1", "ReplicaSet": "apps/v1", "StatefulSet": "apps/v1",
                 "DaemonSet": "apps/v1", "Job": "batch/v1", "CronJob": "batch/v1"}


def _meta(name: str, namespace: str | None = None,
          labels: Mapping[str, str] | None = None) -> Json:
    meta: Json = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    return meta


def namespace_to_dict(ns: Namespace) -> Json:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(ns.name, None, ns.labels)}


def node_to_dict(node: Node) -> Json:
    spec: Json = {}
    if node.pod_cidrs:
        spec["podCIDR"] = str(node.pod_cidrs[0])
        spec["podCIDRs"] = [str(c) for c in node.pod_cidrs]
    if node.provider_id:
        spec["providerID"] = node.provider_id
    return {"apiVersion": "v1", "kind": "Node", "metadata": _meta(node.name, None, node.labels),
            "spec": spec, "status": {"addresses": [
                {"address": str(a), "type": "InternalIP"} for a in node.addresses]}}


def _owner(pod: Pod) -> list[Json]:
    ref = pod.workload
    if ref.kind == "Pod":
        return []
    kind, name = ref.kind, ref.name
    template_hash = pod.labels.get("pod-template-hash")
    if kind == "Deployment" and template_hash:
        kind, name = "ReplicaSet", f"{ref.name}-{template_hash}"
    return [{"apiVersion": _API_VERSIONS.get(kind, "v1"), "kind": kind, "name": name,
             "controller": True, "blockOwnerDeletion": True}]


def _terminated(container: Json, phase: str | None, finished: str) -> Json:
    """A container status as kubectl shows a finished pod's. Only the latest finish time is
    kept, so every container gets it; exit code and reason only when the phase says them
    (Succeeded: every container exited 0), never made up for a Failed pod."""
    state: Json = {"exitCode": 0, "reason": "Completed"} if phase == "Succeeded" else {}
    state["finishedAt"] = finished
    entry: Json = {"name": container["name"], "ready": False}
    if "image" in container:
        entry["image"] = container["image"]
    entry["state"] = {"terminated": state}
    return entry


def pod_to_dict(pod: Pod) -> Json:
    meta = _meta(pod.name, pod.namespace, pod.labels)
    meta["uid"] = pod.uid
    if pod.created:
        meta["creationTimestamp"] = format_time(pod.created)
    if pod.deleted:
        meta["deletionTimestamp"] = format_time(pod.deleted)
    owners = _owner(pod)
    if owners:
        meta["ownerReferences"] = owners
    names: list[str] = []
    for port in pod.ports:
        if port.container not in names:
            names.append(port.container)
    count = max(len(names), len(pod.images))
    containers: list[Json] = []
    for i in range(count):
        name = names[i] if i < len(names) else f"container-{i}"
        container: Json = {"name": name}
        if i < len(pod.images):
            container["image"] = pod.images[i]
        ports = [{"containerPort": p.port, "protocol": str(p.protocol), **({"name": p.name}
                                                                       if p.name else {})}
                 for p in pod.ports if p.container == name]
        if ports:
            container["ports"] = ports
        containers.append(container)
    if pod.finished and not containers:
        containers.append({"name": "container-0"})  # a status needs a container to name
    _add_probes(pod, containers)
    spec: Json = {"containers": containers}
    if pod.service_account != "default":
        spec["serviceAccountName"] = pod.service_account
    if not pod.token_mounted:
        spec["automountServiceAccountToken"] = False
    if pod.node_name:
        spec["nodeName"] = pod.node_name
    if pod.host_network:
        spec["hostNetwork"] = True
    status: Json = {}
    if pod.phase:
        status["phase"] = pod.phase
    if pod.ips:
        status["podIP"] = str(pod.ips[0])
        status["podIPs"] = [{"ip": str(a)} for a in pod.ips]
    if pod.finished:
        finished = format_time(pod.finished)
        status["containerStatuses"] = [_terminated(c, pod.phase, finished) for c in containers]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}


def _add_probes(pod: Pod, containers: list[Json]) -> None:
    """Each probe as a tcpSocket on its (resolved) port: which handler probed is not kept,
    only the port matters to a policy."""
    for probe in pod.probes:
        container = next((c for c in containers if c["name"] == probe.container), None)
        if container is None:
            container = {"name": probe.container or f"container-{len(containers)}"}
            containers.append(container)
        container[f"{probe.kind}Probe"] = {"tcpSocket": {"port": probe.port}}


def callback_to_dict(callback: ApiCallback) -> Json:
    refs = [{"namespace": s.namespace, "name": s.name, "port": s.port}
            for s in callback.services]
    if callback.kind == "APIService":
        spec: Json = {"service": refs[0]} if refs else {}
        return {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
                "metadata": _meta(callback.name), "spec": spec}
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": callback.kind,
            "metadata": _meta(callback.name),
            "webhooks": [{"name": f"hook-{i}.netpol-discover.io",
                          "clientConfig": {"service": ref}} for i, ref in enumerate(refs)]}


def role_binding_to_dict(binding: RoleBinding) -> Json:
    kind = "RoleBinding" if binding.namespace is not None else "ClusterRoleBinding"
    role_kind, _, role_name = binding.role.partition("/")
    subjects: list[Json] = [{"kind": "ServiceAccount", "namespace": ns, "name": name}
                            for ns, name in binding.service_accounts]
    subjects += [{"kind": "Group", "name": g, "apiGroup": "rbac.authorization.k8s.io"}
                 for g in binding.groups]
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
            "metadata": _meta(binding.name, binding.namespace),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind,
                        "name": role_name},
            "subjects": subjects}


def dns_forwarding_to_dict(forwarding: DnsForwarding) -> Json:
    """A Corefile that says the same: one `forward .` line with what was kept."""
    namespace, _, name = forwarding.config_map.partition("/")
    port = forwarding.ports[0] if len(forwarding.ports) == 1 else 53
    targets = [f"[{a}]:{port}" if a.version == 6 else f"{a}:{port}"
               for a in forwarding.upstreams]
    if forwarding.to_resolv_conf:
        targets.append("/etc/resolv.conf")
    corefile = ".:53 {\n    forward . " + " ".join(targets) + "\n}\n" if targets else ""
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(name, namespace),
            "data": {"Corefile": corefile}}


def service_to_dict(svc: Service) -> Json:
    ports = []
    for p in svc.ports:
        port: Json = {"port": p.port, "protocol": str(p.protocol)}
        if p.name:
            port["name"] = p.name
        if p.target_port is not None:
            port["targetPort"] = p.target_port
        if p.node_port is not None:
            port["nodePort"] = p.node_port
        ports.append(port)
    ips = [str(a) for a in svc.cluster_ips] or ["None"]
    spec: Json = {"type": svc.type, "clusterIP": ips[0], "clusterIPs": ips, "ports": ports}
    if svc.selector:
        spec["selector"] = dict(svc.selector)
    if svc.external_traffic_policy:
        spec["externalTrafficPolicy"] = svc.external_traffic_policy
    if svc.external_ips:
        spec["externalIPs"] = [str(a) for a in svc.external_ips]
    ingress = [{"ip": str(a)} for a in svc.load_balancer_ips]
    ingress += [{"hostname": h} for h in svc.load_balancer_hostnames]
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": _meta(svc.name, svc.namespace, svc.labels), "spec": spec,
            "status": {"loadBalancer": {"ingress": ingress} if ingress else {}}}


def endpoint_slice_to_dict(s: EndpointSlice) -> Json:
    labels = {"kubernetes.io/service-name": s.service_name} if s.service_name else {}
    endpoints = []
    for e in s.endpoints:
        entry: Json = {"addresses": [str(a) for a in e.addresses],
                       "conditions": {"ready": e.ready}}
        if e.node_name:
            entry["nodeName"] = e.node_name
        if e.pod_name:
            entry["targetRef"] = {"kind": "Pod", "name": e.pod_name, "namespace": s.namespace}
        endpoints.append(entry)
    first = next((a for e in s.endpoints for a in e.addresses), None)
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": _meta(s.name, s.namespace, labels),
            "addressType": "IPv6" if first is not None and first.version == 6 else "IPv4",
            "endpoints": endpoints,
            "ports": [{"port": p.port, "protocol": str(p.protocol), **({"name": p.name}
                                                                   if p.name else {})}
                      for p in s.ports]}


def ingress_to_dict(ing: Ingress) -> Json:
    paths = []
    for b in ing.backends:
        port: Json = {}
        if isinstance(b.port, int):
            port["number"] = b.port
        elif isinstance(b.port, str):
            port["name"] = b.port
        paths.append({"path": "/", "pathType": "Prefix",
                      "backend": {"service": {"name": b.service_name, "port": port}}})
    spec: Json = {"rules": [{"http": {"paths": paths}}]} if paths else {}
    if ing.ingress_class:
        spec["ingressClassName"] = ing.ingress_class
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": _meta(ing.name, ing.namespace), "spec": spec}


def workload_to_dict(t: WorkloadTemplate) -> Json:
    spec: Json = {"selector": {"matchLabels": dict(t.selector)},
                  "template": {"metadata": {"labels": dict(t.template_labels)}}}
    if t.ref.kind == "CronJob":
        spec = {"jobTemplate": {"spec": spec}}
    return {"apiVersion": _API_VERSIONS.get(t.ref.kind, "v1"), "kind": t.ref.kind,
            "metadata": _meta(t.ref.name, t.ref.namespace), "spec": spec}


def inventory_to_dict(inventory: Inventory) -> Json:
    items: list[Json] = []
    items += [namespace_to_dict(n) for n in inventory.namespaces]
    items += [node_to_dict(n) for n in inventory.nodes]
    items += [pod_to_dict(p) for p in inventory.pods]
    items += [service_to_dict(s) for s in inventory.services]
    items += [endpoint_slice_to_dict(s) for s in inventory.endpoint_slices]
    items += [ingress_to_dict(i) for i in inventory.ingresses]
    items += [{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
               "metadata": _meta(p.name, p.namespace), "spec": dict(p.spec)}
              for p in inventory.network_policies]
    items += [workload_to_dict(t) for t in inventory.workloads]
    items += [callback_to_dict(c) for c in inventory.api_callbacks]
    items += [role_binding_to_dict(b) for b in inventory.role_bindings]
    items += [dns_forwarding_to_dict(d) for d in inventory.dns_forwarding]
    metadata: Json = {"resourceVersion": ""}
    if inventory.collected_at is not None:
        metadata[COLLECTED_AT_KEY] = format_time(inventory.collected_at)
    if inventory.has_rbac:
        metadata[RBAC_LISTED_KEY] = "true"
    return {"apiVersion": "v1", "kind": "List", "metadata": metadata, "items": items}


def dump_inventory(inventory: Inventory, path: Path) -> None:
    path.write_text(json.dumps(inventory_to_dict(inventory), indent=2, sort_keys=False) + "\n",
                    encoding="utf-8")
