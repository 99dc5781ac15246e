"""``/v1/audio/*``: thin handlers over the upload, the audio job and the response formats.

POST /v1/audio/transcriptions   multipart: file, model, language, prompt, temperature,
                                response_format, timestamp_granularities[], stream
POST /v1/audio/translations     multipart: file, model, prompt, temperature, response_format
POST /v1/audio/speech           JSON: model, input, voice, speed, response_format,
                                stream_format (audio | sse); Corral's language, quality
GET  /v1/audio/voices           every tts model's voices
"""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from collections.abc import AsyncGenerator

from aiohttp import web

from corral.protocol.speech import (
    AudioChunk,
    AudioTask,
    Segment,
    SpeechStarted,
    TranscriptionStarted,
)
from corral.supervisor.appkeys import CATALOG, FACTS, MANAGER, PRINCIPAL, SETTINGS
from corral.supervisor.audio.job import AudioJob
from corral.supervisor.audio.schemas import SpeechRequest, parse_form
from corral.supervisor.audio.transcripts import (
    Transcript,
    delta_event,
    done_event,
    render,
    sse_event,
)
from corral.supervisor.audio.upload import clear_uploads, read_upload
from corral.supervisor.audio.voices import languages_of, voices_of
from corral.supervisor.errors import BadGateway, BadRequest, CorralError, ModelNotFound
from corral.supervisor.http.json_body import read_body
from corral.supervisor.http.request_facts import RequestFacts
from corral.supervisor.http.sse import send_sse
from corral.supervisor.models.catalog import DEFAULT_ALIASES, ModelEntry
from corral.supervisor.models.speech_models import model_kind

log = logging.getLogger("corral.api")
CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg; codecs=opus",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm; rate=24000",
}
_TRANSLATION_FIELDS = ("language", "timestamp_granularities[]", "stream")


def _allowed(request: web.Request, model_id: str) -> bool:
    principal = request.get(PRINCIPAL)
    return principal is None or principal.allows_model(model_id)


def speech_model(request: web.Request, name: str | None, backend: str) -> ModelEntry:
    """The model a request names, which must be of ``backend``; without a name, the first
    one of that backend (bundled ones first) that the caller may use."""
    catalog = request.app[CATALOG]
    if name is None or name in DEFAULT_ALIASES:
        entries = sorted(catalog.entries().values(), key=lambda e: e.source != "bundled")
        for entry in entries:
            if entry.backend == backend and _allowed(request, entry.id):
                return entry
        raise ModelNotFound(f"no {model_kind(backend)} model is installed", param="model")
    entry = catalog.resolve(name)
    if not _allowed(request, entry.id):
        raise ModelNotFound(f"the model '{name}' does not exist", param="model")
    if entry.backend != backend:
        raise BadRequest(
            f"'{entry.id}' is a {model_kind(entry.backend)} model, not a "
            f"{model_kind(backend)} model",
            param="model",
            code="wrong_model_kind",
        )
    return entry


async def transcriptions(request: web.Request) -> web.StreamResponse:
    return await _transcribe(request, "transcribe")


async def translations(request: web.Request) -> web.StreamResponse:
    return await _transcribe(request, "translate")


async def _transcribe(request: web.Request, task: AudioTask) -> web.StreamResponse:
    settings = request.app[SETTINGS].current
    upload = await read_upload(request, settings.data_dir / "uploads", settings.max_audio_bytes)
    job: AudioJob | None = None
    try:
        if task == "translate":
            for name in _TRANSLATION_FIELDS:
                if name in upload.fields:
                    raise BadRequest(f"translations take no {name}", param=name)
        form = parse_form(upload.fields)
        entry = speech_model(request, form.model, "whisper")
        assert upload.path is not None
        message = form.to_transcribe(uuid.uuid4().hex, str(upload.path), task)
        job = AudioJob(request.app[MANAGER], entry, message)
        started = await job.start()
        if not isinstance(started, TranscriptionStarted):
            raise BadGateway(f"unexpected {started.type} frame from the model process")
        facts = request[FACTS]
        facts.model, facts.audio_seconds_in = entry.id, started.duration
        transcript = Transcript(task, started)
        if form.stream:
            return await send_sse(request, _transcript_events(job, transcript))
        async for event in job.events():
            if isinstance(event, Segment):
                transcript.segments.append(event)
        facts.completion_tokens = sum(len(s.tokens) for s in transcript.segments)
        body, content_type = render(transcript, form.response_format, form.granularities)
        return web.Response(text=body, content_type=content_type)
    finally:
        if job is not None:
            await job.close()  # a client that left cancels the decoding in the child
        upload.discard()


async def _transcript_events(job: AudioJob, transcript: Transcript) -> AsyncGenerator[bytes, None]:
    try:
        async for event in job.events():
            if isinstance(event, Segment):
                transcript.segments.append(event)
                yield delta_event(event)
        yield done_event(transcript)
    except CorralError as exc:  # after the 200: the failure goes out as an event
        yield sse_event({"type": "error", **exc.body()})


async def speech(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS].current
    body = await read_body(request, SpeechRequest)
    if len(body.input) > settings.max_speech_input:
        raise BadRequest(
            f"input has {len(body.input)} characters; the limit is {settings.max_speech_input}",
            param="input",
            code="input_too_long",
        )
    entry = speech_model(request, body.model, "tts")
    voices = voices_of(entry.path) if entry.path is not None else ()
    # No voices known from the files (XTTS keeps its speakers in a torch file): the child
    # checks the name, and refuses an unknown one the same way.
    if body.voice is not None and voices and body.voice not in voices:
        raise BadRequest(
            f"{entry.id} has no voice '{body.voice}'; it has {', '.join(voices)}",
            param="voice",
            code="invalid_voice",
        )
    job = AudioJob(request.app[MANAGER], entry, body.to_speak(uuid.uuid4().hex, body.voice))
    try:
        started = await job.start()
        if not isinstance(started, SpeechStarted):
            raise BadGateway(f"unexpected {started.type} frame from the model process")
        facts = request[FACTS]
        facts.model, facts.audio_seconds_out = entry.id, 0.0
        if body.stream_format == "sse":
            return await send_sse(request, _speech_events(job, facts))
        return await _send_audio(request, job, CONTENT_TYPES[body.response_format], facts)
    finally:
        await job.close()


async def _send_audio(
    request: web.Request, job: AudioJob, content_type: str, facts: RequestFacts
) -> web.StreamResponse:
    """Chunked audio, each sentence written as the child sends it: playback starts early."""
    response = web.StreamResponse(headers={"Content-Type": content_type})
    response.enable_chunked_encoding()
    await response.prepare(request)
    try:
        async for event in job.events():
            if isinstance(event, AudioChunk):
                facts.audio_seconds_out = (facts.audio_seconds_out or 0.0) + event.seconds
                await response.write(base64.b64decode(event.data))
    except CorralError as exc:
        # The 200 and some audio are out: all we can do is end the body early, and say why.
        log.warning("speech failed midway: %s", exc.message, extra={"model": job.entry.id})
    await response.write_eof()
    return response


async def _speech_events(job: AudioJob, facts: RequestFacts) -> AsyncGenerator[bytes, None]:
    try:
        async for event in job.events():
            if isinstance(event, AudioChunk):
                facts.audio_seconds_out = (facts.audio_seconds_out or 0.0) + event.seconds
                yield sse_event({"type": "speech.audio.delta", "audio": event.data})
        yield sse_event({"type": "speech.audio.done"})
    except CorralError as exc:
        yield sse_event({"type": "error", **exc.body()})


async def voices(request: web.Request) -> web.Response:
    wanted = request.query.get("model")
    data = []
    for entry in request.app[CATALOG].entries().values():
        if entry.backend != "tts" or entry.path is None or not _allowed(request, entry.id):
            continue
        if wanted is not None and wanted != entry.id and wanted not in entry.preset.aliases:
            continue
        languages = {"languages": list(langs)} if (langs := languages_of(entry.path)) else {}
        data += [
            {"id": v, "object": "voice", "model": entry.id, **languages}
            for v in voices_of(entry.path)
        ]
    return web.json_response({"object": "list", "data": data})


async def _clear_uploads(app: web.Application) -> None:
    """Uploads a crash left behind (the child and the handler both died before deleting)."""
    await asyncio.to_thread(clear_uploads, app[SETTINGS].current.data_dir / "uploads")


def setup(app: web.Application) -> None:
    app.on_startup.append(_clear_uploads)
    app.router.add_post("/v1/audio/transcriptions", transcriptions)
    app.router.add_post("/v1/audio/translations", translations)
    app.router.add_post("/v1/audio/speech", speech)
    app.router.add_get("/v1/audio/voices", voices)
