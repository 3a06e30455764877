"""One Hubble flow, as `hubble observe -o json` (jsonpb) and Hubble's flow exporter write it.

Each line is a `GetFlowsResponse` (`{"flow": {...}, "node_name": ..., "time": ...}`) or, in
older exports, the bare `Flow` object; other responses (`node_status`, `lost_events`) carry
no flow. Field meanings are those of `api/v1/flow/flow.proto` in cilium/cilium. The JSON is
proto3's: field names as in the .proto (`source_port`, `is_reply`) or in lowerCamelCase
(`sourcePort`, `isReply`), which every proto3 JSON parser accepts, so both are read here;
enums as their names or their numbers; `is_reply` is a BoolValue wrapper (absent: unknown),
the deprecated `reply` only says true (false and absent look the same).

`parse_flow_line` turns one decoded JSON object into a `HubbleFlow` or says why it can't;
it does no I/O. Every string here came from the cluster and is attacker-chosen: only its
type is checked, escaping is each output's job.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from ipaddress import ip_address
from typing import Any

from discover.flows.events import IPAddress, Protocol

# flow.proto enum numbers -> names, for exports that write enums as numbers.
VERDICTS = {0: "VERDICT_UNKNOWN", 1: "FORWARDED", 2: "DROPPED", 3: "ERROR", 4: "AUDIT",
            5: "REDIRECTED", 6: "TRACED", 7: "TRANSLATED"}
FLOW_TYPES = {0: "UNKNOWN_TYPE", 1: "L3_L4", 2: "L7", 3: "SOCK"}
L7_TYPES = {0: "UNKNOWN_L7_TYPE", 1: "REQUEST", 2: "RESPONSE", 3: "SAMPLE"}
_L4_PROTOCOLS = {"TCP": Protocol.TCP, "UDP": Protocol.UDP, "SCTP": Protocol.SCTP}
_ICMP = ("ICMPv4", "ICMPv6")
_TIME = re.compile(
    r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)\Z", re.ASCII
)


class Verdict(enum.StrEnum):
    """What the datapath did with the packet (flow.proto `Verdict`): FORWARDED, REDIRECTED
    (to the L7 proxy), AUDIT (policy would have dropped it in enforcing mode) and TRACED
    happened; DROPPED and ERROR did not get through."""

    FORWARDED = "FORWARDED"
    REDIRECTED = "REDIRECTED"
    AUDIT = "AUDIT"
    TRACED = "TRACED"
    TRANSLATED = "TRANSLATED"
    DROPPED = "DROPPED"
    ERROR = "ERROR"
    UNKNOWN = "VERDICT_UNKNOWN"

    @property
    def happened(self) -> bool:
        return self in (Verdict.FORWARDED, Verdict.REDIRECTED, Verdict.AUDIT, Verdict.TRACED)

    @property
    def blocked(self) -> bool:
        return self in (Verdict.DROPPED, Verdict.ERROR)


@dataclass(frozen=True, slots=True)
class TcpFlags:
    syn: bool = False
    ack: bool = False
    rst: bool = False
    fin: bool = False


@dataclass(frozen=True, slots=True)
class HubbleEndpoint:
    """flow.proto `Endpoint`: identity labels ("k8s:app=x", "reserved:host") as given."""

    namespace: str = ""
    pod_name: str = ""
    labels: tuple[str, ...] = ()
    workloads: tuple[tuple[str, str], ...] = ()  # (kind, name)
    identity: int = 0

    @property
    def reserved(self) -> frozenset[str]:
        """The reserved identities it carries: "host", "world", "remote-node", ..."""
        return frozenset(label[9:] for label in self.labels if label.startswith("reserved:"))


@dataclass(frozen=True, slots=True)
class HubbleDns:
    """flow.proto `DNS`: the query as asked, the answer's addresses, TTL, CNAMEs, rcode."""

    query: str
    ips: tuple[IPAddress, ...]
    ttl: int
    cnames: tuple[str, ...]
    rcode: int


@dataclass(frozen=True, slots=True)
class PolicyRef:
    """A policy named in `ingress_denied_by`/`egress_denied_by` (flow.proto `Policy`)."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind or 'policy'} {where}{self.name}"


@dataclass(frozen=True, slots=True)
class HubbleFlow:
    """The fields of one flow that connections, DNS, drops and endpoints are built from.
    `protocol` is None for ICMP (no NetworkPolicy port); ports are 0 then."""

    time: float
    verdict: Verdict
    flow_type: str  # L3_L4, L7, SOCK
    src_ip: IPAddress
    dst_ip: IPAddress
    protocol: Protocol | None
    src_port: int
    dst_port: int
    flags: TcpFlags
    is_reply: bool | None
    source: HubbleEndpoint
    destination: HubbleEndpoint
    node_name: str
    l7_type: str  # REQUEST, RESPONSE, ... or "" for L3/L4 flows
    dns: HubbleDns | None
    destination_service: tuple[str, str] | None  # (namespace, name)
    drop_reason: str
    denied_by: tuple[PolicyRef, ...]
    uuid: str
    observation_point: str
    event_type: int  # Cilium's monitor message type (bpf/lib/notify.h): 4 trace, 5 policy verdict


class NotAFlow(Exception):  # noqa: N818 (a reason, not an error: the line is skipped)
    """The object is valid JSON but no flow: `reason` says what it is (a counter name)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(detail or reason)


def field(obj: dict[str, Any], name: str) -> Any:
    """A field by its proto name or its lowerCamelCase JSON name."""
    if name in obj:
        return obj[name]
    parts = name.split("_")
    return obj.get(parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:]))


def unwrap(obj: Any) -> tuple[dict[str, Any], str]:
    """(the Flow object, the response's node name) of a GetFlowsResponse or a bare Flow."""
    if not isinstance(obj, dict):
        raise NotAFlow("not_object", "not a JSON object")
    inner = obj.get("flow")
    if isinstance(inner, dict):
        node = field(obj, "node_name")
        return inner, node if isinstance(node, str) else ""
    if "lost_events" in obj or "lostEvents" in obj:
        raise NotAFlow("lost_events")
    if any(key in obj for key in ("node_status", "nodeStatus", "agent_event", "agentEvent",
                                   "debug_event", "debugEvent")):
        raise NotAFlow("other_events")
    if "IP" in obj or "l4" in obj or "verdict" in obj:
        return obj, ""
    raise NotAFlow("not_flow", "a JSON object that is neither a GetFlowsResponse nor a Flow")


def parse_flow(obj: Any) -> HubbleFlow:
    """A `HubbleFlow` from one decoded line; NotAFlow (with the reason) when it has none,
    ValueError when a field it needs is malformed."""
    flow, response_node = unwrap(obj)
    ip = flow.get("IP")
    if not isinstance(ip, dict):
        raise NotAFlow("no_ip")  # e.g. an L2 (ARP) flow: nothing a NetworkPolicy governs
    time = _time(field(flow, "time") or (obj.get("time") if isinstance(obj, dict) else None))
    src_ip = ip_address(_text(ip.get("source"), "IP.source"))
    dst_ip = ip_address(_text(ip.get("destination"), "IP.destination"))
    protocol, src_port, dst_port, flags = _layer4(flow.get("l4"))
    l7 = flow.get("l7")
    l7_type, dns = _layer7(l7) if isinstance(l7, dict) else ("", None)
    node = field(flow, "node_name")
    return HubbleFlow(
        time=time,
        verdict=_verdict(flow.get("verdict")),
        flow_type=_enum(flow.get("Type"), FLOW_TYPES, "UNKNOWN_TYPE"),
        src_ip=src_ip,
        dst_ip=dst_ip,
        protocol=protocol,
        src_port=src_port,
        dst_port=dst_port,
        flags=flags,
        is_reply=_is_reply(flow),
        source=_endpoint(flow.get("source")),
        destination=_endpoint(flow.get("destination")),
        node_name=node if isinstance(node, str) and node else response_node,
        l7_type=l7_type,
        dns=dns,
        destination_service=_service(field(flow, "destination_service")),
        drop_reason=_drop_reason(flow),
        denied_by=_policies(field(flow, "ingress_denied_by"))
        + _policies(field(flow, "egress_denied_by")),
        uuid=_string(flow.get("uuid")),
        observation_point=_enum(field(flow, "trace_observation_point"), {}, ""),
        event_type=_event_type(field(flow, "event_type")),
    )


# -- fields ------------------------------------------------------------------------------


def parse_time(text: str) -> float:
    """RFC 3339 with up to nanoseconds (what protobuf's Timestamp gives) -> epoch seconds."""
    match = _TIME.match(text)
    if match is None:
        raise ValueError(f"time {text[:40]!r} is not RFC 3339")
    whole, fraction, zone = match.groups()
    when = datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone))
    if when.tzinfo is None:  # pragma: no cover - the pattern requires a zone
        when = when.replace(tzinfo=UTC)
    return when.timestamp() + (int(fraction.ljust(9, "0")) / 1e9 if fraction else 0.0)


def _time(value: Any) -> float:
    if not isinstance(value, str):
        raise ValueError("no time")
    return parse_time(value)


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} is missing or not a string")
    return value


def _string(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _port(value: Any) -> int:
    if value is None:
        return 0  # proto3 JSON leaves out zero values
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ValueError(f"port {value!r} is not 0-65535")
    return value


def _enum(value: Any, names: dict[int, str], default: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return names.get(value, str(value))
    return default


def _event_type(value: Any) -> int:
    kind = value.get("type") if isinstance(value, dict) else None
    return kind if isinstance(kind, int) and not isinstance(kind, bool) else 0


def _verdict(value: Any) -> Verdict:
    name = _enum(value, VERDICTS, "VERDICT_UNKNOWN")
    try:
        return Verdict(name)
    except ValueError:
        return Verdict.UNKNOWN


def _layer4(l4: Any) -> tuple[Protocol | None, int, int, TcpFlags]:
    if not isinstance(l4, dict):
        raise NotAFlow("no_l4")
    for name, protocol in _L4_PROTOCOLS.items():
        body = l4.get(name)
        if isinstance(body, dict):
            flags = body.get("flags") if name == "TCP" else None
            return (
                protocol,
                _port(field(body, "source_port")),
                _port(field(body, "destination_port")),
                _flags(flags) if isinstance(flags, dict) else TcpFlags(),
            )
    if any(name in l4 for name in _ICMP):
        return None, 0, 0, TcpFlags()
    raise NotAFlow("no_l4")


def _flags(flags: dict[str, Any]) -> TcpFlags:
    return TcpFlags(
        syn=flags.get("SYN") is True,
        ack=flags.get("ACK") is True,
        rst=flags.get("RST") is True,
        fin=flags.get("FIN") is True,
    )


def _is_reply(flow: dict[str, Any]) -> bool | None:
    value = field(flow, "is_reply")
    if isinstance(value, bool):
        return value
    # The deprecated `reply` can't say false (proto3 leaves false out): only true counts.
    return True if flow.get("reply") is True else None


def _endpoint(value: Any) -> HubbleEndpoint:
    if not isinstance(value, dict):
        return HubbleEndpoint()
    labels = value.get("labels")
    workloads = value.get("workloads")
    identity = value.get("identity")
    return HubbleEndpoint(
        namespace=_string(value.get("namespace")),
        pod_name=_string(field(value, "pod_name")),
        labels=tuple(x for x in labels if isinstance(x, str)) if isinstance(labels, list) else (),
        workloads=tuple(
            (w["kind"], w["name"])
            for w in workloads
            if isinstance(w, dict) and isinstance(w.get("kind"), str)
            and isinstance(w.get("name"), str) and w["kind"] and w["name"]
        ) if isinstance(workloads, list) else (),
        identity=identity if isinstance(identity, int) and not isinstance(identity, bool) else 0,
    )


def _layer7(l7: dict[str, Any]) -> tuple[str, HubbleDns | None]:
    kind = _enum(l7.get("type"), L7_TYPES, "UNKNOWN_L7_TYPE")
    dns = l7.get("dns")
    if not isinstance(dns, dict):
        return kind, None
    ips = dns.get("ips")
    cnames = dns.get("cnames")
    ttl = dns.get("ttl")
    rcode = dns.get("rcode")
    return kind, HubbleDns(
        query=_dns_name(dns.get("query")),
        ips=tuple(ip_address(x) for x in ips if isinstance(x, str)) if isinstance(ips, list)
        else (),
        ttl=ttl if isinstance(ttl, int) and not isinstance(ttl, bool) and ttl >= 0 else 0,
        cnames=tuple(_dns_name(x) for x in cnames if isinstance(x, str))
        if isinstance(cnames, list) else (),
        rcode=rcode if isinstance(rcode, int) and not isinstance(rcode, bool) else 0,
    )


def _dns_name(value: Any) -> str:
    """As the packet path keys names: lower case, no trailing dot."""
    return value.lower().rstrip(".") if isinstance(value, str) else ""


def _service(value: Any) -> tuple[str, str] | None:
    if not isinstance(value, dict):
        return None
    name = value.get("name")
    if not isinstance(name, str) or not name:
        return None
    return _string(value.get("namespace")), name


def _drop_reason(flow: dict[str, Any]) -> str:
    desc = field(flow, "drop_reason_desc")
    if isinstance(desc, str):
        return desc
    if isinstance(desc, int) and not isinstance(desc, bool) and desc:
        return f"drop reason {desc}"
    old = field(flow, "drop_reason")  # deprecated uint32
    if isinstance(old, int) and not isinstance(old, bool) and old:
        return f"drop reason {old}"
    return ""


def _policies(value: Any) -> tuple[PolicyRef, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(
        PolicyRef(_string(p.get("kind")), _string(p.get("namespace")), _string(p.get("name")))
        for p in value
        if isinstance(p, dict) and isinstance(p.get("name"), str)
    )
