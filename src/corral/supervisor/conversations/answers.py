"""The supervisor writes a finished answer into its stored conversation itself.

The web UI saves the assistant's message when it sees the end of the stream, but nobody may be
watching then: a phone closed mid-answer, a laptop opened after the end, a tab that came back
after the stream's TTL. So when a resumable generation ends, the supervisor appends the answer
(finished, or stopped with its reason) to the stored conversation of that id and owner.

Once: the answer is appended only while the conversation still ends with a non-assistant
message (the question). The UI's own save replaces the whole message list, question and
answer, so whichever of the two writes comes second, the answer is there one time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

from corral.supervisor.conversations.store import Conversations
from corral.supervisor.models.generation import Generation
from corral.supervisor.streams.sessions import SessionState

log = logging.getLogger("corral.conversations")
_THINK = re.compile(r"^\s*<think>(.*?)(?:</think>|$)", re.DOTALL)


@dataclass
class AnswerRecorder:
    """Collects a resumable generation's text; ``save`` stores it when the generation ends."""

    conversations: Conversations
    owner: str
    conversation_id: str
    parts: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.parts.append(text)

    def message(self, generation: Generation, state: SessionState) -> dict[str, Any] | None:
        raw = "".join(self.parts)
        if not raw.strip():
            return None  # nothing to show: the UI reports a failure without a message
        message: dict[str, Any] = {"role": "assistant", "content": raw.strip()}
        think = _THINK.match(raw)
        if think is not None:  # as the UI stores it: reasoning folded away, apart
            message["reasoning"] = think.group(1).strip()
            message["content"] = raw[think.end() :].strip()
        done = generation.done
        message["finish_reason"] = done.finish_reason if done is not None else state
        stats: dict[str, Any] = {
            "prompt_tokens": generation.prompt_tokens,
            "completion_tokens": generation.completion_tokens,
        }
        if generation.ttft is not None:
            stats["ttft_ms"] = round(generation.ttft * 1000, 3)
        message["stats"] = stats
        message["saved_by"] = "server"
        return message

    async def save(self, generation: Generation, state: SessionState) -> bool:
        """Append the answer if the conversation exists and awaits one; True if it did."""
        message = self.message(generation, state)
        if message is None:
            return False
        try:
            return await asyncio.to_thread(self._append, message)
        except Exception:  # a locked or full database must not break the stream's end
            log.exception("could not save the answer of conversation %r", self.conversation_id)
            return False

    def _append(self, message: dict[str, Any]) -> bool:
        db = self.conversations.store.db
        limits = self.conversations.limits
        db.conn.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute(
                "SELECT messages FROM conversations WHERE owner = ? AND id = ?",
                [self.owner, self.conversation_id],
            ).fetchone()
            messages: list[dict[str, Any]] = json.loads(row[0]) if row is not None else []
            last = messages[-1].get("role") if messages else None
            if row is None or last in (None, "assistant") or len(messages) >= limits.max_messages:
                db.conn.rollback()
                return False
            text = json.dumps([*messages, message], ensure_ascii=False, separators=(",", ":"))
            if len(text.encode()) > limits.max_messages_bytes:
                db.conn.rollback()
                return False
            db.execute(
                "UPDATE conversations SET messages = ?, updated_at = ? WHERE owner = ? AND id = ?",
                [text, time.time(), self.owner, self.conversation_id],
            )
            db.conn.commit()
        except BaseException:
            db.conn.rollback()
            raise
        return True
