"""What a pull will fetch, from the hub's API, before any byte is downloaded.

One ``model_info`` call (with file metadata) gives the commit, every file's size and its LFS
sha256; from it we resolve ``files`` and ``include`` patterns, refuse names that do not exist
(a clear 404 now, not a failed job later) and learn how much disk the job needs. It blocks:
call it in a thread.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING

from corral.protocol.hub_names import (
    HubNameError,
    check_commit,
    check_etag,
    check_file_name,
    select_files,
)
from corral.supervisor.errors import BadGateway, Forbidden, InsufficientStorage, NotFound
from corral.supervisor.hub.cache import HubCache
from corral.supervisor.hub.checkpoint_files import checkpoint_files
from corral.supervisor.hub.quant import choose

if TYPE_CHECKING:
    from huggingface_hub.hf_api import RepoSibling


@dataclass(frozen=True)
class PlannedFile:
    name: str
    size: int
    etag: str | None  # the blob's name in the cache: LFS sha256, else git sha1


@dataclass(frozen=True)
class Plan:
    repo: str
    revision: str | None
    commit: str
    files: tuple[PlannedFile, ...]

    @property
    def total(self) -> int:
        return sum(f.size for f in self.files)


def plan_pull(
    repo: str,
    revision: str | None,
    files: tuple[str, ...],
    include: tuple[str, ...],
    *,
    token: str | None,
    timeout: float,
    endpoint: str | None = None,
    quant: str | None = None,
) -> Plan:
    """Resolve a pull against the hub; raises the API's errors (404, 403, 502).

    ``quant`` picks one model's files by quantisation tag instead (hub/quant.py)."""
    # Imported here: huggingface-hub takes a fifth of a second to import, and the supervisor
    # should not pay that at start for a feature it may never use.
    import httpx2
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    at = f"{repo}@{revision or 'main'}"
    try:
        # token=None lets huggingface-hub use HF_TOKEN (or its saved login) when set.
        info = HfApi(endpoint=endpoint, token=token).model_info(
            repo, revision=revision, files_metadata=True, timeout=timeout
        )
    except GatedRepoError:
        raise Forbidden(
            f"{repo} is gated: accept its terms on the hub and configure hub.token",
            param="repo",
            code="gated_repo",
        ) from None
    except RepositoryNotFoundError:
        raise NotFound(
            f"repository {repo} was not found on the hub (or it is private and no valid "
            "token is configured)",
            param="repo",
            code="repo_not_found",
        ) from None
    except RevisionNotFoundError:
        raise NotFound(
            f"revision {revision} of {repo} was not found",
            param="revision",
            code="revision_not_found",
        ) from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        raise BadGateway(f"the hub answered HTTP {status} for {repo}", code="hub_error") from None
    except httpx2.TransportError as exc:
        raise BadGateway(
            f"the hub is unreachable: {type(exc).__name__}: {exc}", code="hub_unreachable"
        ) from None
    siblings = {s.rfilename: s for s in info.siblings or []}
    if quant is not None:
        files = tuple(choose(repo, {n: _size(s) for n, s in siblings.items()}, quant))
    missing = [name for name in files if name not in siblings]
    if missing:
        raise NotFound(f"not in {at}: {', '.join(missing)}", param="files", code="file_not_found")
    names = list(files)
    if include or not files:
        # A whole-repo pull of a safetensors checkpoint takes only the files it serves from.
        whole = checkpoint_files(siblings) if not files and not include else None
        matched = select_files(siblings, include) if include else whole or list(siblings)
        extra = [name for name in matched if name not in names]
        if include and not extra and not files:
            raise NotFound(
                f"no file of {at} matches {', '.join(include)}",
                param="include",
                code="file_not_found",
            )
        names += extra
    try:
        planned = tuple(_planned(name, siblings[name]) for name in names)
        commit = check_commit(info.sha or "")
    except HubNameError as exc:
        raise BadGateway(f"the hub sent an unsafe name: {exc}", code="hub_error") from None
    return Plan(repo, revision, commit, planned)


def _size(sibling: RepoSibling) -> int:
    return (sibling.lfs.size if sibling.lfs is not None else sibling.size) or 0


def _planned(name: str, sibling: RepoSibling) -> PlannedFile:
    check_file_name(name)  # names from the hub's listing become paths
    etag = sibling.lfs.sha256 if sibling.lfs is not None else sibling.blob_id
    size = sibling.lfs.size if sibling.lfs is not None else sibling.size
    return PlannedFile(name, size or 0, check_etag(etag) if etag else None)


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.2f} GiB"


def check_disk(plan: Plan, hub: HubCache, promised: int, reserve: int) -> None:
    """Refuse a plan that would leave less than ``reserve`` bytes free, counting what is cached
    already and what running jobs (``promised`` bytes) will still write."""
    hub.root.mkdir(parents=True, exist_ok=True)
    need = sum(hub.missing_bytes(plan.repo, f.etag, f.size) for f in plan.files)
    free = shutil.disk_usage(hub.root).free
    if need + promised + reserve > free:
        raise InsufficientStorage(
            f"{plan.repo} needs {_gib(need)} more on disk; {_gib(free)} are free, "
            f"{_gib(promised)} are promised to running downloads and {_gib(reserve)} "
            "are kept in reserve (hub.disk_reserve_bytes)",
            code="insufficient_storage",
        )
