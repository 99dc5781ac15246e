"""Speech models pulled from the fake hub through a real supervisor are models, and a delete
takes exactly their files: a Whisper snapshot with its repo folder, a Piper voice with its
config (and not a blob another voice still uses), the voices' repo folder with its last voice.
"""

from __future__ import annotations

import io
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.fake_hub import FakeHub
from tests.support.speech import have_speech, piper_voice
from tests.support.supervisor_proc import Supervisor, wait_until
from tests.support.tiny_whisper import build_tiny_whisper

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not have_speech(), reason="needs the speech extra"),
]
WHISPER = "hf.co/org/tiny-whisper"
JOE, AMY = "hf.co/org/voices:en/joe", "hf.co/org/voices:en/amy"
ONNX = b"\x01" * 4096  # both voices' weights are the same bytes: one blob in the cache


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    fake = FakeHub().start()
    yield fake
    fake.stop()


def _models(http: httpx.Client) -> dict[str, Any]:
    return {m["id"]: m for m in http.get("/v1/models").json()["data"]}


def _pull(http: httpx.Client, repo: str) -> None:
    response = http.post("/admin/models/pull", json={"repo": repo})
    assert response.status_code == 202, response.text
    job = response.json()["job"]

    def state() -> str:
        jobs = {j["job"]: j for j in http.get("/admin/downloads").json()["data"]}
        return str(jobs[job]["state"])

    wait_until(lambda: state() in ("finished", "failed"), 60, f"the pull of {repo}")
    assert state() == "finished"


def _delete(http: httpx.Client, model: str) -> int:
    response = http.post("/admin/models/delete", json={"model": model})
    assert response.status_code == 200, response.text
    return int(response.json()["freed_bytes"])


def _silence() -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(b"\0\0" * 16000)
    return out.getvalue()


def test_pulled_speech_models_serve_and_delete_with_their_files(
    hub: FakeHub, tmp_path: Path
) -> None:
    whisper = build_tiny_whisper(tmp_path / "tiny-whisper")
    hub.add("org/tiny-whisper", {p.name: p.read_bytes() for p in whisper.iterdir()})
    config = Path(f"{piper_voice()}.json").read_bytes()
    voices = {"en/joe.onnx": ONNX, "en/joe.onnx.json": config}
    amy = config.replace(b'"joe"', b'"amy"')  # a config of its own: a blob of its own
    voices |= {"en/amy.onnx": ONNX, "en/amy.onnx.json": amy, "README.md": b"# voices\n"}
    hub.add("org/voices", voices)
    settings = tmp_path / "corral.toml"
    settings.write_text("demo_model = false\nspeech_models = false\nshutdown_grace = 5\n")
    env = {"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_ETAG_TIMEOUT": "5"}
    data = tmp_path / "data"
    sup = Supervisor(data_dir=data, models_dir=tmp_path / "models", config=settings, env=env)
    sup.start()
    try:
        with sup.http(timeout=120) as http:
            _pull(http, "org/tiny-whisper")
            _pull(http, "org/voices")
            listed = _models(http)
            assert listed[WHISPER]["kind"] == "transcription"
            assert listed[JOE]["kind"] == listed[AMY]["kind"] == "speech"
            heard = http.post(
                "/v1/audio/transcriptions",
                data={"model": WHISPER},
                files={"file": ("s.wav", _silence())},
            )
            assert heard.status_code == 200, heard.text  # served from the hub cache

            voices_dir = data / "hub" / "models--org--voices"
            assert _delete(http, JOE) == len(config)  # amy still uses the weights' blob
            listed = _models(http)
            assert JOE not in listed
            assert AMY in listed
            assert not list(voices_dir.glob("snapshots/*/en/joe.onnx*"))
            # The rest of the folder: the weights, amy's config, the README and refs/main.
            assert _delete(http, AMY) >= len(ONNX) + len(amy) + len(b"# voices\n")
            assert not voices_dir.exists()  # its last voice: the repo folder goes too

            refused = http.post("/admin/models/delete", json={"model": WHISPER})
            assert refused.status_code == 409  # loaded: unload first, as for any model
            assert http.post("/admin/models/unload", json={"model": WHISPER}).status_code == 200
            size = sum(p.stat().st_size for p in whisper.iterdir())
            assert _delete(http, WHISPER) >= size
            assert WHISPER not in _models(http)
            assert not (data / "hub" / "models--org--tiny-whisper").exists()
            again = http.post("/admin/models/delete", json={"model": WHISPER})
            assert again.status_code == 404
    finally:
        sup.terminate()
