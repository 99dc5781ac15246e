"""The text of a PDF that a person attaches to a message, extracted with pypdf.

The web UI sends the file's bytes and puts the text into the prompt, as it does with text
files; the model never sees the PDF itself. Extraction is CPU work, so it runs in a thread,
and its output is capped like a text attachment: a scanned PDF (images, no text layer) or an
encrypted one is refused with a reason instead of an empty prompt.
"""

from __future__ import annotations

import asyncio
import io
import logging

from corral.supervisor.errors import BadRequest, PayloadTooLarge

log = logging.getLogger("corral.conversations")

MAX_TEXT_CHARS = 512 * 1024
MAX_PAGES = 2000


def _extract(data: bytes) -> tuple[str, int]:
    from pypdf import PdfReader  # imported on use: the supervisor starts without it
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise BadRequest("the PDF is encrypted; attach an unlocked copy", code="pdf_encrypted")
        pages = reader.pages
        if len(pages) > MAX_PAGES:
            raise PayloadTooLarge(f"the PDF has {len(pages)} pages; at most {MAX_PAGES}")
        texts: list[str] = []
        size = 0
        for page in pages:
            text = page.extract_text() or ""
            size += len(text)
            if size > MAX_TEXT_CHARS:
                raise PayloadTooLarge(
                    f"the PDF's text passes {MAX_TEXT_CHARS // 1024} K characters; attach "
                    "the pages you need",
                    code="pdf_text_too_large",
                )
            texts.append(text.strip())
    except (BadRequest, PayloadTooLarge):
        raise
    except PdfReadError as exc:
        raise BadRequest(f"not a readable PDF: {exc}", code="invalid_pdf") from None
    except Exception as exc:  # a malformed file can trip pypdf anywhere: bad input, not a 500
        log.info("pypdf could not read an attachment: %r", exc)
        raise BadRequest(f"not a readable PDF ({type(exc).__name__})", code="invalid_pdf") from None
    text = "\n\n".join(t for t in texts if t)
    if not text:
        raise BadRequest(
            "the PDF has no text layer (a scan?); it cannot be read as text", code="pdf_no_text"
        )
    return text, len(texts)


async def pdf_text(data: bytes) -> dict[str, object]:
    if not data.startswith(b"%PDF-"):
        raise BadRequest("not a PDF file (it does not start with %PDF-)", code="invalid_pdf")
    text, pages = await asyncio.to_thread(_extract, data)
    return {"text": text, "pages": pages}
