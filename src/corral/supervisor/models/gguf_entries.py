"""The catalog's GGUF side: whether a llama model embeds or chats.

A GGUF embeds when a preset says ``embedding = true``, or when its header says so: a pooling
type (``<arch>.pooling_type``, which llama.cpp's converter writes for embedding models such as
Qwen3-Embedding or the nomic and BGE families) other than rank (a reranker), or an encoder
architecture that only embeds (BERT and its relatives). A preset's ``embedding = false`` makes
such a model chat.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from corral.supervisor.models.checkpoint import CAPABILITIES
from corral.supervisor.models.gguf_header import GGUFError, Value, read_metadata
from corral.supervisor.settings import ModelPreset

# Architectures llama.cpp serves as encoders: they have no language-model head to chat with.
EMBEDDING_ARCHITECTURES = frozenset(
    {"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "jina-bert-v3", "neo-bert"}
)
_POOLING_RANK = 4


def gguf_embeds(metadata: Mapping[str, Value]) -> bool:
    arch = metadata.get("general.architecture")
    if not isinstance(arch, str):
        return False
    pooling = metadata.get(f"{arch}.pooling_type")
    if isinstance(pooling, int) and not isinstance(pooling, bool):
        return pooling != _POOLING_RANK and (pooling != 0 or arch in EMBEDDING_ARCHITECTURES)
    return arch in EMBEDDING_ARCHITECTURES


def llama_serves(preset: ModelPreset, path: Path | None) -> tuple[str, ...]:
    """What a llama model serves: embeddings, or chat and completions."""
    embeds = preset.embedding
    if embeds is None and path is not None and path.is_file():
        try:
            embeds = gguf_embeds(read_metadata(path))
        except (OSError, GGUFError):
            embeds = False  # an unreadable header fails at load, with the loader's message
    return CAPABILITIES["embed" if embeds else "chat"]
