"""OpenAI fields Corral knows but cannot honour, refused with a 400 that names them.

The request models declare these fields (so that their names are not "unknown") and accept a
value that asks for nothing (``store: false``, ``service_tier: "auto"``, ``modalities:
["text"]``); anything else is refused here, never quietly ignored. Fields only the llama
engine serves (several choices, logprobs, echo, fill-in-the-middle, tools, grammars) are
refused for the local backends by ``refuse_for_backend``; a remote model passes them on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

from corral.supervisor.errors import BadRequest

# Refused whenever they are set (to anything but null).
REFUSED_CHAT_FIELDS: Mapping[str, str] = {
    "audio": "audio output is not supported",
    "prediction": "predicted outputs are not supported",
    "reasoning_effort": "reasoning effort is not supported by these models",
    "verbosity": "verbosity is not supported",
    "web_search_options": "web search is not supported",
    "functions": "the deprecated functions field is not supported; send tools instead",
    "function_call": "the deprecated function_call field is not supported; send tool_choice "
    "instead",
}


def refuse(name: str, why: str) -> NoReturn:
    raise BadRequest(f"'{name}': {why}", param=name, code="unsupported")


def check_chat_fields(fields: Mapping[str, Any]) -> None:
    """``fields``: the chat request's OpenAI-only fields by name, as the client sent them."""
    for name, why in REFUSED_CHAT_FIELDS.items():
        if fields.get(name) is not None:
            refuse(name, why)
    if fields.get("store"):
        refuse("store", "Corral does not store API completions; leave it out or set it false")
    if fields.get("metadata"):
        refuse("metadata", "metadata is kept only with stored completions, which Corral lacks")
    if fields.get("service_tier") not in (None, "auto", "default"):
        refuse("service_tier", "Corral has one service tier: leave it out, 'auto' or 'default'")
    modalities = fields.get("modalities")
    if modalities is not None and list(modalities) != ["text"]:
        refuse("modalities", "only text output is supported: ['text']")


def refuse_for_backend(backend: str, asks: Mapping[str, object]) -> None:
    """The llama engine serves ``asks`` (fields set to ask for something), and a remote
    model passes them to its upstream (tools, tool history and grammars included), which
    honours them or refuses them by name; others (hf, fake) refuse.

    A JSON schema's keywords are checked for every backend before this (``structured``):
    engines differ in what their guided decoding enforces and several ignore a keyword
    quietly, so a remote model is held to what the grammar can enforce, as a local one."""
    if backend in ("llama", "remote") or not asks:
        return
    name = next(iter(asks))
    refuse(name, f"this is served by llama (GGUF) models only, not by the {backend} backend")
