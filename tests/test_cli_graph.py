"""`netpol-discover graph` and `netpol-discover inventory` through the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from discover.cli import main
from discover.flows.flowfiles import write_table
from discover.flows.frames import flows_frame
from discover.inventory.files import load_inventory_files
from tests.fakeapi import FakeApi, objects_of, serve, write_kubeconfig
from tests.test_enrich import t
from tests.test_workload_graph import flow_rows

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data" / "inventory"
SAMPLE = REPO / "samples" / "shop"


@pytest.fixture
def flows_csv(tmp_path: Path) -> Path:
    path = tmp_path / "flows.csv"
    write_table(flows_frame(flow_rows([
        ("10.244.2.40", "10.96.10.10", "TCP", 80, 5, 50, t(13), t(13, 5)),
        ("10.244.2.40", "10.244.1.11", "TCP", 8080, 5, 48, t(13), t(13, 6)),
        ("10.244.1.11", "10.96.0.10", "UDP", 53, 9, 18, t(13), t(13, 1)),
    ])), path)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_graph_from_a_flows_file(tmp_path: Path, flows_csv: Path, suffix: str,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / f"graph{suffix}"
    assert main(["graph", str(flows_csv), "--inventory", str(DATA / "cluster.json"),
                 "-o", str(out)]) == 0
    frame = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    # Sorted by source, then destination.
    assert list(frame["destination"]) == ["shop/deployment/web",
                                          "kube-system/deployment/coredns"]
    web = frame.iloc[0]
    assert (web["source"], web["port"], web["port_name"], web["connections"]) == (
        "default/pod/debug", 8080, "http", 5)
    assert web["evidence"] == "10.244.2.40>10.96.10.10/TCP/80;10.244.2.40>10.244.1.11/TCP/8080"
    assert "3 flow rows -> 2 edges" in capsys.readouterr().err


def test_graph_json_and_several_inventory_files(tmp_path: Path, flows_csv: Path) -> None:
    out = tmp_path / "graph.json"
    assert main(["graph", str(flows_csv), "--inventory", str(DATA / "cluster.json"),
                 "--inventory", str(DATA / "extra.yaml"), "-o", str(out), "-q"]) == 0
    document = json.loads(out.read_text())
    assert document["kind"] == "netpol-discover-graph" and document["schema_version"] == 1
    assert len(document["edges"]) == 2
    assert document["edges"][0]["evidence"] == ["10.244.2.40>10.96.10.10/TCP/80",
                                                "10.244.2.40>10.244.1.11/TCP/8080"]
    assert document["window_start"] == "2024-05-01T13:00:00+00:00"


def test_graph_of_the_shop_sample_capture(tmp_path: Path) -> None:
    out = tmp_path / "graph.csv"
    assert main(["graph", str(SAMPLE / "capture.pcap"), "--inventory",
                 str(SAMPLE / "inventory.json"), "-o", str(out), "-q"]) == 0
    frame = pd.read_csv(out, keep_default_na=False)
    pairs = set(zip(frame["source"], frame["destination"], frame["port"], strict=True))
    # ClusterIP + DNAT'd pod rows are one edge on the targetPort (named ports kept).
    assert ("shop/deployment/storefront", "shop/deployment/checkout", 50051) in pairs
    # The LoadBalancer's external clients reach the ingress controller's pod port.
    assert ("198.51.100.11", "ingress-nginx/deployment/ingress-nginx-controller", 8080) in pairs
    # FQDNs this client resolved, through a two-step CNAME chain.
    media = frame[frame["fqdn"] == "objects.example.net"].iloc[0]
    assert media["source"] == "shop/deployment/media"
    assert media["cname_chain"].count(" > ") == 1
    # coupon-sync was deleted before the snapshot and its IP reused by newsletter.
    earlier = frame[frame["source_kind"] == "earlier-pod"]
    assert set(earlier["source_ip"]) == {"10.244.0.16"}
    assert not frame.duplicated(["source", "destination", "protocol", "port"]).any()


def test_graph_usage_errors(tmp_path: Path, flows_csv: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as missing:
        main(["graph", str(flows_csv), "-o", str(tmp_path / "g.csv")])
    assert missing.value.code == 2
    assert "an inventory is needed" in capsys.readouterr().err
    with pytest.raises(SystemExit) as both:
        main(["graph", str(flows_csv), "--inventory", "x.json", "--context", "c",
              "-o", str(tmp_path / "g.csv")])
    assert both.value.code == 2
    with pytest.raises(SystemExit) as bad_suffix:
        main(["graph", str(flows_csv), "--inventory", "x.json", "-o", str(tmp_path / "g.txt")])
    assert bad_suffix.value.code == 2


def test_graph_bad_inventory_is_one_line(tmp_path: Path, flows_csv: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", str(flows_csv), "--inventory", str(DATA / "truncated.json"),
                 "-o", str(tmp_path / "g.csv")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("netpol-discover: error: truncated.json: line 3 column 1: invalid JSON")
    assert err.count("\n") == 1


def test_graph_with_the_live_api(tmp_path: Path, flows_csv: Path) -> None:
    out = tmp_path / "graph.csv"
    with serve(FakeApi(objects_of(DATA / "cluster.json"))) as url:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url, context="lab")
        assert main(["graph", str(flows_csv), "--kubeconfig", str(kubeconfig), "--context",
                     "lab", "-o", str(out), "-q"]) == 0
    assert len(pd.read_csv(out)) == 2


def test_inventory_command_dumps_what_files_load(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    api = FakeApi(objects_of(DATA / "cluster.json"), forbidden={"cronjobs"})
    with serve(api) as url:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url)
        assert main(["inventory", "--out", str(tmp_path / "c.json"),
                     "--kubeconfig", str(kubeconfig)]) == 0
        assert main(["inventory", "--out", str(tmp_path / "c.yaml"),
                     "--kubeconfig", str(kubeconfig), "-q"]) == 0
    err = capsys.readouterr().err
    assert "warning: forbidden: cannot list cronjobs at cluster scope: grant 'list' on " \
           "'cronjobs' in API group 'batch'" in err
    assert "10 pods, 7 services, 2 nodes" in err
    from_json = load_inventory_files([tmp_path / "c.json"])
    from_yaml = load_inventory_files([tmp_path / "c.yaml"])
    original = load_inventory_files([DATA / "cluster.json"])
    assert from_json.pods == from_yaml.pods == original.pods
    assert from_json.collected_at is not None


def test_inventory_command_unreachable(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:9")
    assert main(["inventory", "--out", str(tmp_path / "c.json"), "--kubeconfig",
                 str(kubeconfig), "--timeout", "2"]) == 1
    assert "http://127.0.0.1:9: cannot reach the API server" in capsys.readouterr().err
    assert not (tmp_path / "c.json").exists()


def _ground_truth_edges() -> tuple[dict[tuple[Any, ...], int], dict[tuple[Any, ...], str],
                                   set[str]]:
    """Expected edges of the shop sample from its ground truth: (source, destination,
    protocol, pod port) -> connections, port names, and the IPs that changed owner."""
    truth = json.loads((SAMPLE / "ground-truth.json").read_text())
    in_inventory = {p["pod"]: p["in_inventory"] for p in truth["pods"]}
    reused = {p["ip"] for p in truth["pods"] if not p["in_inventory"]}

    def side(peer: dict[str, Any]) -> tuple[str, ...]:
        if peer["kind"] == "pod" and in_inventory.get(peer["pod"], True):
            namespace, name = peer["workload"].split("/")
            return (namespace, peer["workload_kind"], name)
        if peer["kind"] == "node":
            return ("node", peer.get("name") or peer["ip"])
        return ("ip", peer["ip"])  # external, or a pod the snapshot never saw

    counts: dict[tuple[Any, ...], int] = {}
    names: dict[tuple[Any, ...], str] = {}
    for connection in truth["connections"]:
        resolved = connection["resolved"]
        if not connection["ok"] or resolved is None:
            continue
        key = (side(connection["client"]), side(resolved), connection["protocol"],
               resolved["port"])
        counts[key] = counts.get(key, 0) + 1
        names[key] = resolved.get("port_name") or ""
    return counts, names, reused


def test_shop_sample_graph_matches_the_ground_truth(tmp_path: Path) -> None:
    out = tmp_path / "graph.csv"
    assert main(["graph", str(SAMPLE / "capture.pcap"), "--inventory",
                 str(SAMPLE / "inventory.json"), "-o", str(out), "-q"]) == 0
    frame = pd.read_csv(out, keep_default_na=False)

    def side(kind: str, namespace: str, workload: str, ip: str, label: str) -> tuple[str, ...]:
        if kind == "workload":
            workload_kind, name = workload.split("/")
            return (namespace, workload_kind, name)
        if kind == "node":
            return ("node", label.removeprefix("node/"))
        return ("ip", ip)

    got = {
        (side(r.source_kind, r.source_namespace, r.source_workload, r.source_ip, r.source),
         side(r.destination_kind, r.destination_namespace, r.destination_workload,
              r.destination_ip, r.destination), r.protocol, r.port): (r.connections, r.port_name)
        for r in frame.itertuples()
    }
    expected, names, reused = _ground_truth_edges()
    assert set(got) == set(expected)
    for key, count in expected.items():
        connections, port_name = got[key]
        # No pod the inventory knows declares the port of an address it never saw.
        assert port_name == ("" if key[1][0] == "ip" else names[key]), key
        if reused & {key[0][-1], key[1][-1]} or key[0] == ("shop", "Deployment", "newsletter") \
                or key[1] == ("shop", "Deployment", "newsletter"):
            # A flow row of an address that changed owner (coupon-sync, then newsletter)
            # spans both pods: both edges carry the row's counts (said in the notes).
            assert connections >= count, key
        else:
            assert connections == count, key


def test_graph_render_svg_draws_every_workload(tmp_path: Path) -> None:
    out = tmp_path / "graph.svg"
    assert main(["graph", str(SAMPLE / "capture.pcap"), "--inventory",
                 str(SAMPLE / "inventory.json"), "-o", str(out), "-q"]) == 0
    svg = out.read_text()
    assert svg.startswith("<?xml") and "<svg" in svg
    for workload in ("storefront", "checkout", "payment-gateway", "coredns", "prometheus",
                     "api.payments.example.com"):
        assert workload in svg, workload


def test_graph_render_png_needs_the_matching_extension(
    tmp_path: Path, flows_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = str(SAMPLE / "inventory.json")
    with pytest.raises(SystemExit) as exited:
        main(["graph", str(flows_csv), "--inventory", inventory, "-o",
              str(tmp_path / "g.csv"), "--render", "png"])
    assert exited.value.code == 2
    assert "--render png writes a .png file" in capsys.readouterr().err
    if __import__("shutil").which("dot") is None:
        pytest.skip("PNG needs Graphviz `dot` (Debian package graphviz)")
    out = tmp_path / "g.png"
    assert main(["graph", str(flows_csv), "--inventory", inventory, "-o", str(out),
                 "--render", "png", "-q"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
