"""Several choices per request (``n``, batch prompts) and logprobs, in a real llama child on
the tiny random GGUF: the choices share their prompt's KV (``llama_memory_seq_cp``)."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from corral.protocol.messages import Delta, Error, Generate, SamplingParams
from corral.supervisor.child_process import ChildProcess
from tests.support.llama_child import NO_END, Run, start_child
from tests.support.tiny_gguf import write_tiny_gguf

pytestmark = [pytest.mark.llama, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("choices") / "tiny.gguf", seed=1, n_ctx=512)


@pytest.fixture
async def child(tiny: Path) -> AsyncIterator[ChildProcess]:
    proc, _ = await start_child(tiny, "--parallel", "4", "--n-batch", "32", "--prefill-chunk", "16")
    yield proc
    await proc.stop(5)


def _request(rid: str, max_tokens: int, temperature: float = 0.0, **fields: object) -> Generate:
    params = SamplingParams(
        max_tokens=max_tokens, temperature=temperature, seed=11, logit_bias=NO_END
    )
    fields.setdefault("prompt", "the quick brown fox")
    return Generate.model_validate({"request_id": rid, "params": params, **fields})


def _by_choice(run: Run) -> dict[int, list[Delta]]:
    choices: dict[int, list[Delta]] = {}
    for event in run.events:
        if isinstance(event, Delta):
            choices.setdefault(event.index, []).append(event)
    return choices


def _text(deltas: list[Delta]) -> str:
    return "".join(d.text for d in deltas)


async def test_n_choices_read_the_prompt_once_and_each_runs_to_its_own_end(
    child: ChildProcess,
) -> None:
    solo = await Run(_request("solo", 12), []).drive(child)
    run = await Run(_request("n3", 12, n=3), []).drive(child)
    choices = _by_choice(run)
    assert sorted(choices) == [0, 1, 2]
    for deltas in choices.values():
        assert sum(d.tokens for d in deltas) == 12
        assert deltas[-1].finish_reason == "length"  # each choice says how it ended
    # The prompt counts once; every choice's tokens count.
    assert run.started.prompt_tokens == solo.started.prompt_tokens
    assert run.done.usage.prompt_tokens == solo.done.usage.prompt_tokens
    assert run.done.usage.completion_tokens == 36
    # Greedy from a copy of the same prompt KV: the followers say what the leader says. A
    # follower without the copy would continue an empty context instead.
    assert _text(choices[1]) == _text(choices[2]) == _text(choices[0])


async def test_seeded_choices_differ_from_each_other_and_repeat_exactly(
    child: ChildProcess,
) -> None:
    first = _by_choice(await Run(_request("s1", 16, 1.0, n=3), []).drive(child))
    again = _by_choice(await Run(_request("s2", 16, 1.0, n=3), []).drive(child))
    texts = [_text(first[i]) for i in range(3)]
    assert len(set(texts)) == 3  # each choice samples with its own seed
    assert texts == [_text(again[i]) for i in range(3)]


async def test_logprobs_are_one_per_token_and_spell_the_text(child: ChildProcess) -> None:
    run = await Run(_request("lp", 10, logprobs=3), []).drive(child)
    deltas = _by_choice(run)[0]
    tokens = [t for d in deltas for t in d.logprobs]
    assert len(tokens) == sum(d.tokens for d in deltas) == 10
    spelled = bytes(b for t in tokens for b in t.bytes)
    assert spelled.decode("utf-8", errors="replace") == _text(deltas)
    for token in tokens:
        assert token.logprob <= 0.0
        assert len(token.top) == 3
        top = [a.logprob for a in token.top]
        assert top == sorted(top, reverse=True)
        assert sum(math.exp(p) for p in top) <= 1.0 + 1e-6
        # Greedy under a bias that only bans the end tokens: the pick is the likeliest of
        # the rest, so it is the top alternative unless an end token outranks it.
        ranked = [
            a for a in token.top if a.token not in ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
        ]
        assert ranked[0].token == token.token
        assert math.isclose(ranked[0].logprob, token.logprob, rel_tol=1e-6)


async def test_a_batch_of_text_and_token_prompts_with_echo(child: ChildProcess) -> None:
    prompts = ("ab", (104, 105, 106))  # the tiny vocabulary: token id = byte, "hij"
    run = await Run(_request("batch", 5, prompts=prompts, n=2, echo=True), []).drive(child)
    choices = _by_choice(run)
    assert sorted(choices) == [0, 1, 2, 3]
    assert [choices[i][0].text for i in range(4)] == ["ab", "ab", "hij", "hij"]
    assert all(choices[i][0].tokens == 0 for i in range(4))  # the echo is no completion
    assert run.done.usage.completion_tokens == 20
    assert run.done.usage.prompt_tokens == run.started.prompt_tokens >= 2 + 3


async def test_n_beyond_the_slots_and_suffix_without_fim_tokens_are_refused(
    child: ChildProcess,
) -> None:
    too_many = await Run(_request("n5", 4, n=5), []).drive(child)
    assert isinstance(too_many.end, Error)
    assert too_many.end.param == "n"
    no_fim = await Run(_request("fim", 4, prompts=("def f(",), suffix="):"), []).drive(child)
    assert isinstance(no_fim.end, Error)
    assert no_fim.end.param == "suffix"
    bad_token = await Run(_request("tok", 4, prompts=((10**6,),)), []).drive(child)
    assert isinstance(bad_token.end, Error)
    assert bad_token.end.param == "prompt"
