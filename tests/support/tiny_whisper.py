"""A tiny random CTranslate2 Whisper directory, converted from a tiny random transformers
``WhisperForConditionalGeneration`` in a few seconds (English-only, like tiny.en).

It borrows the bundled tiny.en's tokenizer (so it needs the speech extra) and its suppressed
and language token ids. ``generation_config._from_model_config = False`` before saving: with
it left True, transformers drops the generation settings on save and the converter writes no
language ids. Its transcripts are noise; tests check frames, timings and refusals, not words.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

VOCAB_SIZE = 51864  # tiny.en's: under 51865, CTranslate2 takes the model as English-only


def build_tiny_whisper(directory: Path, *, seed: int = 0) -> Path:
    """Write the model into ``directory`` (created); returns it. In a process of its own, so
    the test process does not import torch and transformers for it."""
    subprocess.run(
        [sys.executable, "-m", "tests.support.tiny_whisper", str(directory), str(seed)],
        check=True,
        timeout=300,
    )
    return directory


def _build(directory: Path, seed: int) -> None:
    import ctranslate2
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration, WhisperTokenizerFast

    from tests.support.speech import whisper_dir

    bundled = json.loads((whisper_dir() / "config.json").read_text(encoding="utf-8"))
    tokenizer = WhisperTokenizerFast(tokenizer_file=str(whisper_dir() / "tokenizer.json"))
    config = WhisperConfig(
        vocab_size=VOCAB_SIZE,
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        num_mel_bins=80,
        decoder_start_token_id=tokenizer.convert_tokens_to_ids("<|startoftranscript|>"),
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config)
    generation = model.generation_config
    generation.suppress_tokens = bundled["suppress_ids"]
    generation.begin_suppress_tokens = bundled["suppress_ids_begin"]
    generation.alignment_heads = [[0, 0], [0, 1]]
    generation.lang_to_id = {tokenizer.convert_ids_to_tokens(i): i for i in bundled["lang_ids"]}
    generation.is_multilingual = False
    generation.no_timestamps_token_id = tokenizer.convert_tokens_to_ids("<|notimestamps|>")
    generation._from_model_config = False
    with tempfile.TemporaryDirectory(prefix="tiny-whisper-hf-") as scratch:
        model.save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
        shutil.rmtree(directory, ignore_errors=True)
        converter = ctranslate2.converters.TransformersConverter(
            scratch, copy_files=["tokenizer.json"]
        )
        converter.convert(str(directory), quantization="int8")


if __name__ == "__main__":
    _build(Path(sys.argv[1]), int(sys.argv[2]))
