"""The voices (and languages) of a tts model, read from its files without loading it, so an
unknown voice is a 400 before any process starts.

A Piper voice's config names its speakers. A Coqui directory names its speakers in a JSON
file (``speakers.json``, or the file its config names); XTTS keeps its speakers in a torch
file that only the child reads, so its voices are unknown here (empty) and the child checks
the name instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_SPEAKER_FILES = ("speakers.json", "speaker_ids.json")
_LANGUAGE_FILES = ("language_ids.json",)


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def voices_of(path: Path) -> tuple[str, ...]:
    """A multi-speaker model's speakers, or the one voice's name (the file's stem, the
    directory's name); empty when only the loaded model knows."""
    if path.is_dir():
        return _coqui_voices(path)
    config = _json(path.with_name(path.name + ".json"))
    if not isinstance(config, dict):
        return ()
    speakers = config.get("speaker_id_map")
    return tuple(speakers) if speakers else (path.name.removesuffix(".onnx"),)


def languages_of(path: Path) -> tuple[str, ...]:
    """The languages a multilingual Coqui model takes (``language``); empty for the others."""
    if not path.is_dir():
        return ()
    config = _json(path / "config.json")
    if not isinstance(config, dict):
        return ()
    if config.get("model") == "xtts":
        return tuple(config.get("languages") or ())
    args = config.get("model_args") or {}
    if not args.get("use_language_embedding"):
        return ()
    ids = _named_file(path, config, "language_ids_file", _LANGUAGE_FILES)
    return tuple(sorted(ids)) if isinstance(ids, dict) and len(ids) > 1 else ()


def _coqui_voices(directory: Path) -> tuple[str, ...]:
    config = _json(directory / "config.json")
    if not isinstance(config, dict):
        return ()
    if config.get("model") == "xtts":
        return ()
    args = config.get("model_args") or {}
    if not (args.get("use_speaker_embedding") or config.get("use_speaker_embedding")):
        return (directory.name,)
    speakers = _named_file(directory, config, "speakers_file", _SPEAKER_FILES)
    return tuple(speakers) if isinstance(speakers, dict) else ()


def _named_file(directory: Path, config: dict[str, Any], key: str, names: tuple[str, ...]) -> Any:
    """The JSON file a config names under ``key`` (found beside the model, as the child finds
    it), else the first of ``names`` there."""
    named = [(config.get("model_args") or {}).get(key), config.get(key)]
    for name in [*(Path(n).name for n in named if isinstance(n, str) and n), *names]:
        if name.endswith(".json") and (data := _json(directory / name)) is not None:
            return data
    return None
