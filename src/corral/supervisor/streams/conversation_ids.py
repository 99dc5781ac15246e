"""Conversation ids as clients send them in ``X-Conversation-Id``: what is a valid one."""

from __future__ import annotations

import re

MAX_CONVERSATION_ID = 128
_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class InvalidConversationId(ValueError):
    """A conversation id with a bad length or character (the route answers 400)."""


def validate_conversation_id(value: str) -> str:
    """Return ``value`` if it is 1 to 128 characters of ``[A-Za-z0-9._:-]``, else raise."""
    if not isinstance(value, str):
        raise InvalidConversationId("conversation id must be a string")
    # fullmatch with an ASCII class: unicode letters and digits are refused, as is "\n".
    if _ID_RE.fullmatch(value) is None:
        if not value:
            raise InvalidConversationId("conversation id must not be empty")
        if len(value) > MAX_CONVERSATION_ID:
            raise InvalidConversationId(
                f"conversation id is {len(value)} characters; at most "
                f"{MAX_CONVERSATION_ID} are allowed"
            )
        raise InvalidConversationId(
            "conversation id may contain only ASCII letters, digits and the characters . _ : -"
        )
    return value
