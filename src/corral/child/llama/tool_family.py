"""The tool-call syntax a chat template teaches its model, picked from the template's text.

The formats follow llama.cpp's ``common/chat.cpp``:

- ``hermes`` (Qwen 2.5, Hermes 2/3): ``<tool_call>{"name": .., "arguments": ..}</tool_call>``;
  as llama.cpp does, also the "good bad" forms small models write instead, as the whole
  answer: the call's JSON bare or in a ```json fence
- ``llama3`` (Llama 3.1-3.3): a JSON ``{"name": .., "parameters": ..}`` as the whole answer,
  maybe after ``<|python_tag|>``
- ``mistral`` (Mistral, Mixtral, Nemo): ``[TOOL_CALLS][{"name": .., "arguments": ..}]``
- ``generic``: templates that know no tools; we describe the tools in a system message and
  ask for a bare ``{"name": .., "arguments": ..}`` object.
"""

from __future__ import annotations

from dataclasses import dataclass

# The whitespace the call grammar allows between JSON tokens (tool_grammar.py), as a regex:
# a trigger must match only what the grammar then accepts, or the replayed text breaks it.
GRAMMAR_SPACE = '( " " | "\\n" [ \\t]{0,20} )?'
_SPACE_RE = r"(?: |\n[ \t]{0,20})?"
_REGEX_SPECIAL = frozenset(r".^$*+?()[]{}|\/")


def regex_escape(text: str) -> str:
    """``text`` as a literal in llama.cpp's std::regex (ECMAScript), which, unlike Python's
    ``re``, does not take a backslash before a newline."""
    return "".join("\\n" if c == "\n" else "\\" + c if c in _REGEX_SPECIAL else c for c in text)


@dataclass(frozen=True)
class Opener:
    text: str
    closer: str = ""
    """Markup that closes the call; empty: the call ends with its JSON value."""
    at_start: bool = False
    """It opens a call only as the first thing the model says (a bare or fenced JSON)."""

    @property
    def body_start(self) -> int:
        """Where the call's JSON starts in its block: a bare JSON's opener is part of it."""
        return 0 if self.text == "{" else len(self.text)

    def trigger(self, names: tuple[str, ...]) -> str:
        """A regex for the lazy grammar, which applies from its first group on. A JSON at the
        start counts only once it names one of the tools (``names``), as in llama.cpp: a JSON
        answer that is no call stays free."""
        if not self.at_start:
            return f"({regex_escape(self.text)})"
        body = "" if self.text == "{" else regex_escape(self.text) + _SPACE_RE
        called = "|".join(regex_escape(n) for n in names)
        return rf'^\s*({body}\{{{_SPACE_RE}"name"{_SPACE_RE}:{_SPACE_RE}"(?:{called})")'


@dataclass(frozen=True)
class ToolFamily:
    name: str
    openers: tuple[Opener, ...]
    arguments_key: str = "arguments"
    template_knows_tools: bool = True
    """The template renders ``tools`` and tool turns itself; otherwise we do (generic)."""
    special_markers: bool = False
    """The openers are control tokens, which must be rendered as text for the parser."""

    def triggers(self, names: tuple[str, ...]) -> tuple[str, ...]:
        """The lazy grammar's trigger patterns for calls of the tools ``names``."""
        return tuple(o.trigger(names) for o in self.openers)


BARE = Opener("{", at_start=True)
HERMES = ToolFamily(
    "hermes",
    openers=(
        Opener("<tool_call>", "</tool_call>"),
        Opener("```json\n", "```", at_start=True),
        BARE,
    ),
)
LLAMA3 = ToolFamily(
    "llama3",
    openers=(Opener("<|python_tag|>"), BARE),
    arguments_key="parameters",
    special_markers=True,
)
MISTRAL = ToolFamily("mistral", openers=(Opener("[TOOL_CALLS]"),), special_markers=True)
GENERIC = ToolFamily("generic", openers=(BARE,), template_knows_tools=False)


def family_of(template: str) -> ToolFamily:
    if "<tool_call>" in template:
        return HERMES
    if "[TOOL_CALLS]" in template:
        return MISTRAL
    if "<|python_tag|>" in template or ("<|start_header_id|>" in template and "tools" in template):
        return LLAMA3
    return GENERIC
