"""The tts child on a tiny random Coqui VITS: frames in, frames out, over the real pipe."""

from __future__ import annotations

import base64
import importlib.util
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from corral.protocol.messages import Done, Error
from corral.protocol.speech import AudioChunk, Speak, SpeechStarted
from corral.supervisor.child_process import (
    ChildCommand,
    ChildFailed,
    ChildProcess,
    RequestEvent,
)
from tests.support.speech import decoded_seconds, pcm_seconds
from tests.support.tiny_vits import SAMPLE_RATE, SPEAKERS, build_tiny_vits, have_coqui

# One child for the module (its load is the slow part), on the module's event loop.
pytestmark = [
    pytest.mark.skipif(not have_coqui(), reason="needs coqui-tts (the speech extra)"),
    pytest.mark.asyncio(loop_scope="module"),
]
THREE = "Open the door. Turn on the light! Is it late?"


@pytest.fixture(scope="module")
def vits_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_vits(tmp_path_factory.mktemp("coqui") / "tiny-vits")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def coqui(vits_dir: Path) -> AsyncIterator[ChildProcess]:
    argv = [sys.executable, "-m", "corral.child", "tts", "--model", str(vits_dir)]
    child = ChildProcess(ChildCommand([*argv, "--model-id", "tiny-vits"], "tiny-vits"))
    await child.start(hello_timeout=60, load_timeout=180)
    try:
        yield child
    finally:
        await child.stop(grace=10)


async def _events(child: ChildProcess, message: Speak) -> list[RequestEvent]:
    handle = await child.open_request(message)
    events: list[RequestEvent] = []
    while not handle.finished:
        events.append(await handle.next_event())
    return events


def _audio(events: list[RequestEvent]) -> bytes:
    return b"".join(base64.b64decode(e.data) for e in events if isinstance(e, AudioChunk))


def _seconds(events: list[RequestEvent]) -> float:
    return sum(e.seconds for e in events if isinstance(e, AudioChunk))


async def test_each_sentence_is_sent_as_it_is_synthesised(coqui: ChildProcess) -> None:
    events = await _events(coqui, Speak(request_id="s", text=THREE, format="wav"))
    started = events[0]
    assert isinstance(started, SpeechStarted)
    assert started.sample_rate == SAMPLE_RATE
    assert started.voice == SPEAKERS[0]  # a multi-speaker model's first speaker by default
    spoken = [e for e in events if isinstance(e, AudioChunk) and e.seconds > 0]
    assert len(spoken) == 3  # one chunk per sentence, as it was made
    done = events[-1]
    assert isinstance(done, Done)
    assert done.finish_reason == "stop"
    assert done.usage.completion_tokens == 3
    assert decoded_seconds(_audio(events)) == pytest.approx(_seconds(events), abs=0.05)


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "pcm"])
async def test_every_format_decodes_to_the_speech_it_carries(coqui: ChildProcess, fmt: str) -> None:
    events = await _events(coqui, Speak(request_id=fmt, text=THREE, format=fmt))  # type: ignore[arg-type]
    data, seconds = _audio(events), _seconds(events)
    heard = pcm_seconds(data) if fmt == "pcm" else decoded_seconds(data)
    # Lossy codecs pad a frame or two at the ends.
    assert heard == pytest.approx(seconds, abs=0.15)


async def test_speakers_are_voices_and_unknown_ones_are_refused(coqui: ChildProcess) -> None:
    events = await _events(coqui, Speak(request_id="b", text="Hello.", voice="bob"))
    assert isinstance(events[0], SpeechStarted)
    assert events[0].voice == "bob"
    (event,) = await _events(coqui, Speak(request_id="x", text="Hello.", voice="alloy"))
    assert isinstance(event, Error)
    assert event.code == "invalid_voice"
    assert "alice, bob" in event.message


async def test_a_language_the_model_lacks_is_refused(coqui: ChildProcess) -> None:
    (event,) = await _events(coqui, Speak(request_id="l", text="Bonjour.", language="fr"))
    assert isinstance(event, Error)
    assert event.code == "invalid_language"


async def test_best_quality_is_noise_free_and_normal_samples(coqui: ChildProcess) -> None:
    async def audio(quality: str, n: int) -> bytes:
        request = Speak(request_id=f"{quality}{n}", text=THREE, format="pcm", quality=quality)  # type: ignore[arg-type]
        return _audio(await _events(coqui, request))

    # best sets VITS's noise scales to 0: the same text is the same audio every time.
    assert await audio("best", 1) == await audio("best", 2)
    # normal samples the prior with the model's trained noise: every take differs.
    assert await audio("normal", 1) != await audio("normal", 2)
    assert await audio("better", 1) != await audio("best", 3)


async def test_speed_scales_the_length_of_the_speech(coqui: ChildProcess) -> None:
    async def seconds(speed: float) -> float:
        message = Speak(request_id=f"v{speed}", text=THREE, speed=speed, quality="best")
        return _seconds(await _events(coqui, message))

    # Noise-free durations: twice the speed is half the phoneme length, exactly.
    normal, fast = await seconds(1.0), await seconds(2.0)
    assert fast < normal * 0.75
    assert await seconds(1.0) == normal  # and the model's own length scale was put back


@pytest.mark.skipif(
    importlib.util.find_spec("torchaudio") is not None, reason="a real torchaudio is installed"
)
async def test_xtts_without_torchaudio_fails_to_load_saying_why(tmp_path: Path) -> None:
    model = tmp_path / "xtts"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model": "xtts", "languages": ["en"]}))
    (model / "model.pth").write_bytes(b"never read")
    argv = [sys.executable, "-m", "corral.child", "tts", "--model", str(model)]
    child = ChildProcess(ChildCommand(argv, "xtts"))
    with pytest.raises(ChildFailed) as caught:
        await child.start(hello_timeout=60, load_timeout=120)
    assert "XTTS needs torchaudio" in caught.value.message
