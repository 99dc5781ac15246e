"""What a GGUF model costs in memory beyond its weights, read from the file's header.

The scheduler's memory budget needs each model's footprint before it loads. llama.cpp maps the
weights in whole and allocates two more buffers that matter: the KV cache (per context token:
layers x KV heads x key and value widths) and the compute buffer, which is dominated by the
logits of one batch (vocabulary x batch size x 4 bytes: 297 MiB of the 302 MiB llama.cpp
reports for the 0.5B demo model with its 151,936-token vocabulary). All of it follows from a
few numbers in the header.

Why not the `gguf` package's reader: it parses every tensor and every vocabulary entry into
numpy objects up front (9.8 s for the demo model here), and the catalog asks on the request
path. This walk stops once it has counted the vocabulary, a few kilobytes in.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAGIC = b"GGUF"
VOCABULARY = "tokenizer.ggml.tokens"
# llama.cpp's default cache type is f16: two bytes per element, for keys and for values.
KV_ELEMENT_BYTES = 2
LOGIT_BYTES = 4
# llama-cpp-python's default n_ubatch, which the llama child keeps: the compute buffer holds
# the logits of this many tokens.
BATCH_TOKENS = 512

_STRING, _ARRAY = 8, 9
# struct codes of the scalar value types, by GGUF type number
_SCALARS: dict[int, str] = {
    0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d",
}  # fmt: skip

# Numeric arrays longer than this (token types, scores) are skipped rather than decoded: the
# only arrays wanted are per-layer counts, and a corrupt count must not allocate gigabytes.
MAX_DECODED_ARRAY = 4096
MAX_NESTING = 8


@dataclass(frozen=True, slots=True)
class Strings:
    """An array of strings, counted but not decoded (the vocabulary, merges, tags)."""

    count: int


Value = int | float | bool | str | tuple[int | float | bool, ...] | Strings | None


class GGUFError(ValueError):
    """Not a GGUF file this reader understands (wrong magic, old version, truncated)."""


def read_metadata(path: Path, *, whole: bool = False) -> dict[str, Value]:
    """The header's values up to and including the vocabulary, or all of them with `whole`.

    Writers (llama.cpp's convert script and quantizer, gguf-py) put the model's
    hyper-parameters before the tokenizer, so stopping at the vocabulary's count reads a few
    kilobytes instead of walking 150,000 token strings and as many merges.
    """
    with path.open("rb") as file:
        try:
            data = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError as e:  # an empty file cannot be mapped
            raise GGUFError("not a GGUF file") from e
    with data:
        return _Walker(data).metadata(whole)


@dataclass(frozen=True, slots=True)
class MemoryShape:
    """The header's numbers that size llama.cpp's buffers; None where the header is silent."""

    kv_bytes_per_token: int | None
    vocab_size: int | None

    def runtime_bytes(self, n_ctx: int, fallback_kv_bytes_per_token: int) -> int:
        """The KV cache for `n_ctx` tokens plus the logits of one batch."""
        per_token = self.kv_bytes_per_token or fallback_kv_bytes_per_token
        return n_ctx * per_token + (self.vocab_size or 0) * BATCH_TOKENS * LOGIT_BYTES


def memory_shape(metadata: Mapping[str, Value]) -> MemoryShape:
    arch = metadata.get("general.architecture")
    vocab = metadata.get(VOCABULARY)
    vocab_size = vocab.count if isinstance(vocab, Strings) else None
    if not isinstance(arch, str):
        return MemoryShape(None, vocab_size)
    if vocab_size is None:
        vocab_size = _whole_number(metadata.get(f"{arch}.vocab_size"))
    return MemoryShape(_kv_bytes_per_token(metadata, arch), vocab_size)


def _kv_bytes_per_token(metadata: Mapping[str, Value], arch: str) -> int | None:
    """Bytes of KV cache one context token takes, or None when the header does not say (a
    recurrent or unusual architecture: the caller falls back to a rough figure)."""
    layers = _whole_number(metadata.get(f"{arch}.block_count"))
    heads = _whole_number(metadata.get(f"{arch}.attention.head_count"))
    width = _whole_number(metadata.get(f"{arch}.embedding_length"))
    if not layers or not heads or not width:
        return None
    key_width = _whole_number(metadata.get(f"{arch}.attention.key_length")) or width // heads
    value_width = _whole_number(metadata.get(f"{arch}.attention.value_length")) or key_width
    kv_heads = metadata.get(f"{arch}.attention.head_count_kv", heads)
    if isinstance(kv_heads, tuple):  # one count per layer (models that vary it)
        total_kv_heads = sum(int(h) for h in kv_heads)
    elif (count := _whole_number(kv_heads)) is not None:
        total_kv_heads = count * layers
    else:
        return None
    return total_kv_heads * (key_width + value_width) * KV_ELEMENT_BYTES


def _whole_number(value: Value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class _Walker:
    """A cursor over the header: every read is bounds-checked, so a truncated or corrupt file
    is a `GGUFError`, never an overrun."""

    def __init__(self, data: mmap.mmap) -> None:
        self._data = data
        self._at = 0

    def metadata(self, whole: bool) -> dict[str, Value]:
        if self._data[:4] != MAGIC:
            raise GGUFError("not a GGUF file")
        self._at = 4
        (version,) = self._read("I")
        if version < 2:  # version 1 used 32-bit counts; nothing current writes it
            raise GGUFError(f"GGUF version {version} is not supported")
        _tensors, keys = self._read("Q", 2)
        found: dict[str, Value] = {}
        for _ in range(keys):
            key = self._string()
            (kind,) = self._read("I")
            last = key == VOCABULARY and not whole
            found[key] = self._value(kind, last=last)
            if last:
                break
        return found

    def _read(self, code: str, count: int = 1) -> tuple[Any, ...]:
        try:
            values = struct.unpack_from(f"<{count}{code}", self._data, self._at)
        except struct.error as e:
            raise GGUFError("truncated GGUF header") from e
        self._at += struct.calcsize(f"<{count}{code}")
        return values

    def _string(self) -> str:
        (length,) = self._read("Q")
        raw: bytes = self._read("s", length)[0]
        return raw.decode("utf-8", "replace")

    def _value(self, kind: int, *, last: bool = False) -> Value:
        """The value at the cursor. For the `last` value read, arrays of strings are only
        counted: the cursor need not pass them."""
        if kind == _STRING:
            return self._string()
        if kind == _ARRAY:
            item, count = self._read("I")[0], self._read("Q")[0]
            if item in _SCALARS and count <= MAX_DECODED_ARRAY:
                return self._read(_SCALARS[item], count)
            if item == _STRING and last:
                return Strings(count)
            self._skip(item, count)  # strings, arrays, long arrays: not needed, not decoded
            return Strings(count) if item == _STRING else None
        if kind in _SCALARS:
            value: Value = self._read(_SCALARS[kind])[0]
            return value
        raise GGUFError(f"unknown GGUF value type {kind}")

    def _skip(self, kind: int, count: int, depth: int = 0) -> None:
        if depth > MAX_NESTING:
            raise GGUFError("GGUF arrays nested too deep")
        if kind in _SCALARS:
            self._advance(struct.calcsize(_SCALARS[kind]) * count)
        elif kind == _STRING:
            for _ in range(count):
                self._advance(self._read("Q")[0])
        elif kind == _ARRAY:
            for _ in range(count):
                item, length = self._read("I")[0], self._read("Q")[0]
                self._skip(item, length, depth + 1)
        else:
            raise GGUFError(f"unknown GGUF value type {kind}")

    def _advance(self, size: int) -> None:
        if self._at + size > len(self._data):
            raise GGUFError("truncated GGUF header")
        self._at += size
