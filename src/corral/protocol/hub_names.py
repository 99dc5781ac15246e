"""Names from a hub that become paths in the cache: repo ids, revisions, files, etags, commits.

Both sides check them: the supervisor at the API edge (so a client gets a clear 400) and the
download child before it builds any path (a hub's file listing is input too). A name that
passes cannot leave the cache directory: no ``..`` or empty segments, no leading ``/``, no
backslashes, no control characters.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable

REPO_ID_RE = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9._-]{0,95}/)?[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
REVISION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
ETAG_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
MAX_FILE_NAME = 512
_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")
_GLOB = re.compile(r"[*?\[\]]")


class HubNameError(ValueError):
    """A name that is not safe to use; ``field`` says which input it came from."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def check_repo_id(repo: str) -> str:
    if not REPO_ID_RE.match(repo) or "--" in repo or ".." in repo or repo.endswith(".git"):
        raise HubNameError(
            "repo",
            f"invalid repo id {repo!r}: expected 'name' or 'org/name' of letters, digits "
            "and . _ - (at most 96 each, no '--' or '..')",
        )
    return repo


def check_revision(revision: str) -> str:
    segments = revision.split("/")
    if not REVISION_RE.match(revision) or any(s in ("", ".", "..") for s in segments):
        raise HubNameError(
            "revision",
            f"invalid revision {revision!r}: a branch, tag or commit of letters, digits "
            "and . _ / - (no empty or '..' segments)",
        )
    return revision


def _check_path(field: str, name: str, what: str) -> str:
    segments = name.split("/")
    if (
        not name
        or len(name) > MAX_FILE_NAME
        or _CONTROL.search(name)
        or any(s in ("", ".", "..") for s in segments)
    ):
        raise HubNameError(
            field,
            f"invalid {what} {name!r}: a relative path inside the repo (no leading '/', "
            "no '..' or empty segments, no backslashes or control characters)",
        )
    return name


def check_file_name(name: str) -> str:
    if _GLOB.search(name):
        raise HubNameError("files", f"invalid file name {name!r}: use include for patterns")
    return _check_path("files", name, "file name")


def check_pattern(pattern: str) -> str:
    return _check_path("include", pattern, "include pattern")


def check_commit(commit: str) -> str:
    if not COMMIT_RE.match(commit):
        raise HubNameError("commit", f"invalid commit hash {commit!r} from the hub")
    return commit


def check_etag(etag: str) -> str:
    """An etag names a blob file: the sha256 of an LFS file or the git sha1 of a small one."""
    if not ETAG_RE.match(etag):
        raise HubNameError("etag", f"invalid etag {etag!r} from the hub")
    return etag


def repo_folder(repo: str) -> str:
    """huggingface-hub's folder name for a model repo: ``models--org--name``."""
    return "--".join(["models", *check_repo_id(repo).split("/")])


def repo_from_folder(folder: str) -> str | None:
    """The repo id of a cache folder, or None for anything that is not a model repo folder."""
    parts = folder.split("--")
    if len(parts) not in (2, 3) or parts[0] != "models":
        return None
    repo = "/".join(parts[1:])
    try:
        return check_repo_id(repo)
    except HubNameError:
        return None


def select_files(names: Iterable[str], patterns: Iterable[str]) -> list[str]:
    """The names matching any pattern (fnmatch; ``dir/`` means everything under dir/), as
    huggingface-hub's ``allow_patterns``."""
    globs = [p + "*" if p.endswith("/") else p for p in patterns]
    return [name for name in names if any(fnmatch.fnmatch(name, glob) for glob in globs)]
