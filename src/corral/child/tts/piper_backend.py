"""Piper (ONNX) on one voice: ``voice.onnx`` beside ``voice.onnx.json``.

Piper splits the text into sentences as it phonemises (espeak-ng, whose data piper-tts ships)
and synthesises one sentence at a time; each sentence is encoded and sent at once, so the
first sound leaves before the rest of the text is synthesised. A cancel lands between
sentences.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from corral.child.runtime import Job, RequestFailed
from corral.child.tts.encoder import AudioEncoder
from corral.protocol.messages import ChildKind, FinishReason, Ready, Usage
from corral.protocol.speech import (
    AUDIO_CHUNK_BYTES,
    AudioChunk,
    Speak,
    SpeechQuality,
    SpeechStarted,
)

log = logging.getLogger("corral.child.tts")

# A Piper voice is a VITS model: the quality presets scale its noise like Coqui's VITS
# (coqui_backend.QUALITY): normal is the voice's own setting, lower is steadier.
NOISE_FACTOR: dict[SpeechQuality, float] = {"normal": 1.0, "better": 0.5, "best": 0.0}


@dataclass
class PiperBackend:
    model_path: str
    model_id: str
    voice_name: str  # the one voice of a single-speaker model (the file's stem)
    use_cuda: bool = False
    concurrency: int = 1
    kind: ChildKind = "tts"
    capabilities: tuple[str, ...] = ("speech",)
    _voice: Any = field(default=None, init=False, repr=False)

    def load(self, progress: Callable[[float, str], None]) -> Ready:
        from piper import PiperVoice

        progress(0.1, "loading voice")
        self._voice = PiperVoice.load(self.model_path, use_cuda=self.use_cuda)
        return Ready(model=self.model_id, n_ctx=0)

    def _speaker(self, voice: str | None) -> int | None:
        speakers: dict[str, int] = dict(self._voice.config.speaker_id_map or {})
        if not speakers and voice in (None, self.voice_name):
            return None
        if voice is None:
            return int(self._voice.config.default_speaker_id)
        if voice in speakers:
            return speakers[voice]
        known = ", ".join(speakers) or self.voice_name
        raise RequestFailed(
            "invalid_voice", f"{self.model_id} has no voice '{voice}'; it has {known}"
        )

    def _check_language(self, language: str | None) -> None:
        """A Piper voice speaks one language: a request may name it (``en``, ``en_US``)."""
        code = str(self._voice.config.espeak_voice or "")
        if language is None or language.replace("-", "_").lower() in _names(code):
            return
        raise RequestFailed(
            "invalid_language",
            f"{self.model_id} speaks only '{code}'; it cannot speak '{language}'",
        )

    def generate(self, job: Job[Speak]) -> tuple[FinishReason, Usage]:
        from piper import SynthesisConfig

        request = job.request
        speaker = self._speaker(request.voice)
        self._check_language(request.language)
        config = self._voice.config
        rate = int(config.sample_rate)
        noise = NOISE_FACTOR[request.quality]
        # speed 2 means twice as fast: half the phoneme length the voice was trained with.
        synthesis = SynthesisConfig(
            speaker_id=speaker,
            length_scale=float(config.length_scale) / request.speed,
            noise_scale=float(config.noise_scale) * noise,
            noise_w_scale=float(config.noise_w_scale) * noise,
        )
        job.channel.send(
            SpeechStarted(
                request_id=request.request_id,
                sample_rate=rate,
                voice=request.voice or self.voice_name,
            )
        )
        encoder = AudioEncoder(request.format, rate)
        sentences = 0
        for chunk in self._voice.synthesize(request.text, synthesis):
            if job.cancelled.is_set():
                return "cancelled", Usage(prompt_tokens=0, completion_tokens=sentences)
            samples = chunk.audio_int16_array
            send_audio(job, encoder.encode(samples), samples.shape[0] / rate)
            sentences += 1
        send_audio(job, encoder.finish(), 0.0)
        return "stop", Usage(prompt_tokens=0, completion_tokens=sentences)


def _names(code: str) -> set[str]:
    """The names a request may give a voice's espeak language: en-us is en_us and en."""
    code = code.replace("-", "_").lower()
    return {code, code.split("_")[0]} if code else set()


def send_audio(job: Job[Speak], data: bytes, seconds: float) -> None:
    """Send ``data`` in frames under the frame limit; ``seconds`` goes with the first."""
    for offset in range(0, len(data), AUDIO_CHUNK_BYTES):
        piece = data[offset : offset + AUDIO_CHUNK_BYTES]
        job.channel.send(
            AudioChunk(
                request_id=job.request_id,
                data=base64.b64encode(piece).decode("ascii"),
                seconds=seconds if offset == 0 else 0.0,
            )
        )
