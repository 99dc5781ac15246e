"""The GGUF header walk behind the scheduler's footprint estimate."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import pytest
from gguf import GGUFWriter
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.supervisor.models.gguf_header import (
    BATCH_TOKENS,
    GGUFError,
    MemoryShape,
    Strings,
    memory_shape,
    read_metadata,
)
from tests.support import tiny_gguf


def _header_only(path: Path, arch: str, fill: Callable[[GGUFWriter], None]) -> Path:
    """A GGUF with metadata and no tensors, written by the `gguf` package itself."""
    writer = GGUFWriter(path, arch)
    try:
        fill(writer)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    return path


def test_reads_the_tiny_models_hyper_parameters(tmp_path: Path) -> None:
    meta = read_metadata(tiny_gguf.write_tiny_gguf(tmp_path / "tiny.gguf"))
    assert meta["general.architecture"] == "llama"
    assert meta["llama.block_count"] == tiny_gguf.N_LAYER
    assert meta["llama.attention.head_count_kv"] == tiny_gguf.N_HEAD_KV
    assert meta["llama.rope.freq_base"] == pytest.approx(tiny_gguf.ROPE_FREQ_BASE)
    head = tiny_gguf.N_EMBD // tiny_gguf.N_HEAD
    # keys and values, f16, for every KV head of every layer
    expected = tiny_gguf.N_LAYER * tiny_gguf.N_HEAD_KV * 2 * head * 2
    assert memory_shape(meta).kv_bytes_per_token == expected == 512


def test_stops_once_the_vocabulary_is_counted(tmp_path: Path) -> None:
    meta = read_metadata(tiny_gguf.write_tiny_gguf(tmp_path / "tiny.gguf"))
    n_vocab = len(tiny_gguf.build_vocab()[0])
    assert list(meta)[-1] == "tokenizer.ggml.tokens"
    assert meta["tokenizer.ggml.tokens"] == Strings(n_vocab)
    assert memory_shape(meta).vocab_size == n_vocab
    whole = read_metadata(tmp_path / "tiny.gguf", whole=True)
    assert whole["tokenizer.ggml.model"] == "gpt2"
    assert whole["tokenizer.ggml.tokens"] == Strings(n_vocab)  # counted, not decoded
    assert whole["tokenizer.ggml.merges"] == Strings(len(tiny_gguf.MERGES))
    assert isinstance(whole["tokenizer.ggml.token_type"], tuple)
    assert whole["tokenizer.chat_template"] == tiny_gguf.DEFAULT_CHATML


def test_grouped_query_attention_with_explicit_head_widths(tmp_path: Path) -> None:
    def fill(w: GGUFWriter) -> None:  # Qwen2.5-0.5B's shape, with Gemma-style key/value widths
        w.add_block_count(24)
        w.add_embedding_length(896)
        w.add_head_count(14)
        w.add_head_count_kv(2)
        w.add_key_length(128)
        w.add_value_length(96)

    meta = read_metadata(_header_only(tmp_path / "gqa.gguf", "qwen2", fill))
    assert memory_shape(meta).kv_bytes_per_token == 24 * 2 * (128 + 96) * 2


def test_kv_heads_per_layer(tmp_path: Path) -> None:
    def fill(w: GGUFWriter) -> None:
        w.add_block_count(3)
        w.add_embedding_length(64)
        w.add_head_count(4)
        w.add_head_count_kv([1, 2, 4])

    meta = read_metadata(_header_only(tmp_path / "varying.gguf", "openelm", fill))
    assert meta["openelm.attention.head_count_kv"] == (1, 2, 4)
    assert memory_shape(meta).kv_bytes_per_token == (1 + 2 + 4) * (16 + 16) * 2


def test_kv_heads_default_to_the_head_count(tmp_path: Path) -> None:
    def fill(w: GGUFWriter) -> None:
        w.add_block_count(2)
        w.add_embedding_length(64)
        w.add_head_count(4)

    meta = read_metadata(_header_only(tmp_path / "mha.gguf", "gpt2", fill))
    assert memory_shape(meta).kv_bytes_per_token == 2 * 4 * 32 * 2


def test_architectures_without_attention_numbers_give_none(tmp_path: Path) -> None:
    def fill(w: GGUFWriter) -> None:  # a recurrent model: no attention heads
        w.add_block_count(2)
        w.add_embedding_length(64)

    recurrent = read_metadata(_header_only(tmp_path / "r.gguf", "mamba", fill))
    assert memory_shape(recurrent) == MemoryShape(None, None)
    assert memory_shape({}) == MemoryShape(None, None)


@pytest.mark.parametrize(
    "content",
    [b"", b"GGML" + bytes(20), b"GGUF\x01\x00\x00\x00" + bytes(16), b"GGUF\x03\x00\x00\x00"],
)
def test_not_a_readable_gguf(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(content)
    with pytest.raises(GGUFError):
        read_metadata(path)


def test_truncated_header(tmp_path: Path) -> None:
    whole = tiny_gguf.write_tiny_gguf(tmp_path / "tiny.gguf").read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(whole[:200])
    with pytest.raises(GGUFError):
        read_metadata(cut)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_garbage_after_the_magic_is_only_ever_a_gguf_error(
    tmp_path_factory: pytest.TempPathFactory, tail: bytes
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "fuzz.gguf"
    path.write_bytes(b"GGUF\x03\x00\x00\x00" + tail)
    with contextlib.suppress(GGUFError):
        read_metadata(path, whole=True)


def test_deeply_nested_arrays_are_refused(tmp_path: Path) -> None:
    key = b"general.x"
    nested = b"".join(b"\x09\x00\x00\x00" + (1).to_bytes(8, "little") for _ in range(5000))
    body = len(key).to_bytes(8, "little") + key + b"\x09\x00\x00\x00" + (1).to_bytes(8, "little")
    path = tmp_path / "nested.gguf"
    path.write_bytes(b"GGUF\x03\x00\x00\x00" + bytes(8) + (1).to_bytes(8, "little") + body + nested)
    with pytest.raises(GGUFError):
        read_metadata(path)


def test_runtime_bytes_are_the_kv_cache_plus_one_batch_of_logits() -> None:
    shape = MemoryShape(kv_bytes_per_token=12288, vocab_size=151936)
    # the demo model at 4096 tokens: llama.cpp reports a 48 MiB KV cache and a 302 MiB compute
    # buffer, of which these logits are 297 MiB
    assert shape.runtime_bytes(4096, 32768) == 48 * 2**20 + 151936 * BATCH_TOKENS * 4
    assert MemoryShape(None, None).runtime_bytes(100, 32768) == 100 * 32768


def test_vocab_size_key_when_the_vocabulary_is_missing(tmp_path: Path) -> None:
    def fill(w: GGUFWriter) -> None:
        w.add_block_count(2)
        w.add_embedding_length(64)
        w.add_head_count(4)
        w.add_vocab_size(1000)

    meta = read_metadata(_header_only(tmp_path / "v.gguf", "llama", fill))
    assert memory_shape(meta).vocab_size == 1000
