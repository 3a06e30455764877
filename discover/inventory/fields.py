"""Reading fields out of raw Kubernetes API objects, with errors that say where.

`kubectl -o json` and `-o yaml` print the same objects; YAML loaders may already have
turned unquoted timestamps into `datetime`s and numbers into `int`s, so every reader here
accepts both forms. Errors name the field path inside the object (`status.podIP`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from discover.errors import FieldError as FieldError  # re-exported: objects.py raises f.FieldError
from discover.flows.events import Protocol
from discover.inventory.model import IPAddress, IPNetwork


def mapping(obj: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
    """`obj[key]` as a mapping; {} when absent or null."""
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise FieldError(_join(path, key), f"expected an object, got {type(value).__name__}")
    return value


def sequence(obj: Mapping[str, Any], key: str, path: str) -> list[Any]:
    """`obj[key]` as a list; [] when absent or null."""
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise FieldError(_join(path, key), f"expected a list, got {type(value).__name__}")
    return value


def string(obj: Mapping[str, Any], key: str, path: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise FieldError(_join(path, key), f"expected a string, got {type(value).__name__}")
    return str(value)


def protocol(obj: Mapping[str, Any], key: str, path: str) -> Protocol:
    """A port's protocol: TCP when absent (the API's default); the API server accepts only
    TCP, UDP and SCTP (upper case here, as kubectl would have been told)."""
    text = string(obj, key, path)
    if not text:
        return Protocol.TCP
    try:
        return Protocol(text.upper())
    except ValueError:
        raise FieldError(_join(path, key), f"expected TCP, UDP or SCTP, got {text!r}") from None


def object_name(obj: Mapping[str, Any]) -> str:
    """`metadata.name`, which every Kubernetes object has: a nameless object would become
    `default/` something and give `default` a policy it never asked for."""
    metadata = mapping(obj, "metadata", "")
    value = metadata.get("name")
    if value is None or value == "":
        raise FieldError("metadata.name", "missing (every Kubernetes object has a name)")
    if not isinstance(value, str):
        raise FieldError("metadata.name", f"expected a string, got {type(value).__name__}")
    return value


def integer(obj: Mapping[str, Any], key: str, path: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.isdigit():
            return int(value)
        raise FieldError(_join(path, key), f"{value!r} is not an integer")
    return value


def port_number(obj: Mapping[str, Any], key: str, path: str) -> int | None:
    value = integer(obj, key, path)
    if value is not None and not 0 < value < 65536:
        raise FieldError(_join(path, key), f"{value} is not a port number (1-65535)")
    return value


def int_or_name(obj: Mapping[str, Any], key: str, path: str) -> int | str | None:
    """An IntOrString port field (targetPort, servicePort): a number or a port name."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool):
        raise FieldError(_join(path, key), f"{value!r} is neither a port number nor a name")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return int(value) if value.isdigit() else value
    raise FieldError(_join(path, key), f"{value!r} is neither a port number nor a name")


def labels(obj: Mapping[str, Any], key: str, path: str) -> dict[str, str]:
    """A string map (labels, selector); YAML may have made `"true"` a bool, undo that."""
    raw = mapping(obj, key, path)
    out: dict[str, str] = {}
    for name, value in raw.items():
        if isinstance(value, bool):
            out[str(name)] = "true" if value else "false"
        elif value is None:
            out[str(name)] = ""
        else:
            out[str(name)] = str(value)
    return out


def ip(value: Any, path: str) -> IPAddress:
    try:
        return ipaddress.ip_address(str(value).strip())
    except ValueError:
        raise FieldError(path, f"{value!r} is not an IP address") from None


def network(value: Any, path: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(str(value).strip(), strict=False)
    except ValueError:
        raise FieldError(path, f"{value!r} is not a CIDR") from None


def timestamp(obj: Mapping[str, Any], key: str, path: str) -> datetime | None:
    value = obj.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str):
        raise FieldError(_join(path, key), f"{value!r} is not a timestamp")
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise FieldError(_join(path, key), f"{value!r} is not an RFC 3339 timestamp") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_time(value: datetime) -> str:
    """RFC 3339 as the API prints it (seconds; fractions only when present)."""
    value = value.astimezone(UTC)
    if value.microsecond:
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
