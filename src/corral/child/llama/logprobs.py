"""Log-probabilities of a sampled token and its likeliest alternatives, as OpenAI reports them.

OpenAI's logprobs are the model's own distribution: the log-softmax of the raw logits of the
output row, before any sampler (temperature, top-k, penalties, logit bias) reshapes it.
llama-server can report the probabilities after its sampling chain instead; we do not, so
that a logprob means the same here as in OpenAI's API. Computed on the engine thread, only
for sequences that asked: one pass over the vocabulary and a partial sort for the top few.
"""

from __future__ import annotations

from typing import Any

import llama_cpp
import numpy as np

from corral.child.llama.prompt import piece
from corral.protocol.messages import TokenLogprob, TopLogprob

# A logprob must be a finite JSON number; nothing real comes near this.
_FLOOR = -9999.0


def token_bytes(vocab: Any, token: int) -> bytes:
    """The bytes of ``token`` as the vocabulary spells it, special tokens included."""
    return piece(vocab, token, special=True)


def token_text(raw: bytes) -> str:
    # A token may hold part of a UTF-8 character: its text shows the bytes it has, escaped,
    # and ``bytes`` carries them exactly, for the client to join.
    return raw.decode("utf-8", errors="backslashreplace")


class LogprobReader:
    """Reads logprobs from the last decode's output rows (engine thread only)."""

    def __init__(self, vocab: Any, n_vocab: int) -> None:
        self.vocab = vocab
        self.n_vocab = n_vocab

    def read(self, ctx: Any, index: int, token: int, top: int) -> TokenLogprob:
        row = llama_cpp.llama_get_logits_ith(ctx, index)
        logits = np.ctypeslib.as_array(row, shape=(self.n_vocab,)).astype(np.float64)
        peak = float(logits.max())
        log_total = peak + float(np.log(np.exp(logits - peak).sum()))
        alternatives: tuple[TopLogprob, ...] = ()
        if top > 0:
            best = np.argpartition(logits, -top)[-top:]
            best = best[np.argsort(-logits[best], kind="stable")]
            alternatives = tuple(self._top(int(t), float(logits[t]) - log_total) for t in best)
        raw = token_bytes(self.vocab, token)
        return TokenLogprob(
            token=token_text(raw),
            logprob=max(float(logits[token]) - log_total, _FLOOR),
            bytes=tuple(raw),
            top=alternatives,
        )

    def _top(self, token: int, logprob: float) -> TopLogprob:
        raw = token_bytes(self.vocab, token)
        return TopLogprob(token=token_text(raw), logprob=max(logprob, _FLOOR), bytes=tuple(raw))
