"""kube-proxy's iptables mode, in the node namespace: KUBE-SERVICES -> KUBE-SVC-* (one
`statistic --mode random` rule an endpoint) -> KUBE-SEP-* (DNAT to pod IP:targetPort), for
every ClusterIP port and LoadBalancer IP. conntrack undoes the DNAT on replies, so a
capture on `any` shows the ClusterIP on the client's veth and the pod IP on the server's.

The whole nat table is rendered and loaded with one `iptables-restore`, like kube-proxy
does, and reloaded when endpoints change (a pod deleted, another created).
"""

from __future__ import annotations

import base64
import hashlib
import shutil

from tests.testbed.cluster import Cluster, target_port_of
from tests.testbed.netns import TestbedError, run


def chain_name(kind: str, seed: str) -> str:
    digest = base64.b32encode(hashlib.sha256(seed.encode()).digest()).decode()
    return f"KUBE-{kind}-{digest[:16]}"


def render_nat_table(cluster: Cluster, at: float | None) -> str:
    """The nat table for the endpoints alive at `at` (seconds after traffic start; None:
    before it starts)."""
    chains: list[str] = ["KUBE-SERVICES"]
    rules: list[str] = [
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    ]
    for service in sorted(cluster.services, key=lambda s: s.key):
        if service.cluster_ip is None:
            continue  # headless: DNS gives the pod IPs, no DNAT
        moment = 0.0 if at is None else at
        pods = [p for p in cluster.endpoints(service, None) if _exists(p.created_at,
                                                                       p.deleted_at, moment)]
        for port in service.ports:
            proto = port.protocol.lower()
            label = f"{service.key}:{port.name or port.port}"
            svc_chain = chain_name("SVC", f"{label}/{proto}")
            endpoints = [(str(p.ip), target_port_of(port, p)) for p in pods]
            if service.endpoint_ips:  # no selector: the addresses of its EndpointSlice
                number = port.target_port if isinstance(port.target_port, int) else port.port
                endpoints = [(str(ip), number) for ip in service.endpoint_ips]
            live = [(ip, n) for ip, n in endpoints if n is not None]
            chains.append(svc_chain)
            destinations = [service.cluster_ip]
            if service.load_balancer_ip is not None:
                destinations.append(service.load_balancer_ip)
            for destination in destinations:
                what = "cluster IP" if destination == service.cluster_ip else "loadbalancer IP"
                rules.append(
                    f'-A KUBE-SERVICES -d {destination}/32 -p {proto} -m comment --comment '
                    f'"{label} {what}" -m {proto} --dport {port.port} -j {svc_chain}'
                )
            for index, (ip, number) in enumerate(live):
                sep_chain = chain_name("SEP", f"{label}/{proto}/{ip}:{number}")
                chains.append(sep_chain)
                remaining = len(live) - index
                statistic = ("" if remaining == 1 else
                             f"-m statistic --mode random --probability {1 / remaining:.11f} ")
                rules.append(f'-A {svc_chain} -m comment --comment "{label} -> {ip}:'
                             f'{number}" {statistic}-j {sep_chain}')
                rules.append(f"-A {sep_chain} -p {proto} -m {proto} -j DNAT "
                             f"--to-destination {ip}:{number}")
            if not live:
                rules.append(f'-A {svc_chain} -m comment --comment "{label} has no endpoints"'
                             f" -j DROP")
    lines = ["*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
             ":POSTROUTING ACCEPT [0:0]"]
    lines += [f":{chain} - [0:0]" for chain in dict.fromkeys(chains)]
    lines += rules
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def _exists(created: float | None, deleted: float | None, at: float) -> bool:
    return (created is None or created <= at) and (deleted is None or at < deleted)


def choose_iptables(namespace: str) -> str:
    """`iptables-restore` (nft or legacy, whatever the default is) if it works in a fresh
    namespace here, else `iptables-legacy-restore`: kernels without nf_tables exist."""
    problems = []
    for restore in ("iptables-restore", "iptables-legacy-restore", "iptables-nft-restore"):
        if shutil.which(restore) is None:
            continue
        try:
            run(["ip", "netns", "exec", namespace, restore, "--test"],
                input_text="*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -d 10.96.0.1/32 -p "
                           "tcp -m comment --comment probe -m tcp --dport 1 -m statistic "
                           "--mode random --probability 0.5 -j DNAT "
                           "--to-destination 10.244.0.1:1\nCOMMIT\n")
        except TestbedError as error:
            problems.append(str(error))
            continue
        return restore
    raise TestbedError("iptables", "no working iptables-restore (install Debian package "
                                   f"iptables): {'; '.join(problems)}")


def load_nat_table(namespace: str, restore: str, table: str) -> None:
    run(["ip", "netns", "exec", namespace, restore], input_text=table)
