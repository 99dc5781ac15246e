"""One llama_sampler chain per sequence, built from the request's sampling parameters.

Defaults are llama-cpp-python's (top_k 40, top_p 0.95, min_p 0.05, temperature 0.8), so a
request that names nothing samples as it did before batching. A grammar is not in the chain:
as llama.cpp does, the chain picks a token first and the grammar only checks it; only a
rejected token makes us apply the grammar to the whole vocabulary and pick again. The grammar
in the chain cost 11-15 ms a token on the demo model, the check 0.6 ms, with the same output.
"""

from __future__ import annotations

import ctypes
import math
import random
from collections.abc import Sequence
from typing import Any

import llama_cpp
import numpy as np

from corral.protocol.messages import SamplingParams

PENALTY_LAST_N = 64  # llama-cpp-python's last_n_tokens_size
_CANDIDATE = np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True)


class SequenceSampler:
    """Owned by the engine thread once built; ``close()`` frees the native samplers."""

    def __init__(
        self,
        params: SamplingParams,
        n_vocab: int,
        grammar: Any = None,
        history: Sequence[int] = (),
    ) -> None:
        self.n_vocab = n_vocab
        self.grammar = grammar
        self.chain: Any = llama_cpp.llama_sampler_chain_init(
            llama_cpp.llama_sampler_chain_default_params()
        )
        self._add_chain(params)
        for token in history[-PENALTY_LAST_N:]:
            # The prompt counts for repeat penalties, as in llama-server.
            llama_cpp.llama_sampler_accept(self.chain, token)
        self._candidates: np.ndarray[Any, Any] | None = None

    def _add(self, sampler: Any) -> None:
        llama_cpp.llama_sampler_chain_add(self.chain, sampler)

    def _add_chain(self, params: SamplingParams) -> None:
        bias = {t: b for t, b in params.logit_bias.items() if 0 <= t < self.n_vocab}
        if bias:
            entries = (llama_cpp.llama_logit_bias * len(bias))(
                *(llama_cpp.llama_logit_bias(token, value) for token, value in bias.items())
            )
            self._add(llama_cpp.llama_sampler_init_logit_bias(self.n_vocab, len(bias), entries))
        self._add(
            llama_cpp.llama_sampler_init_penalties(
                self.n_vocab,
                PENALTY_LAST_N,
                params.repeat_penalty if params.repeat_penalty is not None else 1.0,
                params.frequency_penalty or 0.0,
                params.presence_penalty or 0.0,
            )
        )
        temperature = params.temperature if params.temperature is not None else 0.8
        if temperature == 0.0:
            self._add(llama_cpp.llama_sampler_init_greedy())
            return
        seed = params.seed if params.seed is not None else random.getrandbits(32)
        self._add(
            llama_cpp.llama_sampler_init_top_k(params.top_k if params.top_k is not None else 40)
        )
        self._add(
            llama_cpp.llama_sampler_init_top_p(
                params.top_p if params.top_p is not None else 0.95, 1
            )
        )
        self._add(
            llama_cpp.llama_sampler_init_min_p(
                params.min_p if params.min_p is not None else 0.05, 1
            )
        )
        self._add(llama_cpp.llama_sampler_init_temp(temperature))
        self._add(llama_cpp.llama_sampler_init_dist(seed & 0xFFFFFFFF))

    def sample(self, ctx: Any, index: int) -> int:
        """Sample (and accept) the next token from output row ``index`` of the last decode."""
        if self.grammar is None:
            return int(llama_cpp.llama_sampler_sample(self.chain, ctx, index))
        logits = llama_cpp.llama_get_logits_ith(ctx, index)
        token = self._pick(logits, with_grammar=False)
        if not self._grammar_allows(token):
            token = self._pick(logits, with_grammar=True)
        llama_cpp.llama_sampler_accept(self.grammar, token)
        llama_cpp.llama_sampler_accept(self.chain, token)
        return token

    def _pick(self, logits: Any, *, with_grammar: bool) -> int:
        if self._candidates is None:
            self._candidates = np.zeros(self.n_vocab, dtype=_CANDIDATE)
            self._candidates["id"] = np.arange(self.n_vocab, dtype=np.intc)
        cands = self._candidates
        cands["logit"] = np.ctypeslib.as_array(logits, shape=(self.n_vocab,))
        cands["p"] = 0.0
        array = llama_cpp.llama_token_data_array(
            data=cands.ctypes.data_as(llama_cpp.llama_token_data_p),
            size=self.n_vocab,
            selected=-1,
            sorted=False,
        )
        if with_grammar:
            llama_cpp.llama_sampler_apply(self.grammar, ctypes.byref(array))
        llama_cpp.llama_sampler_apply(self.chain, ctypes.byref(array))
        return int(array.data[array.selected].id)  # samplers may move the data pointer

    def _grammar_allows(self, token: int) -> bool:
        single = llama_cpp.llama_token_data(token, 1.0, 0.0)
        array = llama_cpp.llama_token_data_array(
            data=ctypes.pointer(single), size=1, selected=-1, sorted=False
        )
        llama_cpp.llama_sampler_apply(self.grammar, ctypes.byref(array))
        return not math.isinf(array.data[0].logit)

    def close(self) -> None:
        for sampler in (self.chain, self.grammar):
            if sampler is not None:
                llama_cpp.llama_sampler_free(sampler)
        self.chain = self.grammar = None
