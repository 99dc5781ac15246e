"""The batched llama engine over its pipe: a real child on the tiny random GGUF.

Nothing here compares batched output with a solo run token by token: batched float sums may
differ at near-ties, as in llama-server.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from corral.protocol.messages import (
    Cancel,
    Delta,
    Done,
    Error,
    Generate,
    SamplingParams,
    Started,
)
from corral.supervisor.child_process import ChildFailed, ChildProcess, RequestEvent
from tests.support.llama_child import NO_END, Run, start_child, tap
from tests.support.tiny_gguf import write_tiny_gguf

pytestmark = [pytest.mark.llama, pytest.mark.timeout(120)]

Log = list[tuple[str, RequestEvent]]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("engine") / "tiny.gguf", seed=1, n_ctx=512)


@pytest.fixture
async def child(tiny: Path) -> AsyncIterator[ChildProcess]:
    proc, ready = await start_child(
        tiny, "--parallel", "3", "--n-batch", "32", "--prefill-chunk", "16"
    )
    assert ready.parallel == 3
    assert ready.n_ctx == 512  # per request; the shared KV holds one such context per slot
    yield proc
    await proc.stop(5)


def _request(rid: str, prompt: str, max_tokens: int, **fields: object) -> Generate:
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0, logit_bias=NO_END)
    return Generate.model_validate(
        {"request_id": rid, "prompt": prompt, "params": params, **fields}
    )


def _run(request: Generate, log: Log) -> Run:
    return Run(request, log)


async def test_many_concurrent_requests_finish_with_exact_usage(child: ChildProcess) -> None:
    frames = tap(child)
    runs = [_run(_request(f"r{i}", "hello " * (i + 1), 10 + i), []) for i in range(8)]
    await asyncio.gather(*(r.drive(child) for r in runs))
    for i, run in enumerate(runs):
        assert run.done.finish_reason == "length"
        assert run.done.usage.completion_tokens == 10 + i == run.delta_tokens
        assert run.done.usage.prompt_tokens == run.started.prompt_tokens > 0
    # Three slots: the fourth request starts only once one of the first three is done.
    order = [(e.request_id, e.type) for e in frames if isinstance(e, Started | Done)]
    first_done = next(i for i, (_, kind) in enumerate(order) if kind == "done")
    started_before = {rid for rid, kind in order[:first_done] if kind == "started"}
    # Only the first three can start before any is done (under load the first may finish
    # before a third has started, so the set may be smaller).
    assert started_before <= {"r0", "r1", "r2"}
    running = 0
    for _, kind in order:
        running += 1 if kind == "started" else -1
        assert running <= 3
    # Never more than three at once, and the rest in order: r<k> starts after k - 2 are done.
    for k in range(3, 8):
        at = order.index((f"r{k}", "started"))
        assert sum(kind == "done" for _, kind in order[:at]) >= k - 2


async def test_cancel_one_in_a_running_batch_and_the_others_go_on(child: ChildProcess) -> None:
    log: Log = []
    runs = [_run(_request(f"c{i}", f"story {i}", 120), log) for i in range(3)]
    tasks = [asyncio.create_task(r.drive(child)) for r in runs]
    async with asyncio.timeout(60):
        for run in runs:
            await run.first_delta.wait()
    await child.send(Cancel(request_id="c1"))
    await asyncio.gather(*tasks)
    assert runs[1].done.finish_reason == "cancelled"
    assert runs[1].done.usage.completion_tokens < 120
    for run in (runs[0], runs[2]):
        assert run.done.finish_reason == "length"
        assert run.done.usage.completion_tokens == 120 == run.delta_tokens


async def test_a_prompt_longer_than_n_batch_is_read_while_others_stream(
    child: ChildProcess,
) -> None:
    log = tap(child)
    streaming = _run(_request("s", "go", 300), [])
    task = asyncio.create_task(streaming.drive(child))
    async with asyncio.timeout(60):
        await streaming.first_delta.wait()
    long_prompt = " ".join(f"w{i}" for i in range(90))  # ~270 tokens, n_batch is 32
    long = await _run(_request("long", long_prompt, 4), []).drive(child)
    await task
    assert long.done.usage.prompt_tokens > 8 * 32
    assert long.done.usage.completion_tokens == 4
    assert streaming.done.usage.completion_tokens == 300
    # While the long prompt was read (16 tokens a step), the stream kept getting tokens.
    mine = [(i, e) for i, e in enumerate(log) if getattr(e, "request_id", None) == "long"]
    began = next(i for i, e in mine if isinstance(e, Started))
    ended = next(i for i, e in mine if isinstance(e, Delta))
    meanwhile = sum(
        e.tokens for e in log[began:ended] if isinstance(e, Delta) and e.request_id == "s"
    )
    assert meanwhile >= 8


async def test_a_conversation_returns_to_its_slot_and_reuses_its_prefix(
    child: ChildProcess,
) -> None:
    log: Log = []
    history = "the history of this conversation " * 6
    first = await _run(_request("t1", history, 6, cache_key="conv-a"), log).drive(child)
    assert first.done.usage.cached_tokens == 0
    # Other conversations take the other slots in between.
    await asyncio.gather(
        *(
            _run(_request(f"o{i}", f"other {i} " * 9, 6, cache_key=f"o{i}"), log).drive(child)
            for i in range(2)
        )
    )
    second = await _run(_request("t2", history + "and more", 6, cache_key="conv-a"), log).drive(
        child
    )
    prompt = first.done.usage.prompt_tokens
    assert second.done.usage.cached_tokens >= prompt - 1
    assert second.done.usage.prompt_tokens > prompt
    assert second.done.finish_reason == "length"


async def test_a_grammar_sequence_in_a_batch_yields_text_the_grammar_accepts(
    child: ChildProcess,
) -> None:
    log: Log = []
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 8}, "n": {"type": "integer"}},
        "required": ["name", "n"],
    }
    free = [_run(_request(f"f{i}", f"free {i}", 40), log) for i in range(2)]
    params = SamplingParams(max_tokens=200, temperature=1.0, seed=5)
    shaped = _run(Generate(request_id="json", prompt="{", params=params, json_schema=schema), log)
    choice = _run(
        Generate(
            request_id="gbnf",
            prompt="answer",
            params=params,
            grammar='root ::= "yes" | "no"',
        ),
        log,
    )
    await asyncio.gather(*(r.drive(child) for r in [*free, shaped, choice]))
    value = json.loads(shaped.text)
    assert set(value) == {"name", "n"}
    assert isinstance(value["n"], int)
    assert shaped.done.finish_reason == "stop"
    assert choice.text in {"yes", "no"}
    for run in free:
        assert run.done.usage.completion_tokens == 40


async def test_a_grammar_that_does_not_parse_is_a_request_error(child: ChildProcess) -> None:
    bad = Generate(request_id="bad", prompt="x", grammar="root ::= (")
    run = await _run(bad, []).drive(child)
    assert isinstance(run.end, Error)
    assert run.end.code == "invalid_request"
    ok = await _run(_request("after", "x", 3), []).drive(child)  # the child serves on
    assert ok.done.usage.completion_tokens == 3


async def test_a_crash_mid_batch_ends_every_request(child: ChildProcess) -> None:
    log: Log = []
    runs = [_run(_request(f"k{i}", f"crash {i}", 400), log) for i in range(5)]
    tasks = [asyncio.create_task(r.drive(child)) for r in runs]
    async with asyncio.timeout(60):
        for run in runs[:3]:
            await run.first_delta.wait()
    assert child.pid is not None
    os.kill(child.pid, signal.SIGKILL)
    async with asyncio.timeout(30):
        await asyncio.gather(*tasks)
    for run in runs:  # the three decoding and the two waiting for a slot
        assert isinstance(run.end, ChildFailed)
        assert "killed by signal 9" in run.end.message


async def test_a_parked_conversation_comes_back_with_the_same_greedy_continuation(
    tiny: Path,
) -> None:
    proc, _ = await start_child(tiny, "--parallel", "1", "--kv-park-bytes", str(64 << 20))
    try:
        history = "a long shared history of this conversation " * 5
        first = await _run(_request("a1", history, 12, cache_key="a"), []).drive(proc)
        # Another conversation takes the only slot: a's KV is parked, not lost.
        other = await _run(_request("b1", "something else entirely", 6, cache_key="b"), []).drive(
            proc
        )
        assert other.done.usage.cached_tokens == 0
        assert proc.stats is not None
        assert proc.stats.kv_parked_bytes > 0
        again = await _run(_request("a2", history, 12, cache_key="a"), []).drive(proc)
        assert again.done.usage.cached_tokens == first.done.usage.prompt_tokens - 1
        assert again.text == first.text
        # b was parked in turn when a came back; a is in the slot now.
        assert proc.stats.kv_parked_bytes > 0
    finally:
        await proc.stop(5)


async def test_without_parking_a_displaced_conversation_is_read_again(tiny: Path) -> None:
    proc, _ = await start_child(tiny, "--parallel", "1", "--kv-park-bytes", "0")
    try:
        history = "a long shared history of this conversation " * 5
        await _run(_request("a1", history, 4, cache_key="a"), []).drive(proc)
        await _run(_request("b1", "something else entirely", 4, cache_key="b"), []).drive(proc)
        again = await _run(_request("a2", history, 4, cache_key="a"), []).drive(proc)
        assert again.done.usage.cached_tokens == 0
    finally:
        await proc.stop(5)


async def test_a_lazy_grammar_applies_from_its_trigger_on(child: ChildProcess) -> None:
    # "x" (byte token 120) is all the biased model would say; once "x" triggers the grammar,
    # it must be followed by two digits and nothing else.
    params = SamplingParams(max_tokens=50, temperature=0.0, logit_bias={120: 100.0})
    lazy = Generate(
        request_id="lazy",
        prompt="go",
        params=params,
        grammar='root ::= "x" [0-9] [0-9]',
        grammar_triggers=("x",),
    )
    run = await _run(lazy, []).drive(child)
    assert re.fullmatch(r"x[0-9]{2}", run.text), run.text
    assert run.done.finish_reason == "stop"
    free = await _run(Generate(request_id="free", prompt="go", params=params), []).drive(child)
    assert free.text == "x" * 50  # the same request without the grammar


async def test_each_sequence_samples_with_its_own_parameters(child: ChildProcess) -> None:
    def req(rid: str, **params: object) -> Generate:
        sampling = SamplingParams.model_validate({"max_tokens": 40, "logit_bias": NO_END, **params})
        return Generate(request_id=rid, prompt="sample me", params=sampling)

    runs = [
        _run(req("seeded", temperature=1.5, seed=11), []),
        _run(req("other-seed", temperature=1.5, seed=12), []),
        _run(req("greedy", temperature=0.0), []),
    ]
    await asyncio.gather(*(r.drive(child) for r in runs))
    seeded, other, _ = runs
    assert seeded.text != other.text
    # Run alone, one after the other (so both read the same cached prefix): a seeded request
    # is reproducible, and top_k=1 leaves one candidate whatever the seed.
    alone = [
        await _run(req(f"alone-{i}", **params), []).drive(child)
        for i, params in enumerate(
            [
                {"temperature": 1.5, "seed": 11},
                {"temperature": 1.5, "seed": 11},
                {"temperature": 1.5, "top_k": 1, "seed": 3},
                {"temperature": 1.5, "top_k": 1, "seed": 4},
            ]
        )
    ]
    assert alone[0].text == alone[1].text
    assert alone[2].text == alone[3].text
    assert alone[2].text != alone[0].text
