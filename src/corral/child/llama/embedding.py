"""llama-cpp-python in embedding mode: one GGUF model that embeds instead of generating.

The context is made with ``embeddings`` on and the GGUF's pooling (``<arch>.pooling_type``:
mean, CLS or last token; mean where the header names none, as for a chat model that a preset
turns into an embedder). An ``embed`` request is packed into as few ``llama_decode`` calls as
the batch allows: one sequence id per input, every token an output, then one pooled vector per
sequence from ``llama_get_embeddings_seq``, scaled to unit length as OpenAI's are. The batch
is the whole context, so an input of up to ``n_ctx`` tokens always fits one call (an encoder
such as BERT must see a whole input at once), and the memory is cleared between calls.
"""

from __future__ import annotations

import base64
import ctypes
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import llama_cpp
import numpy as np
from llama_cpp._internals import LlamaContext, LlamaModel

from corral.child.llama.machine import default_threads, load_model
from corral.child.runtime import EncodeJob, Job, RequestFailed
from corral.protocol import MAX_FRAME_BYTES
from corral.protocol.messages import ChildKind, Embed, Embeddings, FinishReason, Ready, Usage

log = logging.getLogger("corral.child.llama")

POOLINGS = {
    "mean": llama_cpp.LLAMA_POOLING_TYPE_MEAN,
    "cls": llama_cpp.LLAMA_POOLING_TYPE_CLS,
    "last": llama_cpp.LLAMA_POOLING_TYPE_LAST,
}
_POOLING_NAMES = {value: name for name, value in POOLINGS.items()}
# Sequences one decode call carries; llama.cpp's own limit is higher, but each one costs a
# row of pooled output and a slot in the attention mask bookkeeping.
MAX_SEQUENCES = 64


def gguf_pooling(metadata: dict[str, str]) -> str:
    """The pooling the GGUF's header asks for: ``mean`` where it names none (or "none")."""
    arch = metadata.get("general.architecture", "")
    raw = metadata.get(f"{arch}.pooling_type")
    try:
        value = int(raw) if raw is not None else llama_cpp.LLAMA_POOLING_TYPE_NONE
    except ValueError:
        value = llama_cpp.LLAMA_POOLING_TYPE_NONE
    if value == llama_cpp.LLAMA_POOLING_TYPE_RANK:
        raise ValueError("this GGUF is a reranker (pooling type rank), not an embedding model")
    return _POOLING_NAMES.get(value, "mean")


def pack(lengths: Sequence[int], n_batch: int, max_sequences: int) -> list[range]:
    """Consecutive runs of inputs whose tokens fit one batch (each input fits on its own)."""
    groups: list[range] = []
    start, used = 0, 0
    for index, length in enumerate(lengths):
        if index > start and (used + length > n_batch or index - start >= max_sequences):
            groups.append(range(start, index))
            start, used = index, 0
        used += length
    if lengths:
        groups.append(range(start, len(lengths)))
    return groups


def unit_length(vector: Any) -> Any:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0.0 else vector


@dataclass
class LlamaEmbedder:
    model_path: str
    model_id: str
    n_ctx: int = 4096
    """Tokens one input may hold (capped at the model's training context)."""
    n_threads: int | None = None
    n_gpu_layers: int | None = None
    pooling: str | None = None
    """``mean``, ``cls`` or ``last``; None: the GGUF's (mean where it names none)."""
    kind: ChildKind = "llama"
    capabilities: tuple[str, ...] = ("embeddings",)
    concurrency: int = 1  # one context: requests take turns, each batched in itself
    dimension: int = field(default=0, init=False)
    _model: LlamaModel | None = field(default=None, init=False)
    _context: LlamaContext | None = field(default=None, init=False)
    _batch: Any = field(default=None, init=False)
    _encoder_only: bool = field(default=False, init=False)

    def load(self, progress: Callable[[float, str], None]) -> Ready:
        progress(0.0, "loading weights")
        model = load_model(self.model_path, self.n_gpu_layers)
        pooling = self.pooling or gguf_pooling(model.metadata())
        self.n_ctx = min(self.n_ctx, model.n_ctx_train() or self.n_ctx)
        threads = self.n_threads or default_threads()
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = params.n_batch = params.n_ubatch = self.n_ctx
        params.n_seq_max = MAX_SEQUENCES
        params.kv_unified = True  # the sequences of one call share the context's tokens
        params.embeddings = True
        params.pooling_type = POOLINGS[pooling]
        params.n_threads = params.n_threads_batch = threads
        params.no_perf = True
        context = LlamaContext(model=model, params=params, verbose=False)
        self._model, self._context = model, context
        self._batch = llama_cpp.llama_batch_init(self.n_ctx, 0, 1)
        raw = model.model
        self._encoder_only = bool(
            llama_cpp.llama_model_has_encoder(raw) and not llama_cpp.llama_model_has_decoder(raw)
        )
        self.dimension = int(llama_cpp.llama_model_n_embd_out(raw))
        log.info(
            "llama embeddings: %d dimensions, %s pooling, %d tokens an input, %d threads",
            self.dimension, pooling, self.n_ctx, threads,
        )  # fmt: skip
        progress(1.0, "ready")
        return Ready(model=self.model_id, n_ctx=self.n_ctx, chat_template=False, parallel=1)

    def generate(self, job: Job) -> tuple[FinishReason, Usage]:
        raise RequestFailed(
            "unsupported", f"'{self.model_id}' is an embedding model: it does not generate text"
        )

    def encode(self, job: EncodeJob) -> Usage:
        request = job.request
        if not isinstance(request, Embed):
            raise RequestFailed("unsupported", f"'{self.model_id}' does not rerank")
        if request.dimensions is not None and request.dimensions != self.dimension:
            raise RequestFailed(
                "invalid_dimensions",
                f"this model's embeddings have {self.dimension} dimensions; a GGUF model "
                f"cannot shorten them to {request.dimensions}",
            )
        inputs = self._tokens(request)
        total = sum(len(tokens) for tokens in inputs)
        job.started(total)
        per_frame = max(1, (MAX_FRAME_BYTES // 2) // (self.dimension * 6 + 8))
        for group in pack([len(t) for t in inputs], self.n_ctx, MAX_SEQUENCES):
            if job.cancelled.is_set():
                break
            vectors = self._embed([inputs[i] for i in group])
            for first in range(0, len(vectors), per_frame):
                chunk = vectors[first : first + per_frame]
                job.channel.send(
                    Embeddings(
                        request_id=job.request_id,
                        start=group.start + first,
                        vectors=tuple(_b64(v) for v in chunk),
                    )
                )
        return Usage(prompt_tokens=total, completion_tokens=0)

    def _tokens(self, request: Embed) -> list[Sequence[int]]:
        model = self._model
        assert model is not None
        if request.token_ids:
            vocab = model.n_vocab()
            if any(t < 0 or t >= vocab for ids in request.token_ids for t in ids):
                raise RequestFailed("invalid_input", f"token ids are 0..{vocab - 1} for this model")
            inputs: list[Sequence[int]] = list(request.token_ids)
        else:
            # As the model's tokenizer adds them (BERT's [CLS] ... [SEP]), special-token text
            # in the input stays text.
            inputs = [model.tokenize(text.encode(), True, False) for text in request.texts]
        for index, tokens in enumerate(inputs):
            if not tokens:
                raise RequestFailed("invalid_input", f"input {index} is empty: it has no tokens")
            if len(tokens) > self.n_ctx:
                raise RequestFailed(
                    "context_length_exceeded",
                    f"input {index} has {len(tokens)} tokens; this model takes at most "
                    f"{self.n_ctx}",
                )
        return inputs

    def _embed(self, inputs: Sequence[Sequence[int]]) -> list[Any]:
        """One decode call: ``inputs`` as sequences 0, 1, ...; their unit-length vectors."""
        context, batch = self._context, self._batch
        assert context is not None
        ctx = context.ctx
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
        batch.n_tokens = 0
        for seq_id, tokens in enumerate(inputs):
            for pos, token in enumerate(tokens):
                n = batch.n_tokens
                batch.token[n], batch.pos[n] = token, pos
                batch.n_seq_id[n], batch.seq_id[n][0] = 1, seq_id
                batch.logits[n] = True  # every token is an output: pooling reads them all
                batch.n_tokens = n + 1
        run = llama_cpp.llama_encode if self._encoder_only else llama_cpp.llama_decode
        if (rc := run(ctx, batch)) != 0:
            raise RuntimeError(f"llama.cpp could not evaluate the batch (code {rc})")
        vectors = []
        for seq_id in range(len(inputs)):
            pointer = llama_cpp.llama_get_embeddings_seq(ctx, seq_id)
            if not pointer:
                raise RuntimeError(f"llama.cpp returned no embedding for sequence {seq_id}")
            values = np.ctypeslib.as_array(
                ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), shape=(self.dimension,)
            )
            vectors.append(unit_length(values.astype(np.float32)))
        return vectors


def _b64(vector: Any) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
