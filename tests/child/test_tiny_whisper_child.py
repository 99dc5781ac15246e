"""The whisper child on a tiny random CTranslate2 Whisper: frames in, frames out, over the pipe."""

from __future__ import annotations

import sys
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio

from corral.protocol.messages import Done, Error
from corral.protocol.speech import Segment, Transcribe, TranscriptionStarted
from corral.supervisor.child_process import ChildCommand, ChildProcess, RequestEvent
from tests.support.speech import have_speech, transcode
from tests.support.tiny_whisper import build_tiny_whisper

# One child for the module (its load is the slow part), on the module's event loop.
pytestmark = [
    pytest.mark.skipif(not have_speech(), reason="needs the speech extra"),
    pytest.mark.asyncio(loop_scope="module"),
]
SECONDS = 3.0


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_whisper(tmp_path_factory.mktemp("whisper") / "tiny-whisper")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def whisper(model_dir: Path) -> AsyncIterator[ChildProcess]:
    argv = [sys.executable, "-m", "corral.child", "whisper", "--model", str(model_dir)]
    child = ChildProcess(ChildCommand([*argv, "--device", "cpu"], "tiny-whisper"))
    await child.start(hello_timeout=60, load_timeout=120)
    try:
        yield child
    finally:
        await child.stop(grace=10)


def _wav(path: Path, seconds: float = SECONDS, rate: int = 16000) -> Path:
    noise = np.random.default_rng(0).normal(0, 3000, int(seconds * rate)).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(noise.tobytes())
    return path


async def _events(child: ChildProcess, message: Transcribe) -> list[RequestEvent]:
    handle = await child.open_request(message)
    events: list[RequestEvent] = []
    while not handle.finished:
        events.append(await handle.next_event())
    return events


async def test_the_tiny_model_is_a_ctranslate2_whisper_with_language_ids(model_dir: Path) -> None:
    from corral.supervisor.models.speech_models import is_whisper_dir

    assert is_whisper_dir(model_dir)  # what the catalog asks: lang_ids survived the save


async def test_a_transcription_is_started_segments_and_done(
    whisper: ChildProcess, tmp_path: Path
) -> None:
    audio = _wav(tmp_path / "noise.wav")
    events = await _events(whisper, Transcribe(request_id="t", path=str(audio), beam_size=1))
    assert not audio.exists()  # deleted once decoded
    started = events[0]
    assert isinstance(started, TranscriptionStarted)
    assert started.duration == pytest.approx(SECONDS, abs=0.01)
    assert started.language == "en"  # English-only: no detection
    segments = [e for e in events if isinstance(e, Segment)]
    assert [s.id for s in segments] == list(range(len(segments)))
    assert all(s.seek == 0 for s in segments)  # three seconds: one 30 s window
    done = events[-1]
    assert isinstance(done, Done)
    assert done.finish_reason == "stop"
    assert done.usage.completion_tokens == sum(len(s.tokens) for s in segments)


async def test_a_browser_recording_is_decoded_at_16_khz(
    whisper: ChildProcess, tmp_path: Path
) -> None:
    source = _wav(tmp_path / "src.wav", rate=48000)
    webm = tmp_path / "rec.webm"
    webm.write_bytes(transcode(source.read_bytes(), "webm", "libopus"))
    events = await _events(whisper, Transcribe(request_id="w", path=str(webm), beam_size=1))
    started = events[0]
    assert isinstance(started, TranscriptionStarted)
    assert started.duration == pytest.approx(SECONDS, abs=0.05)
    assert isinstance(events[-1], Done)


async def test_refusals_name_the_problem(whisper: ChildProcess, tmp_path: Path) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("not sound\n" * 50)
    (event,) = await _events(whisper, Transcribe(request_id="j", path=str(junk)))
    assert isinstance(event, Error)
    assert event.code == "invalid_audio"
    audio = _wav(tmp_path / "fr.wav")
    (event,) = await _events(whisper, Transcribe(request_id="f", path=str(audio), language="fr"))
    assert isinstance(event, Error)
    assert event.code == "unsupported_language"
    assert not audio.exists()  # refused uploads are deleted too
