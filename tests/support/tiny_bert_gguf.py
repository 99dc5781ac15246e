"""A tiny random-weight BERT GGUF (an encoder with CLS pooling) that llama.cpp can load.

Like ``tiny_gguf.py`` for chat, this exercises the whole llama.cpp path of an embedding model
that is not a decoder: the WordPiece tokenizer that adds ``[CLS]`` and ``[SEP]``, the encoder
graph (``llama_encode``) and the header's pooling type. Its vectors mean nothing.
"""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np
from gguf import MODEL_TENSOR, TENSOR_NAMES, GGUFWriter, LlamaFileType, PoolingType, TokenType

N_EMBD = 32
N_LAYER = 2
N_HEAD = 4
N_FF = 64
N_CTX = 128
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def bert_vocab() -> list[str]:
    """Specials, then every lower-case letter as a word start (llama.cpp spells WordPiece's
    word starts with "▁") and as a continuation: any lower-case word tokenizes."""
    letters = string.ascii_lowercase + string.digits
    return [*SPECIALS, *("\u2581" + c for c in letters), *letters, "\u2581"]


def _name(tensor: MODEL_TENSOR, bid: int | None = None, suffix: str = "weight") -> str:
    base = TENSOR_NAMES[tensor]
    return (base.format(bid=bid) if bid is not None else base) + "." + suffix


def write_tiny_bert_gguf(path: Path, *, seed: int = 0, pooling: int = PoolingType.CLS) -> Path:
    tokens = bert_vocab()
    rng = np.random.default_rng(seed)

    def rand(*shape: int, std: float = 0.2) -> np.ndarray:
        return (rng.standard_normal(shape, dtype=np.float32) * np.float32(std)).astype(np.float32)

    def norm() -> list[tuple[str, np.ndarray]]:
        return [("weight", np.ones(N_EMBD, np.float32)), ("bias", np.zeros(N_EMBD, np.float32))]

    tensors: list[tuple[str, np.ndarray]] = [
        (_name(MODEL_TENSOR.TOKEN_EMBD), rand(len(tokens), N_EMBD, std=1.0)),
        (_name(MODEL_TENSOR.TOKEN_TYPES), rand(2, N_EMBD)),
        (_name(MODEL_TENSOR.POS_EMBD), rand(N_CTX, N_EMBD)),
    ]
    tensors += [(_name(MODEL_TENSOR.TOKEN_EMBD_NORM, None, s), t) for s, t in norm()]
    for bid in range(N_LAYER):
        for kind, rows, cols in (
            (MODEL_TENSOR.ATTN_Q, N_EMBD, N_EMBD),
            (MODEL_TENSOR.ATTN_K, N_EMBD, N_EMBD),
            (MODEL_TENSOR.ATTN_V, N_EMBD, N_EMBD),
            (MODEL_TENSOR.ATTN_OUT, N_EMBD, N_EMBD),
            (MODEL_TENSOR.FFN_UP, N_FF, N_EMBD),
            (MODEL_TENSOR.FFN_DOWN, N_EMBD, N_FF),
        ):
            tensors.append((_name(kind, bid), rand(rows, cols)))
            tensors.append((_name(kind, bid, "bias"), rand(rows, std=0.02)))
        for kind in (MODEL_TENSOR.ATTN_OUT_NORM, MODEL_TENSOR.LAYER_OUT_NORM):
            tensors += [(_name(kind, bid, s), t) for s, t in norm()]

    writer = GGUFWriter(path, "bert")
    try:
        writer.add_name(f"corral-tiny-bert-seed{seed}")
        writer.add_file_type(LlamaFileType.ALL_F32)
        writer.add_context_length(N_CTX)
        writer.add_embedding_length(N_EMBD)
        writer.add_block_count(N_LAYER)
        writer.add_feed_forward_length(N_FF)
        writer.add_head_count(N_HEAD)
        writer.add_layer_norm_eps(1e-12)
        writer.add_causal_attention(False)
        writer.add_pooling_type(PoolingType(pooling))
        writer.add_tokenizer_model("bert")
        writer.add_token_list(tokens)
        writer.add_token_types(
            [TokenType.CONTROL] * len(SPECIALS) + [TokenType.NORMAL] * (len(tokens) - len(SPECIALS))
        )
        writer.add_token_type_count(2)
        writer.add_unk_token_id(tokens.index("[UNK]"))
        writer.add_pad_token_id(tokens.index("[PAD]"))
        writer.add_bos_token_id(tokens.index("[CLS]"))  # as llama.cpp's converter maps them
        writer.add_sep_token_id(tokens.index("[SEP]"))
        writer.add_mask_token_id(tokens.index("[MASK]"))
        writer.add_add_bos_token(True)
        writer.add_add_sep_token(True)
        for name, tensor in tensors:
            writer.add_tensor(name, tensor)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    return path
