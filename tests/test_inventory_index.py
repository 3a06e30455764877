"""IP -> pod by time: reuse, finished pods, gaps, and an invariant over random histories."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from discover.inventory.index import Lookup, PodIndex
from discover.inventory.model import Pod, WorkloadRef

IP = ipaddress.ip_address("10.244.0.5")
T0 = datetime(2024, 5, 1, tzinfo=UTC)


def make_pod(name: str, created: int | None, deleted: int | None = None,
             phase: str = "Running", host: bool = False, finished: int | None = None) -> Pod:
    return Pod(
        namespace="ns", name=name, uid=name, labels={}, ips=(IP,),
        workload=WorkloadRef("ns", "Pod", name), host_network=host, phase=phase,
        created=None if created is None else T0 + timedelta(minutes=created),
        deleted=None if deleted is None else T0 + timedelta(minutes=deleted),
        finished=None if finished is None else T0 + timedelta(minutes=finished),
    )


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_reuse_is_attributed_by_time() -> None:
    index = PodIndex([make_pod("a", 0, 10), make_pod("b", 20)])
    assert index.lookup(IP, at(5)).pod.name == "a"  # type: ignore[union-attr]
    assert index.lookup(IP, at(25)).pod.name == "b"  # type: ignore[union-attr]
    gap = index.lookup(IP, at(15))
    assert gap is not None and gap.pod is None and gap.earlier
    assert "released by pod ns/a" in gap.note and "taken by pod ns/b" in gap.note


def test_before_the_first_holder_is_an_earlier_pod() -> None:
    index = PodIndex([make_pod("b", 20)])
    found = index.lookup(IP, at(19.9))
    assert found is not None and found.pod is None and found.earlier
    assert "created 2024-05-01T00:20:00Z" in found.note


def test_finished_pod_ends_when_the_next_holder_starts() -> None:
    # A Succeeded pod's status keeps its IP; the Running pod created later holds it now.
    index = PodIndex([make_pod("job", 0, phase="Succeeded"), make_pod("web", 30)])
    assert index.lookup(IP, at(10)).pod.name == "job"  # type: ignore[union-attr]
    assert index.lookup(IP, at(30)).pod.name == "web"  # type: ignore[union-attr]


def test_finished_job_pod_holds_its_ip_only_until_it_finished() -> None:
    # Finished at t1 = 10, its IP taken by another pod at t2 = 30.
    index = PodIndex([make_pod("job", 0, phase="Succeeded", finished=10), make_pod("web", 30)])
    assert index.lookup(IP, at(9.9)).pod.name == "job"  # type: ignore[union-attr]
    gap = index.lookup(IP, at(10))
    assert gap is not None and gap.pod is None and gap.earlier
    assert gap.note == ("10.244.0.5 was released by pod ns/job at 2024-05-01T00:10:00Z and "
                        "taken by pod ns/web at 2024-05-01T00:30:00Z; in between it belonged "
                        "to a pod the inventory does not have")
    assert index.lookup(IP, at(20)) == gap
    assert index.lookup(IP, at(30)).pod.name == "web"  # type: ignore[union-attr]


def test_hold_ends_at_the_earlier_of_deleted_and_finished() -> None:
    # A Failed (evicted) pod deleted later, and a Job pod deleted before its status said so.
    index = PodIndex([make_pod("evicted", 0, deleted=50, phase="Failed", finished=10)])
    assert [h.end for h in index.holdings(IP)] == [at(10)]
    after = index.lookup(IP, at(11))
    assert after is not None and after.pod is None and "later traffic" in after.note
    index = PodIndex([make_pod("job", 0, deleted=5, phase="Succeeded", finished=10)])
    assert [h.end for h in index.holdings(IP)] == [at(5)]


def test_pod_created_in_the_same_second_gets_the_ip_after_the_job_pod_finished() -> None:
    # A Job pod and a Deployment's pod created together, one IP: the Running one can have
    # it only once the Job pod let go (the minikube ingress-nginx admission Job).
    index = PodIndex([make_pod("web", 0), make_pod("admission", 0, phase="Succeeded",
                                                    finished=6)])
    assert index.lookup(IP, at(3)).pod.name == "admission"  # type: ignore[union-attr]
    assert index.lookup(IP, at(6)).pod.name == "web"  # type: ignore[union-attr]
    assert [(h.pod.name, h.start, h.end) for h in index.holdings(IP)] == [
        ("admission", at(0), at(6)), ("web", at(6), None)]
    before = index.lookup(IP, at(-1))
    assert before is not None and before.pod is None
    assert "held by pod ns/admission created 2024-05-01T00:00:00Z" in before.note


def test_after_the_last_holder_was_deleted() -> None:
    index = PodIndex([make_pod("a", 0, 10)])
    found = index.lookup(IP, at(11))
    assert found is not None and found.pod is None and "later traffic" in found.note


def test_host_network_pods_and_unknown_ips_are_not_indexed() -> None:
    index = PodIndex([make_pod("h", 0, host=True)])
    assert IP not in index
    assert index.lookup(IP, at(1)) is None


@given(st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=6, unique=True),
       st.floats(min_value=0, max_value=400))
def test_at_most_one_pod_at_any_time(lifetimes: list[int], when: float) -> None:
    # Pods that held the IP one after another: the answer is the one alive then, or none.
    pods, start = [], 0
    for i, length in enumerate(lifetimes):
        pods.append(make_pod(f"p{i}", start, start + length))
        start += length + 1
    found = PodIndex(pods).lookup(IP, at(when))
    alive = [p for p in pods if p.created <= at(when) < p.deleted]  # type: ignore[operator]
    assert found is not None
    assert (found.pod is None) == (not alive)
    if alive:
        assert found.pod == alive[0]


@given(st.lists(st.tuples(st.integers(min_value=1, max_value=50), st.booleans()),
                min_size=1, max_size=6),
       st.booleans(), st.floats(min_value=0, max_value=400))
def test_finished_or_deleted_pods_hold_until_they_let_go(
        lives: list[tuple[int, bool]], last_running: bool, when: float) -> None:
    # Each pod let go by finishing (its record kept, deleted later or never) or by being
    # deleted; the last may still run. The answer is the pod holding it then, or none.
    pods, start = [], 0
    for i, (length, finished) in enumerate(lives):
        if last_running and i == len(lives) - 1:
            pods.append(make_pod(f"p{i}", start))
        elif finished:
            pods.append(make_pod(f"p{i}", start, phase="Succeeded", finished=start + length))
        else:
            pods.append(make_pod(f"p{i}", start, start + length))
        start += length + 1
    found = PodIndex(pods).lookup(IP, at(when))
    holding = [p for p in pods if p.created <= at(when)  # type: ignore[operator]
               and (p.deleted or p.finished or at(1000)) > at(when)]
    assert found is not None
    assert found.pod == (holding[0] if holding else None)
    assert found.earlier == (not holding)


def test_two_live_pods_with_one_ip_are_a_conflict_decided_by_creation_time() -> None:
    index = PodIndex([make_pod("a", 0), make_pod("b", 20)])
    [conflict] = index.conflicts
    assert [p.name for p in conflict.pods] == ["a", "b"] and conflict.by_time
    assert index.lookup(IP, at(5)) == Lookup(index.holdings(IP)[0].pod)
    assert index.lookup(IP, at(25)).pod.name == "b"  # type: ignore[union-attr]


def test_two_live_pods_created_together_are_both_the_answer() -> None:
    index = PodIndex([make_pod("b", 0), make_pod("a", 0)])
    [conflict] = index.conflicts
    assert not conflict.by_time
    found = index.lookup(IP, at(5))
    assert found is not None and found.pod is not None
    assert {found.pod.name, *(p.name for p in found.also)} == {"a", "b"}


def test_reuse_after_a_pod_finished_is_no_conflict() -> None:
    index = PodIndex([make_pod("job", 0, phase="Succeeded"), make_pod("web", 30)])
    assert index.conflicts == ()
    assert index.lookup(IP, at(31)).also == ()  # type: ignore[union-attr]
