"""The live inventory through the real `kubernetes` client against tests/fakeapi.py."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from discover.errors import InventoryError
from discover.inventory.dump import dump_inventory
from discover.inventory.files import load_inventory_files
from discover.inventory.live import KubeconfigError, api_client, load_inventory_live
from discover.inventory.model import Inventory
from tests.fakeapi import FakeApi, load_events, objects_of, serve, write_kubeconfig

DATA = Path(__file__).parent / "data" / "inventory"
ip = ipaddress.ip_address


def comparable(inventory: Inventory) -> Inventory:
    return replace(inventory, sources=(), notes=(), collected_at=None)


def test_list_gives_the_same_inventory_as_the_file(tmp_path: Path) -> None:
    api = FakeApi(objects_of(DATA / "cluster.json"))
    with serve(api) as url:
        live = load_inventory_live(str(write_kubeconfig(tmp_path / "kubeconfig", url)), None)
    from_file = load_inventory_files([DATA / "cluster.json"])
    # a live listing knows RBAC even when no binding exists; a file without bindings doesn't
    assert live.has_rbac and not from_file.has_rbac
    assert comparable(replace(live, has_rbac=False)) == comparable(from_file)
    assert live.sources == (url,)
    assert live.collected_at is not None
    assert {r.path for r in api.requests} >= {"/api/v1/pods", "/apis/apps/v1/replicasets",
                                               "/apis/discovery.k8s.io/v1/endpointslices"}


def test_watch_records_ip_changes_deletions_and_new_pods(tmp_path: Path) -> None:
    api = FakeApi(objects_of(DATA / "cluster.json"),
                  watch_events={"pods": load_events(DATA / "watch-pods.jsonl")})
    before = datetime.now(UTC).replace(microsecond=0)
    with serve(api) as url:
        live = load_inventory_live(str(write_kubeconfig(tmp_path / "kubeconfig", url)), None,
                                   watch_seconds=1)
    watches = [r for r in api.requests if r.query.get("watch") == ["true"]]
    assert watches and watches[0].query["resourceVersion"] == ["1000"]  # from the list
    db = sorted((p for p in live.pods if p.name == "db-0"), key=lambda p: p.ips)
    assert [p.ips for p in db] == [(ip("10.244.2.20"),), (ip("10.244.2.21"),)]
    assert db[0].deleted is not None and db[0].deleted >= before
    assert db[1].created == db[0].deleted and db[1].deleted is None
    debug = next(p for p in live.pods if p.name == "debug")
    assert debug.deleted is not None and debug.deleted >= before  # when the watch saw it go
    assert any(p.name == "web-5f6d7c8b9-n3m4p" for p in live.pods)
    assert any("3 change(s) recorded" in n for n in live.notes)


def test_round_trip_dump_then_load(tmp_path: Path) -> None:
    api = FakeApi(objects_of(DATA / "cluster.json"),
                  watch_events={"pods": load_events(DATA / "watch-pods.jsonl")})
    with serve(api) as url:
        live = load_inventory_live(str(write_kubeconfig(tmp_path / "kubeconfig", url)), None,
                                   watch_seconds=1)
    dump_inventory(live, tmp_path / "dump.json")
    back = load_inventory_files([tmp_path / "dump.json"])
    assert replace(back, sources=(), notes=()) == replace(live, sources=(), notes=())


def test_forbidden_resource_gives_a_partial_inventory_with_the_rbac_verb(
        tmp_path: Path) -> None:
    api = FakeApi(objects_of(DATA / "cluster.json"), forbidden={"pods", "networkpolicies"})
    with serve(api) as url:
        live = load_inventory_live(str(write_kubeconfig(tmp_path / "kubeconfig", url)), None)
    assert live.pods == () and live.network_policies == ()
    assert len(live.services) == 7
    assert ("forbidden: cannot list pods at cluster scope: grant 'list' on 'pods'; the "
            "inventory is partial") in live.notes
    assert any("grant 'list' on 'networkpolicies' in API group 'networking.k8s.io'" in n
               for n in live.notes)


def test_everything_forbidden_is_an_error(tmp_path: Path) -> None:
    from tests.fakeapi import PATHS
    api = FakeApi([], forbidden={p.rsplit("/", 1)[-1] for p in PATHS})
    with serve(api) as url, pytest.raises(InventoryError, match="every resource was refused"):
        load_inventory_live(str(write_kubeconfig(tmp_path / "kubeconfig", url)), None)


def test_unreachable_server_names_the_url(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url)
    with pytest.raises(InventoryError) as caught:
        load_inventory_live(str(kubeconfig), None, timeout=2)
    assert str(caught.value) == f"{url}: cannot reach the API server: connection refused"


def test_bad_kubeconfig_and_unknown_context(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="cannot load the cluster configuration"):
        load_inventory_live(str(tmp_path / "missing"), None)
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:1")
    with pytest.raises(InventoryError, match="cannot load the cluster configuration"):
        load_inventory_live(str(kubeconfig), "no-such-context")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("garbage: [\n", "while parsing a flow node"),  # not YAML
        ("- a\n- b\n", "not a well-formed kubeconfig"),  # YAML, but a list
        ('"a string"\n', "not a well-formed kubeconfig"),
        ("contexts: [5]\ncurrent-context: x\n", "not a well-formed kubeconfig"),
    ],
)
def test_malformed_kubeconfig_is_an_error_naming_the_file(
    tmp_path: Path, text: str, reason: str
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(text)
    with pytest.raises(KubeconfigError) as caught:
        load_inventory_live(str(kubeconfig), None)
    assert caught.value.source == str(kubeconfig)
    assert str(caught.value).startswith(f"{kubeconfig}: cannot load the cluster configuration: ")
    assert reason in str(caught.value)


def test_client_prefers_kubeconfig_then_in_cluster_then_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", "http://192.0.2.1:6443")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "192.0.2.2")
    # $KUBECONFIG exists: it wins over the in-cluster service account.
    assert api_client(None, None).configuration.host == "http://192.0.2.1:6443"
    # No kubeconfig file: the in-cluster config (whose token file is missing here).
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(KubeconfigError) as caught:
        api_client(None, None)
    assert caught.value.source == "in-cluster config"
    # Neither: a clear error, not the client's own.
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    with pytest.raises(KubeconfigError, match="no kubeconfig found and not running in a "
                       "cluster"):
        api_client(None, None)
    # An explicit file is used even in a cluster.
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "192.0.2.2")
    other = write_kubeconfig(tmp_path / "other", "http://192.0.2.3:6443")
    assert api_client(str(other), None).configuration.host == "http://192.0.2.3:6443"


def test_watch_refused_keeps_the_listed_pods(tmp_path: Path) -> None:
    api = FakeApi(objects_of(DATA / "cluster.json"), forbidden_watch={"pods"})
    with serve(api) as url:
        live = load_inventory_live(str(write_kubeconfig(tmp_path / "kubeconfig", url)), None,
                                   watch_seconds=1)
    assert len(live.pods) == 10
    assert ("forbidden: cannot watch pods at cluster scope: grant 'watch' on 'pods'; pod "
            "changes during the window were not recorded") in live.notes


def test_expired_watch_relists_and_records_pods_gone_meanwhile(tmp_path: Path) -> None:
    objects = objects_of(DATA / "cluster.json")
    later = [o for o in objects if o["metadata"]["name"] != "debug"]
    api = FakeApi(objects, expire_watches=1, later_objects=later)
    with serve(api) as url:
        live = load_inventory_live(str(write_kubeconfig(tmp_path / "kubeconfig", url)), None,
                                   watch_seconds=1)
    assert api.lists_served["Pod"] == 2  # listed again after the 410
    debug = next(p for p in live.pods if p.name == "debug")
    assert debug.deleted is not None
    assert len(live.pods) == 10


def test_bad_credentials(tmp_path: Path) -> None:
    from tests.fakeapi import PATHS
    api = FakeApi([], forbidden={p.rsplit("/", 1)[-1] for p in PATHS}, refusal=401)
    with serve(api) as url, pytest.raises(InventoryError) as caught:
        load_inventory_live(str(write_kubeconfig(tmp_path / "kubeconfig", url)), None)
    assert str(caught.value) == (
        f"{url}: every resource was refused: unauthorized: the API server rejected the "
        "credentials when trying to list namespaces (HTTP 401)")


def test_server_that_never_answers_times_out_naming_the_url(tmp_path: Path) -> None:
    with socket.socket() as server:  # accepts connections (backlog) but never replies
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url)
        with pytest.raises(InventoryError) as caught:
            load_inventory_live(str(kubeconfig), None, timeout=0.5)
    assert str(caught.value).startswith(f"{url}: cannot reach the API server: ")
    assert "timed out" in str(caught.value)


@pytest.mark.parametrize("command", ["inventory", "analyze"])
def test_commands_report_a_malformed_kubeconfig_on_one_line(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from discover.cli import main

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("garbage: [\n")
    capture = tmp_path / "empty.pcap"
    capture.write_bytes(b"")
    argv = {
        "inventory": ["inventory", "--kubeconfig", str(kubeconfig), "--out",
                      str(tmp_path / "i.json")],
        "analyze": ["analyze", str(capture), "--kubeconfig", str(kubeconfig), "--out",
                    str(tmp_path / "proposal")],
    }[command]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"netpol-discover: error: {kubeconfig}: cannot load the cluster "
                          "configuration: ")
    assert err.count("\n") == 1
