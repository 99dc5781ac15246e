"""The catalog's hf side: checkpoint directories as models, their footprint, their child command.

A checkpoint directory under the models directory is a model whose id is its relative path
(``qwen/Qwen2.5-0.5B-Instruct``); a safetensors repo pulled from a hub is ``hf.co/org/repo``;
the bundled MiniLM is ``all-minilm-l6-v2``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from corral.supervisor.errors import BadRequest
from corral.supervisor.models.bundled_embedder import EMBEDDER_WEIGHTS_BYTES
from corral.supervisor.models.checkpoint import (
    CAPABILITIES,
    RUNTIME_BYTES,
    Task,
    checkpoint_task,
    footprint,
    is_checkpoint,
)
from corral.supervisor.settings import ModelPreset, Settings

if TYPE_CHECKING:  # the catalog imports this module
    from corral.supervisor.models.catalog import ModelEntry

_NAMES = {"chat": "chat completions", "completion": "completions", "rerank": "reranking"}
# The bundled embedder before it is unpacked: float32 weights as published, plus the runtime.
BUNDLED_EMBEDDER_FOOTPRINT = RUNTIME_BYTES + EMBEDDER_WEIGHTS_BYTES


def find_checkpoints(root: Path) -> Iterator[tuple[str, Path]]:
    """(relative id, directory) of every checkpoint directory under ``root``, outside-pointing
    symlinks excluded. A checkpoint's own subfolders (``1_Pooling``) hold no weights."""
    if not root.is_dir():
        return
    resolved_root = root.resolve()
    for dirpath, dirnames, _ in os.walk(root):
        directory = Path(dirpath)
        dirnames.sort()
        if directory == root or not is_checkpoint(directory):
            continue
        try:
            directory.resolve().relative_to(resolved_root)
        except ValueError:
            continue
        yield directory.relative_to(root).as_posix(), directory


def task_of(backend: str, path: Path | None) -> Task | None:
    """What an hf model does, from its files; None for other backends (or no files yet)."""
    if backend != "hf" or path is None or not path.is_dir():
        return None
    return checkpoint_task(path)


def capabilities(backend: str, path: Path | None, *, bundled_embedder: bool) -> tuple[str, ...]:
    if bundled_embedder:
        return CAPABILITIES["embed"]
    task = task_of(backend, path)
    return CAPABILITIES[task] if task is not None else CAPABILITIES["chat"]


def require(entry: ModelEntry, capability: str) -> None:
    """A 400 naming the model when it does not serve ``capability`` (before any load)."""
    if capability not in entry.serves:
        raise BadRequest(
            f"the model '{entry.id}' does not serve {_NAMES.get(capability, capability)}",
            param="model",
            code="model_not_supported",
        )


_TOOL_FIELDS = frozenset({"tools", "tool_choice", "functions", "function_call"})


def refuse_unsupported(entry: ModelEntry, extra: dict[str, object] | None) -> None:
    """A field the request schema does not know asks the hf child for something it cannot do
    (tool calling, constrained decoding, logprobs...): a 400 naming it, never an answer that
    silently ignores it. A field that asks nothing (false, empty, ``{"type": "text"}``) passes."""
    if entry.backend != "hf" or not extra:
        return
    for name, value in extra.items():
        if not value:
            continue
        if name == "response_format" and isinstance(value, dict):
            if value.get("type") in (None, "text"):
                continue
            what = "structured output (constrained decoding)"
        elif name in _TOOL_FIELDS:
            what = "tool calling"
        else:
            what = "this field"
        raise BadRequest(
            f"'{name}': {what} is not supported by the hf backend yet",
            param=name,
            code="unsupported",
        )


def hf_footprint(path: Path | None, preset: ModelPreset, *, bundled: bool) -> int:
    """From the safetensors headers; a model without files yet counts only the runtime."""
    fallback = BUNDLED_EMBEDDER_FOOTPRINT if bundled else RUNTIME_BYTES
    if path is None or not path.is_dir():
        return fallback
    on_gpu = preset.device is not None and not preset.device.startswith("cpu")
    try:
        return footprint(path, n_ctx=preset.n_ctx, dtype=preset.dtype, on_gpu=on_gpu)
    except (OSError, ValueError):
        return fallback


def hf_argv(model_id: str, path: Path, preset: ModelPreset, settings: Settings) -> list[str]:
    """The hf child's command line. The context is the config's unless a preset sets n_ctx."""
    argv = [sys.executable, "-m", "corral.child", "hf", "--model", str(path)]
    argv += ["--model-id", model_id]
    task = checkpoint_task(path)
    argv += ["--task", task]
    if preset.n_ctx:
        argv += ["--n-ctx", str(preset.n_ctx)]
    threads = preset.n_threads or settings.n_threads
    if threads:
        argv += ["--n-threads", str(threads)]
    for flag, value in (
        ("--device", preset.device),
        ("--dtype", preset.dtype),
        ("--device-map", preset.device_map),
        ("--chat-template", preset.chat_template),
    ):
        if value:
            argv += [flag, value]
    if preset.trust_remote_code:
        argv.append("--trust-remote-code")
    return [*argv, *preset.args]
