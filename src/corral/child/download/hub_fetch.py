"""One file from a hub into huggingface-hub's cache layout, resumable and verified.

huggingface-hub (1.x and later) downloads to a process-unique temporary file that it deletes on
failure, so an interrupted download starts again from byte 0. We keep huggingface-hub for
what it does well (metadata, auth headers, ranged GET with retries, its error types) and own
the part it dropped: bytes go to ``blobs/<etag>.incomplete``, a stable name, and a later
attempt sends a Range from its size. A finished blob is checked against its etag (sha256 for
LFS files, git's blob sha1 otherwise) before it is renamed into place, so no half-written or
corrupt file is ever visible under its final name.

Layout (huggingface-hub's): ``models--org--name/{blobs/<etag>, snapshots/<commit>/<file> ->
../../blobs/<etag>, refs/<revision>}``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast
from urllib.parse import urlsplit

from huggingface_hub import constants as hf_constants
from huggingface_hub import get_hf_file_metadata, hf_hub_url
from huggingface_hub.file_download import http_get

# huggingface_hub.utils re-exports these lazily (a module __getattr__), which mypy cannot follow.
from huggingface_hub.utils import (  # type: ignore[attr-defined]
    build_hf_headers,
    disable_progress_bars,
)

from corral.protocol.hub_names import (
    SHA256_RE,
    check_commit,
    check_etag,
    check_file_name,
    check_revision,
    repo_folder,
)

HASH_CHUNK = 8 << 20
# huggingface-hub hands the response to us in chunks of this size (10 MiB by default): smaller
# chunks mean finer progress and less received-but-unwritten data lost when we are killed.
WRITE_CHUNK = 256 << 10


def configure_hub() -> None:
    """Once per (download) process: smaller read chunks, no progress bars on our log."""
    hf_constants.DOWNLOAD_CHUNK_SIZE = WRITE_CHUNK
    disable_progress_bars()
    for name in ("httpx", "httpx2"):  # a line per request is noise in the supervisor's log
        logging.getLogger(name).setLevel(logging.WARNING)


class Cancelled(Exception):
    """The job was cancelled while a file was being written."""


class ChecksumMismatch(Exception):
    pass


@dataclass(frozen=True)
class RemoteFile:
    name: str
    url: str
    etag: str
    size: int | None
    commit: str
    headers: dict[str, str]


class _CountingFile:
    """The ``.incomplete`` file as huggingface-hub writes it: reports its size after each write
    and stops the transfer once the job is cancelled."""

    def __init__(self, raw: BinaryIO, report: Callable[[int], None], cancelled: threading.Event):
        self._raw = raw
        self._report = report
        self._cancelled = cancelled

    def write(self, data: bytes) -> int:
        if self._cancelled.is_set():
            raise Cancelled()
        written = self._raw.write(data)
        self._report(self._raw.tell())
        return written

    def tell(self) -> int:
        return self._raw.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._raw.seek(offset, whence)

    def truncate(self, size: int | None = None) -> int:
        result = self._raw.truncate(size)
        self._report(self._raw.tell())
        return result

    def flush(self) -> None:
        self._raw.flush()


class RepoCache:
    """One repo's folder in the cache; every path it builds stays under ``cache_dir``."""

    def __init__(self, cache_dir: Path, repo: str) -> None:
        self.repo = repo
        self.root = cache_dir / repo_folder(repo)

    def blob(self, etag: str) -> Path:
        return self.root / "blobs" / check_etag(etag)

    def partial(self, etag: str) -> Path:
        return self.root / "blobs" / f"{check_etag(etag)}.incomplete"

    def pointer(self, commit: str, name: str) -> Path:
        return self.root / "snapshots" / check_commit(commit) / check_file_name(name)

    def head(self, name: str, revision: str) -> RemoteFile:
        """The file's metadata from a HEAD request (etag, size, commit, final location)."""
        url = hf_hub_url(self.repo, name, revision=revision)
        headers = build_hf_headers()
        headers["Accept-Encoding"] = "identity"
        meta = get_hf_file_metadata(url, headers=headers)
        if meta.etag is None or meta.commit_hash is None:
            raise OSError(f"the hub sent no etag or commit for {name!r}; is HF_ENDPOINT a hub?")
        commit = check_commit(meta.commit_hash)
        location = meta.location or url
        if location == url:  # no redirect: fetch by commit, so a moving branch cannot swap bytes
            location = hf_hub_url(self.repo, name, revision=commit)
        elif urlsplit(location).netloc != urlsplit(url).netloc:
            headers.pop("authorization", None)  # a signed CDN address: never send it our token
        return RemoteFile(
            name=name,
            url=location,
            etag=check_etag(meta.etag),
            size=meta.size,
            commit=commit,
            headers=headers,
        )

    def bytes_present(self, remote: RemoteFile) -> int:
        if self.blob(remote.etag).is_file():
            return remote.size or self.blob(remote.etag).stat().st_size
        with contextlib.suppress(FileNotFoundError):
            return self.partial(remote.etag).stat().st_size
        return 0

    def fetch(
        self, remote: RemoteFile, report: Callable[[int], None], cancelled: threading.Event
    ) -> Path:
        """Download (or resume) one blob and verify it; returns the blob path."""
        blob, partial = self.blob(remote.etag), self.partial(remote.etag)
        if blob.is_file():
            report(blob.stat().st_size)
            return blob
        blob.parent.mkdir(parents=True, exist_ok=True)
        resume = partial.stat().st_size if partial.exists() else 0
        if remote.size is not None and resume > remote.size:
            partial.unlink()  # not a prefix of this file: start over
            resume = 0
        report(resume)
        # Unbuffered: every chunk reaches the file at once, so a kill loses nothing written.
        with partial.open("ab", buffering=0) as raw:
            http_get(
                remote.url,
                cast(BinaryIO, _CountingFile(cast(BinaryIO, raw), report, cancelled)),
                resume_size=resume,
                headers=remote.headers,
                expected_size=remote.size,
                displayed_filename=remote.name,
            )
        try:
            verify(partial, remote.etag, cancelled)
        except ChecksumMismatch:
            partial.unlink(missing_ok=True)  # a resume must not build on corrupt bytes
            raise
        os.replace(partial, blob)
        return blob

    def link(self, remote: RemoteFile) -> Path:
        """Point ``snapshots/<commit>/<name>`` at the blob (atomically, replacing a stale link)."""
        pointer = self.pointer(remote.commit, remote.name)
        pointer.parent.mkdir(parents=True, exist_ok=True)
        target = os.path.relpath(self.blob(remote.etag), pointer.parent)
        if pointer.is_symlink() and os.readlink(pointer) == target:
            return pointer
        temporary = pointer.with_name(f".{pointer.name}.{os.getpid()}.link")
        temporary.unlink(missing_ok=True)
        os.symlink(target, temporary)
        os.replace(temporary, pointer)
        return pointer

    def set_ref(self, revision: str, commit: str) -> None:
        if revision == commit:
            return
        ref = self.root / "refs" / check_revision(revision)
        ref.parent.mkdir(parents=True, exist_ok=True)
        temporary = ref.with_name(f".{ref.name}.{os.getpid()}.tmp")
        temporary.write_text(commit)
        os.replace(temporary, ref)


def verify(path: Path, etag: str, cancelled: threading.Event) -> None:
    """Check ``path`` against its etag: sha256 (LFS) or git's blob sha1 (small files)."""
    if SHA256_RE.match(etag):
        digest: Any = hashlib.sha256()
    elif len(etag) == 40 and all(c in "0123456789abcdef" for c in etag):
        digest = hashlib.sha1(usedforsecurity=False)
        digest.update(b"blob %d\0" % path.stat().st_size)
    else:
        return  # not a content hash (a hub that is not Hugging Face's): nothing to check
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            if cancelled.is_set():
                raise Cancelled()
            digest.update(chunk)
    if digest.hexdigest() != etag:
        raise ChecksumMismatch(f"expected {etag}, got {digest.hexdigest()}")
