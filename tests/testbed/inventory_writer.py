"""What `kubectl get namespaces,nodes,pods,services,endpointslices,ingresses,deployments,
replicasets,statefulsets,daemonsets,validatingwebhookconfigurations -A -o json` and
`kubectl get -n kube-system configmap/coredns -o json` would print at the end of the run:
a v1 List with the API's field shapes, the IPs actually used and the real creation times.
Like every cluster's, it has the default/kubernetes Service and its EndpointSlice (the
API server's address, off the node here); the coredns ConfigMap is there when the
scenario's cluster DNS forwards (`upstream_dns`).

Like a snapshot taken after the run, it lacks the workloads deleted during it; a pod that
took over a deleted pod's IP has a creationTimestamp after that deletion.
"""

from __future__ import annotations

import hashlib
import itertools
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tests.testbed.cluster import Cluster, PodPlan, k8s_suffix, k8s_uid, target_port_of
from tests.testbed.scenario import API_SERVICE, ServiceSpec, WebhookSpec, WorkloadSpec

if TYPE_CHECKING:
    from tests.testbed.runner import Timeline

KIND_ORDER = ("Namespace", "Node", "Pod", "Service", "EndpointSlice", "Ingress", "Deployment",
              "ReplicaSet", "StatefulSet", "DaemonSet", "ValidatingWebhookConfiguration",
              "ConfigMap")


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Writer:
    def __init__(self, cluster: Cluster, times: Timeline) -> None:
        self.cluster = cluster
        self.times = times
        self.versions = itertools.count(1000)
        self.setup = rfc3339(times.setup)

    def meta(self, kind: str, name: str, namespace: str | None, created: str,
             labels: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "name": name,
            "uid": k8s_uid(f"{kind}/{namespace}/{name}"),
            "creationTimestamp": created,
            "resourceVersion": str(next(self.versions)),
        }
        if namespace is not None:
            meta["namespace"] = namespace
        if labels:
            meta["labels"] = dict(sorted(labels.items()))
        meta.update(extra)
        return meta

    def owner(self, kind: str, name: str, namespace: str) -> dict[str, Any]:
        return {"apiVersion": "apps/v1", "kind": kind, "name": name,
                "uid": k8s_uid(f"{kind}/{namespace}/{name}"), "controller": True,
                "blockOwnerDeletion": True}

    def workload_created(self, workload: WorkloadSpec) -> str:
        pods = self.cluster.pods_of(workload.key)
        if workload.create_at is not None and pods and pods[0].name in self.times.created:
            return rfc3339(self.times.created[pods[0].name])
        return self.setup

    def alive(self, pod: PodPlan) -> bool:
        return pod.name not in self.times.deleted and (
            pod.created_at is None or pod.name in self.times.created)

    def workload_alive(self, workload: WorkloadSpec) -> bool:
        return workload.delete_at is None and any(
            self.alive(p) for p in self.cluster.pods_of(workload.key))

    # -- objects --------------------------------------------------------------------------

    def namespaces(self) -> list[dict[str, Any]]:
        return [{
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": self.meta("Namespace", name, None, self.setup, dict(labels)),
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"},
        } for name, labels in sorted(self.cluster.namespaces.items())]

    def node(self) -> dict[str, Any]:
        node = self.cluster.scenario.node
        return {
            "apiVersion": "v1", "kind": "Node",
            "metadata": self.meta("Node", node.name, None, self.setup, {
                "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": node.name,
                "kubernetes.io/os": "linux", "node-role.kubernetes.io/control-plane": "",
            }),
            "spec": {"podCIDR": str(node.pod_cidr), "podCIDRs": [str(node.pod_cidr)],
                     "providerID": node.provider_id},
            "status": {
                "addresses": [{"type": "InternalIP", "address": str(node.ip)},
                              {"type": "Hostname", "address": node.name}],
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                "lastTransitionTime": self.setup}],
                "nodeInfo": {"architecture": "amd64", "containerRuntimeVersion":
                             "containerd://1.7.13", "kubeletVersion": "v1.29.2",
                             "kubeProxyVersion": "v1.29.2", "operatingSystem": "linux",
                             "osImage": "Debian GNU/Linux 12", "kernelVersion": "6.1.0-18-amd64",
                             "machineID": k8s_suffix(node.name, 32),
                             "systemUUID": k8s_uid(f"system/{node.name}"),
                             "bootID": k8s_uid(f"boot/{node.name}")},
            },
        }

    def containers(self, workload: WorkloadSpec) -> list[dict[str, Any]]:
        container: dict[str, Any] = {"name": workload.name, "image": workload.image,
                                     "imagePullPolicy": "IfNotPresent"}
        if workload.ports:
            container["ports"] = [
                {**({"name": p.name} if p.name else {}), "containerPort": p.port,
                 "protocol": p.protocol} for p in workload.ports
            ]
        return [container]

    def pod_spec(self, workload: WorkloadSpec) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "containers": self.containers(workload), "restartPolicy": "Always",
            "dnsPolicy": "ClusterFirstWithHostNet" if workload.host_network else "ClusterFirst",
            "serviceAccountName": "default", "terminationGracePeriodSeconds": 30,
        }
        if workload.host_network:
            spec["hostNetwork"] = True
        return spec

    def pod(self, pod: PodPlan) -> dict[str, Any]:
        node = self.cluster.scenario.node
        created = rfc3339(self.times.created.get(pod.name, self.times.setup))
        generate = pod.name.rsplit("-", 1)[0] + "-" if pod.owner_kind != "StatefulSet" else None
        meta = self.meta("Pod", pod.name, pod.namespace, created, dict(pod.labels),
                         ownerReferences=[self.owner(pod.owner_kind, pod.owner_name,
                                                     pod.namespace)])
        meta["uid"] = pod.uid
        meta["generateName"] = generate or f"{pod.workload.name}-"
        spec = self.pod_spec(pod.workload) | {"nodeName": node.name}
        if pod.owner_kind == "StatefulSet":
            spec["hostname"] = pod.name
            headless = self.headless_for(pod.workload)
            if headless is not None:
                spec["subdomain"] = headless.name
        return {
            "apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec,
            "status": {
                "phase": "Running", "hostIP": str(node.ip), "hostIPs": [{"ip": str(node.ip)}],
                "podIP": str(pod.ip), "podIPs": [{"ip": str(pod.ip)}], "startTime": created,
                "qosClass": "BestEffort",
                "conditions": [{"type": t, "status": "True", "lastTransitionTime": created}
                               for t in ("Initialized", "Ready", "ContainersReady",
                                         "PodScheduled")],
                "containerStatuses": [{
                    "name": pod.workload.name, "image": pod.workload.image,
                    "imageID": f"{pod.workload.image.split(':')[0]}@sha256:"
                               f"{hashlib.sha256(pod.workload.image.encode()).hexdigest()}",
                    "containerID": "containerd://" + hashlib.sha256(
                        pod.uid.encode()).hexdigest(),
                    "ready": True, "restartCount": 0, "started": True,
                    "state": {"running": {"startedAt": created}}}],
            },
        }

    def headless_for(self, workload: WorkloadSpec) -> ServiceSpec | None:
        return next((s for s in self.cluster.services if s.cluster_ip is None
                     and s.namespace == workload.namespace
                     and all(workload.labels.get(k) == v for k, v in s.selector.items())), None)

    def service(self, service: ServiceSpec) -> dict[str, Any]:
        ports = []
        for port in service.ports:
            entry: dict[str, Any] = {"port": port.port, "protocol": port.protocol,
                                     "targetPort": port.target_port}
            if port.name:
                entry["name"] = port.name
            if service.type == "LoadBalancer":
                entry["nodePort"] = port.node_port or 30000 + port.port % 2000
            ports.append(entry)
        ip = "None" if service.cluster_ip is None else str(service.cluster_ip)
        spec: dict[str, Any] = {
            "type": service.type, "clusterIP": ip, "clusterIPs": [ip], "ports": ports,
            "selector": dict(service.selector), "sessionAffinity": "None",
            "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "internalTrafficPolicy": "Cluster",
        }
        if not service.selector:  # default/kubernetes: its EndpointSlice is made by hand
            del spec["selector"]
        status: dict[str, Any] = {"loadBalancer": {}}
        if service.type == "LoadBalancer":
            spec["externalTrafficPolicy"] = service.external_traffic_policy or "Cluster"
            spec["allocateLoadBalancerNodePorts"] = True
            if spec["externalTrafficPolicy"] == "Local":
                spec["healthCheckNodePort"] = 32000 + sum(map(ord, service.key)) % 700
            status = {"loadBalancer": {"ingress": [{"ip": str(service.load_balancer_ip),
                                                    "ipMode": "VIP"}]}}
        labels = {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"} \
            if service.key == "kube-system/kube-dns" else {"app": service.name}
        if service.key == API_SERVICE:
            labels = {"component": "apiserver", "provider": "kubernetes"}
        return {"apiVersion": "v1", "kind": "Service",
                "metadata": self.meta("Service", service.name, service.namespace, self.setup,
                                      labels),
                "spec": spec, "status": status}

    def api_endpoint_slice(self, service: ServiceSpec) -> dict[str, Any]:
        """The API server keeps this one itself: named like the Service, no owner, its
        endpoints the API servers' addresses (on no node here)."""
        meta = self.meta("EndpointSlice", service.name, service.namespace, self.setup,
                         {"kubernetes.io/service-name": service.name})
        return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": meta, "addressType": "IPv4",
                "endpoints": [{"addresses": [str(ip)], "conditions": {"ready": True}}
                              for ip in service.endpoint_ips],
                "ports": [{**({"name": p.name} if p.name else {}), "port": p.target_port,
                           "protocol": p.protocol} for p in service.ports]}

    def webhook_configuration(self, hook: WebhookSpec) -> dict[str, Any]:
        namespace, name = hook.service.split("/")
        return {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": self.meta("ValidatingWebhookConfiguration", hook.name, None,
                                  self.setup, generation=1),
            "webhooks": [{
                "name": f"{hook.name}.testbed.example.com",
                "admissionReviewVersions": ["v1"], "sideEffects": "None",
                "failurePolicy": "Fail", "matchPolicy": "Equivalent", "timeoutSeconds": 10,
                "namespaceSelector": {}, "objectSelector": {},
                "clientConfig": {"service": {"namespace": namespace, "name": name,
                                             "port": hook.port, "path": hook.path}},
                "rules": [{"apiGroups": ["apps"], "apiVersions": ["v1"],
                           "operations": ["CREATE", "UPDATE"], "resources": ["deployments"],
                           "scope": "*"}],
            }],
        }

    def coredns_config_map(self) -> dict[str, Any]:
        upstream = self.cluster.scenario.upstream_dns
        corefile = (".:53 {\n    errors\n    health {\n       lameduck 5s\n    }\n    ready\n"
                    "    kubernetes cluster.local in-addr.arpa ip6.arpa {\n"
                    "       pods insecure\n       fallthrough in-addr.arpa ip6.arpa\n"
                    "       ttl 30\n    }\n    prometheus :9153\n"
                    f"    forward . {upstream} {{\n       max_concurrent 1000\n    }}\n"
                    "    cache 30\n    loop\n    reload\n    loadbalance\n}\n")
        return {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": self.meta("ConfigMap", "coredns", "kube-system", self.setup),
                "data": {"Corefile": corefile}}

    def endpoint_slice(self, service: ServiceSpec) -> dict[str, Any]:
        if service.endpoint_ips:
            return self.api_endpoint_slice(service)
        pods = [p for p in self.cluster.endpoints(service) if self.alive(p)]
        endpoints, ports = [], []
        for pod in pods:
            endpoints.append({
                "addresses": [str(pod.ip)],
                "conditions": {"ready": True, "serving": True, "terminating": False},
                "nodeName": self.cluster.scenario.node.name,
                "targetRef": {"kind": "Pod", "name": pod.name, "namespace": pod.namespace,
                              "uid": pod.uid},
            })
        for port in service.ports:
            number = target_port_of(port, pods[0]) if pods else None
            if number is not None:
                ports.append({**({"name": port.name} if port.name else {}), "port": number,
                              "protocol": port.protocol})
        name = f"{service.name}-{k8s_suffix(service.key + '/slice', 5)}"
        meta = self.meta("EndpointSlice", name, service.namespace, self.setup, {
            "kubernetes.io/service-name": service.name,
            "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
        }, generateName=f"{service.name}-", ownerReferences=[{
            "apiVersion": "v1", "kind": "Service", "name": service.name,
            "uid": k8s_uid(f"Service/{service.namespace}/{service.name}"),
            "controller": True, "blockOwnerDeletion": True}])
        return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": meta, "addressType": "IPv4",
                "endpoints": endpoints or None, "ports": ports or None}

    def ingresses(self) -> list[dict[str, Any]]:
        out = []
        lb = next((s for s in self.cluster.services if s.type == "LoadBalancer"
                   and "ingress" in s.name), None)
        for ingress in self.cluster.scenario.ingresses:
            port = ({"name": ingress.service_port} if isinstance(ingress.service_port, str)
                    else {"number": ingress.service_port})
            out.append({
                "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": self.meta("Ingress", ingress.name, ingress.namespace, self.setup),
                "spec": {"ingressClassName": ingress.ingress_class, "rules": [{
                    "host": ingress.host, "http": {"paths": [{
                        "path": "/", "pathType": "Prefix",
                        "backend": {"service": {"name": ingress.service, "port": port}},
                    }]}}]},
                "status": {"loadBalancer": {} if lb is None else {
                    "ingress": [{"ip": str(lb.load_balancer_ip)}]}},
            })
        return out

    def controllers(self, workload: WorkloadSpec) -> list[dict[str, Any]]:
        created = self.workload_created(workload)
        pods = [p for p in self.cluster.pods_of(workload.key) if self.alive(p)]
        first_key = next(iter(workload.labels))
        selector = {first_key: workload.labels[first_key]}
        template_hash = self.cluster.template_hashes[workload.key]
        template = {"metadata": {"labels": dict(workload.labels)},
                    "spec": self.pod_spec(workload)}
        n = len(pods)
        if workload.kind == "Deployment":
            rs_name = f"{workload.name}-{template_hash}"
            deployment = {
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": self.meta("Deployment", workload.name, workload.namespace, created,
                                      dict(workload.labels), generation=1, annotations={
                                          "deployment.kubernetes.io/revision": "1"}),
                "spec": {"replicas": workload.replicas, "selector": {"matchLabels": selector},
                         "template": template, "strategy": {"type": "RollingUpdate"}},
                "status": {"replicas": n, "readyReplicas": n, "availableReplicas": n,
                           "updatedReplicas": n, "observedGeneration": 1},
            }
            rs_labels = dict(workload.labels) | {"pod-template-hash": template_hash}
            replica_set = {
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": self.meta(
                    "ReplicaSet", rs_name, workload.namespace, created, rs_labels,
                    generation=1, ownerReferences=[self.owner("Deployment", workload.name,
                                                              workload.namespace)]),
                "spec": {"replicas": workload.replicas, "selector": {"matchLabels": selector
                         | {"pod-template-hash": template_hash}},
                         "template": {"metadata": {"labels": rs_labels},
                                      "spec": template["spec"]}},
                "status": {"replicas": n, "readyReplicas": n, "availableReplicas": n,
                           "fullyLabeledReplicas": n, "observedGeneration": 1},
            }
            return [deployment, replica_set]
        meta = self.meta(workload.kind, workload.name, workload.namespace, created,
                         dict(workload.labels), generation=1)
        if workload.kind == "StatefulSet":
            headless = self.headless_for(workload)
            return [{"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta,
                     "spec": {"replicas": workload.replicas, "selector": {"matchLabels":
                              selector}, "serviceName": headless.name if headless else "",
                              "template": template, "podManagementPolicy": "OrderedReady"},
                     "status": {"replicas": n, "readyReplicas": n, "availableReplicas": n,
                                "currentReplicas": n, "updatedReplicas": n,
                                "currentRevision": f"{workload.name}-{template_hash}",
                                "observedGeneration": 1}}]
        return [{"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": meta,
                 "spec": {"selector": {"matchLabels": selector}, "template": template},
                 "status": {"currentNumberScheduled": n, "desiredNumberScheduled": n,
                            "numberAvailable": n, "numberReady": n, "updatedNumberScheduled": n,
                            "numberMisscheduled": 0, "observedGeneration": 1}}]


def build_inventory(cluster: Cluster, times: Timeline) -> dict[str, Any]:
    writer = _Writer(cluster, times)
    items: list[dict[str, Any]] = writer.namespaces() + [writer.node()]
    items += [writer.pod(p) for p in cluster.pods if writer.alive(p)]
    services = sorted(cluster.services, key=lambda s: s.key)
    items += [writer.service(s) for s in services]
    items += [writer.endpoint_slice(s) for s in services]
    items += writer.ingresses()
    controllers = [o for w in cluster.workloads if writer.workload_alive(w)
                   for o in writer.controllers(w)]
    items += sorted(controllers, key=lambda o: KIND_ORDER.index(o["kind"]))
    items += [writer.webhook_configuration(h) for h in cluster.scenario.webhooks]
    if cluster.scenario.upstream_dns is not None:
        items.append(writer.coredns_config_map())
    return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
            "items": items}
