"""Idle conversations' KV parked in host memory, least recently used out first.

When a slot that holds a conversation is given to another one, the conversation's KV is copied
out (``llama_state_seq_get_data``) instead of being lost; when the conversation returns it is
copied back into whatever slot it gets, so its history is not read again.
"""

from __future__ import annotations

import ctypes
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import llama_cpp


@dataclass(frozen=True)
class ParkedKV:
    tokens: list[int]
    data: Any  # a ctypes byte array


@dataclass
class Parking:
    budget: int
    """Bytes of parked KV at most; 0 parks nothing."""
    bytes: int = 0
    _entries: OrderedDict[str, ParkedKV] = field(default_factory=OrderedDict, init=False)

    def park(self, ctx: Any, seq_id: int, key: str, tokens: list[int]) -> None:
        size = int(llama_cpp.llama_state_seq_get_size(ctx, seq_id))
        if not tokens or size <= 0 or size > self.budget:
            return
        self.drop(key)
        while self._entries and self.bytes + size > self.budget:
            _, oldest = self._entries.popitem(last=False)
            self.bytes -= len(oldest.data)
        buffer = (ctypes.c_uint8 * size)()
        written = int(llama_cpp.llama_state_seq_get_data(ctx, buffer, size, seq_id))
        if written != size:
            return
        self._entries[key] = ParkedKV(list(tokens), buffer)
        self.bytes += size

    def restore(self, ctx: Any, seq_id: int, key: str) -> list[int] | None:
        """Copy ``key``'s KV into the (emptied) slot ``seq_id``; the tokens it holds, or None."""
        parked = self._entries.pop(key, None)
        if parked is None:
            return None
        self.bytes -= len(parked.data)
        read = llama_cpp.llama_state_seq_set_data(ctx, parked.data, len(parked.data), seq_id)
        return parked.tokens if read else None

    def holds(self, key: str) -> bool:
        return key in self._entries

    def drop(self, key: str) -> None:
        parked = self._entries.pop(key, None)
        if parked is not None:
            self.bytes -= len(parked.data)
