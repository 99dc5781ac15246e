"""A pull of a safetensors repository from the fake hub: only the checkpoint's files, verified,
listed as ``hf.co/org/repo`` and served by a real hf child from the hub cache."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.protocol.messages import Done, Generate, SamplingParams, Started
from corral.supervisor.child_process import ChildProcess
from corral.supervisor.hub.downloads import DownloadManager
from corral.supervisor.hub.plan import Plan, plan_pull
from corral.supervisor.models.catalog import Catalog
from corral.supervisor.settings import load_settings
from tests.support.fake_hub import FakeHub

pytestmark = pytest.mark.hf


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    fake = FakeHub().start()
    monkeypatch.setenv("HF_ENDPOINT", fake.url)  # for the download child
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    yield fake
    fake.stop()


async def test_pull_of_a_safetensors_repo_serves_it(
    hub: FakeHub, hf_models_dir: Path, tmp_path: Path
) -> None:
    source = hf_models_dir / "tiny" / "chat"
    files = {p.name: p.read_bytes() for p in source.iterdir() if p.is_file()}
    wanted = set(files)
    files |= {
        "README.md": b"# tiny\n",
        "pytorch_model.bin": b"\0" * 4096,  # the same weights again, in the old format
        "onnx/model.onnx": b"\0" * 4096,
    }
    hub.add("org/tiny-chat", files)
    settings = load_settings(
        None, data_dir=tmp_path / "data", demo_model=False, hub={"progress_interval": 0.05}
    )

    def planner(repo: str, rev: str | None, names: tuple[str, ...], inc: tuple[str, ...]) -> Plan:
        return plan_pull(repo, rev, names, inc, token=None, timeout=10, endpoint=hub.url)

    manager = DownloadManager(settings, planner=planner)
    try:
        hub.stall("model.safetensors", 64 << 10)  # hold the weights while we look
        job = await manager.pull("org/tiny-chat")
        assert set(job.files) == wanted
        pulling = manager.downloading()["hf.co/org/tiny-chat"]  # one model, not per file
        assert (pulling.repo, pulling.job) == ("org/tiny-chat", job.id)
        assert pulling.progress is None or pulling.progress < 1
        hub.release()
        with manager.events.subscribe() as events:
            while manager.get(job.id).state not in ("finished", "failed"):
                await asyncio.wait_for(events.get(), 60)
        assert manager.get(job.id).state == "finished", manager.get(job.id)
        assert "hf.co/org/tiny-chat" not in manager.downloading()
    finally:
        await manager.close()
    fetched = {s.file for s in hub.served if s.method == "GET" and s.status in (200, 206)}
    assert fetched == wanted  # not the README, the .bin or the ONNX copy

    catalog = Catalog(settings)
    entry = catalog.entries()["hf.co/org/tiny-chat"]
    assert (entry.source, entry.backend, entry.repo) == ("hub", "hf", "org/tiny-chat")
    assert entry.size_bytes == len(files["model.safetensors"])
    # A preset names the pulled checkpoint by its repo alone, with its own settings.
    preset = {"backend": "hf", "repo": "org/tiny-chat", "device": "cpu", "n_ctx": 200}
    with_preset = Catalog(load_settings(None, data_dir=settings.data_dir, models={"q": preset}))
    named = with_preset.entries()["q"]
    assert named.path == entry.path
    assert named.size_bytes == entry.size_bytes
    command = await with_preset.command(named)
    assert list(command.argv[-4:]) == ["--n-ctx", "200", "--device", "cpu"]
    child = ChildProcess(command)
    try:
        ready = await child.start(hello_timeout=60, load_timeout=120)
        assert ready.n_ctx == 200  # the preset's, under the config's 400
        request = Generate(request_id="r1", prompt="The cat", params=SamplingParams(max_tokens=3))
        handle = await child.open_request(request)
        started = await handle.next_event()
        assert isinstance(started, Started)
        while not isinstance(event := await handle.next_event(), Done):
            pass
        assert event.usage.completion_tokens <= 3
    finally:
        await child.stop(5)
