"""Hugging Face checkpoint directories, as the catalog sees them: what they do, what they cost.

A checkpoint directory holds ``config.json`` and ``*.safetensors`` weights. Its task is read
from the files (a sentence-transformers ``modules.json`` embeds, a sequence-classification
head reranks, anything else chats). Its memory footprint comes from the safetensors headers
(each tensor's shape and dtype, read without loading a byte of weights) at the dtype the child
will load, plus the KV cache for its context sized from the config, plus what torch and
transformers themselves hold.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Task = Literal["chat", "embed", "rerank"]
CAPABILITIES: dict[Task, tuple[str, ...]] = {
    "chat": ("chat", "completion"),
    "embed": ("embeddings",),
    "rerank": ("rerank",),
}
# torch, transformers and sentence-transformers in a child before any weights: measured at
# 490-550 MiB of RSS on CPU (the README's hf section).
RUNTIME_BYTES = 576 << 20
_HEADER_LIMIT = 100 << 20  # safetensors' own limit on the JSON header
_DTYPE_BYTES = {
    "F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2,
    "I16": 2, "U16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I8": 1, "U8": 1, "BOOL": 1,
}  # fmt: skip
_TORCH_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}


def is_checkpoint(directory: Path) -> bool:
    return (directory / "config.json").is_file() and any(directory.glob("*.safetensors"))


def read_config(directory: Path) -> dict[str, Any]:
    try:
        data = json.loads((directory / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def checkpoint_task(directory: Path) -> Task:
    if (directory / "modules.json").is_file():
        return "embed"
    architectures = read_config(directory).get("architectures") or []
    if any(str(a).endswith("ForSequenceClassification") for a in architectures):
        return "rerank"
    return "chat"


def weights_size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob("*.safetensors") if p.is_file())


@dataclass(frozen=True)
class TensorCount:
    """Elements per safetensors dtype, over every weights file of a checkpoint."""

    elements: dict[str, int]

    def bytes_at(self, dtype_bytes: int | None) -> int:
        """Bytes once loaded: floating tensors at ``dtype_bytes`` (None: as stored)."""
        total = 0
        for dtype, count in self.elements.items():
            size = _DTYPE_BYTES.get(dtype, 4)
            if dtype_bytes is not None and dtype in {"F64", "F32", "F16", "BF16"}:
                size = dtype_bytes
            total += count * size
        return total


def read_header(path: Path) -> dict[str, Any]:
    """The JSON header of one safetensors file: 8 bytes of length, then the JSON."""
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        if length > _HEADER_LIMIT:
            raise ValueError(f"{path.name}: a safetensors header of {length} bytes")
        header = json.loads(handle.read(length))
    if not isinstance(header, dict):
        raise ValueError(f"{path.name}: the safetensors header is not an object")
    return header


def count_tensors(directory: Path) -> TensorCount:
    elements: dict[str, int] = {}
    for path in sorted(directory.glob("*.safetensors")):
        for name, info in read_header(path).items():
            if name == "__metadata__" or not isinstance(info, dict):
                continue
            dtype = str(info.get("dtype", "F32"))
            elements[dtype] = elements.get(dtype, 0) + math.prod(info.get("shape") or [1])
    return TensorCount(elements)


def _load_dtype_bytes(config: dict[str, Any], dtype: str | None, on_gpu: bool) -> int | None:
    """The bytes per float the child loads with (its ``auto``: bf16 on GPU, else the
    checkpoint's dtype or float32)."""
    if dtype not in (None, "auto"):
        return _TORCH_BYTES.get(str(dtype), 4)
    if on_gpu:
        return 2
    named = config.get("dtype") or config.get("torch_dtype")
    return _TORCH_BYTES.get(str(named), 4) if named else 4


def kv_bytes_per_token(config: dict[str, Any], dtype_bytes: int) -> int:
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    assert isinstance(text, dict)
    layers = int(text.get("num_hidden_layers") or 0)
    heads = int(text.get("num_attention_heads") or 0)
    kv_heads = int(text.get("num_key_value_heads") or heads)
    head_dim = int(text.get("head_dim") or (int(text.get("hidden_size") or 0) // max(heads, 1)))
    return 2 * layers * kv_heads * head_dim * dtype_bytes


def context_length(config: dict[str, Any], n_ctx: int | None) -> int:
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    assert isinstance(text, dict)
    limit = int(text.get("max_position_embeddings") or 0)
    if n_ctx and limit:
        return min(n_ctx, limit)
    return n_ctx or limit or 2048


def footprint(
    directory: Path, *, n_ctx: int | None, dtype: str | None = None, on_gpu: bool = False
) -> int:
    """Bytes the hf child serving ``directory`` is expected to hold."""
    config = read_config(directory)
    per_float = _load_dtype_bytes(config, dtype, on_gpu)
    weights = count_tensors(directory).bytes_at(per_float)
    extra = 0
    if checkpoint_task(directory) == "chat":
        tokens = context_length(config, n_ctx)
        extra = kv_bytes_per_token(config, per_float or 4) * tokens
        vocab = int(config.get("vocab_size") or 0)
        extra += vocab * 4 * 4  # a few float32 rows of logits while sampling
    return RUNTIME_BYTES + weights + extra


def remove_tree(directory: Path) -> int:
    """Delete a checkpoint directory (or a hub repo folder); returns the bytes freed. Symlinks
    are removed, never followed: a hub snapshot's entries point into its own blobs/."""
    freed = 0
    for dirpath, _, files in os.walk(directory):
        for name in files:
            path = Path(dirpath) / name
            if not path.is_symlink():
                freed += path.stat().st_size
    shutil.rmtree(directory)
    return freed
