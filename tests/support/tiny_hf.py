"""Tiny random Hugging Face checkpoints, built in seconds for the hf backend's tests.

A 2-layer Qwen2 causal LM with a byte-level BPE tokenizer trained on a few sentences and a
ChatML template; a tiny BERT sentence-transformers directory (mean pooling, normalised); a
tiny BERT cross-encoder (sequence classification with one label). Nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

SENTENCES = [
    "The cat sat on the mat and looked at the sea.",
    "A kitten plays with a ball of red wool in the sun.",
    "The carburetor of the old engine needs cleaning.",
    "Horses run across the green field at dawn.",
    "Write a haiku about horses, the sea and the sky.",
    "What is the capital of France? Paris is the capital.",
    "Hello, how are you today? I am fine, thank you.",
    "Ünïcödé text: café, naïve, 東京, emoji 🐎 and more.",
]
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def _byte_level_tokenizer(vocab_size: int = 320) -> object:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(SENTENCES * 4, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def write_tiny_chat_model(directory: Path, seed: int = 1, max_positions: int = 400) -> Path:
    """A 2-layer Qwen2ForCausalLM in ``directory`` (config.json, model.safetensors, tokenizer)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = _byte_level_tokenizer()
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")  # type: ignore[attr-defined]
    config = Qwen2Config(
        vocab_size=len(tokenizer),  # type: ignore[arg-type]
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        eos_token_id=eos,
        pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),  # type: ignore[attr-defined]
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = eos
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)  # type: ignore[attr-defined]
    return directory


def _wordpiece_tokenizer(directory: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from tokenizers.processors import TemplateProcessing
    from transformers import BertTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=200,
        special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
        show_progress=False,
    )
    tok.train_from_iterator(SENTENCES * 4, trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    BertTokenizerFast(tokenizer_object=tok).save_pretrained(directory)


def _bert_config(vocab_size: int, **extra: object) -> object:
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        **extra,
    )


def write_tiny_embedding_model(directory: Path, seed: int = 1) -> Path:
    """A sentence-transformers directory in the classic layout all-MiniLM-L6-v2 has (written by
    hand, so it does not depend on the library's version): a tiny BERT at the root, mean
    pooling in 1_Pooling/, normalisation in 2_Normalize/, as modules.json lists them."""
    import torch
    from transformers import AutoTokenizer, BertModel

    directory.mkdir(parents=True, exist_ok=True)
    _wordpiece_tokenizer(directory)
    vocab = len(AutoTokenizer.from_pretrained(directory))
    torch.manual_seed(seed)
    BertModel(_bert_config(vocab)).save_pretrained(directory)  # type: ignore[arg-type]
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]  # fmt: skip
    (directory / "modules.json").write_text(json.dumps(modules, indent=2))
    (directory / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": 64, "do_lower_case": False})
    )
    (directory / "1_Pooling").mkdir(exist_ok=True)
    (directory / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {
                "word_embedding_dimension": 32,
                "pooling_mode_cls_token": False,
                "pooling_mode_mean_tokens": True,
                "pooling_mode_max_tokens": False,
                "pooling_mode_mean_sqrt_len_tokens": False,
            }
        )
    )
    (directory / "2_Normalize").mkdir(exist_ok=True)
    return directory


def write_tiny_cross_encoder(directory: Path, seed: int = 1) -> Path:
    """A tiny BertForSequenceClassification with one label: a cross-encoder reranker."""
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    directory.mkdir(parents=True, exist_ok=True)
    _wordpiece_tokenizer(directory)
    vocab = len(AutoTokenizer.from_pretrained(directory))
    torch.manual_seed(seed)
    config = _bert_config(vocab, num_labels=1)
    BertForSequenceClassification(config).save_pretrained(directory)  # type: ignore[arg-type]
    return directory


def write_tiny_models(root: Path) -> Path:
    """The tests' hf models dir: ``tiny/chat`` (400 positions), ``tiny/long`` (8192, for
    streams long enough to interrupt), ``tiny/embed`` and ``tiny/rerank``."""
    write_tiny_chat_model(root / "tiny" / "chat", seed=1, max_positions=400)
    write_tiny_chat_model(root / "tiny" / "long", seed=2, max_positions=8192)
    write_tiny_embedding_model(root / "tiny" / "embed")
    write_tiny_cross_encoder(root / "tiny" / "rerank")
    return root
