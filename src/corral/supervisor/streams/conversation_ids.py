"""Conversation ids as clients send them in ``X-Conversation-Id``: what is a valid one.

Two rules. A saved conversation's id (``/api/conversations/{id}``) is 1-128 characters of
``[A-Za-z0-9._:-]``. A stream's id also takes ``/`` as llama-server's does, for ids such as
``conv/model`` or ``user/chat-7``: only as a separator of non-empty segments that are not
``.`` or ``..``, so no id reads as an absolute, empty-segment or parent path wherever a
client, proxy or log puts it.
"""

from __future__ import annotations

import re

MAX_CONVERSATION_ID = 128
_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_STREAM_ID_RE = re.compile(r"[A-Za-z0-9._:/-]{1,128}")


class InvalidConversationId(ValueError):
    """A conversation id with a bad length or character (the route answers 400)."""


def validate_conversation_id(value: str) -> str:
    """Return ``value`` if it is 1 to 128 characters of ``[A-Za-z0-9._:-]``, else raise."""
    _check(value, _ID_RE, ". _ : -")
    return value


def validate_stream_id(value: str) -> str:
    """Return ``value`` if it is a valid conversation id or such ids joined by ``/``."""
    _check(value, _STREAM_ID_RE, ". _ : - /")
    if "/" in value and any(part in ("", ".", "..") for part in value.split("/")):
        raise InvalidConversationId(
            "conversation id: '/' separates non-empty parts that are not '.' or '..'"
        )
    return value


def _check(value: str, pattern: re.Pattern[str], punctuation: str) -> None:
    if not isinstance(value, str):
        raise InvalidConversationId("conversation id must be a string")
    # fullmatch with an ASCII class: unicode letters and digits are refused, as is "\n".
    if pattern.fullmatch(value) is None:
        if not value:
            raise InvalidConversationId("conversation id must not be empty")
        if len(value) > MAX_CONVERSATION_ID:
            raise InvalidConversationId(
                f"conversation id is {len(value)} characters; at most "
                f"{MAX_CONVERSATION_ID} are allowed"
            )
        raise InvalidConversationId(
            f"conversation id may contain only ASCII letters, digits and the characters "
            f"{punctuation}"
        )
