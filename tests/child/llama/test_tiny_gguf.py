"""The tiny random GGUF used by the llama tests: its metadata, and that llama-cpp-python runs it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from gguf import GGUFReader

from tests.support.tiny_gguf import DEFAULT_CHATML, bytes_to_unicode, write_tiny_gguf

if TYPE_CHECKING:
    from llama_cpp import Llama

MAX_FILE_BYTES = 5 * 1024 * 1024


def _field(reader: GGUFReader, key: str) -> Any:
    """A metadata value: str, int/float, or a list of str (works across gguf versions)."""
    field = reader.fields[key]
    if len(field.types) > 1:  # an array; here only arrays of strings are read
        return [bytes(field.parts[i]).decode("utf-8") for i in field.data]
    part = field.parts[field.data[0]]
    if part.dtype.kind == "u" and part.dtype.itemsize == 1:  # string bytes
        return bytes(part).decode("utf-8")
    return part[0].item()


def test_writes_small_model_with_expected_metadata(tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "tiny.gguf", n_ctx=384)

    assert path == tmp_path / "tiny.gguf"
    assert 0 < path.stat().st_size < MAX_FILE_BYTES
    reader = GGUFReader(path)
    assert _field(reader, "general.architecture") == "llama"
    assert _field(reader, "llama.context_length") == 384
    assert _field(reader, "llama.embedding_length") == 64
    assert _field(reader, "llama.block_count") == 2
    assert _field(reader, "tokenizer.ggml.model") == "gpt2"
    assert _field(reader, "tokenizer.chat_template") == DEFAULT_CHATML
    tokens = _field(reader, "tokenizer.ggml.tokens")
    assert tokens[:256] == bytes_to_unicode()
    assert tokens[_field(reader, "tokenizer.ggml.eos_token_id")] == "<|im_end|>"
    assert "<|im_start|>" in tokens
    names = {t.name for t in reader.tensors}
    assert {"token_embd.weight", "output.weight", "blk.1.ffn_down.weight"} <= names


def test_same_seed_same_bytes_other_seed_other_weights(tmp_path: Path) -> None:
    a = write_tiny_gguf(tmp_path / "a.gguf", seed=7).read_bytes()
    b = write_tiny_gguf(tmp_path / "b.gguf", seed=7).read_bytes()
    c = write_tiny_gguf(tmp_path / "c.gguf", seed=8).read_bytes()
    assert a == b
    assert a != c


def test_chat_template_can_be_left_out(tmp_path: Path) -> None:
    reader = GGUFReader(write_tiny_gguf(tmp_path / "t.gguf", chat_template=None))
    assert "tokenizer.chat_template" not in reader.fields


@pytest.fixture
def llm(tmp_path: Path) -> Iterator[Llama]:
    llama_cpp = pytest.importorskip("llama_cpp")
    model = llama_cpp.Llama(
        model_path=str(write_tiny_gguf(tmp_path / "tiny.gguf")),
        n_ctx=256,
        n_threads=1,
        verbose=False,
    )
    yield model
    model.close()


@pytest.mark.llama
def test_completion_has_text_and_usage(llm: Llama) -> None:
    result: Any = llm.create_completion("hello", max_tokens=8, temperature=0, seed=1)

    choice = result["choices"][0]
    assert isinstance(choice["text"], str)
    assert choice["finish_reason"] in {"length", "stop"}
    usage = result["usage"]
    assert usage["prompt_tokens"] == 1  # "hello" is a single merged token, and no BOS is added
    assert usage["completion_tokens"] >= 1
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


@pytest.mark.llama
def test_greedy_completion_is_repeatable(llm: Llama) -> None:
    def run() -> str:
        result: Any = llm.create_completion("hello", max_tokens=16, temperature=0, seed=1)
        return str(result["choices"][0]["text"])

    assert run() == run()


@pytest.mark.llama
def test_chat_completion_uses_template_from_metadata(llm: Llama) -> None:
    assert llm.chat_format == "chat_template.default"
    messages: Any = [{"role": "user", "content": "hi"}]

    result: Any = llm.create_chat_completion(messages, max_tokens=8, temperature=0, seed=1)

    message = result["choices"][0]["message"]
    assert message["role"] == "assistant"
    assert isinstance(message["content"], str)
    rendered = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    expected = llm.tokenize(rendered.encode(), add_bos=False, special=True)
    assert result["usage"]["prompt_tokens"] == len(expected)
    assert llm.tokenize(b"<|im_start|>", add_bos=False, special=True) == [expected[0]]


@pytest.mark.llama
@pytest.mark.parametrize("stream", [False, True])
def test_invalid_utf8_output_is_dropped_not_raised(llm: Llama, stream: bool) -> None:
    # Token 0x80 is the lone continuation byte: never valid UTF-8 on its own.
    kwargs: Any = {"max_tokens": 8, "temperature": 0, "seed": 1, "logit_bias": {0x80: 100.0}}
    if stream:
        chunks: Any = list(llm.create_completion("hello", stream=True, **kwargs))
        text = "".join(chunk["choices"][0]["text"] for chunk in chunks)
    else:
        result: Any = llm.create_completion("hello", **kwargs)
        text = result["choices"][0]["text"]
        assert result["usage"]["completion_tokens"] == 8
    assert text == ""  # llama-cpp-python decodes with errors="ignore"
    assert llm.detokenize([0x80]) == b"\x80"


@pytest.mark.llama
def test_random_sampling_survives_arbitrary_bytes(llm: Llama) -> None:
    for seed in range(4):
        result: Any = llm.create_completion("hello", max_tokens=32, temperature=1.5, seed=seed)
        assert isinstance(result["choices"][0]["text"], str)


@pytest.mark.llama
def test_utf8_lead_bytes_defeat_max_tokens_unless_capped(llm: Llama) -> None:
    """Pins a llama-cpp-python 0.3.36 quirk a backend must guard against.

    While the output ends in an incomplete UTF-8 sequence, `_create_completion` skips its
    max_tokens check; a model that keeps producing lead bytes (0xC3 here) runs on until the KV
    cache is full and llama_decode fails. A stopping criterion enforces the cap (finish_reason
    is then "stop", not "length").
    """
    import llama_cpp

    kwargs: Any = {"max_tokens": 8, "temperature": 0, "seed": 1, "logit_bias": {0xC3: 100.0}}
    with pytest.raises(RuntimeError, match="llama_decode returned 1"):
        llm.create_completion("hello", **kwargs)

    n_prompt = len(llm.tokenize(b"hello", add_bos=False, special=True))
    cap = llama_cpp.StoppingCriteriaList([lambda ids, _logits: len(ids) >= n_prompt + 8])
    result: Any = llm.create_completion("hello", stopping_criteria=cap, **kwargs)
    assert result["usage"]["completion_tokens"] == 8
    assert result["choices"][0]["finish_reason"] == "stop"
