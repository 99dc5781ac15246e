"""Chat and completion with a causal LM: template, generate, stream token deltas.

``model.generate`` runs in the worker thread and calls our streamer with each new token
before it checks the stopping criteria, so a stop string or a cancel seen in ``put`` ends
generation before the next forward pass: a cancel lands within one token.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import torch
from transformers import (
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
)
from transformers.generation.streamers import BaseStreamer

from corral.child.hf.sampling import generation_settings
from corral.child.runtime import Job, RequestFailed
from corral.child.text_stream import StopTextStream
from corral.protocol.messages import FinishReason, Generate, Usage

log = logging.getLogger("corral.child.hf")

# Used only when a tokenizer carries no template and none is configured (as the llama child).
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class _Emitter(BaseStreamer):
    """Receives each new token from ``generate``; decodes incrementally and emits deltas.

    Decoding is the offset scheme of text-generation-inference: decode a short window of
    recent tokens and send only what it added, holding back a tail that is still an
    incomplete UTF-8 sequence (a U+FFFD at the end).
    """

    def __init__(
        self, job: Job, tokenizer: PreTrainedTokenizerBase, stops: StopTextStream, eos: set[int]
    ) -> None:
        self._job, self._tokenizer, self.text, self._eos = job, tokenizer, stops, eos
        self._prompt_seen = False
        self.tokens: list[int] = []
        self.eos_hit = False
        self._pending = 0
        self._prefix = 0
        self._read = 0

    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # generate's first call hands over the prompt
            self._prompt_seen = True
            return
        for token in value.reshape(-1).tolist():
            if self.finished:
                return
            if token in self._eos:
                self.eos_hit = True
                return
            self.tokens.append(token)
            self._pending += 1
            piece = self.text.push(self._increment().encode())
            if piece:
                self._job.emit(piece, self._pending)
                self._pending = 0

    def end(self) -> None:
        if self._job.cancelled.is_set() or self.text.stopped:
            return
        tail = self._decode(self.tokens[self._prefix :])[len(self._window_text()) :]
        rest = self.text.push(tail.encode()) + self.text.flush()
        if rest:
            self._job.emit(rest, self._pending)
            self._pending = 0

    def close(self, reason: FinishReason) -> None:
        """The answer's last delta says how it ended, and which stop string ended it."""
        if reason != "cancelled":
            stop = self.text.stop_sequence
            self._job.emit("", self._pending, finish_reason=reason, stop_sequence=stop)
            self._pending = 0

    @property
    def finished(self) -> bool:
        return self.eos_hit or self.text.stopped or self._job.cancelled.is_set()

    def _decode(self, tokens: list[int]) -> str:
        text = self._tokenizer.decode(
            tokens, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
        return text if isinstance(text, str) else "".join(text)

    def _window_text(self) -> str:
        return self._decode(self.tokens[self._prefix : self._read])

    def _increment(self) -> str:
        before = self._window_text()
        after = self._decode(self.tokens[self._prefix :])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self._prefix, self._read = self._read, len(self.tokens)
            return after[len(before) :]
        return ""


class _Finished(StoppingCriteria):
    def __init__(self, emitter: _Emitter) -> None:
        self._emitter = emitter

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **_: Any) -> Any:
        return torch.full(
            (input_ids.shape[0],), self._emitter.finished, dtype=torch.bool, device=input_ids.device
        )


class ChatModel:
    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        n_ctx: int,
        chat_template: str | None,
    ) -> None:
        self.model, self.tokenizer, self.n_ctx = model, tokenizer, n_ctx
        if chat_template is not None:
            tokenizer.chat_template = chat_template
        elif tokenizer.chat_template is None:
            log.warning("the tokenizer has no chat template; falling back to ChatML")
            tokenizer.chat_template = CHATML_TEMPLATE
        eos = model.generation_config.eos_token_id
        eos_ids = eos if isinstance(eos, list) else [eos] if eos is not None else []
        if tokenizer.eos_token_id is not None:
            eos_ids.append(tokenizer.eos_token_id)
        self.eos = {int(t) for t in eos_ids}

    def prompt_tokens(self, request: Generate) -> list[int]:
        if request.messages is None:
            return list(self.tokenizer(request.prompt or "")["input_ids"])
        messages = [m.model_dump(exclude_none=True) for m in request.messages]
        # Continuing an answer: template the turns before it (which opens the assistant's turn)
        # and append its text as is, so the model goes on mid-sentence.
        prefix = messages.pop()["content"] if request.continue_final else ""
        try:
            text = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=False
            )
        except Exception as exc:  # the template's own raise_exception, or a Jinja error
            raise RequestFailed("invalid_messages", f"chat template: {exc}") from None
        assert isinstance(text, str)
        text += prefix
        # The template writes the special tokens (BOS included) itself.
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(self, job: Job) -> tuple[FinishReason, Usage]:
        params = job.request.params
        prompt = self.prompt_tokens(job.request)
        if len(prompt) >= self.n_ctx:
            raise RequestFailed(
                "context_length_exceeded",
                f"the prompt has {len(prompt)} tokens; this model's context holds {self.n_ctx}",
            )
        job.started(len(prompt))
        budget = self.n_ctx - len(prompt)
        config, processors = generation_settings(
            params,
            self.model.generation_config,
            prompt_len=len(prompt),
            max_new_tokens=min(params.max_tokens or budget, budget),
            vocab_size=self.model.config.get_text_config().vocab_size,
        )
        emitter = _Emitter(job, self.tokenizer, StopTextStream(params.stop), self.eos)
        torch.manual_seed(params.seed if params.seed is not None else random.randint(0, 2**31 - 1))
        ids = torch.tensor([prompt], dtype=torch.long, device=self.model.device)
        with torch.inference_mode():
            self.model.generate(  # type: ignore[operator]
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                generation_config=config,
                logits_processor=processors,
                stopping_criteria=StoppingCriteriaList([_Finished(emitter)]),
                streamer=emitter,
            )
        reason: FinishReason = "length"
        if job.cancelled.is_set():
            reason = "cancelled"
        elif emitter.eos_hit or emitter.text.stopped:
            reason = "stop"
        emitter.close(reason)
        return reason, Usage(prompt_tokens=len(prompt), completion_tokens=len(emitter.tokens))
