"""Shared fixtures: generated models, a shared demo-model data dir, real supervisor processes."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import openai
import pytest
from hypothesis import HealthCheck, settings

from tests.support.supervisor_proc import Supervisor, pid_alive
from tests.support.tiny_gguf import write_tiny_gguf

# Property tests check what holds, not how fast: on a loaded 2-core CI machine a single example
# can take longer than hypothesis' 200 ms default deadline, which made them fail at random.
settings.register_profile("corral", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("corral")

# Fake models for fault and scheduling tests: real child processes speaking the real protocol.
FAKE_PRESETS = """
[models.fake]
backend = "fake"

[models.fake-slow]
backend = "fake"
args = ["--tokens-per-second", "40", "--reply-tokens", "100000"]

[models.fake-slow-load]
backend = "fake"
args = ["--load-delay", "1.0"]

[models.fake-crash-start]
backend = "fake"
args = ["--crash-after", "0"]

[models.fake-bad-load]
backend = "fake"
args = ["--fail-load"]
"""


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("models")
    write_tiny_gguf(directory / "tiny.gguf", seed=1, n_ctx=512)
    return directory


@pytest.fixture(scope="session")
def hf_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny random Hugging Face checkpoints (chat, long chat, embed, rerank), built once."""
    from tests.support.tiny_hf import write_tiny_models  # torch: only for the tests that ask

    return write_tiny_models(tmp_path_factory.mktemp("hf-models"))


@pytest.fixture(scope="session")
def shared_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data dir per test session, so the 491 MB demo model is assembled only once."""
    return tmp_path_factory.mktemp("data")


SupervisorFactory = Callable[..., Supervisor]


@pytest.fixture
def supervisor(
    tmp_path: Path, tiny_models_dir: Path, shared_data_dir: Path
) -> Iterator[SupervisorFactory]:
    """Start real supervisors: ``supervisor(config_text, env=..., data_dir=...)``.

    Every supervisor is stopped at teardown, and every child it spawned must be gone then.
    """
    started: list[Supervisor] = []

    def start(
        config: str = "",
        *,
        env: dict[str, str] | None = None,
        data_dir: Path | None = None,
        models_dir: Path | None = None,
        presets: bool = True,
    ) -> Supervisor:
        config_file = tmp_path / f"corral-{len(started)}.toml"
        # A 10 s drain keeps the worst-case stop (drain + handlers + children) well inside
        # the harness's 60 s; tests of the drain set their own grace.
        text = 'default_model = "tiny"\nn_ctx = 512\n'
        if "shutdown_grace" not in config:
            text += "shutdown_grace = 10\n"
        if data_dir is None:
            # The data dir is shared (the demo model is assembled once); the database is not.
            text += f'database_path = "{tmp_path / f"corral-{len(started)}.db"}"\n'
        text += config + (FAKE_PRESETS if presets else "")
        config_file.write_text(text)
        sup = Supervisor(
            data_dir=data_dir or shared_data_dir,
            models_dir=models_dir or tiny_models_dir,
            config=config_file,
            env=env or {},
        )
        started.append(sup)
        return sup.start()

    yield start
    for sup in started:
        children = [int(pid) for pid in _child_pids(sup)]
        if sup.proc is not None and sup.proc.poll() is None:
            sup.terminate()
        for pid in children:
            assert not pid_alive(pid), f"child {pid} outlived its supervisor"


def _child_pids(sup: Supervisor) -> list[str]:
    if sup.proc is None:
        return []
    path = f"/proc/{sup.proc.pid}/task/{sup.proc.pid}/children"
    try:
        with open(path) as handle:
            return handle.read().split()
    except FileNotFoundError:
        return []


def client_for(sup: Supervisor, timeout: float = 120.0) -> openai.OpenAI:
    client = openai.OpenAI(
        base_url=sup.base_url + "/v1", api_key="unused", max_retries=0, timeout=timeout
    )
    sup.on_stop.append(client.close)  # closed with its supervisor: no socket left to the GC
    return client


def have_llama() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


def have_demo() -> bool:
    try:
        from corral.supervisor.models.demo_model import part_paths

        part_paths()
    except Exception:
        return False
    return True


def free_disk(path: Path) -> int:
    return shutil.disk_usage(path).free


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # httpx honours proxy variables; tests talk to loopback only.
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    os.environ.setdefault("CORRAL_CHILD_LOG_LEVEL", "INFO")
