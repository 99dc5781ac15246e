"""Streaming audio encoder on PyAV: PCM in, one sentence at a time; encoded bytes out at once.

Every format is encoded at 24 kHz mono (OpenAI's ``pcm`` is defined as 24 kHz 16-bit little
endian; the others use the same rate so a client can switch format without surprises). The
container writes into a sink that cannot seek, so each muxer emits a streamable layout (no
size fields patched in at the end); ``flush_packets`` makes it hand over every packet at once
instead of filling a 32 KiB buffer first, which would delay the first sound.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from corral.protocol.speech import SPEECH_SAMPLE_RATE, SpeechFormat

# format -> (muxer, encoder)
_CODECS: dict[str, tuple[str, str]] = {
    "mp3": ("mp3", "libmp3lame"),
    "opus": ("ogg", "libopus"),
    "aac": ("adts", "aac"),
    "flac": ("flac", "flac"),
    "wav": ("wav", "pcm_s16le"),
}

# Ogg holds packets until a page spans a second of audio; a sentence's page must go out now.
_MUXER_OPTIONS = {"ogg": {"page_duration": "20000"}}  # microseconds


class _Sink:
    """A write-only file object: PyAV sees no ``seek``, so the output is streamable."""

    def __init__(self) -> None:
        self._data = bytearray()

    def write(self, data: bytes) -> int:
        self._data += data
        return len(data)

    def take(self) -> bytes:
        out = bytes(self._data)
        self._data.clear()
        return out


class AudioEncoder:
    def __init__(self, fmt: SpeechFormat, input_rate: int) -> None:
        import av

        self._input_rate = input_rate
        self._format = fmt
        self._sink = _Sink()
        self._samples_in = 0
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=SPEECH_SAMPLE_RATE)
        self._container: Any = None
        self._stream: Any = None
        if fmt != "pcm":
            muxer, codec = _CODECS[fmt]
            options = _MUXER_OPTIONS.get(muxer, {}) | {"flush_packets": "1"}
            self._container = av.open(self._sink, mode="w", format=muxer, options=options)
            self._stream = self._container.add_stream(codec, rate=SPEECH_SAMPLE_RATE)
            self._stream.layout = "mono"

    def encode(self, samples: np.ndarray[Any, np.dtype[np.int16]]) -> bytes:
        """Encode mono int16 samples at the input rate; returns what the muxer wrote."""
        import av

        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self._input_rate
        frame.pts = self._samples_in
        self._samples_in += samples.shape[0]
        return self._write(self._resampler.resample(frame))

    def finish(self) -> bytes:
        """Flush the resampler, the encoder and the muxer's trailer."""
        tail = self._write(self._resampler.resample(None))
        if self._container is None:
            return tail
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        return tail + self._sink.take()

    def _write(self, frames: list[Any]) -> bytes:
        if self._container is None:
            return b"".join(bytes(f.to_ndarray().astype("<i2").tobytes()) for f in frames)
        for frame in frames:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        return self._sink.take()
