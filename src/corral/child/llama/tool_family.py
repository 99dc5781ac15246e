"""The tool-call syntax a chat template teaches its model, picked from the template's text.

The formats follow llama.cpp's ``common/chat.cpp``:

- ``hermes`` (Qwen 2.5, Hermes 2/3): ``<tool_call>{"name": .., "arguments": ..}</tool_call>``
- ``llama3`` (Llama 3.1-3.3): a JSON ``{"name": .., "parameters": ..}`` as the whole answer,
  maybe after ``<|python_tag|>``
- ``mistral`` (Mistral, Mixtral, Nemo): ``[TOOL_CALLS][{"name": .., "arguments": ..}]``
- ``generic``: templates that know no tools; we describe the tools in a system message and
  ask for a bare ``{"name": .., "arguments": ..}`` object.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class ToolFamily:
    name: str
    openers: tuple[str, ...] = ()
    """Markup that opens a call anywhere in the answer."""
    closer: str = ""
    """Markup that closes a call; empty: the call ends with its JSON value."""
    start_opener: str = ""
    """A character that opens a call only as the first thing the model says (bare JSON)."""
    arguments_key: str = "arguments"
    array: bool = False
    """Calls are one JSON array (Mistral) rather than one object each."""
    template_knows_tools: bool = True
    """The template renders ``tools`` and tool turns itself; otherwise we do (generic)."""
    special_markers: bool = False
    """The openers are control tokens, which must be rendered as text for the parser."""

    @property
    def triggers(self) -> tuple[str, ...]:
        """Regex patterns for the lazy grammar: it applies from the first group on."""
        patterns = [f"({re.escape(o)})" for o in self.openers]
        if self.start_opener:
            patterns.append(rf'^\s*({re.escape(self.start_opener)}\s*"name")')
        return tuple(patterns)


HERMES = ToolFamily("hermes", openers=("<tool_call>",), closer="</tool_call>")
LLAMA3 = ToolFamily(
    "llama3",
    openers=("<|python_tag|>",),
    start_opener="{",
    arguments_key="parameters",
    special_markers=True,
)
MISTRAL = ToolFamily("mistral", openers=("[TOOL_CALLS]",), array=True, special_markers=True)
GENERIC = ToolFamily("generic", start_opener="{", template_knows_tools=False)


def family_of(template: str) -> ToolFamily:
    if "<tool_call>" in template:
        return HERMES
    if "[TOOL_CALLS]" in template:
        return MISTRAL
    if "<|python_tag|>" in template or ("<|start_header_id|>" in template and "tools" in template):
        return LLAMA3
    return GENERIC
