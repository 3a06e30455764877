"""`netpol-discover analyze INPUT... --inventory FILE --out DIR`: the main job.

Captures, agent summaries, Hubble flow files or flows files plus an inventory in;
proposed NetworkPolicies, the flow table, FQDN dependencies, the Cilium alternative and
the reports out (the six files `discover/outputs.py` writes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from discover.commands.inputs import (
    add_inputs_argument,
    add_inventory_arguments,
    add_reading_options,
    inventory_source,
    load_inventory_from_args,
    read_traffic_from_args,
)

DESCRIPTION = """\
Read captures (pcap, pcapng) or agent summaries, map every address to pods, workloads,
Services, nodes and FQDNs with the inventory, and propose least-privilege NetworkPolicies:
a default deny per namespace, per workload ingress from its observed consumers and egress
to its observed destinations on the pods' real ports, DNS kept open, external sources only
through load balancers. Every rule carries its evidence. The proposal is verified against
the observed flows before anything is written.
"""

EPILOG = """\
writes in DIR:
  policies.yaml            NetworkPolicy documents, grouped by namespace (kubectl apply -f)
  flows.csv                one row per observed connection edge, as seen on the wire
  fqdn-dependencies.yaml   egress that only a DNS name describes (for a proxy/firewall)
  cilium-policies.yaml     CiliumNetworkPolicy alternative with toFQDNs
  report.md, report.html   what a reviewer reads

INPUT is a capture, an agent summary or a Hubble flow file (`hubble observe -o json`, or
Hubble's flow exporter; gzipped too), recognised by content, or a flows file (.csv or
.parquet, as `flows -o` and analyze's flows.csv write it). A flows file carries no DNS
answers: its external destinations get ipBlocks, not FQDN dependencies (a warning says
so); without first_seen/last_seen, addresses map to pods as the inventory was taken
and the window has no times. With Hubble flows only, the inventory may be left out:
pods, namespaces and nodes then come from the flows' endpoints, and the findings say what
an inventory would have added.

examples:
  netpol-discover analyze samples/shop/capture.pcap --inventory samples/shop/inventory.json \\
      --out proposal/
  netpol-discover analyze node-*.pcap --inventory cluster.json --out out/ -n shop -n payments
  netpol-discover analyze summary.json --kubeconfig ~/.kube/config --out out/ \\
      --egress-proxy egress/squid --cloud gke
  netpol-discover analyze hubble-flows.json.gz --out proposal/
"""

CLOUDS = ("auto", "gke", "eks", "aks", "none")
GRAPH_LAYOUTS = ("auto", "graphviz", "builtin")  # reports.graph_svg.LAYOUT_CHOICES
FQDN_MODES = ("proxy", "any-ip", "pin")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="propose NetworkPolicies (and reports) from captures and an inventory",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_inputs_argument(parser, flows_files=True)
    add_inventory_arguments(parser)
    parser.add_argument(
        "--out", required=True, type=Path, metavar="DIR", help="directory to write into"
    )
    parser.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="propose policies for this namespace only (repeatable; default: all)",
    )
    parser.add_argument(
        "--cloud",
        choices=CLOUDS,
        default="auto",
        help="load balancer source ranges to allow (default: detect from nodes' providerID)",
    )
    parser.add_argument(
        "--fqdn-mode",
        choices=FQDN_MODES,
        default=None,
        help="egress to DNS names: through the egress proxy (default with --egress-proxy), "
        "to any IP outside the cluster on that port (default otherwise), or pinned to the "
        "addresses seen (brittle)",
    )
    parser.add_argument(
        "--egress-proxy",
        metavar="NS/WORKLOAD",
        help="the egress proxy workload that FQDN dependencies go through",
    )
    parser.add_argument(
        "--aws-vpc-cidr",
        action="append",
        default=[],
        metavar="CIDR",
        help="on EKS: the VPC subnets load balancers connect from (repeatable)",
    )
    parser.add_argument(
        "--pod-cidr",
        action="append",
        default=[],
        metavar="CIDR",
        help="the cluster's pod range (default: from nodes' podCIDRs and pod IPs)",
    )
    parser.add_argument(
        "--service-cidr",
        action="append",
        default=[],
        metavar="CIDR",
        help="the cluster's Service range (default: inferred from ClusterIPs)",
    )
    parser.add_argument(
        "--allow-attempts",
        action="store_true",
        help="also allow edges that never completed (refused, unanswered, a brief one-way "
        "UDP burst to an undeclared port), as before outcomes were recorded; by default "
        "they are reported as 'attempted, not allowed'",
    )
    parser.add_argument(
        "--include-system-namespaces",
        action="store_true",
        help="also write policies for kube-system, kube-public, kube-node-lease and the "
        "--system-namespace ones (default: the report shows them, held back)",
    )
    parser.add_argument(
        "--system-namespace",
        action="append",
        default=[],
        metavar="NS",
        help="treat this namespace as a system one too: held back unless included "
        "(repeatable)",
    )
    parser.add_argument(
        "--no-api-server-egress",
        action="store_true",
        help="don't give components known to watch the API server (ingress controllers, "
        "Prometheus, operators) egress to it unless it was observed",
    )
    parser.add_argument(
        "--probe-rules",
        choices=("auto", "always", "never"),
        default="auto",
        help="ingress from the nodes on the pods' probe ports: where the CNI filters node "
        "traffic (auto: not Calico or Cilium), always, or never",
    )
    parser.add_argument(
        "--accept-broken-invariants",
        action="store_true",
        help="write a proposal even if it cuts cluster DNS, its upstreams, the API server's "
        "watchers or webhook backends (critical findings say which)",
    )
    parser.add_argument(
        "--rollout",
        action="store_true",
        help="also write DIR/rollout/: rollout.md (the order to enforce, one namespace a "
        "stage, what to watch, how to roll back) and each stage's policies, plain and in "
        "the CNI's dry-run form where it has one",
    )
    add_graph_layout_argument(parser)
    add_reading_options(parser)
    parser.set_defaults(run=run, usage_error=parser.error)


def add_graph_layout_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--graph-layout",
        choices=GRAPH_LAYOUTS,
        default="auto",
        help="who lays out the service graph: Graphviz dot, the built-in layered layout, or "
        "auto (dot when installed; decided once per run, and the report says which)",
    )


def run(args: argparse.Namespace) -> int:
    from collections import Counter

    from discover.analysis import INPUT_INCOMPLETE, analyze
    from discover.inventory.from_flows import inventory_from_flows, merge_with_inventory
    from discover.outputs import write_outputs
    from discover.synthesis.hubble_findings import hubble_findings
    from discover.synthesis.proposal import Finding
    from reports.graph_svg import choose_layout

    options = _options(args)
    layout = choose_layout(args.graph_layout)  # before the work: no dot fails fast
    # Hubble flows name their endpoints: with only those, the inventory comes from them.
    source = inventory_source(args)
    from_flows = not source.given and any(_is_hubble(path) for path in args.inputs)
    inventory = None if from_flows else load_inventory_from_args(args)
    traffic = read_traffic_from_args(args)
    flows, dns, loaded = traffic.flows, traffic.dns, traffic.loaded
    input_findings: tuple[Finding, ...] = ()
    if loaded.hubble is not None:
        built = (inventory_from_flows(loaded.hubble, flows) if inventory is None
                 else merge_with_inventory(inventory, loaded.hubble, flows))
        inventory = built.inventory
        input_findings = built.findings + hubble_findings(loaded.hubble)
    if inventory is None:
        args.usage_error(source.problem())
        return 2  # usage_error exits
    counters: Counter[str] = Counter()
    for stats in loaded.files:
        counters.update(stats.counters)
    by_input = {stats.path: stats.counters for stats in loaded.files}
    result = analyze(flows, dns, inventory, options, counters, by_input, input_findings)
    written = write_outputs(args.out, result, loaded, inventory, flows, dns, layout)
    if args.rollout:
        from discover.verification.rollout import plan_rollout
        from reports.rollout_report import write_rollout

        plan = plan_rollout(result.proposal, result.graph.edges, inventory,
                            options.system_namespaces)
        written += write_rollout(args.out / "rollout", plan)
    if not args.quiet:
        proposal = result.proposal
        print(
            f"netpol-discover: {loaded.packets:,} packets, {len(flows):,} flows, "
            f"{len(result.graph.edges):,} workload edges -> {len(proposal.documents)} "
            f"policies in {len(proposal.namespaces)} namespaces, "
            f"{len(proposal.fqdn_dependencies)} FQDN dependencies, "
            f"{len(proposal.findings)} findings",
            file=sys.stderr,
        )
        for path in written:
            print(f"  {path}", file=sys.stderr)
    for finding in result.proposal.findings:
        if finding.rule == INPUT_INCOMPLETE:  # said even with --quiet: don't apply blindly
            print(f"netpol-discover: critical: {finding.message}", file=sys.stderr)
    return 0


def _is_hubble(path: Path) -> bool:
    from discover.errors import ReadError
    from discover.reading.formats import sniff_input as sniff_format

    try:
        return sniff_format(path).startswith("hubble")
    except ReadError:
        return False  # said when the inputs are read


def _options(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from ipaddress import ip_network

    from discover.errors import ConfigurationError
    from discover.synthesis.options import (
        Cloud,
        FqdnMode,
        ProbeRules,
        ProxyRef,
        SynthesisOptions,
    )

    def networks(values: list[str], option: str) -> tuple:  # type: ignore[type-arg]
        try:
            return tuple(ip_network(v, strict=False) for v in values)
        except ValueError as error:
            raise ConfigurationError(f"{option}: {error}") from error

    return SynthesisOptions(
        cloud=Cloud(args.cloud),
        fqdn_mode=FqdnMode(args.fqdn_mode) if args.fqdn_mode else None,
        egress_proxy=ProxyRef.parse(args.egress_proxy) if args.egress_proxy else None,
        pod_cidrs=networks(args.pod_cidr, "--pod-cidr"),
        service_cidrs=networks(args.service_cidr, "--service-cidr"),
        namespaces=tuple(args.namespace),
        aws_vpc_cidrs=networks(args.aws_vpc_cidr, "--aws-vpc-cidr"),
        allow_attempts=args.allow_attempts,
        include_system=args.include_system_namespaces,
        system_namespaces=tuple(args.system_namespace),
        api_server_egress=not args.no_api_server_egress,
        probe_rules=ProbeRules(args.probe_rules),
        accept_broken_invariants=args.accept_broken_invariants,
    )
