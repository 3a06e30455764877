"""Policy synthesis: the workload graph and the inventory in, least-privilege
NetworkPolicies, FQDN dependencies, Cilium alternatives and findings out.

`propose(graph, inventory, options, dns=())` is pure (no I/O, no clock) and deterministic.
What it writes, and the decisions a reviewer should know:

- every namespace with (non-host-network) workloads in scope gets `default-deny`
  (Ingress and Egress, podSelector {}); every workload gets `<workload>-netpol` with
  policyTypes [Ingress, Egress], even with nothing observed (then it denies all);
- peers: podSelector alone in the same namespace, namespaceSelector on
  kubernetes.io/metadata.name plus podSelector across namespaces (namespaces lacking the
  label are reported); selectors are the smallest stable exact label set (`selectors.py`);
  a workload with none (no labels, or labels shared with other pods) gets no policy and is
  never a peer: a critical finding, and its flows are decided denied (the default deny);
- ports: the destination pod's port, named when its container names it, numbers
  otherwise, `endPort` only for runs of >= 8 contiguous ports; undeclared ports reported;
- DNS: egress UDP+TCP to the cluster DNS pods (and NodeLocal DNSCache when seen) for every
  workload that resolved names; the DNS pods accept port 53 from every pod only;
- external sources only for LoadBalancer-exposed workloads (provider ranges; EKS VPC
  CIDRs or observed clients when the client IP is preserved) and via the Ingress
  controller's pods for Ingress backends; all others are findings, not rules;
- node addresses: traffic from the pod's own node is never blocked by NetworkPolicy, so
  no rule (an info finding); another node's address is allowed as a /32 with a warning;
- external destinations by IP: one /32 or /128 ipBlock each (the pod IP of a workload the
  inventory lacks too, with a warning); by name: `fqdn.py` per `--fqdn-mode` (proxy /
  any-ip / pin), plus `cilium.py`'s toFQDNs alternative; any-ip excepts pod and service
  CIDRs, node addresses and link-local / cloud metadata ranges;
- the proposal checks itself with the NetworkPolicy evaluator (`selfcheck.py`) and raises
  `ProposalBlocksFlowError` when it would block a flow it meant to allow.
"""

from discover.synthesis.fqdn import DnsObservation, dns_observations
from discover.synthesis.options import Cloud, FqdnMode, ProxyRef, SynthesisOptions
from discover.synthesis.proposal import Finding, FqdnDependency, Proposal, Severity
from discover.synthesis.render import render_cilium_yaml, render_fqdn_yaml, render_policies_yaml
from discover.synthesis.synthesize import propose

__all__ = [
    "Cloud",
    "DnsObservation",
    "Finding",
    "FqdnDependency",
    "FqdnMode",
    "Proposal",
    "ProxyRef",
    "Severity",
    "SynthesisOptions",
    "dns_observations",
    "propose",
    "render_cilium_yaml",
    "render_fqdn_yaml",
    "render_policies_yaml",
]
