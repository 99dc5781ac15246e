"""The fake child, a real process over its pipe, says which stop string ended its answer."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import pytest

from corral.protocol.messages import Delta, Done, Error, Generate, SamplingParams
from corral.supervisor.child_process import ChildCommand, ChildFailed, ChildProcess, RequestEvent

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def child() -> AsyncIterator[ChildProcess]:
    proc = ChildProcess(ChildCommand([sys.executable, "-m", "corral.child", "fake"], label="fake"))
    await proc.start(hello_timeout=30, load_timeout=30)
    yield proc
    await proc.stop(5)


async def frames(child: ChildProcess, rid: str, **params: object) -> list[RequestEvent]:
    request = Generate(request_id=rid, prompt="x", params=SamplingParams.model_validate(params))
    handle = await child.open_request(request)
    events: list[RequestEvent] = []
    while not isinstance(event := await handle.next_event(), Done | Error | ChildFailed):
        events.append(event)
    events.append(event)
    return events


async def test_the_answers_end_names_the_stop_string_that_cut_it(child: ChildProcess) -> None:
    events = await frames(child, "cut", stop=["never", " tok3", " tok5"])
    deltas = [e for e in events if isinstance(e, Delta)]
    assert "".join(d.text for d in deltas) == "tok0 tok1 tok2"
    # (Deltas not yet read are merged on the supervisor's side, so their count varies.)
    assert (deltas[-1].finish_reason, deltas[-1].stop_sequence) == ("stop", " tok3")
    assert all(d.finish_reason is d.stop_sequence is None for d in deltas[:-1])
    done = events[-1]
    assert isinstance(done, Done)
    assert (done.finish_reason, done.usage.completion_tokens) == ("stop", 4)


async def test_an_answer_that_runs_out_or_ends_names_no_stop_string(child: ChildProcess) -> None:
    for params in ({"stop": ["never"]}, {"stop": [" tok3"], "max_tokens": 2}):
        events = await frames(child, "plain", **params)
        assert not any(isinstance(e, Delta) and e.stop_sequence for e in events), events
        assert isinstance(events[-1], Done)
