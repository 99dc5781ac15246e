"""llama-cpp-python on one GGUF file, serving ``parallel`` requests at once.

The runtime runs one worker thread per slot. A worker templates and tokenizes its request,
checks it fits, builds its sampler and hands it to the engine, whose single thread decodes
every running sequence together (engine.py); the worker then waits for its sequence to end.
Requests beyond the slots wait in the runtime's queue, in order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import llama_cpp
from llama_cpp._internals import LlamaContext, LlamaModel

from corral.child.llama.choices import build_sequences, outcome, prompt_plans
from corral.child.llama.engine import Engine
from corral.child.llama.machine import default_threads, gpu_layers, load_model
from corral.child.llama.parking import Parking
from corral.child.llama.prompt import Prompter
from corral.child.runtime import Job, RequestFailed, SlotStats
from corral.protocol.messages import ChildKind, FinishReason, Ready, Usage

log = logging.getLogger("corral.child.llama")


@dataclass
class LlamaBackend:
    model_path: str
    model_id: str
    n_ctx: int = 4096
    """Tokens one request may hold (prompt and completion)."""
    n_threads: int | None = None
    n_batch: int = 512
    n_gpu_layers: int | None = None
    chat_template: str | None = None
    parallel: int = 8
    prefill_chunk: int = 256
    park_bytes: int = 0
    """Host memory for idle conversations' KV (parking.py)."""
    kind: ChildKind = "llama"
    capabilities: tuple[str, ...] = ("chat", "completion")
    on_change: Callable[[], None] = lambda: None
    concurrency: int = field(default=0, init=False)
    """One runtime worker per slot (set from ``parallel``)."""
    _engine: Engine | None = field(default=None, init=False)
    _prompter: Prompter | None = field(default=None, init=False)
    _model: LlamaModel | None = field(default=None, init=False)
    _context: LlamaContext | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.concurrency = self.parallel

    def load(self, progress: Callable[[float, str], None]) -> Ready:
        progress(0.0, "loading weights")
        model = load_model(self.model_path, self.n_gpu_layers)
        threads = self.n_threads or default_threads()
        n_batch = min(self.n_batch, self.n_ctx)
        params = llama_cpp.llama_context_default_params()
        # One unified KV shared by every slot, sized so that each slot can hold a whole
        # context: a split KV would give each sequence only n_ctx / parallel tokens.
        params.n_ctx = self.n_ctx * self.parallel
        params.n_seq_max = self.parallel
        params.kv_unified = True
        params.n_batch = params.n_ubatch = n_batch
        params.n_threads = params.n_threads_batch = threads
        params.no_perf = True
        # Flash attention stays at llama.cpp's "auto" (on for CPU): without it the attention
        # scores of one ubatch over the whole shared KV take 969 MiB instead of 300 MiB on the
        # demo model with 8 slots of 4096 tokens.
        context = LlamaContext(model=model, params=params, verbose=False)
        self._model, self._context = model, context
        self._prompter = Prompter.for_model(model, self.model_path, self.chat_template)
        self._engine = Engine(
            context.ctx,
            model.vocab,
            self.parallel,
            n_batch,
            prefill_chunk=min(self.prefill_chunk, n_batch),
            parking=Parking(self.park_bytes),
            on_change=self.on_change,
        )
        self._engine.start()
        log.info(
            "llama: %d slots of %d tokens, %d threads, %d GPU layers",
            self.parallel, self.n_ctx, threads, gpu_layers(self.n_gpu_layers),
        )  # fmt: skip
        progress(1.0, "ready")
        return Ready(
            model=self.model_id, n_ctx=self.n_ctx, chat_template=True, parallel=self.parallel
        )

    def slot_stats(self) -> SlotStats:
        return self._engine.stats() if self._engine is not None else SlotStats(0, self.parallel)

    def generate(self, job: Job) -> tuple[FinishReason, Usage]:
        engine, prompter, model = self._engine, self._prompter, self._model
        assert engine is not None and prompter is not None and model is not None
        request = job.request
        params = request.params
        if request.n > self.parallel:
            raise RequestFailed(
                "invalid_request",
                f"n may be at most {self.parallel} here: the model decodes that many at once",
                param="n",
            )
        if params.logit_bias and max(params.logit_bias) >= model.n_vocab():
            raise RequestFailed(
                "invalid_request",
                f"logit_bias names token {max(params.logit_bias)}; the vocabulary has "
                f"{model.n_vocab()} tokens",
            )
        plans, template_stops = prompt_plans(prompter, model, request)
        for plan in plans:
            if not plan.tokens:  # llama.cpp asserts on an empty batch
                raise RequestFailed("invalid_request", "the prompt is empty: it has no tokens")
            if len(plan.tokens) >= self.n_ctx:
                raise RequestFailed(
                    "context_length_exceeded",
                    f"the prompt has {len(plan.tokens)} tokens; this model's context holds "
                    f"{self.n_ctx}",
                )
        sequences = build_sequences(job, model, plans, template_stops, self.n_ctx, prompter.family)
        job.started(sum(len(plan.tokens) for plan in plans))
        if request.echo:
            for seq in sequences:
                job.emit(plans[seq.index // request.n].echo, 0, index=seq.index)
        for seq in sequences:
            if seq.leader is None:
                engine.submit(seq)
        for seq in sequences:
            seq.finished.wait()
        return outcome(sequences, request.n)
