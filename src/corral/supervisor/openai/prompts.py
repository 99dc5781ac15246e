"""The completions API's prompt forms, as OpenAI accepts them: a text, token ids, or a batch
of either (each prompt then has its own ``n`` choices, of index ``prompt_i * n + j``)."""

from __future__ import annotations

from typing import Annotated

from annotated_types import Len
from pydantic import Field

MAX_PROMPTS = 16
"""Prompts in one batch: each is read and decoded in the model's slots like a request."""

TokenIds = Annotated[list[Annotated[int, Field(ge=0, lt=2**31)]], Field(min_length=1)]
BATCH = Len(1, MAX_PROMPTS)


def prompt_items(
    prompt: str | list[int] | list[str] | list[list[int]],
) -> list[str | tuple[int, ...]]:
    """Each prompt of a request: a text, or a tuple of token ids."""
    if isinstance(prompt, str):
        return [prompt]
    if all(isinstance(item, int) for item in prompt):
        return [tuple(item for item in prompt if isinstance(item, int))]
    return [
        item if isinstance(item, str) else tuple(item)
        for item in prompt
        if not isinstance(item, int)
    ]
