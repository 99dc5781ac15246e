"""Hub downloads without the HTTP API: names, the cache layout, the download child, the manager.

Every transfer goes to a fake hub on loopback (tests/support/fake_hub.py). Mid-transfer states
are reached by stalling the hub at a byte offset, never by timing.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from corral.protocol.hub_names import (
    HubNameError,
    check_file_name,
    check_pattern,
    check_repo_id,
    check_revision,
    select_files,
)
from corral.protocol.messages import (
    Cancel,
    DownloadFailed,
    DownloadFinished,
    DownloadProgress,
    DownloadStart,
    FromChild,
)
from corral.supervisor.child_process import ChildCommand, ChildProcess
from corral.supervisor.errors import BadRequest, Conflict, InsufficientStorage, NotFound
from corral.supervisor.hub.cache import HubCache, hub_model_id, is_model_file, shard_names
from corral.supervisor.hub.downloads import DownloadManager
from corral.supervisor.hub.jobs import Job
from corral.supervisor.hub.plan import Plan, PlannedFile, plan_pull
from corral.supervisor.models.catalog import Catalog
from corral.supervisor.settings import load_settings
from tests.support.fake_hub import FakeHub, sha256

MiB = 1 << 20
BIG = os.urandom(3 * MiB)
GGUF = b"GGUF" + os.urandom(600_000)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    fake = FakeHub().start()
    monkeypatch.setenv("HF_ENDPOINT", fake.url)  # for the download children
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "5")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    yield fake
    fake.stop()


# --- names --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", ["", "../x", "a/../b", "/abs", "a--b", "a..b", "org/name/extra", "x.git", "a b", "-x"]
)
def test_bad_repo_ids(bad: str) -> None:
    with pytest.raises(HubNameError):
        check_repo_id(bad)


@pytest.mark.parametrize("bad", ["", "..", "a/../b", "/main", "main/", "a//b", "a\\b", "x" * 200])
def test_bad_revisions(bad: str) -> None:
    with pytest.raises(HubNameError):
        check_revision(bad)


@pytest.mark.parametrize(
    "bad", ["", "../x.gguf", "a/../../x", "/etc/passwd", "a//b", "a\\b", "./a", "a\x00b", "a*b"]
)
def test_bad_file_names(bad: str) -> None:
    with pytest.raises(HubNameError):
        check_file_name(bad)


def test_good_names_and_patterns() -> None:
    assert check_repo_id("Qwen/Qwen2.5-0.5B-Instruct-GGUF") == "Qwen/Qwen2.5-0.5B-Instruct-GGUF"
    assert check_repo_id("gpt2") == "gpt2"
    assert check_revision("refs/pr/1") == "refs/pr/1"
    assert check_file_name("Q4_K_M/model-00001-of-00002.gguf")
    with pytest.raises(HubNameError):
        check_pattern("../*.gguf")
    names = ["a.gguf", "b.bin", "sub/c.gguf", "sub/d.txt"]
    assert select_files(names, ["*.gguf"]) == ["a.gguf", "sub/c.gguf"]
    assert select_files(names, ["sub/"]) == ["sub/c.gguf", "sub/d.txt"]


def test_model_files_and_shards() -> None:
    assert is_model_file("x.gguf")
    assert is_model_file("m-00001-of-00003.gguf")
    assert not is_model_file("m-00002-of-00003.gguf")
    assert not is_model_file("x.bin")
    assert shard_names("m-00001-of-00002.gguf") == [
        "m-00001-of-00002.gguf",
        "m-00002-of-00002.gguf",
    ]
    assert hub_model_id("org/repo-GGUF", "sub/q4.gguf") == "hf.co/org/repo-GGUF:sub/q4"


# --- the download child -------------------------------------------------------------------


class ChildRun:
    """A download child driven like the supervisor drives it, collecting its frames."""

    def __init__(self, cache: Path, env: dict[str, str] | None = None) -> None:
        argv = [
            sys.executable,
            "-m",
            "corral.child",
            "download",
            "--cache-dir",
            str(cache),
            "--progress-interval",
            "0.05",
        ]
        self.frames: list[FromChild] = []
        self.changed = asyncio.Event()
        self.child = ChildProcess(
            ChildCommand(argv, label="test-download", env=env or {}), on_frame=self._frame
        )

    def _frame(self, frame: FromChild) -> None:
        self.frames.append(frame)
        self.changed.set()

    async def start(self, **fields: object) -> None:
        await self.child.spawn(hello_timeout=30)
        await self.child.send(DownloadStart(job_id="j1", **fields))  # type: ignore[arg-type]

    async def until(self, predicate: object, limit: float = 30) -> FromChild:
        async def wait() -> FromChild:
            while True:
                for frame in self.frames:
                    if predicate(frame):  # type: ignore[operator]
                        return frame
                self.changed.clear()
                await self.changed.wait()

        return await asyncio.wait_for(wait(), limit)

    async def result(self) -> DownloadFinished | DownloadFailed:
        frame = await self.until(lambda f: isinstance(f, DownloadFinished | DownloadFailed))
        await asyncio.wait_for(self.child.wait(), 30)
        assert isinstance(frame, DownloadFinished | DownloadFailed)
        return frame


def _repo_dir(cache: Path, repo: str) -> Path:
    return cache / ("models--" + repo.replace("/", "--"))


async def test_child_downloads_into_the_cache_layout_with_progress(
    hub: FakeHub, tmp_path: Path
) -> None:
    commit = hub.add("org/repo", {"big.bin": BIG, "README.md": b"hello\n"})
    hub.stall("big.bin", MiB)
    run = ChildRun(tmp_path)
    await run.start(repo="org/repo")
    middle = await run.until(lambda f: isinstance(f, DownloadProgress) and f.bytes_done == MiB)
    assert isinstance(middle, DownloadProgress)
    assert middle.bytes_total == len(BIG) + 6
    assert middle.files["big.bin"] == (MiB, len(BIG))
    hub.release()
    result = await run.result()
    assert isinstance(result, DownloadFinished), result
    assert result.commit == commit
    root = _repo_dir(tmp_path, "org/repo")
    pointer = root / "snapshots" / commit / "big.bin"
    assert Path(result.paths[0]) == pointer
    assert pointer.is_symlink()
    assert pointer.read_bytes() == BIG
    assert pointer.resolve() == (root / "blobs" / sha256(BIG)).resolve()
    assert (root / "refs" / "main").read_text() == commit
    last = [f for f in run.frames if isinstance(f, DownloadProgress)][-1]
    assert last.bytes_done == last.bytes_total == len(BIG) + 6


async def test_child_cancel_then_resume_with_a_range(hub: FakeHub, tmp_path: Path) -> None:
    hub.add("org/repo", {"big.bin": BIG})
    hub.stall("big.bin", MiB)
    first = ChildRun(tmp_path)
    await first.start(repo="org/repo", files=("big.bin",))
    await first.until(lambda f: isinstance(f, DownloadProgress) and f.bytes_done == MiB)
    await first.child.send(Cancel(request_id="j1"))
    result = await first.result()
    assert isinstance(result, DownloadFailed)
    assert result.code == "cancelled"
    partial = _repo_dir(tmp_path, "org/repo") / "blobs" / f"{sha256(BIG)}.incomplete"
    assert partial.stat().st_size == MiB

    second = ChildRun(tmp_path)
    await second.start(repo="org/repo", files=("big.bin",))
    assert isinstance(await second.result(), DownloadFinished)
    assert hub.ranges_for("big.bin") == [None, f"bytes={MiB}-"]
    assert not partial.exists()


async def test_child_stops_when_stdin_closes(hub: FakeHub, tmp_path: Path) -> None:
    hub.add("org/repo", {"big.bin": BIG})
    hub.stall("big.bin", MiB)
    run = ChildRun(tmp_path)
    await run.start(repo="org/repo", files=("big.bin",))
    await run.until(lambda f: isinstance(f, DownloadProgress) and f.bytes_done == MiB)
    await run.child.stop(grace=30)  # shutdown frame and EOF: no signal needed
    assert run.child.exit is not None
    assert run.child.exit.returncode == 0


async def test_child_sha256_mismatch_fails_and_leaves_no_file(hub: FakeHub, tmp_path: Path) -> None:
    hub.add("org/repo", {"big.bin": BIG})
    hub.corrupt.add("big.bin")
    run = ChildRun(tmp_path)
    await run.start(repo="org/repo", files=("big.bin",))
    result = await run.result()
    assert isinstance(result, DownloadFailed)
    assert result.code == "checksum"
    assert "verification" in result.reason
    root = _repo_dir(tmp_path, "org/repo")
    assert [p.name for p in (root / "blobs").iterdir()] == []
    assert not (root / "snapshots").exists()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"repo": "org/nope"}, "repository org/nope was not found"),
        (
            {"repo": "org/repo", "files": ("missing.gguf",)},
            "missing.gguf was not found in org/repo",
        ),
        ({"repo": "org/repo", "revision": "v9"}, "revision v9 of org/repo was not found"),
        ({"repo": "org/repo", "include": ("*.safetensors",)}, "no file of org/repo matches"),
        ({"repo": "org/repo", "files": ("../../escape",)}, "invalid file name"),
    ],
)
async def test_child_reports_what_is_missing(
    hub: FakeHub, tmp_path: Path, fields: dict[str, object], message: str
) -> None:
    hub.add("org/repo", {"big.bin": BIG})
    run = ChildRun(tmp_path)
    await run.start(**fields)
    result = await run.result()
    assert isinstance(result, DownloadFailed)
    assert message in result.reason
    assert result.code in ("not_found", "invalid")


async def test_child_refuses_unsafe_names_from_the_hub_listing(
    hub: FakeHub, tmp_path: Path
) -> None:
    hub.add("org/repo", {"a.gguf": GGUF})
    hub.repos["org/repo"].extra_listing.append("../../../outside.gguf")
    run = ChildRun(tmp_path / "cache")
    await run.start(repo="org/repo", include=("*.gguf",))
    result = await run.result()
    assert isinstance(result, DownloadFailed)
    assert result.code == "invalid"
    assert not (tmp_path / "outside.gguf").exists()


async def test_child_sends_the_token_for_gated_repos(hub: FakeHub, tmp_path: Path) -> None:
    hub.token = "hf_test_secret_token"
    hub.add("org/gated", {"a.gguf": GGUF}, gated=True)
    denied = ChildRun(tmp_path)
    await denied.start(repo="org/gated", files=("a.gguf",))
    result = await denied.result()
    assert isinstance(result, DownloadFailed)
    assert result.code == "gated"
    allowed = ChildRun(tmp_path, env={"HF_TOKEN": hub.token})
    await allowed.start(repo="org/gated", files=("a.gguf",))
    assert isinstance(await allowed.result(), DownloadFinished)


# --- the hub cache and the catalog --------------------------------------------------------


def _snapshot(cache: Path, repo: str, commit: str, files: dict[str, bytes]) -> None:
    root = _repo_dir(cache, repo)
    for name, data in files.items():
        blob = root / "blobs" / sha256(data)
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        pointer = root / "snapshots" / commit / name
        pointer.parent.mkdir(parents=True, exist_ok=True)
        pointer.symlink_to(os.path.relpath(blob, pointer.parent))


def test_cache_lists_models_prefers_main_and_deletes_cleanly(tmp_path: Path) -> None:
    cache = tmp_path / "data" / "hub"
    old, new = "a" * 40, "b" * 40
    _snapshot(cache, "org/repo", old, {"m.gguf": b"old", "notes.txt": b"x"})
    _snapshot(
        cache,
        "org/repo",
        new,
        {"m.gguf": b"new", "s-00001-of-00002.gguf": b"1", "s-00002-of-00002.gguf": b"22"},
    )
    _snapshot(cache, "org/half", new, {"s-00001-of-00002.gguf": b"1"})  # a shard is missing
    (_repo_dir(cache, "org/repo") / "refs").mkdir()
    (_repo_dir(cache, "org/repo") / "refs" / "main").write_text(old)
    outside = tmp_path / "outside.gguf"
    outside.write_bytes(b"secret")
    (_repo_dir(cache, "org/repo") / "snapshots" / new / "escape.gguf").symlink_to(outside)

    hub = HubCache(cache)
    found = {f.model_id: f for f in hub.files()}
    assert set(found) == {"hf.co/org/repo:m", "hf.co/org/repo:s-00001-of-00002"}
    assert found["hf.co/org/repo:m"].commit == old  # refs/main wins
    assert found["hf.co/org/repo:s-00001-of-00002"].size == 3
    assert (
        hub.resolve("org/repo", "m.gguf", None)
        == _repo_dir(cache, "org/repo") / "snapshots" / old / "m.gguf"
    )
    assert hub.resolve("org/repo", "m.gguf", new) is not None
    assert hub.resolve("org/repo", "m.gguf", "v2") is None

    settings = load_settings(
        None, data_dir=tmp_path / "data", models_dir=tmp_path / "models", demo_model=False
    )
    assert "hf.co/org/repo:m" in Catalog(settings).entries()

    assert hub.delete("org/repo", "m.gguf") == len(b"old") + len(b"new")
    assert [f.model_id for f in hub.files()] == ["hf.co/org/repo:s-00001-of-00002"]
    assert hub.delete("org/repo", "s-00001-of-00002.gguf") > 0
    assert not _repo_dir(cache, "org/repo").exists()  # nothing of the repo is a model any more
    assert outside.read_bytes() == b"secret"


def test_presets_name_hub_files(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    _snapshot(cache, "org/repo", "c" * 40, {"q4.gguf": b"GGUF"})
    (_repo_dir(cache, "org/repo") / "refs").mkdir()
    (_repo_dir(cache, "org/repo") / "refs" / "main").write_text("c" * 40)
    config = tmp_path / "c.toml"
    config.write_text(
        '[models.mine]\nrepo = "org/repo"\nfile = "q4.gguf"\n[models.later]\nrepo = "org/other"\nfile = "x.gguf"\n'
    )
    catalog = Catalog(load_settings(config, data_dir=tmp_path, demo_model=False))
    entries = catalog.entries()
    assert entries["mine"].path is not None
    assert entries["mine"].path.read_bytes() == b"GGUF"
    assert entries["later"].path is None
    for bad in (
        'repo = "../x"\nfile = "a.gguf"',
        'repo = "org/x"',
        'repo = "org/x"\nfile = "../a.gguf"',
        'path = "a.gguf"\nrepo = "o/x"\nfile = "a.gguf"',
    ):
        config.write_text(f"[models.bad]\n{bad}\n")
        with pytest.raises(ValueError):  # noqa: PT011
            load_settings(config, data_dir=tmp_path)


# --- the download manager -----------------------------------------------------------------


@pytest.fixture
async def manager_factory(hub: FakeHub, tmp_path: Path) -> AsyncIterator[object]:
    managers: list[DownloadManager] = []

    def make(reserve: int = 0) -> DownloadManager:
        settings = load_settings(
            None,
            data_dir=tmp_path / "data",
            demo_model=False,
            hub={"disk_reserve_bytes": reserve, "progress_interval": 0.05},
        )

        def planner(
            repo: str, revision: str | None, files: tuple[str, ...], include: tuple[str, ...]
        ) -> Plan:
            return plan_pull(
                repo, revision, files, include, token=None, timeout=10, endpoint=hub.url
            )

        manager = DownloadManager(settings, planner=planner)
        managers.append(manager)
        return manager

    yield make
    for manager in managers:
        await manager.close()


async def _until_state(manager: DownloadManager, job_id: str, *states: str) -> Job:
    with manager.events.subscribe() as events:
        while manager.get(job_id).state not in states:
            await asyncio.wait_for(events.get(), 30)
    return manager.get(job_id)


async def _until_bytes(manager: DownloadManager, job_id: str, done: int) -> Job:
    with manager.events.subscribe() as events:
        while manager.get(job_id).bytes_done < done:
            await asyncio.wait_for(events.get(), 30)
    return manager.get(job_id)


async def test_manager_pulls_lists_and_dedupes(hub: FakeHub, manager_factory: object) -> None:
    hub.add("org/m-GGUF", {"m.gguf": GGUF, "big.bin": BIG})
    hub.stall("m.gguf", 256 << 10)  # a multiple of the child's write chunk
    manager: DownloadManager = manager_factory()  # type: ignore[operator]
    job = await manager.pull("org/m-GGUF", files=("m.gguf",))
    assert job.bytes_total == len(GGUF)
    await _until_bytes(manager, job.id, 256 << 10)
    assert (await manager.pull("org/m-GGUF", files=("m.gguf",))).id == job.id
    downloading = manager.downloading()["hf.co/org/m-GGUF:m"]
    assert downloading.progress == pytest.approx((256 << 10) / len(GGUF))
    hub.release()
    assert (await _until_state(manager, job.id, "finished")).paths
    assert [f.model_id for f in manager.hub.files()] == ["hf.co/org/m-GGUF:m"]
    saved = json.loads((manager.cache_dir.parent / "downloads.json").read_text())
    assert saved["jobs"][0]["state"] == "finished"


async def test_manager_refusals(hub: FakeHub, manager_factory: object) -> None:
    hub.add("org/repo", {"big.bin": BIG})
    manager: DownloadManager = manager_factory()  # type: ignore[operator]
    with pytest.raises(NotFound, match="repository org/nope was not found"):
        await manager.pull("org/nope")
    with pytest.raises(NotFound, match=r"not in org/repo@main: missing\.gguf"):
        await manager.pull("org/repo", files=("missing.gguf",))
    with pytest.raises(NotFound, match="revision v2 of org/repo was not found"):
        await manager.pull("org/repo", revision="v2")
    with pytest.raises(NotFound, match="no file of org/repo@main matches"):
        await manager.pull("org/repo", include=("*.gguf",))
    for bad in (
        {"repo": "../../etc"},
        {"repo": "org/repo", "files": ("../x",)},
        {"repo": "org/repo", "revision": "a/../b"},
    ):
        with pytest.raises(BadRequest):
            await manager.pull(**bad)  # type: ignore[arg-type]
    greedy: DownloadManager = manager_factory(reserve=1 << 60)  # type: ignore[operator]
    with pytest.raises(InsufficientStorage, match="kept in reserve"):
        await greedy.pull("org/repo")
    assert manager.jobs() == []
    assert greedy.jobs() == []
    assert [s.method for s in hub.served] == []  # no file was requested


async def test_manager_cancel_close_and_resume_after_restart(
    hub: FakeHub, manager_factory: object
) -> None:
    hub.add("org/repo", {"big.bin": BIG})
    hub.stall("big.bin", MiB)
    first: DownloadManager = manager_factory()  # type: ignore[operator]
    job = await first.pull("org/repo", files=("big.bin",))
    await _until_bytes(first, job.id, MiB)
    assert (await first.cancel(job.id)).state == "cancelled"
    again = await first.pull("org/repo", files=("big.bin",))
    assert again.id == job.id  # the same files: the same job, resumed
    await _until_state(first, job.id, "running")
    hub.stall("big.bin", 2 * MiB)
    await _until_bytes(first, job.id, 2 * MiB)
    await first.close()  # a supervisor shutdown: the job is interrupted, not failed
    assert first.get(job.id).state == "interrupted"

    second: DownloadManager = manager_factory()  # type: ignore[operator]
    assert second.get(job.id).state == "interrupted"
    hub.release()
    await second.resume(job.id)
    assert (await _until_state(second, job.id, "finished", "failed")).state == "finished"
    assert hub.ranges_for("big.bin") == [None, f"bytes={MiB}-", f"bytes={2 * MiB}-"]


async def test_manager_marks_running_jobs_of_a_killed_supervisor_interrupted(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    job = Job(id="dl-1", repo="org/repo", files=("a.gguf",), state="running", bytes_per_second=5.0)
    (data / "downloads.json").write_text(
        json.dumps({"version": 1, "jobs": [job.model_dump(mode="json")]})
    )
    manager = DownloadManager(load_settings(None, data_dir=data, demo_model=False))
    assert manager.get("dl-1").state == "interrupted"
    assert manager.get("dl-1").bytes_per_second == 0


async def test_a_pull_cannot_land_in_a_repo_being_deleted(tmp_path: Path) -> None:
    """Delete checks for running downloads and deletes in one hold: a pull planned meanwhile
    is refused instead of being admitted into the folder that is going away."""
    settings = load_settings(None, data_dir=tmp_path / "data", demo_model=False)
    planned = asyncio.Event()
    go_on = asyncio.Event()
    loop = asyncio.get_running_loop()

    def planner(
        repo: str, revision: str | None, files: tuple[str, ...], include: tuple[str, ...]
    ) -> Plan:
        loop.call_soon_threadsafe(planned.set)
        asyncio.run_coroutine_threadsafe(go_on.wait(), loop).result(10)
        return Plan(repo, revision, "0" * 40, (PlannedFile("m.gguf", 4, None),))

    manager = DownloadManager(settings, planner=planner)
    try:
        pull = asyncio.create_task(manager.pull("org/repo"))
        await planned.wait()  # the pull is planning (a hub round trip) when the delete starts
        with manager.deleting("org/repo"):
            go_on.set()
            with pytest.raises(Conflict, match="being deleted"):
                await pull
        # The hold ended with the delete; and two deletes of one repo do not overlap.
        with manager.deleting("org/repo"), pytest.raises(Conflict):
            manager.deleting("org/repo").__enter__()
    finally:
        await manager.close()
