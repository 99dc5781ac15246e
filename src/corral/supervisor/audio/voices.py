"""The voices of a tts model, read from its Piper config without loading the model, so an
unknown voice is a 400 before any process starts."""

from __future__ import annotations

import json
from pathlib import Path


def voices_of(onnx: Path) -> tuple[str, ...]:
    """A multi-speaker voice's speakers, or the file's stem for a one-speaker voice."""
    try:
        config = json.loads(onnx.with_name(onnx.name + ".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ()
    speakers = config.get("speaker_id_map") if isinstance(config, dict) else None
    return tuple(speakers) if speakers else (onnx.name.removesuffix(".onnx"),)
