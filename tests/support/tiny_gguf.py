"""A tiny random-weight llama GGUF that real llama-cpp-python can load and generate from.

The model is useless as a language model (its weights are random) but it exercises the whole
llama.cpp path: GGUF parsing, a byte-level BPE tokenizer with ChatML special tokens, a chat
template in the metadata, prompt evaluation and sampling. It is under 0.5 MB and is written in a
few milliseconds, so tests can create one per test in ``tmp_path``.

    python tests/support/tiny_gguf.py OUT.gguf
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from gguf import (
    MODEL_TENSOR,
    TENSOR_NAMES,
    GGUFWriter,
    LlamaFileType,
    PoolingType,
    TokenType,
)

ARCH = "llama"

# ChatML, as used by Qwen2 models (without the tool-calling branches).
DEFAULT_CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

N_EMBD = 64
N_LAYER = 2
N_HEAD = 4
N_HEAD_KV = 4
N_FF = 128
RMS_EPS = 1e-6
ROPE_FREQ_BASE = 10000.0

# A handful of BPE merges (in GPT-2 byte-level spelling, "Ġ" is the space byte) so that the
# tokenizer has real merges to apply; every merge result is also a token in the vocabulary.
MERGES: tuple[tuple[str, str], ...] = (
    ("Ġ", "t"),
    ("h", "e"),
    ("i", "n"),
    ("e", "r"),
    ("l", "l"),
    ("o", "u"),
    ("Ġt", "he"),
    ("he", "ll"),
    ("hell", "o"),
)

SPECIAL_TOKENS: tuple[str, ...] = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


def bytes_to_unicode() -> list[str]:
    """GPT-2's reversible byte -> printable unicode character mapping, indexed by byte value."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    mapping: dict[int, str] = {b: chr(b) for b in printable}
    n = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + n)
            n += 1
    return [mapping[b] for b in range(256)]


def build_vocab() -> tuple[list[str], list[TokenType], list[str]]:
    """Tokens, their types and the merges list: 256 byte tokens, merge results, specials."""
    tokens = bytes_to_unicode()
    for left, right in MERGES:
        merged = left + right
        if left not in tokens or right not in tokens:
            raise ValueError(f"merge {left!r} {right!r} uses a token missing from the vocab")
        if merged not in tokens:
            tokens.append(merged)
    types = [TokenType.NORMAL] * len(tokens)
    for special in SPECIAL_TOKENS:
        tokens.append(special)
        types.append(TokenType.CONTROL)
    merges = [f"{left} {right}" for left, right in MERGES]
    return tokens, types, merges


def _name(tensor: MODEL_TENSOR, bid: int | None = None) -> str:
    base = TENSOR_NAMES[tensor]
    return (base.format(bid=bid) if bid is not None else base) + ".weight"


def _random_tensors(n_vocab: int, seed: int) -> list[tuple[str, np.ndarray]]:
    """All llama tensors, as numpy arrays in GGUF order (numpy shape = reversed ggml ne)."""
    rng = np.random.default_rng(seed)
    head_dim = N_EMBD // N_HEAD
    n_embd_kv = head_dim * N_HEAD_KV

    def rand(*shape: int, std: float = 0.02) -> np.ndarray:
        return (rng.standard_normal(shape, dtype=np.float32) * np.float32(std)).astype(np.float32)

    def ones(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    out: list[tuple[str, np.ndarray]] = [
        (_name(MODEL_TENSOR.TOKEN_EMBD), rand(n_vocab, N_EMBD, std=1.0)),
    ]
    for bid in range(N_LAYER):
        out += [
            (_name(MODEL_TENSOR.ATTN_NORM, bid), ones(N_EMBD)),
            (_name(MODEL_TENSOR.ATTN_Q, bid), rand(N_EMBD, N_EMBD, std=0.2)),
            (_name(MODEL_TENSOR.ATTN_K, bid), rand(n_embd_kv, N_EMBD, std=0.2)),
            (_name(MODEL_TENSOR.ATTN_V, bid), rand(n_embd_kv, N_EMBD, std=0.2)),
            (_name(MODEL_TENSOR.ATTN_OUT, bid), rand(N_EMBD, N_EMBD, std=0.2)),
            (_name(MODEL_TENSOR.FFN_NORM, bid), ones(N_EMBD)),
            (_name(MODEL_TENSOR.FFN_GATE, bid), rand(N_FF, N_EMBD, std=0.2)),
            (_name(MODEL_TENSOR.FFN_UP, bid), rand(N_FF, N_EMBD, std=0.2)),
            (_name(MODEL_TENSOR.FFN_DOWN, bid), rand(N_EMBD, N_FF, std=0.2)),
        ]
    out += [
        (_name(MODEL_TENSOR.OUTPUT_NORM), ones(N_EMBD)),
        (_name(MODEL_TENSOR.OUTPUT), rand(n_vocab, N_EMBD, std=0.5)),
    ]
    return out


def write_tiny_gguf(
    path: Path,
    *,
    seed: int = 0,
    n_ctx: int = 512,
    chat_template: str | None = DEFAULT_CHATML,
    sampling: dict[str, float] | None = None,
    pooling: int | None = None,
) -> Path:
    """Write a tiny random llama model (f32, under 0.5 MB) to ``path`` and return ``path``.

    Deterministic: the same arguments always give a byte-identical file. ``chat_template=None``
    leaves ``tokenizer.chat_template`` out of the metadata. ``sampling`` writes llama.cpp's
    recommended-sampling keys, ``{"top_k": 1}`` as ``general.sampling.top_k``. ``pooling``
    writes ``llama.pooling_type`` (1 mean, 2 CLS, 3 last), which makes it an embedding model.
    """
    path = Path(path)
    tokens, types, merges = build_vocab()
    token_id = {tok: i for i, tok in enumerate(tokens)}

    writer = GGUFWriter(path, ARCH)
    try:
        writer.add_name(f"corral-tiny-random-seed{seed}")
        writer.add_file_type(LlamaFileType.ALL_F32)
        for key, value in (sampling or {}).items():
            if key == "top_k":
                writer.add_int32(f"general.sampling.{key}", int(value))
            else:
                writer.add_float32(f"general.sampling.{key}", float(value))
        if pooling is not None:
            writer.add_pooling_type(PoolingType(pooling))
        writer.add_vocab_size(len(tokens))
        writer.add_context_length(n_ctx)
        writer.add_embedding_length(N_EMBD)
        writer.add_block_count(N_LAYER)
        writer.add_feed_forward_length(N_FF)
        writer.add_head_count(N_HEAD)
        writer.add_head_count_kv(N_HEAD_KV)
        writer.add_rope_dimension_count(N_EMBD // N_HEAD)
        writer.add_rope_freq_base(ROPE_FREQ_BASE)
        writer.add_layer_norm_rms_eps(RMS_EPS)

        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre("default")
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        writer.add_token_merges(merges)
        writer.add_bos_token_id(token_id["<|endoftext|>"])
        writer.add_eos_token_id(token_id["<|im_end|>"])
        writer.add_pad_token_id(token_id["<|endoftext|>"])
        writer.add_add_bos_token(False)
        if chat_template is not None:
            writer.add_chat_template(chat_template)

        for name, tensor in _random_tensors(len(tokens), seed):
            writer.add_tensor(name, tensor)

        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    return path


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python tests/support/tiny_gguf.py OUT.gguf", file=sys.stderr)
        return 2
    out = write_tiny_gguf(Path(argv[0]))
    print(f"{out}: {out.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
