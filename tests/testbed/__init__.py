"""A mini-cluster in Linux network namespaces that makes real traffic for the tests.

`python -m tests.testbed run small --out DIR` (root) builds a routed "node" namespace
with one namespace per pod (10.244.0.0/16) and one for the external hosts
(documentation ranges only), loads kube-proxy-style iptables DNAT for every ClusterIP and
LoadBalancer IP, runs dnsmasq as CoreDNS behind 10.96.0.10, starts `traffic.py` in every
namespace to serve and make the scenario's connections, captures with tcpdump (`-i any` on
the node, `eth0` on one pod), and writes `capture.pcap`, `inventory.json` (kubectl List)
and `ground-truth.json`. Nothing is connected to the host's namespace; everything is
removed at the end, on errors, on SIGINT/SIGTERM and at the global timeout.

Modules: scenario (model) and scenario_load (YAML, checks); cluster (pods, IPs, owners)
and plan (timed actions per agent), both pure; netns (namespaces, veths, processes),
dnat, dns, capture, traffic (the in-namespace agent); inventory_writer, ground_truth;
runner (the timeline). Scenarios live in `scenarios/`.
"""
