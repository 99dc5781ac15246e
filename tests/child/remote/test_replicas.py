"""The replica pool: least outstanding requests, conversation affinity, ejection and back-off."""

from __future__ import annotations

import pytest

from corral.child.remote.replicas import BACKOFF_BASE_S, NoReplica, ReplicaPool, display_url


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _pool(n: int = 3) -> tuple[ReplicaPool, Clock]:
    clock = Clock()
    return ReplicaPool([f"http://r{i}:8000/v1/" for i in range(n)], clock=clock), clock


def test_the_replica_with_the_fewest_outstanding_requests_is_chosen() -> None:
    pool, _ = _pool()
    first = pool.acquire(set())
    second = pool.acquire(set())
    third = pool.acquire(set())
    assert len({first.url, second.url, third.url}) == 3
    pool.release(second)
    assert pool.acquire(set()) is second


def test_a_conversation_sticks_to_its_replica_while_it_is_healthy() -> None:
    pool, _ = _pool()
    chosen = pool.acquire(set(), "conv-1")
    busy = pool.acquire(set(), "conv-1")  # more outstanding, still the same replica
    assert busy is chosen
    pool.failed(chosen, "down")
    moved = pool.acquire(set(), "conv-1")
    assert moved is not chosen
    assert pool.acquire(set(), "conv-1") is moved


def test_an_ejected_replica_is_skipped_until_every_healthy_one_was_tried() -> None:
    pool, _ = _pool(2)
    broken, healthy = pool.replicas
    pool.failed(broken, "refused")
    assert pool.acquire(set()) is healthy
    # The healthy one was tried already: the ejected one gets its chance before giving up.
    assert pool.acquire({healthy.url}) is broken
    with pytest.raises(NoReplica):
        pool.acquire({healthy.url, broken.url})


def test_back_off_doubles_and_a_success_readmits() -> None:
    pool, clock = _pool(1)
    (replica,) = pool.replicas
    pool.failed(replica, "one")
    assert replica.ejected_until == clock.now + BACKOFF_BASE_S
    pool.failed(replica, "two")
    assert replica.ejected_until == clock.now + 2 * BACKOFF_BASE_S
    assert pool.due_for_probe() == []
    clock.now += 2 * BACKOFF_BASE_S
    assert pool.due_for_probe() == [replica]
    (health,) = pool.health()
    assert not health.healthy
    assert health.last_error == "two"
    pool.succeeded(replica)
    (health,) = pool.health()
    assert health.healthy
    assert health.last_error is None
    assert pool.due_for_probe() == []


def test_urls_are_shown_without_credentials() -> None:
    assert display_url("https://user:secret@gpu-box:8443/v1/") == "https://gpu-box:8443/v1"
    assert display_url("http://gpu-box/v1") == "http://gpu-box/v1"
