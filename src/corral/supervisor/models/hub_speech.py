"""Speech models pulled from a hub: a repo whose snapshot is a Whisper directory, or that
holds Piper voices, in huggingface-hub's cache layout (see ``hub/cache.py``).

``corral pull Systran/faster-whisper-tiny.en`` makes ``hf.co/Systran/faster-whisper-tiny.en``
a ``whisper`` model; ``corral pull rhasspy/piper-voices en/en_US/joe/medium/*`` makes
``hf.co/rhasspy/piper-voices:en/en_US/joe/medium/en_US-joe-medium`` a ``tts`` model. The
snapshot that ``refs/main`` names wins, then the most recently downloaded one.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from corral.protocol.hub_names import COMMIT_RE, repo_from_folder
from corral.supervisor.models.speech_models import SpeechBackend, is_whisper_dir

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
        if is_whisper_dir(snapshot) and len(files) == len(list(snapshot.iterdir())):
            found.append(HubSpeech(PREFIX + repo, "whisper", snapshot, _size(files), repo))
        for onnx in sorted(snapshot.rglob("*.onnx")):
            config = onnx.with_name(onnx.name + ".json")
            if config.is_file() and _inside(onnx, root) and _inside(config, root):
                name = onnx.relative_to(snapshot).with_suffix("").as_posix()
                size = _size([onnx, config])
                found.append(HubSpeech(f"{PREFIX}{repo}:{name}", "tts", onnx, size, repo))
    return found
