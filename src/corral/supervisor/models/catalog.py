"""The shelf of known models: GGUF files and checkpoint directories under the models directory,
presets, the demo model and the bundled embedder (hf checkpoints: models/hf_entries.py).

Model ids are the GGUF's path relative to the models directory without ``.gguf`` (so
``llama/tiny.gguf`` is ``llama/tiny``), ``hf.co/<org>/<name>:<file without .gguf>`` for GGUF
files downloaded from a hub (`hub/cache.py`), or a preset's name. Nothing outside the
models directory and the hub cache can be named: ``..``, absolute paths and symlinks that leave
them are refused.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import re
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from stat import S_ISREG
from typing import Literal

from corral.supervisor.child_process import ChildCommand
from corral.supervisor.errors import BadRequest, ModelNotFound
from corral.supervisor.hub.cache import HubCache, hub_cache_dir
from corral.supervisor.models import speech_models
from corral.supervisor.models.bundled_embedder import (
    EMBEDDER_ID,
    EMBEDDER_WEIGHTS_BYTES,
    ensure_embedder,
    unpacked,
)
from corral.supervisor.models.checkpoint import weights_size
from corral.supervisor.models.demo_model import (
    DEMO_FILE_NAME,
    DEMO_SIZE,
    ensure_demo_model,
    header_part,
)
from corral.supervisor.models.gguf_entries import llama_serves
from corral.supervisor.models.gguf_header import GGUFError, MemoryShape, memory_shape, read_metadata
from corral.supervisor.models.hf_entries import (
    capabilities,
    find_checkpoints,
    hf_argv,
    hf_footprint,
)
from corral.supervisor.models.hub_speech import scan_hub
from corral.supervisor.models.parallelism import FALLBACK_KV_BYTES_PER_TOKEN, Parallelism
from corral.supervisor.models.sampling_defaults import DEMO_SAMPLING, from_gguf, layered
from corral.supervisor.remote.command import remote_command
from corral.supervisor.settings import DEMO_MODEL_ID, ModelPreset, SamplingDefaults, Settings

log = logging.getLogger("corral.catalog")

MODEL_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")
DEFAULT_ALIASES = frozenset({"", "default"})
# What `Catalog.apply` takes in on a reload.
CATALOG_SETTINGS = (
    "models",
    "default_model",
    "demo_model",
    "embedding_model",
    "n_ctx",
    "n_threads",
    "n_gpu_layers",
    "parallel",
    "kv_park_bytes",
    "speech_models",
    "speech_device",
    "whisper_compute_type",
)
# How stale the cached shelf may get for files copied in by hand (Corral's own changes refresh
# it at once).
RESCAN_INTERVAL_S = 2.0
UNKNOWN_SHAPE = MemoryShape(kv_bytes_per_token=None, vocab_size=None)

Source = Literal["file", "hub", "preset", "demo", "bundled"]


@dataclass(frozen=True)
class ModelEntry:
    id: str
    source: Source
    preset: ModelPreset
    path: Path | None  # None for the demo model until it is assembled, and for fake models
    size_bytes: int
    repo: str | None = None  # hub models (downloaded, or presets naming repo and file)
    file: str | None = None

    @property
    def backend(self) -> str:
        return self.preset.backend

    @functools.cached_property
    def serves(self) -> tuple[str, ...]:
        """What the model serves ("chat", "embeddings", ...), read from an hf checkpoint's
        files or a GGUF's header once per entry: the catalog caches entries, so not on every
        request."""
        if self.backend == "llama":
            return llama_serves(self.preset, self.path)
        if self.backend == "remote":
            return tuple(self.preset.serves)  # the upstream refuses what it does not serve
        bundled = self.backend == "hf" and self.source == "demo"
        return capabilities(self.backend, self.path, bundled_embedder=bundled)

    @functools.cached_property
    def file_digest(self) -> str:
        """A short digest naming this model file by its path, size and modification time
        (not a hash of gigabytes); once per entry, since a changed file is a new entry."""
        try:
            mtime = self.path.stat().st_mtime_ns if self.path is not None else 0
        except OSError:
            mtime = 0
        key = f"{self.id}\0{self.path}\0{self.size_bytes}\0{mtime}"
        return hashlib.sha256(key.encode()).hexdigest()[:10]


def validate_model_id(model_id: str) -> str:
    if not MODEL_ID_PATTERN.match(model_id) or ".." in model_id.split("/"):
        raise BadRequest(
            "model ids are 1-128 characters of letters, digits and . _ : / - "
            "(no '..' segments, no leading separator)",
            param="model",
            code="invalid_model_id",
        )
    return model_id


def _size(path: Path) -> int | None:
    """The size of a regular file, or None. A file may vanish between the directory listing
    and this call (a delete or a download's rename in another thread): that is no error."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size if S_ISREG(stat.st_mode) else None


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


class Catalog:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._parallelism = Parallelism.measured(settings)
        self.models_dir = settings.resolved_models_dir
        self.hub = HubCache(hub_cache_dir(settings.data_dir))
        self._demo_dir = settings.data_dir / "demo"
        self._embedder_dir = settings.data_dir / "embeddings"
        self._shapes: dict[Path, tuple[tuple[int, int], MemoryShape, SamplingDefaults]] = {}
        self._entries: dict[str, ModelEntry] | None = None
        self.mounted: dict[str, tuple[str, ...]] = {}  # mounted upstreams' ids (remote/mounts.py)
        self._scanned_at = 0.0
        self.rescan_interval = RESCAN_INTERVAL_S

    def apply(self, settings: Settings) -> None:
        """New presets and defaults (SIGHUP); the directories stay as they were at start."""
        self._settings = settings
        self.refresh()

    def refresh(self) -> None:
        """Forget the cached shelf: the next read scans the disk again. Called after Corral
        changes the shelf itself (a download finished, a delete, a reload)."""
        self._entries = None

    @property
    def default_model(self) -> str:
        return self._settings.default_model

    def entries(self) -> dict[str, ModelEntry]:
        """Every known model. Cached: the disk is walked again after `refresh()` or, for files
        that someone copies into the models directory by hand, once ``rescan_interval`` has
        passed, so a busy server walks it at most that often instead of on every request."""
        now = time.monotonic()
        if self._entries is None or now - self._scanned_at >= self.rescan_interval:
            self._entries = self._scan()
            self._scanned_at = now
        return self._entries

    def get(self, model_id: str) -> ModelEntry | None:
        return self.entries().get(model_id)

    def _scan(self) -> dict[str, ModelEntry]:
        found: dict[str, ModelEntry] = {}
        if self.models_dir.is_dir():
            for file in sorted(self.models_dir.rglob("*.gguf")):
                size = _size(file)
                if size is None or not _inside(file, self.models_dir):
                    continue
                model_id = file.relative_to(self.models_dir).with_suffix("").as_posix()
                if MODEL_ID_PATTERN.match(model_id):
                    found[model_id] = ModelEntry(model_id, "file", ModelPreset(), file, size)
        hf = ModelPreset(backend="hf")
        for model_id, directory in find_checkpoints(self.models_dir):
            if MODEL_ID_PATTERN.match(model_id):
                found[model_id] = ModelEntry(
                    model_id, "file", hf, directory, weights_size(directory)
                )
        for point in self.hub.checkpoints():
            if MODEL_ID_PATTERN.match(point.model_id):
                found[point.model_id] = ModelEntry(
                    point.model_id, "hub", hf, point.path, point.size, point.repo
                )
        for item in self.hub.files():
            if MODEL_ID_PATTERN.match(item.model_id):  # ids over 128 characters are left out
                found[item.model_id] = ModelEntry(
                    item.model_id, "hub", ModelPreset(), item.path, item.size, item.repo, item.file
                )
        found.update(self._speech_entries())
        if self._settings.demo_model:
            demo = self._demo_dir / DEMO_FILE_NAME
            found[DEMO_MODEL_ID] = ModelEntry(
                DEMO_MODEL_ID,
                "demo",
                ModelPreset(sampling=DEMO_SAMPLING),
                demo if demo.is_file() else None,
                DEMO_SIZE,
            )
        embedder = self._settings.embedding_model
        if embedder or (embedder is None and self._settings.demo_model):
            found[EMBEDDER_ID] = ModelEntry(
                EMBEDDER_ID, "demo", hf, unpacked(self._embedder_dir), EMBEDDER_WEIGHTS_BYTES
            )
        for model_id, preset in self._settings.models.items():
            if preset.mount:  # an upstream mounted whole: an entry per model it lists
                for name, mounted in preset.mounted(model_id, self.mounted.get(model_id, ())):
                    found[name] = ModelEntry(name, "preset", mounted, None, 0)
                continue
            path = self._preset_path(model_id, preset)
            size = (_size(path) if path is not None else None) or 0
            if preset.backend == "hf" and path is not None and path.is_dir():
                size = weights_size(path)
            found[model_id] = ModelEntry(
                model_id, "preset", preset, path, size, preset.repo, preset.file
            )
        return found

    def _speech_entries(self) -> dict[str, ModelEntry]:
        found: dict[str, ModelEntry] = {}
        for model_id, backend, where, size in speech_models.scan(self.models_dir):
            if MODEL_ID_PATTERN.match(model_id) and _inside(where, self.models_dir):
                found[model_id] = ModelEntry(
                    model_id, "file", ModelPreset(backend=backend), where, size
                )
        for item in scan_hub(self.hub.root):
            if MODEL_ID_PATTERN.match(item.model_id):
                preset = ModelPreset(backend=item.backend)
                found[item.model_id] = ModelEntry(
                    item.model_id, "hub", preset, item.path, item.size, item.repo
                )
        if self._settings.speech_models:
            for model_id, backend, where, size, aliases in speech_models.bundled():
                preset = ModelPreset(backend=backend, aliases=aliases)
                found[model_id] = ModelEntry(model_id, "bundled", preset, where, size)
        return found

    def _preset_path(self, model_id: str, preset: ModelPreset) -> Path | None:
        if preset.repo is not None and preset.file is not None:
            return self.hub.resolve(preset.repo, preset.file, preset.revision)
        if preset.repo is not None:  # an hf checkpoint: the whole snapshot
            return self.hub.resolve_checkpoint(preset.repo, preset.revision)
        if preset.path is None:
            return None
        path = preset.path if preset.path.is_absolute() else self.models_dir / preset.path
        # Presets come from the operator's config, so absolute paths are allowed there; only
        # relative ones are held to the models directory.
        if not preset.path.is_absolute() and not _inside(path, self.models_dir):
            raise ValueError(f"preset {model_id}: path {preset.path} leaves the models directory")
        return path

    def resolve(self, name: str | None) -> ModelEntry:
        """The entry a request's ``model`` names: id, alias, or none/"default"; its preset's
        sampling is filled in from the GGUF's recommended defaults."""
        wanted = self.default_model if name is None or name in DEFAULT_ALIASES else name
        entries = self.entries()
        if wanted in entries:
            return self._with_gguf_sampling(entries[wanted])
        for entry in entries.values():
            if wanted in entry.preset.aliases:
                return self._with_gguf_sampling(entry)
        validate_model_id(wanted)
        raise ModelNotFound(f"the model '{wanted}' does not exist", param="model")

    def footprint(self, entry: ModelEntry) -> int:
        """Bytes the model's child is expected to hold: the weights (mapped in whole), the KV
        cache for its context and the compute buffer, sized from the GGUF header."""
        if entry.backend == "remote":  # its engine runs elsewhere; the child is an HTTP client
            return 0
        if entry.backend == "hf":
            return hf_footprint(entry.path, entry.preset, bundled=entry.id == EMBEDDER_ID)
        if entry.backend in speech_models.SPEECH_BACKENDS:
            return speech_models.footprint(entry.size_bytes, entry.path)
        n_ctx = entry.preset.n_ctx or self._settings.n_ctx
        if entry.backend == "llama" and "embeddings" not in entry.serves:
            n_ctx *= self.parallel(entry)  # every slot may hold a whole context (one shared KV)
        path = self._header_path(entry)
        shape = UNKNOWN_SHAPE if path is None else self._header(path)[0]
        parked = self.park_bytes(entry) if entry.backend == "llama" else 0
        return entry.size_bytes + shape.runtime_bytes(n_ctx, FALLBACK_KV_BYTES_PER_TOKEN) + parked

    def parallel(self, entry: ModelEntry) -> int:
        path = self._header_path(entry)
        shape = UNKNOWN_SHAPE if path is None else self._header(path)[0]
        size, parked = entry.size_bytes, self.park_bytes(entry)
        return self._parallelism.slots(entry.preset, self._settings, shape, size, parked)

    def park_bytes(self, entry: ModelEntry) -> int:
        preset = entry.preset.kv_park_bytes
        return preset if preset is not None else self._settings.kv_park_bytes

    def _header_path(self, entry: ModelEntry) -> Path | None:
        if entry.path is None and entry.source == "demo":
            return header_part()  # not assembled yet; its header is in the first part
        return entry.path if entry.backend == "llama" else None

    def _with_gguf_sampling(self, entry: ModelEntry) -> ModelEntry:
        path = self._header_path(entry)
        if path is None:
            return entry
        sampling = layered(entry.preset.sampling, self._header(path)[1])
        if sampling == entry.preset.sampling:
            return entry
        return replace(entry, preset=entry.preset.model_copy(update={"sampling": sampling}))

    def _header(self, path: Path) -> tuple[MemoryShape, SamplingDefaults]:
        # Asked on every request, so remembered per file; a replaced file has a new stamp.
        try:
            stat = path.stat()
        except OSError:
            return UNKNOWN_SHAPE, SamplingDefaults()
        stamp = (stat.st_size, stat.st_mtime_ns)
        known = self._shapes.get(path)
        if known is not None and known[0] == stamp:
            return known[1], known[2]
        try:
            metadata = read_metadata(path)
            shape, sampling = memory_shape(metadata), from_gguf(metadata)
        except (OSError, GGUFError) as e:
            log.warning("cannot read the GGUF header of %s: %s", path, e)
            shape, sampling = UNKNOWN_SHAPE, SamplingDefaults()
        self._shapes[path] = (stamp, shape, sampling)
        return shape, sampling

    async def command(self, entry: ModelEntry) -> ChildCommand:
        """The child process that serves ``entry`` (assembling the demo model on first use)."""
        preset, settings = entry.preset, self._settings
        base = [sys.executable, "-m", "corral.child", preset.backend]
        if preset.backend == "fake":
            return ChildCommand([*base, "--model-id", entry.id, *preset.args], label=entry.id)
        if preset.backend == "remote":
            return remote_command(entry.id, preset, settings)
        path = entry.path
        if preset.backend in speech_models.SPEECH_BACKENDS:
            if path is None or not path.exists():
                raise ModelNotFound(f"the model files of '{entry.id}' are missing", param="model")
            return speech_models.command(entry.id, path, preset, settings)
        if entry.source == "demo" and entry.id == EMBEDDER_ID:
            path = await asyncio.to_thread(ensure_embedder, self._embedder_dir)
        elif entry.source == "demo":
            path = await asyncio.to_thread(ensure_demo_model, self._demo_dir)
        if preset.backend == "hf" and path is not None and path.is_dir():
            return ChildCommand(hf_argv(entry.id, path, preset, settings), label=entry.id)
        if path is None or not path.is_file():
            if entry.repo is not None:
                raise ModelNotFound(
                    f"the model '{entry.id}' is not downloaded yet: "
                    f"corral pull {entry.repo} {entry.file or ''}".rstrip(),
                    param="model",
                )
            raise ModelNotFound(f"the model file of '{entry.id}' is missing", param="model")
        gpu_layers = settings.n_gpu_layers if preset.n_gpu_layers is None else preset.n_gpu_layers
        argv = [
            *base,
            "--model", str(path),
            "--model-id", entry.id,
            "--n-ctx", str(preset.n_ctx or settings.n_ctx),
            "--parallel", str(self.parallel(entry)),
            "--kv-park-bytes", str(self.park_bytes(entry)),
        ]  # fmt: skip
        if "embeddings" in entry.serves:
            argv.append("--embedding")  # one context, batched per request (embedding.py)
        if gpu_layers is not None:  # otherwise the child offloads all layers on a GPU build
            argv += ["--n-gpu-layers", str(gpu_layers)]
        threads = preset.n_threads or settings.n_threads
        if threads:
            argv += ["--n-threads", str(threads)]
        if preset.chat_template:
            argv += ["--chat-template", preset.chat_template]
        return ChildCommand([*argv, *preset.args], label=entry.id)
