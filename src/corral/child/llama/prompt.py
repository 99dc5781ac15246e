"""From a Generate frame to prompt tokens: the chat template, the tokenizer, token pieces."""

from __future__ import annotations

import ctypes
import logging
from dataclasses import dataclass
from typing import Any

import llama_cpp
from llama_cpp._internals import LlamaModel
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from corral.child.llama.tool_family import ToolFamily, family_of
from corral.child.llama.tool_prompt import template_messages, template_tools
from corral.child.runtime import RequestFailed
from corral.protocol.messages import Generate

log = logging.getLogger("corral.child.llama")

# Used only when a GGUF carries no template and none is configured (llama.cpp does the same).
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass
class Prompter:
    model: LlamaModel
    formatter: Jinja2ChatFormatter
    family: ToolFamily
    """How this template's model writes tool calls."""

    @classmethod
    def for_model(cls, model: LlamaModel, path: str, chat_template: str | None) -> Prompter:
        template = chat_template or model.metadata().get("tokenizer.chat_template")
        if template is None:
            log.warning("%s has no chat template; falling back to ChatML", path)
            template = CHATML_TEMPLATE
        eos, bos = model.token_eos(), model.token_bos()
        formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=model.token_get_text(eos) if eos != -1 else "",
            bos_token=model.token_get_text(bos) if bos != -1 else "",
        )
        return cls(model, formatter, family_of(template))

    def tokens(self, request: Generate) -> tuple[list[int], tuple[str, ...]]:
        """The prompt's tokens and the template's own stop strings."""
        if request.messages is not None:
            messages: Any = template_messages(request, self.family)
            tools: Any = template_tools(request, self.family)
            # Continuing an answer: template the turns before it (which opens the assistant's
            # turn) and append its text as is, so the model goes on mid-sentence.
            prefix = (messages.pop()["content"] or "") if request.continue_final else ""
            try:
                formatted = self.formatter(messages=messages, tools=tools)
            except Exception as exc:  # the template's own raise_exception, or a Jinja error
                raise RequestFailed("invalid_messages", f"chat template: {exc}") from None
            tokens = self.model.tokenize(
                (formatted.prompt + prefix).encode(),
                add_bos=not formatted.added_special,
                special=True,
            )
            stops = tuple(formatted.stop if isinstance(formatted.stop, list) else [])
            return list(tokens), stops
        text = (request.prompt or "").encode()
        return list(self.model.tokenize(text, add_bos=True, special=True)), ()


def piece(vocab: Any, token: int, *, special: bool = False) -> bytes:
    """The bytes of one token: as generated text, special tokens render as nothing; with
    ``special`` as the vocabulary spells them (what logprobs show)."""
    buffer = ctypes.create_string_buffer(64)
    n = llama_cpp.llama_token_to_piece(vocab, token, buffer, len(buffer), 0, special)
    if n < 0:  # a piece longer than the buffer: -n is its length
        buffer = ctypes.create_string_buffer(-n)
        n = llama_cpp.llama_token_to_piece(vocab, token, buffer, len(buffer), 0, special)
    return buffer.raw[: max(n, 0)]
