"""One request inside the engine: its prompt, where it is in the KV, what it has produced.

Only the engine thread touches a running sequence; the worker thread that submitted it waits
on ``finished`` and then reads ``outcome``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from corral.child.llama.sampling import SequenceSampler
from corral.child.llama.tool_calls import ToolCallParser
from corral.child.runtime import Job, RequestFailed
from corral.child.text_stream import StopTextStream
from corral.protocol.messages import FinishReason, TokenLogprob, Usage
from corral.protocol.tools import ToolCallDelta


@dataclass(eq=False)
class Sequence:
    job: Job
    prompt: list[int]
    sampler: SequenceSampler
    text: StopTextStream
    max_tokens: int
    cache_key: str | None = None
    slot: int = -1
    n_past: int = 0
    """Tokens of prompt + completion whose KV is in this sequence's slot."""
    cached: int = 0
    """Prompt tokens that were already in the slot at admission."""
    completion: list[int] = field(default_factory=list)
    next_token: int | None = None
    """The last sampled token, fed to the next step; None while the prompt is being read."""
    pending_tokens: int = 0
    finished: threading.Event = field(default_factory=threading.Event)
    outcome: tuple[FinishReason, Usage] | RequestFailed | None = None
    index: int = 0
    """The choice this sequence is (``n`` and batch prompts)."""
    top_logprobs: int | None = None
    """Report logprobs with this many alternatives; None: the request did not ask."""
    followers: list[Sequence] = field(default_factory=list)
    """The other choices of this prompt: admitted with it, given a copy of its prompt's KV."""
    leader: Sequence | None = None
    """For a follower, until the leader's prompt is read and its KV copied here."""
    pending_logprobs: list[TokenLogprob] = field(default_factory=list)
    calls: ToolCallParser | None = None
    """Parses tool calls out of the text, when the request lets the model call tools."""

    @property
    def special_pieces(self) -> bool:
        """Render control tokens as text: the tool-call markup of some families is one."""
        return self.calls is not None and self.calls.family.special_markers

    @property
    def prefilling(self) -> bool:
        return self.next_token is None and self.leader is None

    @property
    def tokens(self) -> list[int]:
        """What the slot's KV holds once this sequence retires."""
        return (self.prompt + self.completion)[: self.n_past]

    def take(
        self, token: int, piece: bytes, eog: bool, logprob: TokenLogprob | None = None
    ) -> FinishReason | None:
        """Handle a sampled token; a finish reason when the sequence ends with it."""
        if eog:
            return "stop"  # the end-of-generation token is neither text nor counted
        self.completion.append(token)
        self.pending_tokens += 1
        if logprob is not None:
            self.pending_logprobs.append(logprob)
        text, calls = self._parse(self.text.push(piece))
        if text or calls:
            self._emit(text, calls=calls)
        if self.text.stopped:
            return "stop"
        if len(self.completion) >= self.max_tokens:
            return "length"
        self.next_token = token
        return None

    def _parse(self, text: str, *, last: bool = False) -> tuple[str, list[ToolCallDelta]]:
        if self.calls is None:
            return text, []
        content, calls = self.calls.push(text) if text else ("", [])
        if last:
            tail, more = self.calls.flush()
            content, calls = content + tail, calls + more
        return content, calls

    def _emit(
        self,
        text: str,
        reason: FinishReason | None = None,
        calls: list[ToolCallDelta] | None = None,
    ) -> None:
        logprobs, self.pending_logprobs = tuple(self.pending_logprobs), []
        self.job.emit(
            text,
            self.pending_tokens,
            index=self.index,
            logprobs=logprobs,
            finish_reason=reason,
            tool_calls=tuple(calls or ()),
            stop_sequence=self.text.stop_sequence if reason is not None else None,
        )
        self.pending_tokens = 0

    def finish(self, reason: FinishReason) -> None:
        if reason != "cancelled":
            text, calls = self._parse(self.text.flush(), last=True)
            if reason == "stop" and self.calls is not None and self.calls.calls:
                reason = "tool_calls"
            # The choice's last delta says how it ended (the done frame ends them all).
            self._emit(text, reason, calls)
        usage = Usage(
            prompt_tokens=len(self.prompt),
            completion_tokens=len(self.completion),
            cached_tokens=self.cached,
        )
        self._end((reason, usage))

    def fail(self, error: RequestFailed) -> None:
        self._end(error)

    def _end(self, outcome: tuple[FinishReason, Usage] | RequestFailed) -> None:
        self.sampler.close()
        self.outcome = outcome
        self.finished.set()
