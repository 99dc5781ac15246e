"""Speech models on the shelf: found in the models directory, listed with their kind, deleted
whole; the bundled ones are listed but not deletable."""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from corral.supervisor.app import create_app
from corral.supervisor.settings import load_settings
from tests.support.speech import have_speech, piper_voice, whisper_dir

pytestmark = pytest.mark.skipif(not have_speech(), reason="needs the bundled speech models")
Client = TestClient[Any, Any]


@pytest.fixture
async def client(tmp_path: Path, aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    models = tmp_path / "models"
    shutil.copytree(whisper_dir(), models / "stt" / "tiny-copy")
    (models / "stt" / "no-tokenizer").mkdir()
    for name in ("config.json", "model.bin"):  # without tokenizer.json: not a model
        (models / "stt" / "no-tokenizer" / name).write_bytes((whisper_dir() / name).read_bytes())
    (models / "voices").mkdir()
    shutil.copy(piper_voice(), models / "voices" / "joe.onnx")
    shutil.copy(f"{piper_voice()}.json", models / "voices" / "joe.onnx.json")
    (models / "voices" / "lonely.onnx").write_bytes(b"no config beside it")
    settings = load_settings(None, data_dir=tmp_path / "data", models_dir=models, demo_model=False)
    return await aiohttp_client(create_app(settings))


async def test_speech_models_are_found_listed_and_deleted(client: Client, tmp_path: Path) -> None:
    listed = {m["id"]: m for m in (await (await client.get("/v1/models")).json())["data"]}
    assert listed["stt/tiny-copy"]["kind"] == "transcription"
    assert listed["voices/joe"]["kind"] == "speech"
    assert listed["whisper-tiny.en"]["kind"] == "transcription"
    assert "stt/no-tokenizer" not in listed
    assert "voices/lonely" not in listed
    voices = (await (await client.get("/v1/audio/voices?model=voices/joe")).json())["data"]
    assert voices == [{"id": "joe", "object": "voice", "model": "voices/joe"}]

    admin = {m["id"]: m for m in (await (await client.get("/admin/models")).json())["data"]}
    assert admin["stt/tiny-copy"]["backend"] == "whisper"
    assert admin["stt/tiny-copy"]["source"] == "file:stt/tiny-copy"
    assert admin["voices/joe"]["estimated_bytes"] > admin["voices/joe"]["size_bytes"]

    for model_id in ("stt/tiny-copy", "voices/joe"):
        response = await client.post("/admin/models/delete", json={"model": model_id})
        assert response.status == 200, await response.text()
        assert (await response.json())["freed_bytes"] == admin[model_id]["size_bytes"]
    models = tmp_path / "models"
    assert not (models / "stt" / "tiny-copy").exists()
    assert not (models / "voices" / "joe.onnx.json").exists()
    bundled = await client.post("/admin/models/delete", json={"model": "whisper-tiny.en"})
    assert bundled.status == 400
    assert "speech_models = false" in (await bundled.json())["error"]["message"]


def _snapshot(root: Path, repo: str, files: dict[str, bytes]) -> Path:
    """A repo in huggingface-hub's cache layout: blobs, a snapshot of symlinks, refs/main."""
    folder = root / ("models--" + repo.replace("/", "--"))
    commit = "ab" * 20
    snapshot = folder / "snapshots" / commit
    for name, data in files.items():
        blob = folder / "blobs" / f"blob-{abs(hash(name))}"
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(blob)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(commit)
    return snapshot


def _pulled(hub: Path) -> tuple[Path, int]:
    """A pulled Whisper repo and a pulled voices repo; the Whisper snapshot and its size."""
    whisper = {n: (whisper_dir() / n).read_bytes() for n in ("config.json", "tokenizer.json")}
    stt = _snapshot(hub, "Systran/faster-whisper-tiny.en", {**whisper, "model.bin": b"weights"})
    voice = {"en/joe.onnx": b"onnx", "en/joe.onnx.json": Path(f"{piper_voice()}.json").read_bytes()}
    _snapshot(hub, "rhasspy/piper-voices", voice)
    return stt, sum(len(v) for v in whisper.values()) + len(b"weights")


async def test_speech_models_pulled_from_a_hub_are_models(tmp_path: Path) -> None:
    from corral.supervisor.models.catalog import Catalog

    stt, size = _pulled(tmp_path / "data" / "hub")
    settings = load_settings(
        None, data_dir=tmp_path / "data", models_dir=tmp_path / "models", demo_model=False,
        speech_models=False,
    )  # fmt: skip
    catalog = Catalog(settings)
    entries = catalog.entries()
    assert set(entries) == {
        "hf.co/Systran/faster-whisper-tiny.en",
        "hf.co/rhasspy/piper-voices:en/joe",
    }
    whisper_entry = entries["hf.co/Systran/faster-whisper-tiny.en"]
    assert (whisper_entry.backend, whisper_entry.source, whisper_entry.repo) == (
        "whisper", "hub", "Systran/faster-whisper-tiny.en",
    )  # fmt: skip
    assert whisper_entry.size_bytes == size
    command = await catalog.command(whisper_entry)
    assert command.argv[3:6] == ["whisper", "--model", str(stt)]
    assert entries["hf.co/rhasspy/piper-voices:en/joe"].backend == "tts"


def test_coqui_directories_are_tts_models_in_the_models_dir_and_the_hub(tmp_path: Path) -> None:
    import json

    from corral.supervisor.audio.voices import languages_of, voices_of
    from corral.supervisor.models.catalog import Catalog

    vits = {"model": "vits", "model_args": {"use_speaker_embedding": True}}
    vits["model_args"]["speakers_file"] = "/train/run-7/speakers.json"  # a training path
    local = tmp_path / "models" / "coqui" / "vctk"
    local.mkdir(parents=True)
    (local / "config.json").write_text(json.dumps(vits))
    (local / "model.pth").write_bytes(b"weights")
    (local / "speakers.json").write_text(json.dumps({"p225": 0, "p226": 1}))
    single = tmp_path / "models" / "coqui" / "ljspeech"
    single.mkdir()
    (single / "config.json").write_text(json.dumps({"model": "vits"}))
    (single / "model.pth").write_bytes(b"weights")
    tacotron = tmp_path / "models" / "coqui" / "tacotron"
    tacotron.mkdir()
    (tacotron / "config.json").write_text(json.dumps({"model": "tacotron2"}))
    (tacotron / "model.pth").write_bytes(b"weights")
    xtts = {"model": "xtts", "languages": ["en", "de", "fr"]}
    _snapshot(
        tmp_path / "data" / "hub",
        "coqui/XTTS-v2",
        {"config.json": json.dumps(xtts).encode(), "model.pth": b"w", "vocab.json": b"{}"},
    )
    settings = load_settings(
        None, data_dir=tmp_path / "data", models_dir=tmp_path / "models", demo_model=False,
        speech_models=False,
    )  # fmt: skip
    entries = Catalog(settings).entries()
    assert set(entries) == {"coqui/vctk", "coqui/ljspeech", "hf.co/coqui/XTTS-v2"}
    assert {e.backend for e in entries.values()} == {"tts"}
    assert voices_of(local) == ("p225", "p226")  # found beside the model, as the child does
    assert voices_of(single) == ("ljspeech",)
    assert languages_of(local) == ()
    hub_xtts = entries["hf.co/coqui/XTTS-v2"].path
    assert hub_xtts is not None
    assert voices_of(hub_xtts) == ()  # in a torch file: the child checks the name
    assert languages_of(hub_xtts) == ("en", "de", "fr")
