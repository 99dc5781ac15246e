"""One request as the engine's sequences: its prompts (a chat, a text, token ids, a batch, a
fill-in-the-middle), each with ``n`` choices, and the usage of them all.

Choice ``prompt_i * n + j`` is a sequence of its own with its own sampler; the ``n`` choices
of a prompt form a group: the first (the leader) reads the prompt, the others get a copy of
its KV (engine.py), so a prompt is read once however many choices it has.
"""

from __future__ import annotations

from dataclasses import dataclass

import llama_cpp
from llama_cpp._internals import LlamaModel

from corral.child.llama.grammar import calls_wanted, grammar_sampler
from corral.child.llama.prompt import Prompter
from corral.child.llama.sampling import SequenceSampler
from corral.child.llama.sequence import Sequence
from corral.child.llama.tool_calls import ToolCallParser
from corral.child.llama.tool_family import ToolFamily
from corral.child.runtime import Job, RequestFailed
from corral.child.text_stream import StopTextStream
from corral.protocol.messages import CompletionPrompt, FinishReason, Generate, Usage


@dataclass(frozen=True)
class PromptPlan:
    tokens: list[int]
    echo: str
    """The prompt as text, for ``echo``."""


def prompt_plans(
    prompter: Prompter, model: LlamaModel, request: Generate
) -> tuple[list[PromptPlan], tuple[str, ...]]:
    """Every prompt's tokens, and the chat template's stop strings."""
    if not request.prompts:
        tokens, stops = prompter.tokens(request)
        return [PromptPlan(tokens, request.prompt or "")], stops
    return [_completion(model, p, request.suffix) for p in request.prompts], ()


def _completion(model: LlamaModel, prompt: CompletionPrompt, suffix: str | None) -> PromptPlan:
    if isinstance(prompt, str):
        text = prompt
        tokens = list(model.tokenize(prompt.encode(), add_bos=suffix is None, special=True))
    else:
        n_vocab = model.n_vocab()
        if any(not 0 <= t < n_vocab for t in prompt):
            raise RequestFailed(
                "invalid_request",
                f"prompt token ids are 0..{n_vocab - 1} for this model",
                param="prompt",
            )
        tokens = list(prompt)
        text = model.detokenize(tokens, special=True).decode("utf-8", errors="replace")
    if suffix is not None:
        tokens = _fill_in_the_middle(model, tokens, suffix)
    return PromptPlan(tokens, text)


def _fill_in_the_middle(model: LlamaModel, prefix: list[int], suffix: str) -> list[int]:
    """llama-server's infill prompt: [BOS] <fim_pre> prefix <fim_suf> suffix <fim_mid>."""
    vocab = model.vocab
    pre, suf, mid = (
        llama_cpp.llama_vocab_fim_pre(vocab),
        llama_cpp.llama_vocab_fim_suf(vocab),
        llama_cpp.llama_vocab_fim_mid(vocab),
    )
    if -1 in (pre, suf, mid):
        raise RequestFailed(
            "unsupported",
            "suffix needs a model with fill-in-the-middle tokens; this one has none",
            param="suffix",
        )
    after = list(model.tokenize(suffix.encode(), add_bos=False, special=False))
    bos = model.token_bos()
    head = [bos] if bos != -1 and llama_cpp.llama_vocab_get_add_bos(vocab) else []
    return [*head, pre, *prefix, suf, *after, mid]


def build_sequences(
    job: Job,
    model: LlamaModel,
    plans: list[PromptPlan],
    stops: tuple[str, ...],
    n_ctx: int,
    family: ToolFamily | None = None,
) -> list[Sequence]:
    """Every choice's sequence, leaders first in each group; the caller submits the leaders.
    ``family``: how the chat template's model writes tool calls."""
    request = job.request
    params = request.params
    calls = family is not None and request.messages is not None and calls_wanted(request)
    built: list[Sequence] = []
    try:
        for p_i, plan in enumerate(plans):
            budget = n_ctx - len(plan.tokens)
            group: list[Sequence] = []
            for j in range(request.n):
                # Each choice its own stream of randomness: a seed gives n distinct, repeatable
                # choices; without one each sampler draws its own.
                seed = None if params.seed is None else params.seed + p_i * request.n + j
                sampler = SequenceSampler(
                    params.model_copy(update={"seed": seed}),
                    model.n_vocab(),
                    grammar_sampler(model.vocab, request, family),
                    history=plan.tokens,
                )
                group.append(
                    Sequence(
                        job=job,
                        prompt=plan.tokens,
                        sampler=sampler,
                        text=StopTextStream(params.stop, ends=stops),
                        max_tokens=min(params.max_tokens or budget, budget),
                        cache_key=request.cache_key if len(plans) == 1 and j == 0 else None,
                        index=p_i * request.n + j,
                        top_logprobs=request.logprobs,
                        calls=(
                            ToolCallParser(family, request.parallel_tool_calls)
                            if calls and family is not None
                            else None
                        ),
                    )
                )
                built.append(group[-1])
            group[0].followers = group[1:]
            for follower in group[1:]:
                follower.leader = group[0]
    except BaseException:
        for seq in built:
            seq.sampler.close()
        raise
    return built


def outcome(sequences: list[Sequence], n: int) -> tuple[FinishReason, Usage]:
    """The request's end: each prompt counted once, every choice's completion counted."""
    usage = Usage(prompt_tokens=0, completion_tokens=0)
    reasons: list[FinishReason] = []
    for seq in sequences:
        result = seq.outcome
        if isinstance(result, RequestFailed):
            raise result
        assert result is not None
        reason, part = result
        reasons.append(reason)
        lead = seq.index % n == 0  # the group's leader read the prompt
        usage = Usage(
            prompt_tokens=usage.prompt_tokens + (part.prompt_tokens if lead else 0),
            completion_tokens=usage.completion_tokens + part.completion_tokens,
            cached_tokens=usage.cached_tokens + (part.cached_tokens if lead else 0),
        )
    if "cancelled" in reasons:
        return "cancelled", usage
    # The request ended with calls when any choice did (n > 1 may mix the two).
    return ("tool_calls" if "tool_calls" in reasons else reasons[0]), usage
