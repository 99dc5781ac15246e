"""The multipart upload of a transcription: text fields in memory, the file on disk.

The file streams into a private temp file (never whole into memory) and is cut off at the
size limit with a 413, before any model is involved. The whisper child reads the file by its
path and deletes it; ``Upload.discard`` is the supervisor's own clean-up for the paths where
the child never saw it (a bad field, a cancel, a crash).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import BodyPartReader, web

from corral.supervisor.errors import BadRequest, PayloadTooLarge

MAX_FIELD_BYTES = 64 << 10
_CHUNK = 256 << 10
# The form's other fields and the multipart framing ride on top of the file.
_FORM_OVERHEAD = 1 << 20


@dataclass
class Upload:
    fields: dict[str, list[str]] = field(default_factory=dict)
    path: Path | None = None
    filename: str | None = None
    size: int = 0

    def discard(self) -> None:
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the audio file is larger than the limit of {limit} bytes", param="file"
    )


async def read_upload(request: web.Request, directory: Path, limit: int) -> Upload:
    """Read the form; the caller must ``discard()`` the upload when the request ends."""
    if request.content_length is not None and request.content_length > limit + _FORM_OVERHEAD:
        raise _too_large(limit)
    if not request.content_type.startswith("multipart/form-data"):
        raise BadRequest(
            "send the audio as multipart/form-data with a 'file' field", code="invalid_body"
        )
    upload = Upload()
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or not part.name:
                raise BadRequest("a form part has no name", code="invalid_body")
            if part.name == "file":
                await _save_file(upload, part, directory, limit)
            else:
                value = await part.read(decode=False)
                if len(value) > MAX_FIELD_BYTES:
                    raise BadRequest(f"{part.name} is too long", param=part.name)
                upload.fields.setdefault(part.name, []).append(value.decode())
    except BaseException:
        upload.discard()
        raise
    if upload.path is None:
        raise BadRequest("the form has no 'file' field with the audio", param="file")
    if upload.size == 0:
        upload.discard()
        raise BadRequest("the audio file is empty", param="file", code="invalid_audio")
    return upload


def clear_uploads(directory: Path) -> None:
    for stale in directory.glob("upload-*"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()


def _temp_file(directory: Path) -> tuple[int, str]:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return tempfile.mkstemp(prefix="upload-", dir=directory)


async def _save_file(upload: Upload, part: BodyPartReader, directory: Path, limit: int) -> None:
    if upload.path is not None:
        raise BadRequest("the form has more than one file", param="file")
    fd, name = await asyncio.to_thread(_temp_file, directory)
    upload.path, upload.filename = Path(name), part.filename
    with os.fdopen(fd, "wb") as out:
        while chunk := await part.read_chunk(_CHUNK):
            upload.size += len(chunk)
            if upload.size > limit:
                raise _too_large(limit)
            out.write(chunk)
