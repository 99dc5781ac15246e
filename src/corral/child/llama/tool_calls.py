"""Tool calls parsed out of a model's text as it streams, for each template family.

Text outside a call goes on as content; a call's markup never reaches the content (not even
when max_tokens cuts it short). Once a call has said ``{"name": "f", "arguments":`` its id
and name go out, then its arguments' JSON text as it comes (what OpenAI streams); a call
written otherwise (a Mistral array) goes out whole when it closes. Text that only might open
a call (``<tool_`` at the end of a piece) is held back until the next piece says which it
is, as stop strings are.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from corral.child.llama.tool_family import Opener, ToolFamily
from corral.protocol.tools import ToolCallDelta

_DECODER = json.JSONDecoder()
# The head of a call whose arguments can stream: its name is known, its arguments begin.
_CALL_HEAD = re.compile(r'\s*\{\s*"name"\s*:\s*"([^"\\]+)"\s*,\s*"(?:arguments|parameters)"\s*:\s*')


@dataclass
class _Arguments:
    """A call's arguments object being streamed: where it is in the held text, how deep."""

    index: int
    pos: int
    depth: int = 0
    in_string: bool = False
    escaped: bool = False
    done: bool = False

    def advance(self, held: str) -> str:
        """The arguments' text that arrived since the last call, up to their closing brace."""
        begin = i = self.pos
        while i < len(held) and not self.done:
            c = held[i]
            i += 1
            if self.in_string:
                if self.escaped:
                    self.escaped = False
                elif c == "\\":
                    self.escaped = True
                elif c == '"':
                    self.in_string = False
            elif c == '"':
                self.in_string = True
            elif c in "{[":
                self.depth += 1
            elif c in "}]":
                self.depth -= 1
                self.done = self.depth == 0
        self.pos = i
        return held[begin:i]


def new_call_id() -> str:
    return "call_" + secrets.token_hex(12)


@dataclass
class ParsedCall:
    name: str
    arguments: str


def calls_in(opener: Opener, body: str) -> list[ParsedCall] | None:
    """The calls in one complete block (``body``: after its opener), or None when it is not a
    call (then it stays content)."""
    text = body.strip()
    if opener.closer and text.endswith(opener.closer):
        text = text[: -len(opener.closer)].strip()
    try:
        value: Any = json.loads(text)
    except ValueError:
        return None
    items = value if isinstance(value, list) else [value]
    calls = [_call(item) for item in items]
    return None if not calls or any(c is None for c in calls) else [c for c in calls if c]


def _call(item: Any) -> ParsedCall | None:
    if not isinstance(item, dict):
        return None
    if isinstance(item.get("function"), dict):  # {"type": "function", "function": {...}}
        item = item["function"]
    name = item.get("name")
    arguments = item.get("arguments", item.get("parameters", {}))
    if not isinstance(name, str) or not name:
        return None
    if isinstance(arguments, str):  # already JSON text (some models quote it)
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
    if not isinstance(arguments, dict):
        return None
    return ParsedCall(name, json.dumps(arguments, ensure_ascii=False))


def _json_end(text: str) -> int | None:
    """Where the JSON value at the start of ``text`` ends, if it is complete."""
    stripped = len(text) - len(text.lstrip())
    try:
        _, end = _DECODER.raw_decode(text, stripped)
    except ValueError:
        return None
    return end


@dataclass
class ToolCallParser:
    """Splits one choice's text into content and tool calls; ``push`` as text arrives."""

    family: ToolFamily
    parallel: bool = True
    calls: int = 0
    _held: str = ""
    _inside: Opener | None = None
    """The opener of the call being read."""
    _at_start: bool = True
    """Nothing but whitespace has been said yet (openers that count only at the start)."""
    _done: bool = False
    _out: list[ToolCallDelta] = field(default_factory=list)
    _streaming: _Arguments | None = None

    def push(self, text: str) -> tuple[str, list[ToolCallDelta]]:
        self._held += text
        content = self._scan(final=False)
        out, self._out = self._out, []
        return content, out

    def flush(self) -> tuple[str, list[ToolCallDelta]]:
        """At the end. A call cut short (by max_tokens) is dropped: its markup is not
        content, and its JSON is not whole. So is the start of an opener after calls."""
        content = self._scan(final=not self.calls)
        if self._inside is not None and not self.calls and self._inside.at_start:
            content += self._held  # a bare JSON or a fence that never closed: it was text
        self._held = ""
        out, self._out = self._out, []
        return content, out

    def _scan(self, *, final: bool) -> str:
        content: list[str] = []
        while self._held:
            if self._done:  # after the last call a model may only say whitespace: drop it
                content.append(self._held.strip())
                self._held = ""
                break
            if self._inside is None:
                found, keep = self._find_opener()
                if found is None:
                    emit = self._held if final else self._held[: len(self._held) - keep]
                    self._held = self._held[len(emit) :]
                    self._say(content, emit)
                    break
                cut, self._inside = found
                before = self._held[:cut]
                if before.strip() or not self._at_start:  # no blank content before a call
                    self._say(content, before)
                self._held = self._held[cut:]
            opener = self._inside
            end = self._block_end(opener)
            if end is None:
                self._stream_arguments(opener)
                break
            self._stream_arguments(opener)
            streamed, self._streaming = self._streaming, None
            block, self._held = self._held[:end], self._held[end:]
            self._inside = None
            if streamed is not None:  # it went out as it came: one object, one call
                self._done = not self.parallel
                continue
            calls = calls_in(opener, block[opener.body_start :])
            if calls is None:
                self._say(content, block)
                continue
            for call in calls:
                self._add(call)
            self._done = not self.parallel
        return "".join(content)

    def _say(self, content: list[str], text: str) -> None:
        if text:
            content.append(text)
            if text.strip():
                self._at_start = False

    def _find_opener(self) -> tuple[tuple[int, Opener] | None, int]:
        """Where the next opener starts in the held text (and which), or None and how many
        trailing characters to hold back (they might be the start of one)."""
        held, keep = self._held, 0
        lead = len(held) - len(held.lstrip())
        for opener in self.family.openers:
            if opener.at_start:
                if not self._at_start:
                    continue
                rest = held[lead:]
                if rest.startswith(opener.text):
                    return (lead, opener), 0
                if opener.text.startswith(rest):  # whitespace or a part of it so far: wait
                    keep = max(keep, len(held))
                continue
            i = held.find(opener.text)
            if i >= 0:
                return (i, opener), 0
            for length in range(min(len(opener.text) - 1, len(held)), keep, -1):
                if held.endswith(opener.text[:length]):
                    keep = length
                    break
        return None, keep

    def _stream_arguments(self, opener: Opener) -> None:
        if self._streaming is None:
            if self.family.name == "mistral":
                return  # an array of calls: each goes out whole
            head = _CALL_HEAD.match(self._held, opener.body_start)
            if head is None or not self._held.startswith("{", head.end()):
                return
            self._streaming = _Arguments(self.calls, head.end())
            self.calls += 1
            self._out.append(
                ToolCallDelta(index=self._streaming.index, id=new_call_id(), name=head.group(1))
            )
        if text := self._streaming.advance(self._held):
            self._out.append(ToolCallDelta(index=self._streaming.index, arguments=text))

    def _block_end(self, opener: Opener) -> int | None:
        body_start = opener.body_start
        if opener.closer:
            i = self._held.find(opener.closer, body_start)
            return None if i < 0 else i + len(opener.closer)
        end = _json_end(self._held[body_start:])
        return None if end is None else body_start + end

    def _add(self, call: ParsedCall) -> None:
        index = self.calls
        self.calls += 1
        self._out.append(ToolCallDelta(index=index, id=new_call_id(), name=call.name))
        self._out.append(ToolCallDelta(index=index, arguments=call.arguments))
