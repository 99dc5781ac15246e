"""Corral's sampling parameters as transformers generation settings and logits processors.

transformers has temperature, top_p, top_k, min_p and repetition_penalty built in. OpenAI's
presence and frequency penalties (over the completion's tokens only, not the prompt) and
``logit_bias`` are not, so they are logits processors here. A ``None`` field falls back to
the checkpoint's own ``generation_config``, as transformers does; a checkpoint that does not
sample by default gets OpenAI's temperature 1.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

from corral.child.runtime import RequestFailed
from corral.protocol.messages import SamplingParams


class PenaltyProcessor(LogitsProcessor):
    """OpenAI's presence and frequency penalties: ``logit -= count * frequency +
    (count > 0) * presence``, counting each token in the completion so far."""

    def __init__(self, prompt_len: int, presence: float, frequency: float) -> None:
        self._prompt_len = prompt_len
        self._presence = presence
        self._frequency = frequency

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> Any:
        generated = input_ids[:, self._prompt_len :]
        if generated.shape[1] == 0:
            return scores
        counts = torch.zeros_like(scores).scatter_add_(
            1, generated, torch.ones_like(generated, dtype=scores.dtype)
        )
        return scores - counts * self._frequency - (counts > 0).to(scores.dtype) * self._presence


class LogitBiasProcessor(LogitsProcessor):
    """OpenAI's ``logit_bias``: a fixed amount added to the logits of the given token ids."""

    def __init__(self, bias: dict[int, float]) -> None:
        self._ids = torch.tensor(list(bias), dtype=torch.long)
        self._values = torch.tensor(list(bias.values()), dtype=torch.float32)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> Any:
        biased = scores.clone()
        biased[:, self._ids] += self._values.to(scores.dtype).to(scores.device)
        return biased


def generation_settings(
    params: SamplingParams,
    defaults: GenerationConfig,
    *,
    prompt_len: int,
    max_new_tokens: int,
    vocab_size: int,
) -> tuple[GenerationConfig, LogitsProcessorList]:
    """The generation config and extra processors for one request."""
    bad = [token for token in params.logit_bias if token >= vocab_size]
    if bad:
        raise RequestFailed(
            "invalid_request",
            f"logit_bias names token {bad[0]}, past this model's vocabulary of {vocab_size}",
        )
    config = GenerationConfig.from_dict(defaults.to_dict())
    temperature = params.temperature
    if temperature is None:
        temperature = defaults.temperature if defaults.do_sample else 1.0
    sample = temperature is not None and temperature > 0
    config.max_new_tokens = max_new_tokens
    config.max_length = None
    config.min_new_tokens = None
    config.num_beams = 1
    config.do_sample = sample
    config.repetition_penalty = params.repeat_penalty if params.repeat_penalty is not None else 1.0
    if sample:
        config.temperature = temperature
        config.top_p = params.top_p if params.top_p is not None else defaults.top_p
        config.top_k = params.top_k if params.top_k is not None else defaults.top_k
        config.min_p = params.min_p if params.min_p is not None else defaults.min_p
    else:  # greedy: the sampling knobs mean nothing (transformers warns when they are set)
        config.temperature, config.top_p, config.top_k, config.min_p = None, None, None, None
    processors = LogitsProcessorList()
    if params.presence_penalty or params.frequency_penalty:
        processors.append(
            PenaltyProcessor(
                prompt_len, params.presence_penalty or 0.0, params.frequency_penalty or 0.0
            )
        )
    if params.logit_bias:
        processors.append(LogitBiasProcessor(params.logit_bias))
    return config, processors
