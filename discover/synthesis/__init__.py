"""Policy synthesis: the workload graph and the inventory in, least-privilege
NetworkPolicies, FQDN dependencies, Cilium alternatives and findings out (contract 10)."""

from discover.synthesis.options import Cloud, FqdnMode, ProxyRef, SynthesisOptions
from discover.synthesis.proposal import Finding, FqdnDependency, Proposal, Severity
from discover.synthesis.render import render_cilium_yaml, render_fqdn_yaml, render_policies_yaml
from discover.synthesis.synthesize import propose

__all__ = [
    "Cloud",
    "Finding",
    "FqdnDependency",
    "FqdnMode",
    "Proposal",
    "ProxyRef",
    "Severity",
    "SynthesisOptions",
    "propose",
    "render_cilium_yaml",
    "render_fqdn_yaml",
    "render_policies_yaml",
]
