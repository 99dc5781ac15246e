"""A generation's choices (``n``, batch prompts, ``best_of``) and their logprobs, in OpenAI's
shapes: chat's ``logprobs.content`` and the completions API's parallel token lists."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from corral.protocol.messages import Delta, TokenLogprob
from corral.protocol.tools import ToolCallDelta
from corral.supervisor.daemon.version import corral_version

if TYPE_CHECKING:
    from corral.supervisor.models.catalog import ModelEntry


@dataclass(frozen=True)
class ChoicePlan:
    """What the client asked for: ``n`` of each of ``prompts`` prompts, the best ``n`` of
    ``best_of`` when that is larger, and whether it wants the logprobs it gets."""

    n: int = 1
    prompts: int = 1
    best_of: int | None = None
    logprobs: bool = False

    @property
    def generated(self) -> int:
        """Choices per prompt the model generates."""
        return max(self.n, self.best_of or 1)

    @property
    def count(self) -> int:
        """Choices in the response."""
        return self.n * self.prompts


@dataclass
class Choice:
    index: int
    parts: list[str] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: str | None = None
    stop_sequence: str | None = None
    """The request's stop string that ended the choice (vLLM's ``stop_reason``)."""
    calls: list[dict[str, Any]] = field(default_factory=list)
    """The tool calls made, in OpenAI's shape, assembled from their deltas."""

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def add_calls(self, deltas: tuple[ToolCallDelta, ...]) -> None:
        for d in deltas:
            if d.index == len(self.calls):
                self.calls.append(
                    {"id": d.id, "type": "function", "function": {"name": d.name, "arguments": ""}}
                )
            self.calls[d.index]["function"]["arguments"] += d.arguments

    def mean_logprob(self) -> float:
        if not self.logprobs:
            return 0.0
        return sum(t.logprob for t in self.logprobs) / len(self.logprobs)


@dataclass
class Choices:
    """Deltas gathered by choice index, for a whole (non-streamed) response."""

    by_index: dict[int, Choice] = field(default_factory=dict)

    def add(self, delta: Delta) -> None:
        choice = self.by_index.setdefault(delta.index, Choice(delta.index))
        choice.parts.append(delta.text)
        choice.logprobs.extend(delta.logprobs)
        choice.add_calls(delta.tool_calls)
        if delta.finish_reason is not None:
            choice.finish_reason = delta.finish_reason
            choice.stop_sequence = delta.stop_sequence

    def answer(self, plan: ChoicePlan) -> list[Choice]:
        """The choices to return, in index order: with ``best_of``, the ``n`` of each prompt's
        ``best_of`` with the highest mean token logprob (as OpenAI ranks them), re-indexed."""
        generated = plan.generated
        ordered = [self.by_index.get(i) or Choice(i) for i in range(plan.prompts * generated)]
        if generated == plan.n:
            return ordered
        picked: list[Choice] = []
        for p in range(plan.prompts):
            group = ordered[p * generated : (p + 1) * generated]
            best = sorted(group, key=lambda c: -c.mean_logprob())[: plan.n]
            for j, choice in enumerate(sorted(best, key=lambda c: c.index)):
                choice.index = p * plan.n + j
                picked.append(choice)
        return picked


def tool_call_chunks(deltas: tuple[ToolCallDelta, ...]) -> list[dict[str, Any]]:
    """A chunk's ``delta.tool_calls``: id, type and name open a call, arguments follow."""
    out: list[dict[str, Any]] = []
    for d in deltas:
        function: dict[str, Any] = {"arguments": d.arguments}
        part: dict[str, Any] = {"index": d.index}
        if d.id is not None:
            part |= {"id": d.id, "type": "function"}
            function = {"name": d.name, **function}
        out.append({**part, "function": function})
    return out


def chat_logprobs(tokens: list[TokenLogprob] | tuple[TokenLogprob, ...]) -> dict[str, Any]:
    """Chat's ``choices[].logprobs`` object."""
    return {
        "content": [
            {
                "token": t.token,
                "logprob": t.logprob,
                "bytes": list(t.bytes),
                "top_logprobs": [
                    {"token": a.token, "logprob": a.logprob, "bytes": list(a.bytes)} for a in t.top
                ],
            }
            for t in tokens
        ],
        "refusal": None,
    }


def completion_logprobs(
    tokens: list[TokenLogprob] | tuple[TokenLogprob, ...], offset: int
) -> dict[str, Any]:
    """The completions API's ``logprobs``: parallel lists, ``text_offset`` counted in
    characters from ``offset`` (where this text starts in the choice)."""
    offsets: list[int] = []
    for t in tokens:
        offsets.append(offset)
        offset += len(t.token)
    return {
        "tokens": [t.token for t in tokens],
        "token_logprobs": [t.logprob for t in tokens],
        # OpenAI's dicts hold the sampled token too (up to logprobs + 1 entries).
        "top_logprobs": [
            {**{a.token: a.logprob for a in t.top}, t.token: t.logprob} for t in tokens
        ],
        "text_offset": offsets,
    }


def fingerprint(entry: ModelEntry) -> str:
    """``system_fingerprint``: this Corral and this model file, which together decide what a
    seed gives."""
    return f"fp_corral-{corral_version()}-{entry.file_digest}"
