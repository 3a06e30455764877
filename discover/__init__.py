"""netpol-discover: propose least-privilege Kubernetes NetworkPolicies from observed traffic."""

__version__ = "0.1.0"
