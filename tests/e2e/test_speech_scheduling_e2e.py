"""Speech models are scheduled like any other: loaded on demand, evicted under the budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.speech import SENTENCE, have_speech, words
from tests.support.supervisor_proc import Supervisor, wait_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not have_speech(), reason="needs the speech extra"),
]


def _states(http: httpx.Client) -> dict[str, Any]:
    return {m["id"]: m for m in http.get("/admin/models").json()["data"]}


def test_one_speech_model_makes_room_for_the_other(tmp_path: Path) -> None:
    # Room for one speech child (each counts its files plus 256 MiB of runtime), not two.
    config = tmp_path / "corral.toml"
    config.write_text(f"demo_model = false\nmemory_budget = {500 << 20}\nshutdown_grace = 5\n")
    (tmp_path / "models").mkdir()
    sup = Supervisor(data_dir=tmp_path / "data", models_dir=tmp_path / "models", config=config)
    sup.start()
    try:
        with sup.http(timeout=120) as http:
            before = _states(http)
            assert before["whisper-tiny.en"]["state"] == "unloaded"
            assert before["whisper-tiny.en"]["backend"] == "whisper"
            assert before["piper-en_US-joe-medium"]["backend"] == "tts"
            speech = http.post(
                "/v1/audio/speech",
                json={"model": "tts-1", "input": SENTENCE, "response_format": "flac"},
            )
            assert speech.status_code == 200
            assert _states(http)["piper-en_US-joe-medium"]["state"] == "loaded"
            heard = http.post(
                "/v1/audio/transcriptions",
                data={"model": "whisper-1"},
                files={"file": ("s.flac", speech.content)},
            )
            assert heard.status_code == 200
            assert words(heard.json()["text"]) == words(SENTENCE)
            wait_until(
                lambda: _states(http)["piper-en_US-joe-medium"]["state"] == "unloaded",
                30,
                "the idle voice to be evicted",
            )
            after = _states(http)
            assert after["whisper-tiny.en"]["state"] == "loaded"
            assert after["whisper-tiny.en"]["estimated_bytes"] > 256 << 20
    finally:
        sup.terminate()
