"""`netpol-discover manifests`: the YAML validates against the Kubernetes schemas, keeps
the security settings the agent is designed for, and starts an agent this CLI accepts."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from discover.cli import build_parser, main
from sidecar.manifests import objects

K8S_VERSION = "1.30"
READ_VERBS = {"get", "list", "watch"}


def _render(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[str, list[dict[str, Any]]]:
    assert main(["manifests", *argv]) == 0
    text = capsys.readouterr().out
    return text, objects(text)


def _validate(document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, K8S_VERSION, strict=True)


def _container(pod_spec: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in pod_spec["containers"] if c["name"] == name)


def test_daemonset_documents_validate(capsys: pytest.CaptureFixture[str]) -> None:
    _, docs = _render(capsys, "daemonset")
    assert [d["kind"] for d in docs] == [
        "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "DaemonSet",
    ]  # fmt: skip
    for doc in docs:
        _validate(doc)


def test_daemonset_runs_with_only_what_capture_needs(capsys: pytest.CaptureFixture[str]) -> None:
    text, docs = _render(capsys, "daemonset", "--namespace", "np", "--image", "reg/x:1")
    ds = docs[-1]
    spec = ds["spec"]["template"]["spec"]
    assert spec["hostNetwork"] is True
    assert spec["hostPID"] is True  # the pods' socket tables (sidecar/established.py)
    assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert spec["tolerations"] == [{"operator": "Exists"}]
    assert spec["serviceAccountName"] == "netpol-discover"
    agent = _container(spec, "agent")
    assert agent["image"] == "reg/x:1"
    security = agent["securityContext"]
    # Non-root (issue 15, item 4): NET_RAW comes from the image's file capability, which
    # needs allowPrivilegeEscalation (no ambient capabilities in Kubernetes); the bounding
    # set is NET_RAW alone.
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == security["runAsGroup"] == 65532
    assert security["capabilities"] == {"drop": ["ALL"], "add": ["NET_RAW"]}
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is True
    assert "privileged" not in security
    # Only the init container is root, to hand the root-created hostPath over, with CHOWN.
    (init,) = spec["initContainers"]
    assert init["command"] == ["chown", "65532:65532", "/var/lib/netpol-discover"]
    assert init["securityContext"]["runAsUser"] == 0
    assert init["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN"]}
    assert init["securityContext"]["allowPrivilegeEscalation"] is False
    assert init["securityContext"]["readOnlyRootFilesystem"] is True
    assert init["volumeMounts"] == [{"name": "state", "mountPath": "/var/lib/netpol-discover"}]
    assert all(c["securityContext"].get("runAsUser") != 0 for c in spec["containers"])
    assert set(agent["resources"]) == {"requests", "limits"}
    for probe in ("livenessProbe", "readinessProbe"):
        assert agent[probe]["httpGet"] == {"path": "/healthz", "port": 9809}
    volume = spec["volumes"][0]
    assert volume["hostPath"] == {"path": "/var/lib/netpol-discover", "type": "DirectoryOrCreate"}
    assert agent["volumeMounts"][0]["mountPath"] == "/var/lib/netpol-discover"
    assert ds["metadata"]["namespace"] == "np" and docs[0]["metadata"]["name"] == "np"
    selector = ds["spec"]["selector"]["matchLabels"]
    assert selector.items() <= ds["spec"]["template"]["metadata"]["labels"].items()
    # the why travels with the YAML
    assert "NET_ADMIN is not needed" in text and "hostPath, not emptyDir" in text


def test_daemonset_without_inventory_watch_has_no_rbac(capsys: pytest.CaptureFixture[str]) -> None:
    _, docs = _render(capsys, "daemonset", "--no-inventory-watch")
    assert [d["kind"] for d in docs] == ["Namespace", "ServiceAccount", "DaemonSet"]
    agent = _container(docs[-1]["spec"]["template"]["spec"], "agent")
    assert build_parser().parse_args(agent["args"]).inventory_watch is False


def test_cluster_role_is_read_only_on_exactly_the_inventory_kinds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, docs = _render(capsys, "daemonset")
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    granted = {
        (group, resource)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    # exactly what the live inventory lists (discover/inventory/live.py), nothing more
    from discover.inventory.live import RESOURCES

    assert granted == {(r.group, r.plural) for r in RESOURCES}
    assert not any(resource in {"secrets", "configmaps"} for _, resource in granted)
    assert all(set(rule["verbs"]) == READ_VERBS for rule in role["rules"])
    binding = next(d for d in docs if d["kind"] == "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "netpol-discover", "namespace": "netpol-discover"}
    ]


def test_daemonset_args_are_accepted_by_the_agent_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, docs = _render(capsys, "daemonset", "--duration", "3d", "--port", "9999",
                      "--health-port", "9998", "--host-path", "/var/lib/npd-window-2")  # fmt: skip
    agent = _container(docs[-1]["spec"]["template"]["spec"], "agent")
    args = build_parser().parse_args(agent["args"])
    assert args.command == "agent"
    assert args.interface == "any" and args.inventory_watch is True
    assert args.duration == 3 * 86400
    assert args.listen == "127.0.0.1:9999" and args.health_listen == "0.0.0.0:9998"
    assert [p["containerPort"] for p in agent["ports"]] == [9998]
    assert str(args.state_dir) == agent["volumeMounts"][0]["mountPath"]
    volume = docs[-1]["spec"]["template"]["spec"]["volumes"][0]
    assert volume["hostPath"]["path"] == "/var/lib/npd-window-2"


def _deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "shop", "namespace": "shop"},
        "spec": {
            "selector": {"matchLabels": {"app": "shop"}},
            "template": {
                "metadata": {"labels": {"app": "shop"}},
                "spec": {"containers": [{"name": "shop", "image": "shop:1"}]},
            },
        },
    }


def _apply_patch(deployment: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Strategic merge of the two lists the patch touches (merge key: name)."""
    merged = copy.deepcopy(deployment)
    spec = merged["spec"]["template"]["spec"]
    patch_spec = patch["spec"]["template"]["spec"]
    for key in ("containers", "volumes"):
        spec[key] = spec.get(key, []) + patch_spec[key]
    return merged


def test_sidecar_patch_makes_a_valid_deployment_without_rbac(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text, docs = _render(capsys, "sidecar")
    assert len(docs) == 1  # RBAC-less variant
    patch = docs[0]
    deployment = _apply_patch(_deployment(), patch)
    _validate(deployment)
    sidecar = _container(deployment["spec"]["template"]["spec"], "netpol-discover")
    security = sidecar["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] != 0
    assert security["capabilities"] == {"drop": ["ALL"], "add": ["NET_RAW"]}
    assert security["readOnlyRootFilesystem"] is True
    args = build_parser().parse_args(sidecar["args"])
    assert args.inventory_watch is False
    assert args.max_edges == 20_000  # a pod's own edges: a smaller cap, a smaller limit
    assert "kubectl patch deployment" in text


def test_sidecar_with_inventory_watch_binds_the_deployments_account(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, docs = _render(
        capsys, "sidecar", "--inventory-watch", "--namespace", "shop", "--service-account", "shop"
    )
    patch, role, binding = docs
    assert [role["kind"], binding["kind"]] == ["ClusterRole", "ClusterRoleBinding"]
    for doc in (role, binding):
        _validate(doc)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "shop", "namespace": "shop"}]
    sidecar = _container(patch["spec"]["template"]["spec"], "netpol-discover")
    assert build_parser().parse_args(sidecar["args"]).inventory_watch is True


def test_sidecar_rbac_never_overwrites_the_daemonsets_or_another_sidecars(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 15, item 4: the sidecar's RBAC reused the DaemonSet's names, so applying one
    replaced the other's binding (and its subjects)."""
    def names(*argv: str) -> set[tuple[str, str]]:
        _, docs = _render(capsys, *argv)
        return {(d["kind"], d["metadata"]["name"]) for d in docs
                if d.get("kind") in ("ClusterRole", "ClusterRoleBinding")}  # fmt: skip

    daemonset = names("daemonset")
    shop = names("sidecar", "--inventory-watch", "--namespace", "shop", "--service-account", "web")
    blog = names("sidecar", "--inventory-watch", "--namespace", "blog", "--service-account", "web")
    assert daemonset == {("ClusterRole", "netpol-discover-reader"),
                         ("ClusterRoleBinding", "netpol-discover-reader")}  # fmt: skip
    assert not daemonset & shop and not daemonset & blog
    bindings = {n for k, n in shop | blog if k == "ClusterRoleBinding"}
    assert bindings == {"netpol-discover-sidecar-reader:shop:web",
                        "netpol-discover-sidecar-reader:blog:web"}  # fmt: skip


def test_output_file_and_determinism(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ds.yaml"
    assert main(["manifests", "daemonset", "-o", str(out)]) == 0
    assert capsys.readouterr().out == ""
    again, _ = _render(capsys, "daemonset")
    assert out.read_text() == again


def test_odd_values_stay_strings(capsys: pytest.CaptureFixture[str]) -> None:
    _, docs = _render(capsys, "daemonset", "--image", "reg/x:1.0 # not a comment",
                      "--namespace", "yes")  # fmt: skip
    assert docs[0]["metadata"]["name"] == "yes"
    assert _container(docs[-1]["spec"]["template"]["spec"], "agent")["image"] == (
        "reg/x:1.0 # not a comment"
    )


def test_unknown_kind_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["manifests", "deployment"])
    assert exit_info.value.code == 2


def test_unwritable_output_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "missing-dir" / "x.yaml"
    assert main(["manifests", "daemonset", "-o", str(target)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"netpol-discover: error: {target}: cannot write the manifests: "
                   "No such file or directory"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--duration", "xyz"], "expected e.g. 90s, 30m, 24h, 7d"),
        (["--port", "0"], "must be a port number 1-65535"),
        (["--port", "65536"], "must be a port number 1-65535"),
        (["--max-edges", "-5"], "must be a whole number >= 0"),
        (["--checkpoint-interval", "0"], "must be a number of seconds > 0"),
        (["--checkpoint-interval", "1.5"], "must be whole seconds"),
    ],
)
def test_values_the_agent_rejects_are_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Rendered, these would crash-loop the agent: refuse them up front.
    with pytest.raises(SystemExit) as exit_info:
        main(["manifests", "daemonset", *argv])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    last = captured.err.strip().splitlines()[-1]
    assert last.startswith(f"netpol-discover manifests: error: argument {argv[0]}: ")
    assert message in last


@pytest.mark.parametrize("kind", ["daemonset", "sidecar"])
def test_edge_values_reach_the_agent_as_given(
    kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # 0 edges = no cap for the agent, not "use the default"; 'forever' = no --duration.
    argv = [kind, "--max-edges", "0", "--duration", "forever", "--checkpoint-interval", "5",
            "--port", "65535"]
    if kind == "sidecar":
        argv += ["--namespace", "shop"]
    _, docs = _render(capsys, *argv)
    agent_args = next(
        c["args"] for d in docs for c in _pod_containers(d) if c.get("args", [""])[0] == "agent"
    )
    args = build_parser().parse_args(agent_args)
    assert args.max_edges == 0 and args.duration is None
    assert args.checkpoint_interval == 5 and args.listen == "127.0.0.1:65535"
    assert "--duration" not in agent_args


def _pod_containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    return list(spec.get("containers", []))


def test_help_explains_every_option_and_has_examples(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["manifests", "--help"])
    out = capsys.readouterr().out
    assert "examples:\n  netpol-discover manifests daemonset -o agent.yaml" in out
    checkpoint = out[out.index("\n  --checkpoint-interval SECONDS"):]
    assert "how often each agent writes its summary" in checkpoint.split("--inventory-watch")[0]


@pytest.mark.parametrize("kind", ["daemonset", "sidecar"])
def test_the_cluster_map_is_on_loopback_and_only_health_is_open(
    kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 15, item 2: a host-network agent on 0.0.0.0 served /summary and /inventory
    to any pod. The data port is loopback; the declared port and every probe are the
    health port, which serves /healthz and /metrics only."""
    argv = [kind] + (["--namespace", "shop"] if kind == "sidecar" else [])
    text, docs = _render(capsys, *argv)
    agent = next(c for d in docs for c in _pod_containers(d)
                 if c.get("args", [""])[0] == "agent")  # fmt: skip
    args = build_parser().parse_args(agent["args"])
    assert args.listen == "127.0.0.1:9808"
    assert args.health_listen == "0.0.0.0:9809"
    assert [p["containerPort"] for p in agent["ports"]] == [9809]
    probes = [agent[k]["httpGet"] for k in ("livenessProbe", "readinessProbe") if k in agent]
    assert probes and all(p == {"path": "/healthz", "port": 9809} for p in probes)
    assert "pods/portforward" in text  # the YAML says how the data is read, and by whom


def test_same_data_and_health_port_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["manifests", "daemonset", "--port", "9000", "--health-port", "9000"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ("netpol-discover: error: --port and --health-port are both 9000: "
                            "they must differ\n")
