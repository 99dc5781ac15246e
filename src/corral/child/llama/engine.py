"""The batched step loop: one thread owns the llama context, the batch and every sampler.

Each step admits waiting sequences into free slots (continuous batching), retires cancelled
ones, puts one token of every decoding sequence into the batch, fills what is left with a
bounded chunk of prompt tokens, decodes once and samples a token for every sequence that
produced logits. A cancel lands within one step, and a long prompt holds running streams up
for one chunk at most: a 512-token chunk froze the other streams of the demo model for 2 s on
two cores, so prompts are read ``prefill_chunk`` tokens a step while others decode.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import llama_cpp

from corral.child.llama.logprobs import LogprobReader
from corral.child.llama.parking import Parking
from corral.child.llama.prompt import piece
from corral.child.llama.sequence import Sequence
from corral.child.llama.slots import Slot, SlotTable, common_prefix
from corral.child.runtime import RequestFailed, SlotStats
from corral.protocol.messages import FinishReason

log = logging.getLogger("corral.child.llama")


@dataclass
class Engine:
    ctx: Any  # llama_context_p
    vocab: Any  # llama_vocab_p
    parallel: int
    n_batch: int
    prefill_chunk: int = 256
    parking: Parking = field(default_factory=lambda: Parking(0))
    on_change: Callable[[], None] = lambda: None
    """Called (on the engine thread) when a sequence is admitted or retired."""
    _inbox: queue.SimpleQueue[Sequence] = field(default_factory=queue.SimpleQueue, init=False)
    _waiting: list[Sequence] = field(default_factory=list, init=False)
    _running: list[Sequence] = field(default_factory=list, init=False)
    _slots: SlotTable = field(init=False)
    _batch: Any = field(init=False)
    _memory: Any = field(init=False)
    _cached_served: int = field(default=0, init=False)
    _logprobs: LogprobReader = field(init=False)

    def __post_init__(self) -> None:
        self._slots = SlotTable(self.parallel)
        self._logprobs = LogprobReader(self.vocab, llama_cpp.llama_vocab_n_tokens(self.vocab))
        # Never freed: the process is the unit, and freeing under a decode at exit would crash.
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self._memory = llama_cpp.llama_get_memory(self.ctx)

    def start(self) -> None:
        threading.Thread(target=self._run, name="engine", daemon=True).start()

    def submit(self, sequence: Sequence) -> None:
        self._inbox.put(sequence)

    def stats(self) -> SlotStats:
        # Read from other threads: ints, each read whole under the GIL; a snapshot, not a gate.
        return SlotStats(self._slots.busy, self.parallel, self._cached_served, self.parking.bytes)

    # --- the engine thread ----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            idle = not self._running and not self._waiting
            self._collect(block=idle)
            try:
                self._retire_cancelled()
                self._admit()
                if self._running:
                    self._step()
            except Exception as exc:
                # A native failure: fail the batch and keep serving. The thread must not die,
                # or every worker would wait for its sequence forever.
                log.exception("engine step failed")
                failure = RequestFailed("generation_failed", f"{type(exc).__name__}: {exc}")
                for seq in list(self._running):
                    self._retire(seq, failure)

    def _collect(self, *, block: bool) -> None:
        if block:
            self._waiting.append(self._inbox.get())
        while True:
            try:
                self._waiting.append(self._inbox.get_nowait())
            except queue.Empty:
                return

    def _retire_cancelled(self) -> None:
        for seq in [s for s in self._waiting if s.job.cancelled.is_set()]:
            self._waiting.remove(seq)
            for member in (seq, *seq.followers):
                member.finish("cancelled")
        for seq in [s for s in self._running if s.job.cancelled.is_set()]:
            self._retire(seq, "cancelled")

    def _admit(self) -> None:
        while self._waiting:
            seq = self._waiting[0]
            slot = self._slots.choose(seq.prompt, seq.cache_key)
            if slot is None or self.parallel - self._slots.busy < 1 + len(seq.followers):
                return  # not enough free slots for the whole group: the rest wait, in order
            self._waiting.pop(0)
            self._swap_conversations(slot, seq.cache_key)
            self._slots.occupy(slot, seq.cache_key)
            shared = common_prefix(slot.tokens, seq.prompt)
            # At least one prompt token is decoded, for the logits of the first sample.
            keep = min(shared, len(seq.prompt) - 1)
            if not llama_cpp.llama_memory_seq_rm(self._memory, slot.seq_id, keep, -1):
                llama_cpp.llama_memory_seq_rm(self._memory, slot.seq_id, -1, -1)
                keep = 0
            seq.slot, seq.n_past, seq.cached = slot.seq_id, keep, keep
            self._cached_served += keep
            self._running.append(seq)
            self._admit_followers(seq)
            self.on_change()

    def _admit_followers(self, leader: Sequence) -> None:
        """The other choices of ``leader``'s prompt wait in their own slots for its KV."""
        for follower in leader.followers:
            slot = self._slots.choose([], None)  # the least recently used free slot
            assert slot is not None  # _admit saw room for the whole group
            self._swap_conversations(slot, None)
            self._slots.occupy(slot, None)
            llama_cpp.llama_memory_seq_rm(self._memory, slot.seq_id, -1, -1)
            follower.slot, follower.n_past = slot.seq_id, 0
            self._running.append(follower)

    def _share_prompt(self, leader: Sequence, index: int) -> None:
        """The leader's prompt is read: each follower gets a copy of its KV (in a unified KV
        only the cells' sequence sets change) and samples its first token from the same row."""
        for follower in leader.followers:
            if follower.leader is None or follower not in self._running:
                continue
            llama_cpp.llama_memory_seq_cp(self._memory, leader.slot, follower.slot, -1, -1)
            follower.leader, follower.n_past = None, len(follower.prompt)
            self._sample(follower, index)

    def _swap_conversations(self, slot: Slot, key: str | None) -> None:
        """Park the conversation leaving ``slot``; bring ``key``'s back from the parking."""
        if slot.key == key:
            return
        if slot.key is not None:
            self.parking.park(self.ctx, slot.seq_id, slot.key, slot.tokens)
        if key is not None and self.parking.holds(key):
            llama_cpp.llama_memory_seq_rm(self._memory, slot.seq_id, -1, -1)
            slot.tokens = self.parking.restore(self.ctx, slot.seq_id, key) or []
            if not slot.tokens:  # a failed restore may leave part of it behind
                llama_cpp.llama_memory_seq_rm(self._memory, slot.seq_id, -1, -1)

    def _step(self) -> None:
        batch = self._batch
        batch.n_tokens = 0
        rows: list[tuple[int, Sequence]] = []  # batch index with logits -> its sequence
        for seq in self._running:
            if seq.next_token is not None:
                rows.append((batch.n_tokens, seq))
                self._add(seq.next_token, seq.n_past, seq.slot, logits=True)
                seq.n_past += 1
        budget = self.n_batch - batch.n_tokens
        if rows:
            budget = min(budget, self.prefill_chunk)
        for seq in self._running:
            if budget <= 0:
                break
            if not seq.prefilling:
                continue
            take = min(budget, len(seq.prompt) - seq.n_past)
            for _ in range(take):
                last = seq.n_past + 1 == len(seq.prompt)
                if last:
                    rows.append((batch.n_tokens, seq))
                self._add(seq.prompt[seq.n_past], seq.n_past, seq.slot, logits=last)
                seq.n_past += 1
            budget -= take
        rc = llama_cpp.llama_decode(self.ctx, batch)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")
        for index, seq in rows:
            if seq.next_token is None and seq.followers:
                self._share_prompt(seq, index)  # before the leader may retire with its token
            self._sample(seq, index)

    def _sample(self, seq: Sequence, index: int) -> None:
        token = seq.sampler.sample(self.ctx, index)
        eog = bool(llama_cpp.llama_vocab_is_eog(self.vocab, token))
        logprob = None
        if seq.top_logprobs is not None and not eog:
            logprob = self._logprobs.read(self.ctx, index, token, seq.top_logprobs)
        text = b"" if eog else piece(self.vocab, token, special=seq.special_pieces)
        reason = seq.take(token, text, eog, logprob)
        if reason is not None:
            self._retire(seq, reason)

    def _add(self, token: int, pos: int, seq_id: int, *, logits: bool) -> None:
        batch = self._batch
        n = batch.n_tokens
        batch.token[n] = token
        batch.pos[n] = pos
        batch.n_seq_id[n] = 1
        batch.seq_id[n][0] = seq_id
        batch.logits[n] = logits
        batch.n_tokens = n + 1

    def _retire(self, seq: Sequence, outcome: FinishReason | RequestFailed) -> None:
        self._running.remove(seq)
        slot = self._slots.slots[seq.slot]
        if isinstance(outcome, RequestFailed):
            llama_cpp.llama_memory_seq_rm(self._memory, seq.slot, -1, -1)
            self._slots.release(slot, [])
            seq.fail(outcome)
        else:
            self._slots.release(slot, seq.tokens)
            seq.finish(outcome)
        self.on_change()
