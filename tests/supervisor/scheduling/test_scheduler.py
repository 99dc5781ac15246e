"""The scheduler as a pure state machine: events in, effects out, time passed in by hand."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from corral.supervisor.scheduling.scheduler import Scheduler
from corral.supervisor.scheduling.types import (
    Admit,
    Effect,
    Limits,
    ModelSpec,
    Refused,
    Reject,
    StartLoad,
    StopModel,
)

GB = 1 << 30


def make(limits: Limits | None = None, *specs: ModelSpec) -> Scheduler:
    sched = Scheduler(limits or Limits())
    for spec in specs or (ModelSpec("a", GB), ModelSpec("b", GB), ModelSpec("c", GB)):
        sched.register(spec)
    return sched


def serve(sched: Scheduler, ticket: str, model: str, now: float) -> None:
    """Submit a request for a cold model with room to spare and let it load: admitted."""
    assert sched.submit(ticket, model, now) == [StartLoad(model)]
    assert sched.loaded(model, now) == [Admit(ticket, model)]


def use(sched: Scheduler, model: str, now: float) -> None:
    """One whole request on a model (loading it if needed), leaving it idle at `now`."""
    ticket = f"use-{model}-{now}"
    effects = sched.submit(ticket, model, now)
    if effects == [StartLoad(model)]:
        effects = sched.loaded(model, now)
    assert effects == [Admit(ticket, model)]
    assert sched.finish(ticket, now) == []


def codes(effects: list[Effect]) -> list[tuple[str, str]]:
    return [(e.ticket, e.code) for e in effects if isinstance(e, Reject)]


# -- loading on demand ---------------------------------------------------------------------


def test_first_request_loads_the_model_and_is_admitted_when_loaded() -> None:
    sched = make()
    assert sched.submit("t1", "a", 0.0) == [StartLoad("a")]
    view = sched.snapshot()["a"]
    assert (view.state, view.queued, view.in_flight) == ("loading", 1, 0)
    assert sched.loaded("a", 1.0) == [Admit("t1", "a")]
    view = sched.snapshot()["a"]
    assert (view.state, view.queued, view.in_flight, view.loaded_since) == ("loaded", 0, 1, 1.0)


def test_concurrent_first_requests_share_one_load() -> None:
    sched = make()
    assert sched.submit("t1", "a", 0.0) == [StartLoad("a")]
    assert sched.submit("t2", "a", 0.1) == []
    assert sched.submit("t3", "a", 0.2) == []
    assert sched.loaded("a", 1.0) == [Admit("t1", "a"), Admit("t2", "a"), Admit("t3", "a")]


def test_request_for_a_loaded_model_is_admitted_at_once() -> None:
    sched = make()
    serve(sched, "t1", "a", 0.0)
    assert sched.submit("t2", "a", 1.0) == [Admit("t2", "a")]
    assert sched.snapshot()["a"].in_flight == 2


def test_unknown_model_is_rejected() -> None:
    sched = make()
    [reject] = sched.submit("t1", "nope", 0.0)
    assert isinstance(reject, Reject)
    assert (reject.code, reject.model_id) == ("unknown_model", "nope")


def test_duplicate_ticket_is_a_programming_error() -> None:
    sched = make()
    sched.submit("t1", "a", 0.0)
    with pytest.raises(ValueError, match="duplicate"):
        sched.submit("t1", "b", 0.0)


def test_invalid_limits_and_specs_are_refused() -> None:
    with pytest.raises(ValueError, match="max_loaded"):
        Limits(max_loaded=0)
    with pytest.raises(ValueError, match="negative"):
        Limits(memory_budget=-1)
    with pytest.raises(ValueError, match="footprint"):
        ModelSpec("a", -1)


# -- eviction --------------------------------------------------------------------------------


def test_evicts_the_least_recently_used_idle_model_and_waits_for_it_to_stop() -> None:
    sched = make(Limits(max_loaded=2))
    use(sched, "a", 1.0)
    use(sched, "b", 2.0)
    use(sched, "a", 3.0)  # now b is the least recently used
    assert sched.submit("t", "c", 4.0) == [StopModel("b", "evicted")]
    assert sched.snapshot()["c"].state == "unloaded"  # b still holds its memory
    assert sched.stopped("b", 5.0) == [StartLoad("c")]
    assert sched.loaded("c", 6.0) == [Admit("t", "c")]
    assert sched.snapshot()["a"].state == "loaded"


def test_a_model_never_used_counts_from_its_load_for_lru() -> None:
    sched = make(Limits(max_loaded=2))
    use(sched, "a", 5.0)
    sched.load("b", 1.0)
    sched.loaded("b", 1.0)  # preloaded before a was last used
    assert sched.submit("t", "c", 6.0) == [StopModel("b", "evicted")]


def test_busy_model_is_never_evicted_the_request_waits_until_it_is_idle() -> None:
    sched = make(Limits(max_loaded=1))
    serve(sched, "t1", "a", 0.0)
    assert sched.submit("t2", "b", 1.0) == []  # waits, a is busy
    assert sched.snapshot()["b"].queued == 1
    assert sched.finish("t1", 4.0) == [StopModel("a", "evicted")]
    assert sched.stopped("a", 5.0) == [StartLoad("b")]
    assert sched.loaded("b", 6.0) == [Admit("t2", "b")]


def test_busy_model_drains_so_that_a_waiting_request_is_not_starved() -> None:
    sched = make(Limits(max_loaded=1))
    serve(sched, "t1", "a", 0.0)
    assert sched.submit("t2", "a", 0.5) == [Admit("t2", "a")]
    assert sched.submit("tb", "b", 1.0) == []
    assert sched.snapshot()["a"].stop_when_idle == "evicted"
    # New requests for a no longer get in ahead of b: they wait, and reload a after b.
    assert sched.submit("t3", "a", 2.0) == []
    assert sched.finish("t1", 3.0) == []  # t2 still in flight
    assert sched.finish("t2", 4.0) == [StopModel("a", "evicted")]
    assert sched.stopped("a", 5.0) == [StartLoad("b")]
    assert sched.loaded("b", 6.0) == [Admit("tb", "b")]
    assert sched.snapshot()["b"].stop_when_idle == "evicted"  # now a's request waits for b
    assert sched.finish("tb", 7.0) == [StopModel("b", "evicted")]
    assert sched.stopped("b", 8.0) == [StartLoad("a")]
    assert sched.loaded("a", 9.0) == [Admit("t3", "a")]


def test_drain_is_called_off_when_the_waiting_request_goes_away() -> None:
    sched = make(Limits(max_loaded=1))
    serve(sched, "t1", "a", 0.0)
    assert sched.submit("tb", "b", 1.0) == []
    assert sched.submit("t2", "a", 2.0) == []
    assert sched.abandon("tb", 3.0) == [Admit("t2", "a")]
    assert sched.snapshot()["a"].stop_when_idle is None
    assert sched.finish("t1", 4.0) == []


def test_drain_is_called_off_when_an_idle_model_can_make_the_room() -> None:
    sched = make(Limits(max_loaded=2))
    serve(sched, "tx", "a", 0.0)
    serve(sched, "ty", "b", 1.0)
    assert sched.submit("tc", "c", 2.0) == []
    assert sched.snapshot()["a"].stop_when_idle == "evicted"  # least recently used
    assert sched.finish("ty", 3.0) == [StopModel("b", "evicted")]
    assert sched.snapshot()["a"].stop_when_idle is None
    assert sched.submit("t2", "a", 4.0) == [Admit("t2", "a")]
    assert sched.stopped("b", 5.0) == [StartLoad("c")]


def test_a_drain_sticks_to_its_model() -> None:
    sched = make(Limits(max_loaded=2))
    serve(sched, "t1", "a", 0.0)
    assert sched.submit("t2", "a", 0.5) == [Admit("t2", "a")]
    serve(sched, "t3", "b", 1.0)
    assert sched.submit("tc", "c", 2.0) == []
    assert sched.snapshot()["a"].stop_when_idle == "evicted"  # least recently used
    # One of a's requests ends: a is now used more recently than b, but it keeps draining.
    assert sched.finish("t1", 3.0) == []
    views = sched.snapshot()
    assert (views["a"].stop_when_idle, views["b"].stop_when_idle) == ("evicted", None)
    assert sched.finish("t2", 4.0) == [StopModel("a", "evicted")]


def test_drain_takes_the_least_recently_used_busy_model_only_if_idle_ones_do_not_suffice() -> None:
    sched = make(
        Limits(max_loaded=9, memory_budget=10),
        ModelSpec("busy_old", 4),
        ModelSpec("busy_new", 4),
        ModelSpec("idle", 2),
        ModelSpec("new", 6),
    )
    serve(sched, "t1", "busy_old", 1.0)
    serve(sched, "t2", "busy_new", 2.0)
    use(sched, "idle", 3.0)
    # 10 in use, 6 needed: the idle model goes at once, and the oldest busy one drains.
    assert sched.submit("t", "new", 4.0) == [StopModel("idle", "evicted")]
    views = sched.snapshot()
    assert views["busy_old"].stop_when_idle == "evicted"
    assert views["busy_new"].stop_when_idle is None
    assert sched.stopped("idle", 5.0) == []
    assert sched.finish("t1", 6.0) == [StopModel("busy_old", "evicted")]
    assert sched.stopped("busy_old", 7.0) == [StartLoad("new")]


def test_an_idle_model_is_spared_when_only_a_drain_makes_enough_room() -> None:
    sched = make(
        Limits(max_loaded=9, memory_budget=10),
        ModelSpec("busy", 4),
        ModelSpec("idle", 2),
        ModelSpec("other", 4),
        ModelSpec("new", 4),
    )
    serve(sched, "t1", "busy", 1.0)
    use(sched, "idle", 2.0)
    serve(sched, "t2", "other", 3.0)
    # Evicting idle (2) cannot free 4 on its own; draining busy (4) alone does.
    assert sched.submit("t", "new", 4.0) == []
    views = sched.snapshot()
    assert (views["busy"].stop_when_idle, views["idle"].state) == ("evicted", "loaded")


def test_model_with_waiting_requests_is_not_evicted() -> None:
    sched = make(Limits(max_loaded=2))
    use(sched, "a", 1.0)
    sched.unload("a", 2.0)  # a stops; a request for it waits to reload it
    assert sched.submit("ta", "a", 3.0) == []
    use(sched, "b", 4.0)
    assert sched.stopped("a", 5.0) == [StartLoad("a")]
    # a is loading for a waiter, b is idle: c evicts b, even though b was used later.
    assert sched.submit("tc", "c", 6.0) == [StopModel("b", "evicted")]


def test_pinned_model_is_never_evicted() -> None:
    sched = make(
        Limits(max_loaded=2),
        ModelSpec("p", GB, pinned=True),
        ModelSpec("a", GB),
        ModelSpec("b", GB),
    )
    use(sched, "p", 1.0)
    use(sched, "a", 2.0)
    assert sched.submit("t", "b", 3.0) == [StopModel("a", "evicted")]


def test_memory_budget_evicts_only_as_many_as_needed() -> None:
    sched = make(
        Limits(max_loaded=9, memory_budget=10),
        ModelSpec("a", 3),
        ModelSpec("b", 3),
        ModelSpec("c", 3),
        ModelSpec("d", 4),
    )
    for i, name in enumerate("abc"):
        use(sched, name, float(i))
    assert sched.submit("t", "d", 5.0) == [StopModel("a", "evicted")]
    assert sched.stopped("a", 6.0) == [StartLoad("d")]


def test_memory_budget_spares_a_small_lru_model_when_a_bigger_eviction_suffices() -> None:
    sched = make(
        Limits(max_loaded=9, memory_budget=10),
        ModelSpec("small", 1),
        ModelSpec("big", 5),
        ModelSpec("mid", 3),
        ModelSpec("new", 5),
    )
    use(sched, "small", 1.0)
    use(sched, "big", 2.0)
    use(sched, "mid", 3.0)
    # LRU order is small, big, mid; evicting small alone frees too little, big alone enough.
    assert sched.submit("t", "new", 4.0) == [StopModel("big", "evicted")]


def test_memory_budget_counts_stopping_and_loading_models() -> None:
    sched = make(
        Limits(max_loaded=9, memory_budget=10),
        ModelSpec("a", 6),
        ModelSpec("b", 5),
        ModelSpec("c", 4),
    )
    use(sched, "a", 0.0)
    assert sched.unload("a", 1.0) == [StopModel("a", "unload")]
    assert sched.submit("tb", "b", 2.0) == []  # a still holds 6
    assert sched.stopped("a", 3.0) == [StartLoad("b")]
    assert sched.submit("tc", "c", 4.0) == [StartLoad("c")]  # 5 + 4 fits
    assert sched.submit("ta", "a", 5.0) == []  # both busy loading: waits, not never_fits


def test_several_models_share_the_budget_without_eviction() -> None:
    sched = make(
        Limits(max_loaded=9, memory_budget=10),
        ModelSpec("a", 3),
        ModelSpec("b", 3),
        ModelSpec("c", 4),
    )
    for name in "abc":
        assert sched.submit(f"t{name}", name, 0.0) == [StartLoad(name)]


def test_one_eviction_serves_a_load_that_waits_for_it() -> None:
    """A second event while the victim stops must not evict another model."""
    sched = make(Limits(max_loaded=2))
    use(sched, "a", 1.0)
    use(sched, "b", 2.0)
    assert sched.submit("t1", "c", 3.0) == [StopModel("a", "evicted")]
    assert sched.submit("t2", "c", 3.5) == []
    assert sched.tick(4.0) == []
    assert sched.stopped("a", 5.0) == [StartLoad("c")]


def test_oldest_waiting_request_gets_the_room_first() -> None:
    sched = make(Limits(max_loaded=1))
    serve(sched, "ta", "a", 0.0)
    assert sched.submit("tb", "b", 1.0) == []
    assert sched.submit("tc", "c", 2.0) == []
    assert sched.finish("ta", 3.0) == [StopModel("a", "evicted")]
    assert sched.stopped("a", 4.0) == [StartLoad("b")]
    assert sched.loaded("b", 5.0) == [Admit("tb", "b")]
    assert sched.finish("tb", 6.0) == [StopModel("b", "evicted")]
    assert sched.stopped("b", 7.0) == [StartLoad("c")]


def test_a_later_model_does_not_jump_a_blocked_one_but_may_use_spare_room() -> None:
    sched = make(
        Limits(max_loaded=9, memory_budget=10),
        ModelSpec("a", 6),
        ModelSpec("big", 8),
        ModelSpec("small", 3),
        ModelSpec("tiny", 1),
    )
    serve(sched, "ta", "a", 0.0)
    assert sched.submit("t1", "big", 1.0) == []
    assert sched.submit("t2", "small", 2.0) == []  # it would fit now, but big came first
    assert sched.submit("t3", "tiny", 2.0) == []
    # big's room is held while a drains and stops; the others wait their turn behind big.
    assert sched.snapshot()["a"].stop_when_idle == "evicted"
    assert sched.finish("ta", 3.0) == [StopModel("a", "evicted")]
    assert sched.stopped("a", 4.0) == [StartLoad("big")]
    # Once big is busy, small drains it; tiny fits beside small now.
    assert sched.loaded("big", 5.0) == [Admit("t1", "big"), StartLoad("tiny")]
    assert sched.finish("t1", 6.0) == [StopModel("big", "evicted")]
    assert sched.stopped("big", 7.0) == [StartLoad("small")]


# -- refusing --------------------------------------------------------------------------------


def test_never_fits_when_the_model_alone_exceeds_the_budget() -> None:
    sched = make(Limits(memory_budget=10), ModelSpec("huge", 11))
    [reject] = sched.submit("t", "huge", 0.0)
    assert isinstance(reject, Reject)
    assert reject.code == "never_fits"
    assert "11" in reject.message
    with pytest.raises(Refused) as info:
        sched.load("huge", 0.0)
    assert info.value.code == "never_fits"


def test_never_fits_when_pinned_models_leave_no_room() -> None:
    sched = make(
        Limits(max_loaded=3, memory_budget=10),
        ModelSpec("p", 7, pinned=True),
        ModelSpec("a", 4),
        ModelSpec("b", 3),
    )
    use(sched, "p", 0.0)
    assert codes(sched.submit("ta", "a", 1.0)) == [("ta", "never_fits")]
    assert sched.submit("tb", "b", 1.0) == [StartLoad("b")]


def test_never_fits_when_pinned_models_take_every_slot() -> None:
    sched = make(Limits(max_loaded=1), ModelSpec("p", 1, pinned=True), ModelSpec("a", 1))
    use(sched, "p", 0.0)
    assert codes(sched.submit("t", "a", 1.0)) == [("t", "never_fits")]


def test_waiting_request_fails_when_a_pinned_model_takes_its_room() -> None:
    sched = make(
        Limits(max_loaded=2), ModelSpec("p", 1, pinned=True), *[ModelSpec(x, 1) for x in "ab"]
    )
    serve(sched, "ta", "a", 0.0)
    assert sched.submit("tp", "p", 0.0) == [StartLoad("p")]
    assert sched.submit("tb", "b", 1.0) == []  # waits for a
    sched.loaded("p", 2.0)
    sched.register(ModelSpec("a", 1, pinned=True))  # a is pinned now: b can never fit
    assert codes(sched.tick(3.0)) == [("tb", "never_fits")]


def test_queue_full_counts_waiting_requests_of_all_models() -> None:
    sched = make(Limits(max_queue=2))
    assert sched.submit("t1", "a", 0.0) == [StartLoad("a")]
    assert sched.submit("t2", "b", 0.0) == [StartLoad("b")]
    assert codes(sched.submit("t3", "a", 0.0)) == [("t3", "queue_full")]
    sched.loaded("a", 1.0)  # t1 admitted: one slot in the queue again
    assert sched.submit("t4", "c", 1.0) == [StartLoad("c")]
    assert sched.submit("t5", "a", 1.0) == [Admit("t5", "a")]  # loaded models never queue


# -- keep-alive ------------------------------------------------------------------------------


def test_default_keep_alive_starts_when_the_last_request_ends() -> None:
    sched = make(Limits(default_keep_alive=300.0))
    serve(sched, "t1", "a", 0.0)
    assert sched.submit("t2", "a", 1.0) == [Admit("t2", "a")]
    sched.finish("t1", 10.0)
    assert sched.next_deadline() is None  # t2 still in flight
    assert sched.snapshot()["a"].keep_alive_deadline is None
    sched.finish("t2", 20.0)
    assert sched.next_deadline() == 320.0
    assert sched.snapshot()["a"].keep_alive_deadline == 320.0
    assert sched.tick(319.9) == []
    assert sched.tick(320.0) == [StopModel("a", "keep_alive")]
    assert sched.next_deadline() is None
    assert sched.stopped("a", 321.0) == []
    assert sched.snapshot()["a"].state == "unloaded"


def test_new_request_cancels_the_idle_timer() -> None:
    sched = make(Limits(default_keep_alive=5.0))
    use(sched, "a", 0.0)
    assert sched.submit("t", "a", 4.0) == [Admit("t", "a")]
    assert sched.tick(100.0) == []
    sched.finish("t", 100.0)
    assert sched.next_deadline() == 105.0


def test_per_model_keep_alive() -> None:
    sched = make(Limits(default_keep_alive=300.0), ModelSpec("a", GB, keep_alive=5.0))
    use(sched, "a", 0.0)
    assert sched.next_deadline() == 5.0
    assert sched.tick(5.0) == [StopModel("a", "keep_alive")]


def test_per_request_keep_alive_overrides_for_that_idle_period() -> None:
    sched = make(Limits(default_keep_alive=300.0))
    serve(sched, "t0", "a", 0.0)
    sched.finish("t0", 0.0)
    assert sched.submit("t1", "a", 1.0, keep_alive=-1) == [Admit("t1", "a")]
    assert sched.submit("t2", "a", 1.0, keep_alive=30.0) == [Admit("t2", "a")]
    sched.finish("t1", 2.0)
    sched.finish("t2", 3.0)  # the request that leaves the model idle decides
    assert sched.next_deadline() == 33.0
    use(sched, "a", 10.0)  # the next idle period is back to the default
    assert sched.next_deadline() == 310.0


def test_keep_alive_zero_stops_as_soon_as_idle() -> None:
    sched = make(Limits(default_keep_alive=0.0))
    serve(sched, "t", "a", 0.0)
    assert sched.finish("t", 1.0) == [StopModel("a", "keep_alive")]


def test_keep_alive_zero_per_request() -> None:
    sched = make()
    serve(sched, "t0", "a", 0.0)
    assert sched.submit("t1", "a", 0.0, keep_alive=0) == [Admit("t1", "a")]
    assert sched.finish("t1", 1.0) == []  # t0 is still in flight
    assert sched.finish("t0", 2.0) == []
    assert sched.next_deadline() == 302.0


def test_negative_keep_alive_never_stops() -> None:
    sched = make(Limits(default_keep_alive=-1.0))
    use(sched, "a", 0.0)
    assert sched.next_deadline() is None
    assert sched.tick(1e9) == []
    assert sched.snapshot()["a"].keep_alive_deadline is None


def test_pinned_model_ignores_keep_alive() -> None:
    sched = make(Limits(default_keep_alive=0.0), ModelSpec("p", GB, pinned=True))
    assert sched.submit("t", "p", 0.0, keep_alive=0) == [StartLoad("p")]
    sched.loaded("p", 1.0)
    assert sched.finish("t", 2.0) == []
    assert sched.next_deadline() is None
    assert sched.tick(1e9) == []


def test_keep_alive_after_a_load_without_requests() -> None:
    sched = make(Limits(default_keep_alive=60.0))
    assert sched.load("a", 0.0) == [StartLoad("a")]
    assert sched.loaded("a", 10.0) == []
    assert sched.next_deadline() == 70.0


def test_keep_alive_zero_stops_a_model_whose_waiters_left_during_its_load() -> None:
    sched = make(Limits(default_keep_alive=0.0))
    assert sched.submit("t", "a", 0.0) == [StartLoad("a")]
    assert sched.abandon("t", 1.0) == []
    assert sched.loaded("a", 2.0) == [StopModel("a", "keep_alive")]


def test_registering_a_shorter_keep_alive_applies_to_an_idle_model() -> None:
    sched = make()
    use(sched, "a", 0.0)
    sched.register(ModelSpec("a", GB, keep_alive=0.0))
    assert sched.next_deadline() == 0.0
    assert sched.tick(1.0) == [StopModel("a", "keep_alive")]


# -- crashes and failed loads ----------------------------------------------------------------


def test_load_failed_rejects_every_waiter_and_the_next_request_retries() -> None:
    sched = make()
    sched.submit("t1", "a", 0.0)
    sched.submit("t2", "a", 0.0)
    effects = sched.load_failed("a", "bad magic", 1.0)
    assert codes(effects) == [("t1", "load_failed"), ("t2", "load_failed")]
    assert all("bad magic" in e.message for e in effects if isinstance(e, Reject))
    view = sched.snapshot()["a"]
    assert (view.state, view.failure, view.queued) == ("failed", "bad magic", 0)
    assert sched.submit("t3", "a", 2.0) == [StartLoad("a")]
    assert sched.loaded("a", 3.0) == [Admit("t3", "a")]
    assert sched.snapshot()["a"].failure is None


def test_load_failed_frees_the_room_for_the_next_waiter() -> None:
    sched = make(Limits(max_loaded=1))
    sched.submit("ta", "a", 0.0)
    assert sched.submit("tb", "b", 0.0) == []
    effects = sched.load_failed("a", "oom", 1.0)
    assert codes(effects) == [("ta", "load_failed")]
    assert effects[-1] == StartLoad("b")


def test_crash_drops_admitted_tickets_and_the_next_request_restarts() -> None:
    sched = make()
    serve(sched, "t1", "a", 0.0)
    assert sched.exited("a", "exit code -11", 100.0) == []
    view = sched.snapshot()["a"]
    assert (view.state, view.failure, view.in_flight, view.crash_count) == (
        "failed",
        "exit code -11",
        0,
        1,
    )
    assert sched.finish("t1", 101.0) == []  # already dropped: a no-op
    assert sched.submit("t2", "a", 101.0) == [StartLoad("a")]


def test_crash_loop_backs_off_exponentially_up_to_the_maximum() -> None:
    sched = make(Limits(backoff_base=2.0, backoff_max=5.0, crash_window=60.0))
    now = 0.0
    expected_delays = [None, 2.0, 4.0, 5.0, 5.0]
    for delay in expected_delays:
        assert sched.submit(f"t{now}", "a", now) == [StartLoad("a")]
        sched.loaded("a", now + 1)
        now += 10  # crashes 9 s after loading: consecutive
        sched.exited("a", "segfault", now)
        if delay is None:
            continue
        [reject] = sched.submit(f"early{now}", "a", now + delay / 2)
        assert isinstance(reject, Reject)
        assert reject.code == "crash_backoff"
        assert reject.retry_after == pytest.approx(delay / 2)
        assert sched.snapshot()["a"].backoff_until == now + delay
        now += delay  # exactly at the end of the back-off it restarts
    assert sched.snapshot()["a"].crash_count == 5


def test_staying_up_longer_than_the_crash_window_resets_the_count() -> None:
    sched = make(Limits(crash_window=60.0))
    serve(sched, "t1", "a", 0.0)
    sched.exited("a", "boom", 1.0)
    serve(sched, "t2", "a", 2.0)
    sched.exited("a", "boom", 3.0)
    assert sched.snapshot()["a"].crash_count == 2
    serve(sched, "t3", "a", 10.0)
    sched.tick(71.0)  # up for 61 s
    assert sched.snapshot()["a"].crash_count == 0
    assert sched.exited("a", "boom", 200.0) == []
    assert sched.snapshot()["a"].crash_count == 1
    assert sched.submit("t4", "a", 200.0) == [StartLoad("a")]


def test_crash_during_load_counts_from_the_load_start() -> None:
    sched = make(Limits(crash_window=60.0))
    sched.submit("t1", "a", 0.0)
    # Waiting requests restart the model at once after a first crash ...
    assert sched.exited("a", "boom", 1.0) == [StartLoad("a")]
    # ... but not after a second: they are refused while it backs off.
    effects = sched.exited("a", "boom", 2.0)
    assert codes(effects) == [("t1", "crash_backoff")]
    assert isinstance(effects[0], Reject)
    assert effects[0].retry_after == 2.0


def test_admin_load_ignores_back_off() -> None:
    sched = make()
    for now in (0.0, 1.0):
        serve(sched, f"t{now}", "a", now)
        sched.exited("a", "boom", now + 0.5)
    assert codes(sched.submit("t", "a", 2.0)) == [("t", "crash_backoff")]
    assert sched.load("a", 2.0) == [StartLoad("a")]
    assert sched.submit("t", "a", 2.0) == []  # waits for that load
    assert sched.loaded("a", 3.0) == [Admit("t", "a")]


def test_crash_frees_room_for_a_waiting_request() -> None:
    sched = make(Limits(max_loaded=1))
    serve(sched, "ta", "a", 0.0)
    assert sched.submit("tb", "b", 1.0) == []
    assert sched.exited("a", "boom", 2.0) == [StartLoad("b")]


# -- admin -----------------------------------------------------------------------------------


def test_unload_of_a_busy_model_waits_for_its_requests_and_new_ones_reload_it() -> None:
    sched = make()
    serve(sched, "t1", "a", 0.0)
    assert sched.unload("a", 1.0) == []
    assert sched.snapshot()["a"].stop_when_idle == "unload"
    assert sched.submit("t2", "a", 2.0) == []  # no new admits meanwhile
    assert sched.finish("t1", 3.0) == [StopModel("a", "unload")]
    assert sched.stopped("a", 4.0) == [StartLoad("a")]
    assert sched.loaded("a", 5.0) == [Admit("t2", "a")]


def test_unload_of_an_idle_model_stops_it_at_once() -> None:
    sched = make()
    use(sched, "a", 0.0)
    assert sched.unload("a", 1.0) == [StopModel("a", "unload")]
    assert sched.unload("a", 1.0) == []  # already stopping
    assert sched.stopped("a", 2.0) == []
    assert sched.snapshot()["a"].state == "unloaded"


def test_unload_of_a_pinned_model_works() -> None:
    sched = make(Limits(), ModelSpec("p", GB, pinned=True))
    use(sched, "p", 0.0)
    assert sched.unload("p", 1.0) == [StopModel("p", "unload")]


def test_unload_of_a_loading_model_stops_it_and_a_late_loaded_is_ignored() -> None:
    sched = make()
    assert sched.load("a", 0.0) == [StartLoad("a")]
    assert sched.unload("a", 1.0) == [StopModel("a", "unload")]
    assert sched.loaded("a", 2.0) == []
    assert sched.load_failed("a", "cancelled", 2.0) == []
    assert sched.stopped("a", 3.0) == []
    assert sched.snapshot()["a"].state == "unloaded"


def test_load_then_unload_cancels_a_preload_still_waiting_for_room() -> None:
    sched = make(Limits(max_loaded=1))
    serve(sched, "ta", "a", 0.0)
    assert sched.load("b", 1.0) == []  # waits for a
    assert sched.unload("b", 2.0) == []
    assert sched.finish("ta", 3.0) == []
    assert sched.snapshot()["a"].state == "loaded"


def test_load_of_a_model_pending_unload_cancels_the_unload() -> None:
    sched = make()
    serve(sched, "t1", "a", 0.0)
    sched.unload("a", 1.0)
    assert sched.submit("t2", "a", 2.0) == []
    assert sched.load("a", 3.0) == [Admit("t2", "a")]
    assert sched.finish("t1", 4.0) == []


def test_load_is_idempotent_and_refuses_unknown_models() -> None:
    sched = make()
    assert sched.load("a", 0.0) == [StartLoad("a")]
    assert sched.load("a", 0.0) == []
    sched.loaded("a", 1.0)
    assert sched.load("a", 1.0) == []
    with pytest.raises(Refused) as info:
        sched.load("nope", 1.0)
    assert info.value.code == "unknown_model"
    with pytest.raises(Refused):
        sched.unload("nope", 1.0)


def test_preload_does_not_count_toward_the_queue() -> None:
    sched = make(Limits(max_loaded=1, max_queue=1))
    serve(sched, "ta", "a", 0.0)
    assert sched.load("b", 1.0) == []
    assert sched.submit("tc", "c", 1.0) == []
    assert sched.snapshot()["b"].queued == 0


def test_request_for_a_stopping_model_reloads_it_after_stopped() -> None:
    sched = make(Limits(default_keep_alive=0.0))
    serve(sched, "t1", "a", 0.0)
    assert sched.finish("t1", 1.0) == [StopModel("a", "keep_alive")]
    assert sched.submit("t2", "a", 2.0) == []
    assert sched.snapshot()["a"].queued == 1
    assert sched.stopped("a", 3.0) == [StartLoad("a")]
    assert sched.loaded("a", 4.0) == [Admit("t2", "a")]


def test_exited_while_stopping_counts_as_stopped() -> None:
    sched = make()
    use(sched, "a", 0.0)
    sched.unload("a", 1.0)
    assert sched.exited("a", "killed", 2.0) == []
    view = sched.snapshot()["a"]
    assert (view.state, view.crash_count, view.failure) == ("unloaded", 0, None)


def test_unregister_rejects_waiters_drops_in_flight_and_stops_the_child() -> None:
    sched = make(Limits(max_loaded=2))
    serve(sched, "t1", "a", 0.0)
    sched.unload("a", 1.0)
    assert sched.submit("t2", "a", 1.0) == []
    effects = sched.unregister("a", 2.0)
    assert codes(effects) == [("t2", "unknown_model")]
    assert effects[-1] == StopModel("a", "deleted")
    assert "a" not in sched.snapshot()
    assert sched.finish("t1", 3.0) == []
    assert codes(sched.submit("t3", "a", 3.0)) == [("t3", "unknown_model")]
    # Its child still holds a slot until it is gone: c waits for that, evicting nothing.
    use(sched, "b", 4.0)
    assert sched.submit("t4", "c", 5.0) == []
    assert sched.stopped("a", 6.0) == [StartLoad("c")]
    assert sched.unregister("a", 7.0) == []


def test_unregister_of_an_unloaded_model_forgets_it() -> None:
    sched = make()
    assert sched.unregister("a", 0.0) == []
    assert "a" not in sched.snapshot()


def test_reregistering_while_stopping_keeps_the_model() -> None:
    sched = make()
    use(sched, "a", 0.0)
    assert sched.unregister("a", 1.0) == [StopModel("a", "deleted")]
    sched.register(ModelSpec("a", 2 * GB))
    assert sched.snapshot()["a"].state == "stopping"
    assert sched.submit("t", "a", 2.0) == []
    assert sched.stopped("a", 3.0) == [StartLoad("a")]


def test_abandon_of_a_waiting_ticket_frees_its_queue_slot() -> None:
    sched = make(Limits(max_queue=1))
    assert sched.submit("t1", "a", 0.0) == [StartLoad("a")]
    assert sched.abandon("t1", 1.0) == []
    assert sched.submit("t2", "a", 1.0) == []
    assert sched.loaded("a", 2.0) == [Admit("t2", "a")]
    assert sched.abandon("t2", 3.0) == []  # admitted: same as finish
    assert sched.snapshot()["a"].in_flight == 0
    assert sched.abandon("t2", 3.0) == []


def test_abandon_of_a_blocked_ticket_unblocks_the_next() -> None:
    sched = make(
        Limits(max_loaded=9, memory_budget=10),
        ModelSpec("a", 6),
        ModelSpec("big", 8),
        ModelSpec("tiny", 1),
    )
    assert sched.submit("ta", "a", 0.0) == [StartLoad("a")]
    assert sched.submit("t1", "big", 1.0) == []  # a is loading: no room can be made yet
    assert sched.submit("t2", "tiny", 2.0) == []  # blocked behind big
    assert sched.abandon("t1", 3.0) == [StartLoad("tiny")]


def test_snapshot_reports_the_model() -> None:
    sched = make(Limits(default_keep_alive=10.0), ModelSpec("a", 123, pinned=False))
    use(sched, "a", 5.0)
    view = sched.snapshot()["a"]
    assert view.model_id == "a"
    assert view.state == "loaded"
    assert (view.in_flight, view.queued, view.last_used, view.loaded_since) == (0, 0, 5.0, 5.0)
    assert (view.keep_alive_deadline, view.footprint, view.pinned) == (15.0, 123, False)
    assert (view.failure, view.crash_count, view.backoff_until) == (None, 0, None)


# -- random event sequences ------------------------------------------------------------------

SPECS = st.lists(
    st.tuples(st.integers(1, 6), st.booleans(), st.sampled_from([None, 0.0, 5.0, -1.0])),
    min_size=1,
    max_size=4,
)


class SchedulerMachine(RuleBasedStateMachine):
    """Drives the scheduler the way the actor does, with a faithful fake of the children.

    Checks after every step: resident children never exceed max_loaded or the budget; stops for
    eviction or keep-alive never hit a busy or pinned model; loads are never doubled; every
    ticket gets at most one Admit or Reject. At the end everything drains: every ticket that was
    not abandoned got exactly one answer.
    """

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.counter = 0
        self.children: dict[str, str] = {}  # model -> "starting" | "up" | "stopping"
        self.in_flight: dict[str, str] = {}  # admitted ticket -> model
        self.answered: dict[str, str] = {}  # ticket -> "admit" | reject code
        self.submitted: set[str] = set()
        self.abandoned: set[str] = set()
        self.deleted: set[str] = set()

    @initialize(
        specs=SPECS,
        max_loaded=st.integers(1, 3),
        budget=st.sampled_from([0, 6, 10]),
        max_queue=st.integers(0, 4),
    )
    def setup(
        self,
        specs: list[tuple[int, bool, float | None]],
        max_loaded: int,
        budget: int,
        max_queue: int,
    ) -> None:
        self.limits = Limits(
            max_loaded=max_loaded,
            memory_budget=budget,
            max_queue=max_queue,
            default_keep_alive=3.0,
            backoff_base=1.0,
            backoff_max=4.0,
            crash_window=5.0,
        )
        self.specs = {
            f"m{i}": ModelSpec(f"m{i}", size, keep_alive, pinned)
            for i, (size, pinned, keep_alive) in enumerate(specs)
        }
        self.sched = Scheduler(self.limits)
        for spec in self.specs.values():
            self.sched.register(spec)

    def apply(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, StartLoad):
                assert effect.model_id not in self.children, effect
                self.children[effect.model_id] = "starting"
            elif isinstance(effect, StopModel):
                model = effect.model_id
                assert self.children.get(model) in ("starting", "up"), effect
                busy = model in self.in_flight.values()
                if effect.reason in ("evicted", "keep_alive"):
                    assert not busy, effect
                    assert not self.specs[model].pinned, effect
                    assert self.children[model] == "up", effect
                self.children[model] = "stopping"
                for ticket in [t for t, m in self.in_flight.items() if m == model]:
                    del self.in_flight[ticket]  # only a deletion stops a busy child
            elif isinstance(effect, Admit):
                assert effect.ticket not in self.answered, effect
                assert effect.ticket not in self.abandoned, effect
                assert self.children.get(effect.model_id) == "up", effect
                self.answered[effect.ticket] = "admit"
                self.in_flight[effect.ticket] = effect.model_id
            else:
                assert effect.ticket not in self.answered, effect
                assert effect.ticket not in self.abandoned, effect
                self.answered[effect.ticket] = effect.code
                if effect.code == "crash_backoff":
                    assert effect.retry_after is not None
                    assert effect.retry_after > 0

    def models(self, state: str) -> list[str]:
        return sorted(m for m, s in self.children.items() if s == state)

    @rule(data=st.data(), keep_alive=st.sampled_from([None, 0.0, 2.0, -1.0]))
    def submit(self, data: st.DataObject, keep_alive: float | None) -> None:
        model = data.draw(st.sampled_from([*sorted(self.specs), "unknown"]))
        self.counter += 1
        ticket = f"t{self.counter}"
        self.submitted.add(ticket)
        self.apply(self.sched.submit(ticket, model, self.now, keep_alive))

    @precondition(lambda self: bool(self.in_flight))
    @rule(data=st.data())
    def finish(self, data: st.DataObject) -> None:
        ticket = data.draw(st.sampled_from(sorted(self.in_flight)))
        del self.in_flight[ticket]
        self.apply(self.sched.finish(ticket, self.now))

    @precondition(lambda self: bool(self.submitted - set(self.answered) - self.abandoned))
    @rule(data=st.data())
    def abandon_waiting(self, data: st.DataObject) -> None:
        waiting = self.submitted - set(self.answered) - self.abandoned
        ticket = data.draw(st.sampled_from(sorted(waiting)))
        self.abandoned.add(ticket)
        self.apply(self.sched.abandon(ticket, self.now))

    @precondition(lambda self: bool(self.models("starting")))
    @rule(data=st.data(), ok=st.booleans())
    def finish_load(self, data: st.DataObject, ok: bool) -> None:
        model = data.draw(st.sampled_from(self.models("starting")))
        if ok:
            self.children[model] = "up"
            self.apply(self.sched.loaded(model, self.now))
        else:
            del self.children[model]
            self.apply(self.sched.load_failed(model, "bad", self.now))

    @precondition(lambda self: bool(self.models("starting") + self.models("up")))
    @rule(data=st.data())
    def crash(self, data: st.DataObject) -> None:
        model = data.draw(st.sampled_from(self.models("starting") + self.models("up")))
        del self.children[model]
        for ticket in [t for t, m in self.in_flight.items() if m == model]:
            del self.in_flight[ticket]
        self.apply(self.sched.exited(model, "crash", self.now))

    @precondition(lambda self: bool(self.models("stopping")))
    @rule(data=st.data())
    def finish_stop(self, data: st.DataObject) -> None:
        model = data.draw(st.sampled_from(self.models("stopping")))
        del self.children[model]
        self.apply(self.sched.stopped(model, self.now))

    @rule(dt=st.sampled_from([0.5, 1.0, 3.0, 10.0]))
    def wait(self, dt: float) -> None:
        self.now += dt
        self.apply(self.sched.tick(self.now))

    @rule(data=st.data(), load=st.booleans())
    def admin(self, data: st.DataObject, load: bool) -> None:
        model = data.draw(st.sampled_from(sorted(self.specs)))
        command = self.sched.load if load else self.sched.unload
        refusal: str | None = None
        try:
            self.apply(command(model, self.now))
        except Refused as refused:
            refusal = refused.code
        if refusal is not None:
            assert refusal == ("unknown_model" if model in self.deleted else "never_fits")

    @rule(data=st.data())
    def delete_or_restore(self, data: st.DataObject) -> None:
        model = data.draw(st.sampled_from(sorted(self.specs)))
        if model in self.deleted:
            self.deleted.discard(model)
            self.sched.register(self.specs[model])
        else:
            self.deleted.add(model)
            self.apply(self.sched.unregister(model, self.now))

    @invariant()
    def within_limits(self) -> None:
        if not hasattr(self, "sched"):
            return
        assert len(self.children) <= self.limits.max_loaded
        if self.limits.memory_budget:
            used = sum(self.specs[m].footprint for m in self.children)
            assert used <= self.limits.memory_budget
        views = self.sched.snapshot()
        for model, view in views.items():
            expected = {"starting": "loading", "up": "loaded", "stopping": "stopping"}
            assert view.state == expected.get(self.children.get(model, ""), view.state)
            if model not in self.children:
                assert view.state in ("unloaded", "failed")
            assert view.in_flight == sum(m == model for m in self.in_flight.values())
        assert sum(v.queued for v in views.values()) <= self.limits.max_queue

    def teardown(self) -> None:
        if not hasattr(self, "sched"):
            return
        for _ in range(50):
            if set(self.answered) | self.abandoned >= self.submitted:
                break
            for ticket in sorted(self.in_flight):
                del self.in_flight[ticket]
                self.apply(self.sched.finish(ticket, self.now))
            for model in self.models("starting"):
                self.children[model] = "up"
                self.apply(self.sched.loaded(model, self.now))
            for model in self.models("stopping"):
                del self.children[model]
                self.apply(self.sched.stopped(model, self.now))
        assert set(self.answered) | self.abandoned == self.submitted


TestSchedulerMachine = SchedulerMachine.TestCase
TestSchedulerMachine.settings = settings(
    max_examples=200,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_models_that_take_no_slot_neither_fill_max_loaded_nor_are_evicted_for_it() -> None:
    remote = [ModelSpec(f"r{i}", 0, keep_alive=-1.0, takes_slot=False) for i in range(3)]
    sched = make(Limits(max_loaded=1), ModelSpec("a", GB), ModelSpec("b", GB), *remote)
    for i, spec in enumerate(remote):
        serve(sched, f"t{i}", spec.model_id, 0.0)
        sched.finish(f"t{i}", 0.0)
    serve(sched, "ta", "a", 1.0)  # three remote models loaded, and the one slot is still free
    sched.finish("ta", 1.0)
    # The next local model evicts the local one, never a remote one.
    assert sched.submit("tb", "b", 2.0) == [StopModel("a", "evicted")]
    views = sched.snapshot()
    assert all(views[spec.model_id].state == "loaded" for spec in remote)
