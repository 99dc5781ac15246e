"""Which files of a safetensors repository make the checkpoint Corral serves.

A repo often carries the same weights several times (``pytorch_model.bin``, ONNX, OpenVINO,
TF, Flax) plus images and docs. A pull without named files takes only what transformers and
sentence-transformers read: configs, tokenizer files, chat template, safetensors weights and
the sentence-transformers module folders (``1_Pooling/config.json``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_ROOT_FILES = frozenset(
    {
        "config.json",
        "generation_config.json",
        "model.safetensors.index.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
        "vocab.json",
        "vocab.txt",
        "merges.txt",
        "tokenizer.model",
        "spiece.model",
        "sentencepiece.bpe.model",
        "chat_template.jinja",
        "chat_template.json",
        "modules.json",
        "sentence_bert_config.json",
        "config_sentence_transformers.json",
    }
)
# sentence-transformers modules after the transformer: 1_Pooling/, 2_Dense/, 2_Normalize/ ...
_MODULE_FILE = re.compile(r"^\d+_[A-Za-z]+/[^/]+\.(json|safetensors)$")


def is_checkpoint_repo(names: Iterable[str]) -> bool:
    listed = set(names)
    return "config.json" in listed and any(
        n.endswith(".safetensors") and "/" not in n for n in listed
    )


def checkpoint_files(names: Iterable[str]) -> list[str] | None:
    """The files to fetch for a checkpoint repo, in listing order; None if it is not one."""
    listed = list(names)
    if not is_checkpoint_repo(listed):
        return None
    return [
        n
        for n in listed
        if ("/" not in n and (n in _ROOT_FILES or n.endswith(".safetensors")))
        or _MODULE_FILE.match(n)
    ]
