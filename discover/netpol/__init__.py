"""NetworkPolicy semantics: parse policies, evaluate connections, read policy files."""

from discover.netpol.evaluate import Endpoint, IpEndpoint, PodEndpoint, PolicyEvaluator, Verdict
from discover.netpol.ports import ConnectionSet
from discover.netpol.selectors import InvalidPolicyError

__all__ = [
    "ConnectionSet",
    "Endpoint",
    "InvalidPolicyError",
    "IpEndpoint",
    "PodEndpoint",
    "PolicyEvaluator",
    "Verdict",
]
