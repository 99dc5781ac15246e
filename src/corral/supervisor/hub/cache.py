"""The hub cache inside the data directory, as the catalog and the admin API see it.

huggingface-hub's layout: ``DATA_DIR/hub/models--org--name/{blobs, snapshots/<commit>/...,
refs/<revision>}``, where snapshot entries are symlinks into ``blobs/``. Those symlinks are
followed only while they stay inside the cache; anything that leads out is ignored.

Model ids of downloaded GGUF files are ``hf.co/<org>/<name>:<file without .gguf>``, the form
Ollama and llama.cpp use for hub models, e.g. ``hf.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF:
qwen2.5-0.5b-instruct-q4_k_m``. A model split into shards (``x-00001-of-00003.gguf``) is one
model, named after its first shard. When several snapshots hold the same file, the one that
``refs/main`` names wins, then the most recently downloaded.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from corral.protocol.hub_names import (
    COMMIT_RE,
    HubNameError,
    check_file_name,
    check_revision,
    repo_folder,
    repo_from_folder,
)

MODEL_ID_PREFIX = "hf.co/"
_SHARD = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$")


def hub_cache_dir(data_dir: Path) -> Path:
    return data_dir / "hub"


def hub_model_id(repo: str, file: str) -> str:
    return f"{MODEL_ID_PREFIX}{repo}:{file.removesuffix('.gguf')}"


def is_model_file(name: str) -> bool:
    """A GGUF that is a model by itself: not a later shard of a split one."""
    if not name.endswith(".gguf"):
        return False
    shard = _SHARD.search(name)
    return shard is None or int(shard.group(1)) == 1


def shard_names(name: str) -> list[str]:
    """Every file of the model ``name`` names (itself, or all shards of a split GGUF)."""
    shard = _SHARD.search(name)
    if shard is None:
        return [name]
    stem, count = name[: shard.start()], int(shard.group(2))
    return [f"{stem}-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1)]


@dataclass(frozen=True)
class HubFile:
    repo: str
    file: str
    commit: str
    path: Path  # the snapshot entry (a symlink into blobs/)
    size: int  # all shards together

    @property
    def model_id(self) -> str:
        return hub_model_id(self.repo, self.file)


@dataclass(frozen=True)
class HubCheckpoint:
    """A safetensors checkpoint (a whole snapshot directory) pulled from a hub."""

    repo: str
    commit: str
    path: Path  # the snapshot directory
    size: int  # its weights

    @property
    def model_id(self) -> str:
        return f"{MODEL_ID_PREFIX}{self.repo}"


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except (ValueError, OSError):
        return False
    return True


class HubCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def repo_dir(self, repo: str) -> Path:
        return self.root / repo_folder(repo)

    def files(self) -> list[HubFile]:
        """Every GGUF model in the cache, one per (repo, file)."""
        if not self.root.is_dir():
            return []
        found: dict[tuple[str, str], tuple[tuple[int, float], HubFile]] = {}
        for folder in sorted(self.root.iterdir()):
            repo = repo_from_folder(folder.name)
            if repo is None or not (folder / "snapshots").is_dir():
                continue
            refs = self._refs(folder)
            for snapshot in (folder / "snapshots").iterdir():
                if not COMMIT_RE.match(snapshot.name):
                    continue
                for path in snapshot.rglob("*.gguf"):
                    try:
                        item = self._model_file(repo, snapshot, path)
                        if item is None:
                            continue
                        rank = (_ref_rank(refs, snapshot.name), -path.lstat().st_mtime)
                    except FileNotFoundError:
                        continue  # deleted while we looked: a delete or a finishing download
                    key = (repo, item.file)
                    if key not in found or rank < found[key][0]:
                        found[key] = (rank, item)
        return [item for _, item in sorted(found.values(), key=lambda v: v[1].model_id)]

    def checkpoints(self) -> list[HubCheckpoint]:
        """Every safetensors checkpoint snapshot (config.json and weights at its root), one per
        repo: the snapshot ``refs/main`` names, else the most recently downloaded."""
        if not self.root.is_dir():
            return []
        found: list[HubCheckpoint] = []
        for folder in sorted(self.root.iterdir()):
            repo = repo_from_folder(folder.name)
            if repo is None or not (folder / "snapshots").is_dir():
                continue
            refs = self._refs(folder)
            best: tuple[tuple[int, float], HubCheckpoint] | None = None
            for snapshot in (folder / "snapshots").iterdir():
                try:
                    weights = [p for p in snapshot.glob("*.safetensors") if p.is_file()]
                    if not COMMIT_RE.match(snapshot.name) or not weights:
                        continue
                    if not (snapshot / "config.json").is_file() or not all(
                        _inside(p, self.root) for p in weights
                    ):
                        continue
                    size = sum(p.stat().st_size for p in weights)
                    rank = (_ref_rank(refs, snapshot.name), -snapshot.stat().st_mtime)
                except FileNotFoundError:
                    continue
                item = HubCheckpoint(repo, snapshot.name, snapshot, size)
                if best is None or rank < best[0]:
                    best = (rank, item)
            if best is not None:
                found.append(best[1])
        return found

    def _model_file(self, repo: str, snapshot: Path, path: Path) -> HubFile | None:
        name = path.relative_to(snapshot).as_posix()
        try:
            check_file_name(name)
        except HubNameError:
            return None
        if not is_model_file(name) or not path.is_file() or not _inside(path, self.root):
            return None
        size = 0
        for shard in shard_names(name):
            part = snapshot / shard
            if not part.is_file() or not _inside(part, self.root):
                return None  # an incomplete split model is not a model
            size += part.stat().st_size
        return HubFile(repo, name, snapshot.name, path, size)

    def _refs(self, folder: Path) -> dict[str, str]:
        refs: dict[str, str] = {}
        ref_dir = folder / "refs"
        if ref_dir.is_dir():
            for ref in ref_dir.rglob("*"):
                if ref.is_file() and not ref.is_symlink():
                    commit = ref.read_text().strip()
                    if COMMIT_RE.match(commit):
                        refs[ref.relative_to(ref_dir).as_posix()] = commit
        return refs

    def resolve(self, repo: str, file: str, revision: str | None) -> Path | None:
        """The snapshot entry of ``file`` at ``revision`` (a branch, tag or commit), if cached."""
        folder = self.repo_dir(repo)
        revision = check_revision(revision or "main")
        commit = revision if COMMIT_RE.match(revision) else self._refs(folder).get(revision)
        if commit is None:
            return None
        path = folder / "snapshots" / commit / check_file_name(file)
        return path if path.is_file() and _inside(path, self.root) else None

    def resolve_checkpoint(self, repo: str, revision: str | None) -> Path | None:
        """The snapshot directory of a safetensors checkpoint at ``revision``, if cached."""
        folder = self.repo_dir(repo)
        revision = check_revision(revision or "main")
        commit = revision if COMMIT_RE.match(revision) else self._refs(folder).get(revision)
        if commit is None:
            return None
        path = folder / "snapshots" / commit
        return path if (path / "config.json").is_file() and _inside(path, self.root) else None

    def delete(self, repo: str, file: str) -> int:
        """Remove ``file`` (all its shards) from every snapshot, and blobs nothing else uses.

        A repo left without any GGUF model goes entirely. Returns the bytes freed.
        """
        folder = self.repo_dir(repo)
        if not folder.is_dir():
            return 0
        names = shard_names(check_file_name(file))
        blobs: set[Path] = set()
        for snapshot in (folder / "snapshots").glob("*"):
            for name in names:
                entry = snapshot / name
                if entry.is_symlink() or entry.is_file():
                    if _inside(entry, folder):
                        blobs.add(entry.resolve())
                    entry.unlink()
        freed = 0
        used = {p.resolve() for p in (folder / "snapshots").rglob("*") if p.is_symlink()}
        for blob in blobs - used:
            if blob.is_file() and _inside(blob, folder / "blobs"):
                freed += blob.stat().st_size
                blob.unlink()
        if not any(f.repo == repo for f in self.files()):
            freed += _tree_size(folder)
            shutil.rmtree(folder)
        else:
            _prune_empty(folder / "snapshots")
        return freed

    def missing_bytes(self, repo: str, etag: str | None, size: int) -> int:
        """Bytes still to fetch for a blob: nothing when it is cached, less a partial file."""
        if etag is None:
            return size
        blobs = self.repo_dir(repo) / "blobs"
        if (blobs / etag).is_file():
            return 0
        try:
            return max(0, size - (blobs / f"{etag}.incomplete").stat().st_size)
        except OSError:
            return size


def _ref_rank(refs: dict[str, str], commit: str) -> int:
    if refs.get("main") == commit:
        return 0
    return 1 if commit in refs.values() else 2


def _tree_size(root: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            if not path.is_symlink():
                total += path.stat().st_size
    return total


def _prune_empty(root: Path) -> None:
    for dirpath, _, _ in sorted(os.walk(root), key=lambda w: -len(w[0])):
        path = Path(dirpath)
        if path != root and not any(path.iterdir()):
            path.rmdir()
