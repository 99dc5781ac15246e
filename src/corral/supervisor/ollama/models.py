"""The model shelf as Ollama shows it: ``/api/tags``, ``/api/ps`` and ``/api/show``.

Names are Corral's model ids; an id without a tag is shown with Ollama's ``:latest`` (which
Ollama's clients expect), and a request may name a model either way. What Ollama reads from
its manifests comes from the GGUF header here (architecture, size label, file type, chat
template) and from an hf checkpoint's ``config.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from corral.supervisor.appkeys import CATALOG, MANAGER, PRINCIPAL, SETTINGS
from corral.supervisor.errors import ModelNotFound
from corral.supervisor.models.catalog import ModelEntry
from corral.supervisor.models.demo_model import header_part
from corral.supervisor.models.gguf_header import GGUFError, Value, read_metadata
from corral.supervisor.models.speech_models import SPEECH_BACKENDS
from corral.supervisor.ollama.render import timestamp
from corral.supervisor.openai.routes import resolve_for

LATEST = ":latest"
FOREVER = 253402300799.0  # 9999-12-31T23:59:59Z: a model kept loaded until told otherwise
# llama.cpp's llama_ftype numbers, as general.file_type stores them.
FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S",
    29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0",
    38: "MXFP4_MOE",
}  # fmt: skip


def tag_name(model_id: str) -> str:
    return model_id if ":" in model_id else model_id + LATEST


def resolve(request: web.Request, name: str | None) -> ModelEntry:
    """The model ``name`` means: a Corral id, or one with Ollama's ``:latest`` tag."""
    try:
        return resolve_for(request, name)
    except ModelNotFound:
        if name is None or not name.endswith(LATEST):
            raise
        return resolve_for(request, name.removesuffix(LATEST))


def context_size(request: web.Request, entry: ModelEntry) -> int | None:
    """The context a model runs with; None where its own files decide (hf checkpoints)."""
    if entry.preset.n_ctx:
        return entry.preset.n_ctx
    return None if entry.backend == "hf" else request.app[SETTINGS].current.n_ctx


def serves_text(entry: ModelEntry) -> bool:
    """Models Ollama's API can use: text generation and embeddings, not speech or rerank."""
    return entry.backend not in SPEECH_BACKENDS and bool({"chat", "embeddings"} & set(entry.serves))


def visible(request: web.Request) -> list[ModelEntry]:
    principal = request.get(PRINCIPAL)
    return [
        entry
        for entry in request.app[CATALOG].entries().values()
        if serves_text(entry) and (principal is None or principal.allows_model(entry.id))
    ]


def gguf_path(entry: ModelEntry) -> Path | None:
    if entry.backend != "llama":
        return None
    if entry.path is None:
        return header_part() if entry.source == "demo" else None  # not assembled yet
    return entry.path if entry.path.is_file() else None


def metadata(entry: ModelEntry, *, whole: bool = False) -> dict[str, Value]:
    """The GGUF header's values (``whole``: past the vocabulary, for the chat template)."""
    path = gguf_path(entry)
    if path is None:
        return {}
    try:
        return read_metadata(path, whole=whole)
    except (OSError, GGUFError):
        return {}


def _config(entry: ModelEntry) -> dict[str, Any]:
    if entry.backend != "hf" or entry.path is None:
        return {}
    try:
        loaded = json.loads((entry.path / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def details(entry: ModelEntry, meta: dict[str, Value]) -> dict[str, Any]:
    family: object
    size: object = ""
    quant = ""
    if entry.backend == "hf":
        family, file_format = _config(entry).get("model_type"), "safetensors"
    else:
        family, file_format = meta.get("general.architecture"), "gguf"
        size = meta.get("general.size_label")
        file_type = meta.get("general.file_type")
        quant = FILE_TYPES.get(file_type, "") if isinstance(file_type, int) else ""
    family = family if isinstance(family, str) else ""
    return {
        "parent_model": "",
        "format": file_format,
        "family": family,
        "families": [family] if family else None,
        "parameter_size": size if isinstance(size, str) else "",
        "quantization_level": quant,
    }


def _modified(entry: ModelEntry) -> str:
    try:
        mtime = entry.path.stat().st_mtime if entry.path is not None else time.time()
    except OSError:
        mtime = time.time()
    return timestamp(mtime)


def tags(request: web.Request) -> dict[str, Any]:
    models = []
    for entry in visible(request):
        name = tag_name(entry.id)
        models.append(
            {
                "name": name,
                "model": name,
                "modified_at": _modified(entry),
                "size": entry.size_bytes,
                "digest": entry.file_digest,
                "details": details(entry, metadata(entry)),
            }
        )
    return {"models": models}


def running(request: web.Request) -> dict[str, Any]:
    """Loaded models. ``expires_at`` is when the idle timer unloads it: while requests run,
    that is the keep-alive from now; a model kept loaded for good shows year 9999."""
    app = request.app
    settings = app[SETTINGS].current
    models = []
    for entry in visible(request):
        status = app[MANAGER].status(entry.id)
        if status.state != "loaded":
            continue
        expires = status.keep_alive_deadline
        if expires is None:
            keep = (
                entry.preset.keep_alive
                if entry.preset.keep_alive is not None
                else settings.keep_alive
            )
            busy = status.in_flight or status.queued
            expires = time.time() + keep if busy and keep >= 0 else FOREVER
        name = tag_name(entry.id)
        models.append(
            {
                "name": name,
                "model": name,
                "size": app[CATALOG].footprint(entry),
                "digest": entry.file_digest,
                "details": details(entry, metadata(entry)),
                "expires_at": timestamp(expires),
                "size_vram": 0,  # Corral does not measure GPU memory
                "context_length": context_size(request, entry),
            }
        )
    return {"models": models}
