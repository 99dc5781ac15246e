"""Which GGUF models embed: the header (pooling type, encoder architecture) or a preset."""

from __future__ import annotations

from pathlib import Path

import pytest
from gguf import GGUFWriter

from corral.supervisor.models.catalog import Catalog
from corral.supervisor.models.gguf_entries import gguf_embeds, llama_serves
from corral.supervisor.models.gguf_header import read_metadata
from corral.supervisor.settings import ModelPreset, Settings
from tests.support.tiny_gguf import write_tiny_gguf


def header_only(path: Path, arch: str, pooling: int | None = None) -> Path:
    """A GGUF with a header and no tensors: enough for the catalog, which loads nothing."""
    writer = GGUFWriter(path, arch)
    writer.add_block_count(2)
    if pooling is not None:
        writer.add_uint32(f"{arch}.pooling_type", pooling)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()
    return path


@pytest.mark.parametrize(
    ("arch", "pooling", "embeds"),
    [
        ("bert", None, True),
        ("nomic-bert", 1, True),
        ("bert", 0, True),  # an encoder: Corral pools it by the mean
        ("qwen3", 3, True),  # Qwen3-Embedding: last-token pooling on a decoder
        ("llama", 1, True),
        ("llama", None, False),
        ("llama", 0, False),
        ("bert", 4, False),  # rank pooling: a reranker, not an embedder
    ],
)
def test_the_header_says_whether_a_gguf_embeds(
    tmp_path: Path, arch: str, pooling: int | None, embeds: bool
) -> None:
    path = header_only(tmp_path / "m.gguf", arch, pooling)
    assert gguf_embeds(read_metadata(path)) is embeds
    expected = ("embeddings",) if embeds else ("chat", "completion")
    assert llama_serves(ModelPreset(), path) == expected


def test_a_preset_overrides_the_header(tmp_path: Path) -> None:
    chat = write_tiny_gguf(tmp_path / "chat.gguf")
    embedder = write_tiny_gguf(tmp_path / "embed.gguf", pooling=1)
    assert llama_serves(ModelPreset(embedding=True), chat) == ("embeddings",)
    assert llama_serves(ModelPreset(embedding=False), embedder) == ("chat", "completion")
    assert llama_serves(ModelPreset(), tmp_path / "missing.gguf") == ("chat", "completion")
    (tmp_path / "garbage.gguf").write_bytes(b"not a gguf")
    assert llama_serves(ModelPreset(), tmp_path / "garbage.gguf") == ("chat", "completion")


async def test_the_catalog_starts_embedders_in_embedding_mode(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    write_tiny_gguf(models / "chat.gguf")
    write_tiny_gguf(models / "embed.gguf", pooling=2)
    settings = Settings(
        data_dir=tmp_path,
        models_dir=models,
        demo_model=False,
        parallel=4,
        models={"as-embedder": ModelPreset(path=Path("chat.gguf"), embedding=True)},
    )
    catalog = Catalog(settings)
    for model_id, embeds in (("chat", False), ("embed", True), ("as-embedder", True)):
        entry = catalog.resolve(model_id)
        assert ("embeddings" in entry.serves) is embeds
        argv = (await catalog.command(entry)).argv
        assert ("--embedding" in argv) is embeds
    # An embedder holds one context, not one per slot.
    chat, embed = catalog.resolve("chat"), catalog.resolve("embed")
    assert catalog.footprint(chat) > catalog.footprint(embed)


def test_embedding_is_refused_for_other_backends() -> None:
    with pytest.raises(ValueError, match="embedding is for the llama backend"):
        ModelPreset(backend="hf", embedding=True)
    assert ModelPreset(backend="llama", embedding=False).embedding is False
