"""llama-cpp-python on one GGUF file.

The loop drives ``Llama.generate`` directly instead of ``create_completion``: that gives exact
token counts, a cancel check between tokens, and stop strings handled without re-decoding the
whole completion on every token.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import llama_cpp
import numpy as np
import numpy.typing as npt
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from corral.child.llama.text_stream import StopTextStream
from corral.child.runtime import Job, RequestFailed
from corral.protocol.messages import ChildKind, FinishReason, Generate, Ready, Usage

log = logging.getLogger("corral.child.llama")

# Used only when a GGUF carries no template and none is configured (llama.cpp does the same).
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass
class LlamaBackend:
    model_path: str
    model_id: str
    n_ctx: int = 4096
    n_threads: int | None = None
    n_batch: int = 512
    n_gpu_layers: int = 0
    chat_template: str | None = None
    concurrency: int = 1  # one llama context serves one sequence at a time
    kind: ChildKind = "llama"
    capabilities: tuple[str, ...] = ("chat", "completion")
    _llama: llama_cpp.Llama | None = field(default=None, init=False)
    _formatter: Jinja2ChatFormatter | None = field(default=None, init=False)

    def load(self, progress: Callable[[float, str], None]) -> Ready:
        if not os.path.isfile(self.model_path):
            raise FileNotFoundError(self.model_path)
        progress(0.0, "loading weights")
        llama = llama_cpp.Llama(
            model_path=self.model_path,
            n_ctx=self.n_ctx,
            n_threads=self.n_threads,
            n_batch=min(self.n_batch, self.n_ctx),
            n_gpu_layers=self.n_gpu_layers,
            chat_format="chatml",  # we template ourselves; this only skips the guessing
            verbose=False,
        )
        template = self.chat_template or llama.metadata.get("tokenizer.chat_template")
        if template is None:
            log.warning("%s has no chat template; falling back to ChatML", self.model_path)
            template = CHATML_TEMPLATE
        eos, bos = llama.token_eos(), llama.token_bos()
        model = llama._model
        self._formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=model.token_get_text(eos) if eos != -1 else "",
            bos_token=model.token_get_text(bos) if bos != -1 else "",
        )
        self._llama = llama
        progress(1.0, "ready")
        return Ready(model=self.model_id, n_ctx=llama.n_ctx(), chat_template=True)

    def _prompt_tokens(self, request: Generate) -> tuple[list[int], tuple[str, ...]]:
        assert self._llama is not None and self._formatter is not None
        if request.messages is not None:
            try:
                messages: Any = [m.model_dump(exclude_none=True) for m in request.messages]
                formatted = self._formatter(messages=messages)
            except Exception as exc:  # the template's own raise_exception, or a Jinja error
                raise RequestFailed("invalid_messages", f"chat template: {exc}") from None
            tokens = self._llama.tokenize(
                formatted.prompt.encode(), add_bos=not formatted.added_special, special=True
            )
            stops = tuple(formatted.stop if isinstance(formatted.stop, list) else [])
            return tokens, stops
        return self._llama.tokenize((request.prompt or "").encode(), add_bos=True, special=True), ()

    def generate(self, job: Job) -> tuple[FinishReason, Usage]:
        llama = self._llama
        assert llama is not None
        params = job.request.params
        prompt, template_stops = self._prompt_tokens(job.request)
        n_ctx = llama.n_ctx()
        if not prompt:  # llama.cpp asserts on an empty batch; a model without BOS gets one
            raise RequestFailed("invalid_request", "the prompt is empty: it has no tokens")
        if params.logit_bias and max(params.logit_bias) >= llama.n_vocab():
            raise RequestFailed(
                "invalid_request",
                f"logit_bias names token {max(params.logit_bias)}; the vocabulary has "
                f"{llama.n_vocab()} tokens",
            )
        if len(prompt) >= n_ctx:
            raise RequestFailed(
                "context_length_exceeded",
                f"the prompt has {len(prompt)} tokens; this model's context holds {n_ctx}",
            )
        job.started(len(prompt))
        budget = n_ctx - len(prompt)
        max_tokens = min(params.max_tokens or budget, budget)
        llama.set_seed(params.seed if params.seed is not None else random.randint(0, 2**31 - 1))

        text = StopTextStream(params.stop + template_stops)
        completion: list[int] = []
        reason: FinishReason = "length"
        pending_tokens = 0
        for token in llama.generate(
            prompt,
            top_k=params.top_k if params.top_k is not None else 40,
            top_p=params.top_p if params.top_p is not None else 0.95,
            min_p=params.min_p if params.min_p is not None else 0.05,
            temp=params.temperature if params.temperature is not None else 0.8,
            repeat_penalty=params.repeat_penalty if params.repeat_penalty is not None else 1.0,
            frequency_penalty=params.frequency_penalty or 0.0,
            presence_penalty=params.presence_penalty or 0.0,
            logits_processor=_logit_bias(params.logit_bias) if params.logit_bias else None,
            stopping_criteria=llama_cpp.StoppingCriteriaList([lambda *_: job.cancelled.is_set()]),
        ):
            if llama_cpp.llama_vocab_is_eog(llama._model.vocab, token):
                reason = "stop"
                break
            piece = text.push(llama.detokenize([token], prev_tokens=prompt + completion))
            completion.append(token)
            pending_tokens += 1
            if piece:
                job.emit(piece, pending_tokens)
                pending_tokens = 0
            if text.stopped:
                reason = "stop"
                break
            if len(completion) >= max_tokens:
                break
        if job.cancelled.is_set():
            reason = "cancelled"
        elif tail := text.flush():
            job.emit(tail, pending_tokens)
        return reason, Usage(prompt_tokens=len(prompt), completion_tokens=len(completion))


def _logit_bias(
    bias: dict[int, float],
) -> llama_cpp.LogitsProcessorList:
    ids = np.array(list(bias.keys()), dtype=np.intc)
    values = np.array(list(bias.values()), dtype=np.single)

    def apply(_: npt.NDArray[np.intc], scores: npt.NDArray[np.single]) -> Any:
        valid = ids < scores.shape[0]
        scores[ids[valid]] += values[valid]
        return scores

    return llama_cpp.LogitsProcessorList([apply])
