"""The whisper and tts children on the bundled models, driven through the supervisor's pipe."""

from __future__ import annotations

import base64
import sys
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from corral.protocol.messages import Done, Error
from corral.protocol.speech import (
    AudioChunk,
    Segment,
    Speak,
    SpeechStarted,
    Transcribe,
    TranscriptionStarted,
)
from corral.supervisor.child_process import ChildCommand, ChildProcess, RequestEvent
from tests.support.speech import SENTENCE, have_speech, piper_voice, whisper_dir, words

pytestmark = pytest.mark.skipif(not have_speech(), reason="needs the speech extra")


async def _child(kind: str, model: Path) -> AsyncIterator[ChildProcess]:
    child = ChildProcess(
        ChildCommand([sys.executable, "-m", "corral.child", kind, "--model", str(model)], kind)
    )
    await child.start(hello_timeout=60, load_timeout=120)
    try:
        yield child
    finally:
        await child.stop(grace=10)


@pytest.fixture
async def tts() -> AsyncIterator[ChildProcess]:
    async for child in _child("tts", piper_voice()):
        yield child


@pytest.fixture
async def whisper() -> AsyncIterator[ChildProcess]:
    async for child in _child("whisper", whisper_dir()):
        yield child


async def _events(child: ChildProcess, message: Transcribe | Speak) -> list[RequestEvent]:
    handle = await child.open_request(message)
    events: list[RequestEvent] = []
    while not handle.finished:
        events.append(await handle.next_event())
    return events


async def test_piper_speaks_and_whisper_hears_the_same_words(
    tts: ChildProcess, whisper: ChildProcess, tmp_path: Path
) -> None:
    text = SENTENCE + " The weather is nice today."
    events = await _events(tts, Speak(request_id="s1", text=text, format="wav"))
    assert isinstance(events[0], SpeechStarted)
    assert isinstance(events[-1], Done)
    assert events[-1].finish_reason == "stop"
    chunks = [e for e in events if isinstance(e, AudioChunk)]
    assert len([c for c in chunks if c.seconds > 0]) == 2  # one chunk per sentence, as made
    audio = tmp_path / "speech.wav"
    audio.write_bytes(b"".join(base64.b64decode(c.data) for c in chunks))

    events = await _events(whisper, Transcribe(request_id="t1", path=str(audio)))
    assert not audio.exists()  # the child deletes the upload once it is decoded
    started = events[0]
    assert isinstance(started, TranscriptionStarted)
    assert started.language == "en"
    assert started.duration == pytest.approx(sum(c.seconds for c in chunks), abs=0.1)
    segments = [e for e in events if isinstance(e, Segment)]
    assert words("".join(s.text for s in segments)) == words(text)
    assert isinstance(events[-1], Done)
    assert events[-1].usage.completion_tokens == sum(len(s.tokens) for s in segments)


async def test_word_timestamps_are_ordered_within_the_audio(
    tts: ChildProcess, whisper: ChildProcess, tmp_path: Path
) -> None:
    events = await _events(tts, Speak(request_id="s", text=SENTENCE, format="flac"))
    audio = tmp_path / "speech.flac"
    audio.write_bytes(
        b"".join(base64.b64decode(e.data) for e in events if isinstance(e, AudioChunk))
    )
    events = await _events(
        whisper, Transcribe(request_id="t", path=str(audio), word_timestamps=True, beam_size=1)
    )
    found = [w for e in events if isinstance(e, Segment) for w in e.words]
    assert words(" ".join(w.word for w in found)) == words(SENTENCE)
    starts = [w.start for w in found]
    assert starts == sorted(starts)
    assert all(w.end >= w.start for w in found)


async def test_a_file_that_is_not_audio_is_an_invalid_audio_error(
    whisper: ChildProcess, tmp_path: Path
) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("these are not sound waves\n" * 100)
    (event,) = await _events(whisper, Transcribe(request_id="bad", path=str(junk)))
    assert isinstance(event, Error)
    assert event.code == "invalid_audio"
    assert not junk.exists()


async def test_an_english_only_model_refuses_another_language(
    whisper: ChildProcess, tmp_path: Path
) -> None:
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"RIFF")
    (event,) = await _events(whisper, Transcribe(request_id="fr", path=str(audio), language="fr"))
    assert isinstance(event, Error)
    assert event.code == "unsupported_language"


async def test_an_unknown_voice_is_refused_before_any_audio(tts: ChildProcess) -> None:
    (event,) = await _events(tts, Speak(request_id="v", text="Hello.", voice="alloy"))
    assert isinstance(event, Error)
    assert event.code == "invalid_voice"
    assert "en_US-joe-medium" in event.message


async def test_speed_changes_the_length_of_the_speech(tts: ChildProcess) -> None:
    async def seconds(speed: float) -> float:
        events = await _events(tts, Speak(request_id=f"s{speed}", text=SENTENCE, speed=speed))
        return sum(e.seconds for e in events if isinstance(e, AudioChunk))

    # Piper draws phoneme durations at random; a 4x speed gap dwarfs that noise.
    slow, fast = await seconds(0.5), await seconds(2.0)
    assert fast < slow * 0.5


async def test_a_cancel_lands_between_segments(
    tts: ChildProcess, whisper: ChildProcess, tmp_path: Path
) -> None:
    # Over 30 s of speech: Whisper decodes it in two windows, so segments of the second
    # window are still to come (a second of decoding away) when the first ones arrive.
    text = SENTENCE + " The weather is nice today."
    events = await _events(tts, Speak(request_id="long", text=text, format="pcm"))
    pcm = b"".join(base64.b64decode(e.data) for e in events if isinstance(e, AudioChunk))
    pcm += b"\0" * 24000  # half a second of silence between the repeats
    audio = tmp_path / "long.wav"
    with wave.open(str(audio), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(24000)
        wav.writeframes(pcm * (1 + int(36 * 48000 / len(pcm))))

    # One temperature, no fallback ladder: repeated speech compresses well, which would make
    # Whisper re-decode each window at every temperature and only slow the test down.
    handle = await whisper.open_request(
        Transcribe(request_id="c", path=str(audio), beam_size=1, temperature=0.2)
    )
    assert isinstance(await handle.next_event(), TranscriptionStarted)
    assert isinstance(await handle.next_event(), Segment)
    await handle.cancel()
    rest: list[RequestEvent] = []
    while not handle.finished:
        rest.append(await handle.next_event())
    done = rest[-1]
    assert isinstance(done, Done)
    assert done.finish_reason == "cancelled"
    heard = [e for e in rest if isinstance(e, Segment)]
    assert heard == [] or heard[-1].end < 30.5  # nothing of the second window was sent


async def test_piper_quality_best_is_noise_free_and_normal_samples(tts: ChildProcess) -> None:
    async def audio(quality: str, n: int) -> bytes:
        message = Speak(request_id=f"{quality}{n}", text=SENTENCE, format="pcm", quality=quality)  # type: ignore[arg-type]
        events = await _events(tts, message)
        return b"".join(base64.b64decode(e.data) for e in events if isinstance(e, AudioChunk))

    assert await audio("best", 1) == await audio("best", 2)  # noise scales 0: deterministic
    assert await audio("normal", 1) != await audio("normal", 2)


async def test_piper_takes_its_own_language_only(tts: ChildProcess) -> None:
    for language in ("en", "en-US", "en_us"):
        events = await _events(tts, Speak(request_id=language, text="Hi.", language=language))
        assert isinstance(events[-1], Done)
    (event,) = await _events(tts, Speak(request_id="fr", text="Salut.", language="fr"))
    assert isinstance(event, Error)
    assert event.code == "invalid_language"
    assert "en-us" in event.message
