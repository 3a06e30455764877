"""The files of a staged rollout (`analyze --rollout`): rollout.md, and per stage the plain
NetworkPolicies and, where the CNI has a dry-run form, the same policies staged.

Dry-run forms, as their projects document them:
- Calico (Open Source since 3.30; Enterprise and Cloud before): `StagedKubernetesNetworkPolicy`
  (projectcalico.org/v3) has exactly a NetworkPolicy's spec and enforces nothing; flow
  logs show what it would have done; committing it creates the NetworkPolicy
  (docs.tigera.io/calico/latest/reference/resources/stagedkubernetesnetworkpolicy;
  `StagedNetworkPolicy` is the sibling in Calico's own policy syntax).
- Cilium (1.8 and later, cilium/cilium#12165): policy audit mode, no object of its own:
  the whole agent (`--policy-audit-mode=true`, Helm `policyAuditMode: true`) or one
  endpoint at a time (`cilium-dbg endpoint config <ID> PolicyAuditMode=Enabled`, the
  `cilium` binary before 1.15) allows everything and reports what the policies would
  drop as AUDIT verdicts in Hubble
  (docs.cilium.io/en/latest/security/policy-creation/). It can't be scoped to a
  namespace (cilium/cilium#40621).

Names come from the cluster: in shell commands they are quoted (`shlex.quote`), in
Markdown they sit in code spans and fences, in YAML comments through `comment_lines`.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from discover.atomic import replace_directory
from discover.escaping.markdown_text import md_code, md_text
from discover.escaping.visible import visible
from discover.escaping.yaml_comment import comment_lines
from discover.synthesis.render import manifest_yaml
from discover.verification.rollout import RolloutPlan, Stage

CALICO_STAGED = {"apiVersion": "projectcalico.org/v3", "kind": "StagedKubernetesNetworkPolicy"}
_UNSAFE_FILE_CHARS = re.compile(r"[^a-z0-9-]")


def stage_file(stage: Stage, suffix: str = "") -> str:
    """`stage-01-shop.yaml`; a namespace name is reduced to [a-z0-9-] (the number keeps
    two stages apart)."""
    name = _UNSAFE_FILE_CHARS.sub("_", stage.namespace.lower())[:60]
    return f"stage-{stage.number:02d}-{name}{suffix}.yaml"


def rollout_files(plan: RolloutPlan) -> dict[str, str]:
    """File name -> text, rollout.md first."""
    files = {"rollout.md": render_rollout_md(plan)}
    for stage in plan.stages:
        files[stage_file(stage)] = _stage_yaml(stage, plan, staged=False)
        if "calico" in plan.cni:
            files[stage_file(stage, ".calico-staged")] = _stage_yaml(stage, plan, staged=True)
    return files


def _stage_yaml(stage: Stage, plan: RolloutPlan, *, staged: bool) -> str:
    what = ("staged (Calico StagedKubernetesNetworkPolicy: enforces nothing, flow logs show "
            "what it would deny)" if staged else "to enforce once the dry run was quiet")
    header = comment_lines([
        f"netpol-discover rollout, stage {stage.number} of {len(plan.stages)}: "
        f"namespace {stage.namespace}",
        f"{len(stage.documents)} policies, {what}; window {plan.window}",
    ])
    parts = [header]
    for document in stage.documents:
        manifest: Mapping[str, Any] = document.manifest
        if staged:
            manifest = {**CALICO_STAGED, "metadata": manifest["metadata"],
                        "spec": manifest["spec"]}
        parts.append("---\n" + comment_lines(document.comments) + manifest_yaml(manifest))
    return "".join(parts)


def render_rollout_md(plan: RolloutPlan) -> str:
    lines = ["# Staged rollout", "",
             f"Window {md_code(str(plan.window))}; CNI: "
             f"{md_text(', '.join(plan.cni) or 'not detected')}. One namespace a stage, in "
             "this order: no unresolved findings first, then fewer external dependencies, "
             "then fewer inbound peers; system namespaces and ingress controllers last.", "",
             "| stage | namespace | policies | open findings | external | inbound | note |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for stage in plan.stages:
        lines.append(
            f"| {stage.number} | {md_code(stage.namespace, in_table=True)} | "
            f"{len(stage.documents)} | {len(stage.open_findings)} | {len(stage.external)} | "
            f"{len(stage.inbound)} | {md_text(stage.last) or 'by score'} |")
    lines.append("")
    lines += _dry_run_section(plan)
    for stage in plan.stages:
        lines += _stage_section(stage, plan)
    return "\n".join(lines).rstrip("\n") + "\n"


def _dry_run_section(plan: RolloutPlan) -> list[str]:
    lines = ["## Dry run", ""]
    if "calico" in plan.cni:
        lines += ["Calico: apply a stage's `.calico-staged.yaml` first "
                  "(`StagedKubernetesNetworkPolicy`, projectcalico.org/v3: Calico Open Source "
                  "3.30 or later, through the Calico API server). Nothing is enforced; "
                  "Calico's flow logs show what the staged policies would deny.", ""]
    if "cilium" in plan.cni:
        lines += ["Cilium: no staged object; put the stage's pods in policy audit mode "
                  "(Cilium 1.8 or later), apply the stage's policies, and read the AUDIT "
                  "verdicts. Per endpoint, on the pod's node: "
                  "`cilium-dbg endpoint config <ENDPOINT-ID> PolicyAuditMode=Enabled` (the "
                  "endpoint IDs: `kubectl get ciliumendpoints -n NS`); or the whole agent "
                  "with Helm `policyAuditMode: true`, which enforces no policy anywhere. "
                  "Check that `hubble observe --verdict AUDIT` shows events before trusting "
                  "the silence.", ""]
    if not {"calico", "cilium"} & set(plan.cni):
        lines += ["The CNI has no dry-run form known here: apply each stage at a quiet time "
                  "and run `netpol-discover drift` on the traffic right after.", ""]
    return lines


def _stage_section(stage: Stage, plan: RolloutPlan) -> list[str]:
    plain = stage_file(stage)
    names = " ".join(shlex.quote(visible(name)) for name in stage.policy_names)
    namespace = shlex.quote(visible(stage.namespace))
    lines = [f"## Stage {stage.number}: {md_code(stage.namespace)}", ""]
    if stage.last:
        lines += [f"Held to the end: {md_text(stage.last)}.", ""]
    if stage.open_findings:
        lines += ["Settle these findings first:", ""]
        lines += [f"- {md_text(f.severity.value)} {md_code(f.rule)} {md_code(f.subject)}: "
                  f"{md_text(f.message)}" for f in stage.open_findings]
        lines.append("")
    if stage.external:
        lines += [f"External dependencies: {', '.join(md_code(e) for e in stage.external)}",
                  ""]
    if stage.inbound:
        lines += [f"Inbound peers from outside: "
                  f"{', '.join(md_code(p) for p in stage.inbound)}", ""]
    staged = stage_file(stage, ".calico-staged")
    if "calico" in plan.cni:
        lines += ["Dry run, then enforce once it was quiet (the staged copies go then):", "",
                  *_fenced([f"kubectl apply -f {staged}", "# ... watch, as below ...",
                            f"kubectl apply -f {plain}", f"kubectl delete -f {staged}"]), ""]
    else:
        lines += ["Enforce:", "", *_fenced([f"kubectl apply -f {plain}"]), ""]
    lines += ["Before moving on, watch (the namespace's busiest period at least, and a run "
              "of its periodic jobs):", "",
              f"- `netpol-discover drift` over traffic recorded since, against {md_code(plain)}:"
              " exit status 0 (no denied edge, no blocked attempt);"]
    if "calico" in plan.cni:
        lines.append("- Calico flow logs: no flow the staged policies would deny;")
    if "cilium" in plan.cni:
        lines.append(f"- {md_code(f'hubble observe --namespace {namespace} --verdict AUDIT')}"
                     " (audit mode) and, once enforced, "
                     f"{md_code(f'hubble observe --namespace {namespace} --verdict DROPPED')}:"
                     " nothing;")
    lines += ["- the applications' own error rates and readiness.", "",
              "Roll back (removes exactly this stage's objects):", "",
              *_fenced([f"kubectl delete -f {plain}",
                        f"# or: kubectl delete networkpolicy -n {namespace} {names}"]
                       + ([f"# during the dry run: kubectl delete -f {staged}"]
                          if "calico" in plan.cni else [])), ""]
    return lines


def _fenced(commands: list[str]) -> list[str]:
    text = [visible(command) for command in commands]
    longest = max((len(run) for line in text for run in re.findall("`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}sh", *text, fence]


def write_rollout(directory: Path, plan: RolloutPlan) -> list[Path]:
    """The plan's files in `directory`, swapped in whole (never a mix of two plans)."""
    files = rollout_files(plan)

    def write(staging: Path) -> None:
        for name, text in files.items():
            (staging / name).write_text(text, encoding="utf-8")

    replace_directory(directory, write, frozenset(files))
    return [directory / name for name in files]
