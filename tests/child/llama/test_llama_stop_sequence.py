"""A real llama child on the tiny random GGUF says which of the request's stop strings ended
each choice (``Delta.stop_sequence`` on the choice's last delta)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from corral.protocol.messages import Delta, Generate, SamplingParams
from corral.supervisor.child_process import ChildProcess
from tests.support.llama_child import NO_END, Run, start_child
from tests.support.tiny_gguf import write_tiny_gguf

pytestmark = [pytest.mark.llama, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("stops") / "tiny.gguf", seed=3, n_ctx=512)


@pytest.fixture
async def child(tiny: Path) -> AsyncIterator[ChildProcess]:
    proc, _ = await start_child(tiny, "--parallel", "2")
    yield proc
    await proc.stop(5)


def _request(rid: str, stop: tuple[str, ...] = (), n: int = 1) -> Generate:
    # Greedy, and no end token: the answer is the same 24 tokens every time until a stop.
    params = SamplingParams(max_tokens=24, temperature=0.0, logit_bias=NO_END, stop=stop)
    return Generate(request_id=rid, prompt="the quick brown fox", params=params, n=n)


def _ends(run: Run) -> dict[int, Delta]:
    """Each choice's last delta."""
    return {e.index: e for e in run.events if isinstance(e, Delta)}


def _plain(text: str) -> bool:
    return text.isascii() and text.isprintable() and not text.isspace()


def _text(run: Run, index: int) -> str:
    return "".join(e.text for e in run.events if isinstance(e, Delta) and e.index == index)


async def test_each_choice_names_the_stop_string_that_ended_it(child: ChildProcess) -> None:
    free = await Run(_request("free"), []).drive(child)
    assert _ends(free)[0].finish_reason == "length"
    assert _ends(free)[0].stop_sequence is None
    text = free.text
    # A stop string the answer reaches past its start: the last printable ASCII pair in it
    # (the tiny model's tokens are random bytes, much of them no whole character).
    pairs = [i for i in range(1, len(text) - 1) if _plain(text[i : i + 2])]
    assert pairs, text
    stop = text[pairs[-1] : pairs[-1] + 2]
    cut = text[: text.index(stop)]
    run = await Run(_request("cut", stop=("no such text", stop), n=2), []).drive(child)
    ends = _ends(run)
    assert sorted(ends) == [0, 1]
    for index, end in ends.items():
        assert _text(run, index) == cut
        assert (end.finish_reason, end.stop_sequence) == ("stop", stop)
    # Only a choice's last delta names it.
    assert all(
        e.stop_sequence is None
        for e in run.events
        if isinstance(e, Delta) and e.finish_reason is None
    )
    assert run.done.finish_reason == "stop"


async def test_a_stop_string_the_answer_never_reaches_is_not_named(child: ChildProcess) -> None:
    run = await Run(_request("miss", stop=("no such text",)), []).drive(child)
    end = _ends(run)[0]
    assert (end.finish_reason, end.stop_sequence) == ("length", None)
