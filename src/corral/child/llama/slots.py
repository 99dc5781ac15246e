"""Which KV slot (llama sequence id) a request gets, and which of its prompt is cached there.

A slot keeps the tokens its last request left in the KV. A new request goes back to the slot of
its conversation (the cache key), else to the free slot sharing the longest prefix with it, as
llama-server does, else to the slot used least recently, so that another conversation's
prefix survives as long as possible.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field


@dataclass
class Slot:
    seq_id: int
    tokens: list[int] = field(default_factory=list)
    key: str | None = None
    busy: bool = False
    last_used: int = -1


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


@dataclass
class SlotTable:
    size: int
    slots: list[Slot] = field(init=False)
    _clock: itertools.count[int] = field(default_factory=itertools.count, init=False)

    def __post_init__(self) -> None:
        self.slots = [Slot(i) for i in range(self.size)]

    @property
    def busy(self) -> int:
        return sum(s.busy for s in self.slots)

    def claim(self, prompt: list[int], key: str | None) -> tuple[Slot, int] | None:
        """A free slot for ``prompt`` and how many of its tokens it holds; None if all busy."""
        slot = self.choose(prompt, key)
        if slot is None:
            return None
        self.occupy(slot, key)
        return slot, common_prefix(slot.tokens, prompt)

    def choose(self, prompt: list[int], key: str | None) -> Slot | None:
        free = [s for s in self.slots if not s.busy]
        if not free:
            return None
        own = [s for s in free if key is not None and s.key == key]
        if own:
            return own[0]
        # Longest shared prefix first; among equals (zero, say) the least recently used.
        return max(free, key=lambda s: (common_prefix(s.tokens, prompt), -s.last_used))

    def occupy(self, slot: Slot, key: str | None) -> None:
        slot.busy = True
        slot.key = key
        slot.last_used = next(self._clock)

    def release(self, slot: Slot, tokens: list[int]) -> None:
        slot.busy = False
        slot.tokens = tokens
        slot.last_used = next(self._clock)
