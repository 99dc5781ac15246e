"""faster-whisper on one CTranslate2 Whisper directory (config.json, model.bin, tokenizer.json).

The upload arrives as a file path; PyAV (through faster-whisper's ``decode_audio``) decodes
any container a browser or phone records and resamples it to 16 kHz mono. The file is deleted
as soon as it is decoded. Segments go out one frame each as the decoder yields them, so a
stream shows text before the whole file is done, and a cancel lands between two segments.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from corral.child.runtime import Job, RequestFailed
from corral.protocol.messages import ChildKind, FinishReason, Ready, Usage
from corral.protocol.speech import Segment, Transcribe, TranscriptionStarted, Word

log = logging.getLogger("corral.child.whisper")

SAMPLE_RATE = 16000
# OpenAI's temperature 0 means "start greedy, raise the temperature when decoding fails its
# log-probability and compression checks": faster-whisper's fallback ladder does exactly that.
FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
WHISPER_N_CTX = 448  # Whisper's decoder context, in tokens


def decode_upload(path: str) -> Any:
    """The upload as 16 kHz mono float32 samples; anything PyAV cannot read is a client error."""
    import av
    from faster_whisper.audio import decode_audio

    try:
        audio = decode_audio(path, sampling_rate=SAMPLE_RATE)
    except (av.FFmpegError, IndexError, ValueError) as exc:
        # IndexError: a container without an audio stream (a video, a picture).
        raise RequestFailed(
            "invalid_audio", f"the file is not audio in a format Corral can decode ({exc})"
        ) from None
    finally:
        _unlink(path)
    if audio.size == 0:
        raise RequestFailed("invalid_audio", "the file holds no audio samples")
    return audio


def physical_cores() -> int:
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


@dataclass
class WhisperBackend:
    model_path: str
    model_id: str
    device: str = "auto"  # auto, cpu or cuda
    compute_type: str | None = None  # default: int8 on CPU, float16 on CUDA
    cpu_threads: int = 0  # 0: every physical core (CTranslate2's own default is 4)
    concurrency: int = 1  # one decoder; a second request waits in the child's queue
    kind: ChildKind = "whisper"
    capabilities: tuple[str, ...] = ("transcription", "translation")
    _model: Any = field(default=None, init=False, repr=False)
    _multilingual: bool = field(default=True, init=False)

    def load(self, progress: Callable[[float, str], None]) -> Ready:
        import ctranslate2
        from faster_whisper import WhisperModel

        device = self.device
        if device == "auto":
            device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
        try:
            compute_type = self._open(WhisperModel, device, progress)
        except (RuntimeError, ValueError) as exc:
            if self.device != "auto" or device == "cpu":
                raise
            # A GPU is visible but its CUDA libraries (cuBLAS, cuDNN) are not installed:
            # "auto" means the best that works, so fall back to the CPU rather than fail.
            log.warning("cannot load on cuda (%s); loading on cpu", exc)
            device = "cpu"
            compute_type = self._open(WhisperModel, device, progress)
        self._multilingual = bool(self._model.model.is_multilingual)
        log.info(
            "loaded %s on %s (%s), multilingual=%s",
            self.model_path,
            device,
            compute_type,
            self._multilingual,
        )
        return Ready(model=self.model_id, n_ctx=WHISPER_N_CTX)

    def _open(self, model_class: Any, device: str, progress: Callable[[float, str], None]) -> str:
        compute_type = self.compute_type or ("float16" if device == "cuda" else "int8")
        progress(0.1, f"loading on {device} as {compute_type}")
        # CTranslate2 takes 0 as 4 threads: too many on two cores, a quarter of sixteen.
        threads = self.cpu_threads or physical_cores()
        log.info("%d CPU threads", threads)
        # local_files_only: a directory without tokenizer.json must fail here, not go online.
        self._model = model_class(
            self.model_path,
            device=device,
            compute_type=compute_type,
            cpu_threads=threads,
            local_files_only=True,
        )
        return compute_type

    def generate(self, job: Job[Transcribe]) -> tuple[FinishReason, Usage]:
        request = job.request
        if not self._multilingual and request.language not in (None, "en"):
            _unlink(request.path)
            raise RequestFailed(
                "unsupported_language",
                f"{self.model_id} is an English-only model; it cannot transcribe "
                f"language '{request.language}'",
            )
        audio = decode_upload(request.path)
        temperature: float | tuple[float, ...] = FALLBACK_TEMPERATURES
        if request.temperature:  # a non-zero temperature is used as given, without fallback
            temperature = request.temperature
        try:
            segments, info = self._model.transcribe(
                audio,
                language=request.language,
                task=request.task,
                beam_size=request.beam_size or 5,
                temperature=temperature,
                initial_prompt=request.prompt or None,
                vad_filter=request.vad_filter,
                word_timestamps=request.word_timestamps,
            )
        except ValueError as exc:  # an unknown language code, say
            raise RequestFailed("invalid_request", str(exc)) from None
        job.channel.send(
            TranscriptionStarted(
                request_id=request.request_id,
                duration=float(info.duration),
                language=info.language,
                language_probability=min(1.0, max(0.0, float(info.language_probability))),
            )
        )
        return self._stream(job, segments)

    def _stream(self, job: Job[Transcribe], segments: Iterable[Any]) -> tuple[FinishReason, Usage]:
        tokens = 0
        for index, segment in enumerate(segments):
            if job.cancelled.is_set():
                return "cancelled", Usage(prompt_tokens=0, completion_tokens=tokens)
            tokens += len(segment.tokens)
            job.channel.send(_segment_frame(job.request_id, index, segment))
        return "stop", Usage(prompt_tokens=0, completion_tokens=tokens)


def _segment_frame(request_id: str, index: int, segment: Any) -> Segment:
    words = tuple(
        Word(
            start=float(w.start),
            end=float(w.end),
            word=w.word,
            probability=float(w.probability),
        )
        for w in segment.words or ()
    )
    return Segment(
        request_id=request_id,
        id=index,
        seek=int(segment.seek),
        start=float(segment.start),
        end=float(segment.end),
        text=segment.text,
        tokens=tuple(int(t) for t in segment.tokens),
        temperature=float(segment.temperature or 0.0),
        avg_logprob=float(segment.avg_logprob),
        compression_ratio=float(segment.compression_ratio),
        no_speech_prob=float(segment.no_speech_prob),
        words=words,
    )
