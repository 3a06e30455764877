"""What of a raw API object is worth keeping until the inventory is built.

A pod as `kubectl get -o json` prints it is ~4-8 KB of text and ~15-25 KB of Python
objects, most of it fields no parser here reads: environment, volumes, tolerations,
resources, conditions, image digests. A file's objects are all held until `build.py` has
them all (a pod's workload needs its ReplicaSet, which may come later), so 100,000 pods
held whole are several GB. `trim_object` drops, as each object is read, the fields
known to be bulky and unread; what any parser reads is kept as it came, wrong types
included, so a bad object gets the same error or note as before. Tests check that
`parse_pod` gives the same Pod from a trimmed object as from the whole one.

The lists below name what is dropped, not what is kept: a field a parser starts reading
later is kept unless it is added here.
"""

from __future__ import annotations

from typing import Any

# Never read, on any kind (kubectl prints them with --show-managed-fields, API clients
# always).
ANY_METADATA = ("managedFields",)
# Pods: read are metadata (not annotations), spec.nodeName, hostNetwork, the service
# account fields, containers' and initContainers' name, image, ports and probes, and
# status phase, podIP(s) and the container statuses' state (see objects.parse_pod).
POD_METADATA = ("annotations",)
POD_SPEC = ("volumes", "tolerations", "affinity", "topologySpreadConstraints",
            "securityContext", "dnsConfig", "imagePullSecrets", "readinessGates",
            "ephemeralContainers", "overhead", "resourceClaims", "schedulingGates")
CONTAINER = ("env", "envFrom", "volumeMounts", "volumeDevices", "resources",
             "securityContext", "command", "args", "lifecycle", "workingDir",
             "terminationMessagePath", "terminationMessagePolicy", "imagePullPolicy",
             "resizePolicy")
POD_STATUS = ("conditions", "ephemeralContainerStatuses", "resourceClaimStatuses",
              "hostIPs", "qosClass")
CONTAINER_STATUS = ("image", "imageID", "containerID", "lastState", "ready", "started",
                    "restartCount", "allocatedResources", "resources", "volumeMounts", "user")


def trim_object(obj: Any) -> Any:
    """`obj` without its unread bulk (the same object, changed in place; anything that is
    not a mapping where one is expected is left as it is)."""
    if not isinstance(obj, dict):
        return obj
    metadata = obj.get("metadata")
    _drop(metadata, ANY_METADATA)
    spec = obj.get("spec")
    # A Pod: by kind, or in a typed PodList whose items have no kind, by its shape (only a
    # pod has containers right in its spec).
    kind = obj.get("kind")
    if kind == "Pod" or (kind is None and isinstance(spec, dict) and "containers" in spec):
        _drop(metadata, POD_METADATA)
        _drop(spec, POD_SPEC)
        if isinstance(spec, dict):
            for group in ("initContainers", "containers"):
                _drop_each(spec.get(group), CONTAINER)
        status = obj.get("status")
        _drop(status, POD_STATUS)
        if isinstance(status, dict):
            for group in ("initContainerStatuses", "containerStatuses"):
                _drop_each(status.get(group), CONTAINER_STATUS)
    return obj


def _drop(mapping: Any, keys: tuple[str, ...]) -> None:
    if isinstance(mapping, dict):
        for key in keys:
            mapping.pop(key, None)


def _drop_each(entries: Any, keys: tuple[str, ...]) -> None:
    if isinstance(entries, list):
        for entry in entries:
            _drop(entry, keys)
