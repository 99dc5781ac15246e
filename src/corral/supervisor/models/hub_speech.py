"""Speech models pulled from a hub: a repo whose snapshot is a Whisper directory, or that
holds Piper voices, in huggingface-hub's cache layout (see ``hub/cache.py``).

``corral pull Systran/faster-whisper-tiny.en`` makes ``hf.co/Systran/faster-whisper-tiny.en``
a ``whisper`` model, and a repo whose snapshot is a Coqui VITS/XTTS directory
(``coqui/XTTS-v2``) is ``hf.co/<repo>``, a ``tts`` model; ``corral pull rhasspy/piper-voices
en/en_US/joe/medium/*`` makes ``hf.co/rhasspy/piper-voices:en/en_US/joe/medium/en_US-joe-medium``
a ``tts`` model. The snapshot that ``refs/main`` names wins, then the most recently downloaded
one.

Deleting one: a model that is a whole snapshot goes with its repo folder; a Piper voice takes
its two files out of every snapshot (and the blobs nothing else uses), and the repo folder goes
with its last voice.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from corral.protocol.hub_names import COMMIT_RE, repo_from_folder
from corral.supervisor.models.checkpoint import remove_tree
from corral.supervisor.models.speech_models import SpeechBackend, coqui_model, is_whisper_dir

PREFIX = "hf.co/"


@dataclass(frozen=True)
class HubSpeech:
    model_id: str
    backend: SpeechBackend
    path: Path
    size: int
    repo: str


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except (ValueError, OSError):
        return False
    return True


def _snapshot(folder: Path) -> Path | None:
    snapshots = folder / "snapshots"
    if not snapshots.is_dir():
        return None
    main = folder / "refs" / "main"
    with contextlib.suppress(OSError):
        commit = main.read_text().strip()
        if COMMIT_RE.match(commit) and (snapshots / commit).is_dir():
            return snapshots / commit
    found = [s for s in snapshots.iterdir() if COMMIT_RE.match(s.name) and s.is_dir()]
    return max(found, key=lambda s: s.stat().st_mtime, default=None)


def _size(files: list[Path]) -> int:
    # Snapshot entries are symlinks into blobs/: count what they point at.
    return sum(f.stat().st_size for f in files if f.is_file())


def scan_hub(root: Path) -> list[HubSpeech]:
    found: list[HubSpeech] = []
    if not root.is_dir():
        return found
    for folder in sorted(root.iterdir()):
        repo = repo_from_folder(folder.name)
        snapshot = _snapshot(folder) if repo is not None else None
        if repo is None or snapshot is None:
            continue
        files = [f for f in snapshot.iterdir() if _inside(f, root)]
        whole = len(files) == len(list(snapshot.iterdir()))  # no entry leaves the cache
        if whole and is_whisper_dir(snapshot):
            found.append(HubSpeech(PREFIX + repo, "whisper", snapshot, _size(files), repo))
        elif whole and coqui_model(snapshot) is not None:
            found.append(HubSpeech(PREFIX + repo, "tts", snapshot, _size(files), repo))
        for onnx in sorted(snapshot.rglob("*.onnx")):
            config = onnx.with_name(onnx.name + ".json")
            if config.is_file() and _inside(onnx, root) and _inside(config, root):
                name = onnx.relative_to(snapshot).with_suffix("").as_posix()
                size = _size([onnx, config])
                found.append(HubSpeech(f"{PREFIX}{repo}:{name}", "tts", onnx, size, repo))
    return found


def delete_hub_speech(repo_dir: Path, path: Path) -> int:
    """Delete a pulled speech model whose files are at ``path`` (a snapshot directory, or a
    voice's ``.onnx`` entry in one) from the repo folder ``repo_dir``; returns bytes freed."""
    if path.is_dir():
        return remove_tree(repo_dir)
    snapshot = next(p for p in path.parents if p.parent.name == "snapshots")
    names = [path.relative_to(snapshot), path.relative_to(snapshot).with_suffix(".onnx.json")]
    blobs: set[Path] = set()
    for each in (repo_dir / "snapshots").iterdir():
        for name in names:
            entry = each / name
            if entry.is_symlink() or entry.is_file():
                if _inside(entry, repo_dir):
                    blobs.add(entry.resolve())
                entry.unlink()
    if not any((repo_dir / "snapshots").rglob("*.onnx")):
        return remove_tree(repo_dir)  # its last voice: nothing of the repo is a model now
    used = {p.resolve() for p in (repo_dir / "snapshots").rglob("*") if p.is_symlink()}
    freed = 0
    for blob in blobs - used:
        if blob.is_file() and _inside(blob, repo_dir / "blobs"):
            freed += blob.stat().st_size
            blob.unlink()
    for dirpath, _, _ in sorted(os.walk(repo_dir / "snapshots"), key=lambda w: -len(w[0])):
        if Path(dirpath) != repo_dir / "snapshots" and not any(Path(dirpath).iterdir()):
            shutil.rmtree(dirpath)
    return freed
