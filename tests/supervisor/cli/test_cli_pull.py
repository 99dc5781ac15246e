"""``corral pull`` by tag and by default against the fake hub; ls ids work in pull, run, rm."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import SupervisorFactory, have_llama
from tests.support.fake_hub import FakeHub
from tests.support.supervisor_proc import Supervisor, wait_until
from tests.support.tiny_gguf import write_tiny_gguf

Corral = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    fake = FakeHub().start()
    yield fake
    fake.stop()


@pytest.fixture
def tiny_bytes(tmp_path: Path) -> bytes:
    return write_tiny_gguf(tmp_path / "t.gguf", seed=5).read_bytes()


def _start(
    supervisor: SupervisorFactory, hub: FakeHub, tmp_path: Path
) -> tuple[Supervisor, Corral]:
    models = tmp_path / "models"
    models.mkdir()
    write_tiny_gguf(models / "local.gguf", seed=2)
    env = {"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_ETAG_TIMEOUT": "5"}
    sup = supervisor(
        "demo_model = false\nspeech_models = false\n",
        env=env,
        data_dir=tmp_path / "data",
        models_dir=models,
        presets=False,
    )

    def corral(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "corral.supervisor", *args],
            capture_output=True,
            text=True,
            env={**os.environ, "CORRAL_URL": sup.base_url},
            timeout=120,
            check=False,
        )

    return sup, corral


def _fetched(hub: FakeHub, repo: str) -> set[str]:
    return {s.file for s in hub.served if s.repo == repo and s.method == "GET" and s.bytes_sent}


def _ids(corral: Corral) -> list[str]:
    listed = corral("ls")
    assert listed.returncode == 0, listed.stderr
    return [line.split()[0] for line in listed.stdout.splitlines()[1:]]


def test_pull_by_tag_and_by_default(
    supervisor: SupervisorFactory, hub: FakeHub, tmp_path: Path
) -> None:
    quants = ("Q2_K", "Q4_0", "Q4_K_M", "Q8_0", "F16")
    hub.add(
        "multi/Multi-GGUF",
        {f"multi-{q}.gguf": b"GGUF" + bytes([i]) * (2000 * (i + 1)) for i, q in enumerate(quants)}
        | {"README.md": b"# multi"},
    )
    hub.add("other/No-K-M", {"m-Q5_K_M.gguf": b"GGUF" + b"5" * 5000, "m-IQ4_XS.gguf": b"GGUF" + b"4" * 3000, "m-Q4_0.gguf": b"GGUF" + b"0" * 4000})  # fmt: skip
    hub.add("other/Big-Only", {"b-Q8_0.gguf": b"GGUF" + b"8" * 3000, "b-F16.gguf": b"GGUF" * 900})
    hub.add("other/Safetensors", {"model.safetensors": b"x" * 3000, "config.json": b"{}"})
    _, corral = _start(supervisor, hub, tmp_path)

    by_tag = corral("pull", "multi/Multi-GGUF:q8_0")
    assert by_tag.returncode == 0, by_tag.stderr
    assert "pulled multi/Multi-GGUF: multi-Q8_0.gguf" in by_tag.stdout
    assert _fetched(hub, "multi/Multi-GGUF") == {"multi-Q8_0.gguf"}

    default = corral("pull", "multi/Multi-GGUF")
    assert default.returncode == 0, default.stderr
    assert _fetched(hub, "multi/Multi-GGUF") == {"multi-Q8_0.gguf", "multi-Q4_K_M.gguf"}
    assert corral("pull", "other/No-K-M").returncode == 0
    assert _fetched(hub, "other/No-K-M") == {"m-IQ4_XS.gguf"}  # the smallest 4-bit one
    ids = _ids(corral)
    assert "hf.co/multi/Multi-GGUF:multi-Q8_0" in ids
    assert "hf.co/multi/Multi-GGUF:multi-F16" not in ids

    refused = corral("pull", "other/Big-Only")
    assert refused.returncode == 1
    assert "other/Big-Only:TAG. It has F16 (b-F16.gguf), Q8_0 (b-Q8_0.gguf)" in refused.stderr
    nothing = corral("pull", "other/Safetensors")
    assert nothing.returncode == 1
    assert "has no GGUF model file Corral can serve" in nothing.stderr
    unknown_tag = corral("pull", "multi/Multi-GGUF:Q6_K")
    assert unknown_tag.returncode == 1
    assert "no file of multi/Multi-GGUF matches 'Q6_K'" in unknown_tag.stderr
    assert _fetched(hub, "other/Big-Only") == _fetched(hub, "other/Safetensors") == set()


@pytest.mark.skipif(not have_llama(), reason="needs llama-cpp-python")
def test_every_listed_id_works_in_pull_run_stop_rm(
    supervisor: SupervisorFactory, hub: FakeHub, tmp_path: Path, tiny_bytes: bytes
) -> None:
    hub.add("org/Tiny-GGUF", {"tiny-Q4_K_M.gguf": tiny_bytes, "tiny-Q8_0.gguf": tiny_bytes})
    sup, corral = _start(supervisor, hub, tmp_path)
    assert corral("pull", "hf.co/org/Tiny-GGUF:Q8_0").returncode == 0
    assert corral("pull", "https://huggingface.co/org/Tiny-GGUF").returncode == 0
    ids = _ids(corral)
    assert set(ids) == {"local", "hf.co/org/Tiny-GGUF:tiny-Q4_K_M", "hf.co/org/Tiny-GGUF:tiny-Q8_0"}
    with sup.http() as http:
        for model in ids:
            pulled = corral("pull", model)
            assert pulled.returncode == 0, pulled.stderr
            answered = corral("run", model, "hello", "--max-tokens", "4")
            assert answered.returncode == 0, answered.stderr
            assert answered.stdout.strip()
            assert model in corral("ps").stdout
            stopped = corral("stop", model)
            assert stopped.returncode == 0, stopped.stderr
            assert stopped.stdout.strip() == f"stopped {model}"
            wait_until(
                lambda m=model: http.get(f"/v1/models/{m}").json()["state"] == "unloaded",
                30,
                f"{model} to unload",
            )
            assert corral("stop", model).stdout.strip() == f"{model} is not running"
        assert "already here (file:local.gguf)" in corral("pull", "local").stdout
        for model in ids:
            removed = corral("rm", model)
            assert removed.returncode == 0, removed.stderr
    assert _ids(corral) == []
