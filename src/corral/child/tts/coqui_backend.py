"""Coqui TTS (``coqui-tts``) on one model directory: VITS or XTTS (``model.pth`` + ``config.json``).

The text is split into sentences with the model's own segmenter (pySBD, per language), and
each sentence is synthesised, encoded (``encoder.py``, as for Piper) and sent at once, so the
first sound leaves before the rest is synthesised; a cancel lands between sentences.

XTTS needs a real torchaudio (see ``torch_audio_stand_ins.py``); without one its load fails
saying so.

Quality presets (``QUALITY``) map to real synthesis settings: for VITS the prior and
duration noise scales (``normal`` is what the model was trained with; lower noise is steadier
speech with fewer artefacts and less variation, 0 makes it deterministic); for XTTS the GPT's
beam count (1, 2, 4), which costs time in proportion.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from corral.child.runtime import Job, RequestFailed
from corral.child.tts.encoder import AudioEncoder
from corral.child.tts.piper_backend import send_audio
from corral.child.tts.torch_audio_stand_ins import ensure_torch_audio
from corral.protocol.messages import ChildKind, FinishReason, Ready, Usage
from corral.protocol.speech import Speak, SpeechQuality, SpeechStarted

log = logging.getLogger("corral.child.tts")

MODELS = ("vits", "xtts")
# preset -> (factor on VITS's inference noise scales, XTTS beams)
QUALITY: dict[SpeechQuality, tuple[float, int]] = {
    "normal": (1.0, 1),
    "better": (0.5, 2),
    "best": (0.0, 4),
}
# Config keys that name files; a released model's config often keeps its training paths.
_FILE_KEYS = ("speakers_file", "language_ids_file", "d_vector_file")


def model_config(directory: Path) -> dict[str, Any]:
    config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    if not isinstance(config, dict):
        raise ValueError(f"{directory / 'config.json'} is not a JSON object")
    return config


def _relocated(config: dict[str, Any], directory: Path) -> bool:
    """Point file settings that do not exist at the file of that name in ``directory``."""
    changed = False
    for table in (config, config.get("model_args") or {}):
        for key in _FILE_KEYS:
            value = table.get(key)
            if isinstance(value, str) and value and not Path(value).is_file():
                local = directory / Path(value).name
                if local.is_file():
                    table[key], changed = str(local), True
    return changed


@dataclass
class CoquiBackend:
    model_dir: str
    model_id: str
    use_cuda: bool = False
    concurrency: int = 1
    kind: ChildKind = "tts"
    capabilities: tuple[str, ...] = ("speech",)
    _synth: Any = field(default=None, init=False, repr=False)
    _model: str = field(default="", init=False)
    speakers: tuple[str, ...] = field(default=(), init=False)
    languages: tuple[str, ...] = field(default=(), init=False)

    def load(self, progress: Callable[[float, str], None]) -> Ready:
        stood_in = ensure_torch_audio()
        if stood_in:
            log.info("using stand-ins for %s (not installed with a matching torch)", stood_in)
        from TTS.utils.synthesizer import Synthesizer

        directory = Path(self.model_dir)
        config = model_config(directory)
        self._model = str(config.get("model", ""))
        if self._model not in MODELS:
            raise ValueError(
                f"{directory} is a Coqui '{self._model}' model; Corral serves VITS and XTTS"
            )
        if self._model == "xtts" and "torchaudio" in stood_in:
            # Its HiFi-GAN decoder builds a torchaudio MelSpectrogram (weights in the
            # checkpoint) when constructed, even for a built-in speaker: no stand-in will do.
            raise ValueError(
                "XTTS needs torchaudio (its decoder holds a torchaudio MelSpectrogram), and none "
                "that imports with this torch is installed; VITS models work without it"
            )
        progress(0.1, f"loading {self._model}")
        with config_file(config, directory) as config_path:
            checkpoint = directory if self._model == "xtts" else directory / "model.pth"
            self._synth = Synthesizer(
                tts_checkpoint=checkpoint, tts_config_path=config_path, use_cuda=self.use_cuda
            )
        model = self._synth.tts_model
        manager = getattr(model, "speaker_manager", None)
        self.speakers = tuple(getattr(manager, "speaker_names", None) or ())
        if self._model == "xtts":
            self.languages = tuple(config.get("languages") or ())
        elif model.language_manager.num_languages > 1:
            self.languages = tuple(model.language_manager.language_names)
        log.info("speakers %s, languages %s", self.speakers, self.languages)
        return Ready(model=self.model_id, n_ctx=0)

    @property
    def voice_name(self) -> str:
        """The one voice of a single-speaker model: its directory's name."""
        return Path(self.model_dir).name

    def _speaker(self, voice: str | None) -> str | None:
        if not self.speakers:
            if voice in (None, self.voice_name):
                return None
            known = self.voice_name
        elif voice is None:
            return self.speakers[0]
        elif voice in self.speakers:
            return voice
        else:
            known = ", ".join(self.speakers)
        raise RequestFailed(
            "invalid_voice", f"{self.model_id} has no voice '{voice}'; it has {known}"
        )

    def _language(self, language: str | None) -> str | None:
        if not self.languages:
            if language is None:
                return None
            raise RequestFailed(
                "invalid_language", f"{self.model_id} speaks one language; it takes no language"
            )
        if language is None:
            return "en" if "en" in self.languages else self.languages[0]
        if language not in self.languages:
            raise RequestFailed(
                "invalid_language",
                f"{self.model_id} has no language '{language}'; it has {', '.join(self.languages)}",
            )
        return language

    def generate(self, job: Job[Speak]) -> tuple[FinishReason, Usage]:
        request = job.request
        speaker = self._speaker(request.voice)
        language = self._language(request.language)
        rate = int(self._synth.output_sample_rate)
        sentences = self._synth.split_into_sentences(request.text, language) or [request.text]
        job.channel.send(
            SpeechStarted(
                request_id=request.request_id,
                sample_rate=rate,
                voice=speaker or self.voice_name,
            )
        )
        encoder = AudioEncoder(request.format, rate)
        done = 0
        with self._settings(request) as extra:
            for sentence in sentences:
                if job.cancelled.is_set():
                    return "cancelled", Usage(prompt_tokens=0, completion_tokens=done)
                wav = self._synth.tts(
                    sentence,
                    speaker_name=speaker,
                    language_name=language,
                    split_sentences=False,
                    **extra,
                )
                samples = _int16(wav)
                send_audio(job, encoder.encode(samples), samples.shape[0] / rate)
                done += 1
        send_audio(job, encoder.finish(), 0.0)
        return "stop", Usage(prompt_tokens=0, completion_tokens=done)

    @contextlib.contextmanager
    def _settings(self, request: Speak) -> Iterator[dict[str, Any]]:
        """Speed and quality for one request: XTTS takes them as arguments; VITS reads them
        from the model, so they are set for the request and put back after it (one request
        at a time: ``concurrency`` is 1)."""
        noise, beams = QUALITY[request.quality]
        if self._model == "xtts":
            yield {"speed": request.speed, "num_beams": beams}
            return
        model = self._synth.tts_model
        saved = (model.length_scale, model.inference_noise_scale, model.inference_noise_scale_dp)
        # speed 2 means twice as fast: half the phoneme length the model was trained with.
        model.length_scale = saved[0] / request.speed
        model.inference_noise_scale = saved[1] * noise
        model.inference_noise_scale_dp = saved[2] * noise
        try:
            yield {}
        finally:
            model.length_scale, model.inference_noise_scale, model.inference_noise_scale_dp = saved


@contextlib.contextmanager
def config_file(config: dict[str, Any], directory: Path) -> Iterator[Path]:
    """The model's config.json, or a corrected copy when it names files elsewhere."""
    if not _relocated(config, directory):
        yield directory / "config.json"
        return
    with tempfile.TemporaryDirectory(prefix="corral-coqui-") as scratch:
        path = Path(scratch) / "config.json"
        path.write_text(json.dumps(config), encoding="utf-8")
        yield path


def _int16(wav: Any) -> np.ndarray[Any, np.dtype[np.int16]]:
    samples = np.clip(np.asarray(wav, dtype=np.float32), -1.0, 1.0)
    return (samples * 32767.0).astype(np.int16)
