"""How many requests a llama model decodes together (its slots) when neither its preset nor the
settings say: as many as pay off, as long as their KV fits the memory budget.

Each slot may hold a whole context (one unified KV of ``n_ctx x parallel`` tokens), so the KV
grows with the slots while the weights do not. On CPUs a step of 8 rows gives 1.6-1.9x the
tokens/s of a 1-row step and 2-3 rows gain nothing (different matmul kernels), so the default
is 8; a model whose 8 slots of KV would not fit the budget beside its weights and parked KV
gets the most slots that do, never fewer than 1 (a model that does not fit even then is the
scheduler's ``never_fits``, not a reason to pretend).
"""

from __future__ import annotations

from dataclasses import dataclass

from corral.supervisor.models.gguf_header import MemoryShape
from corral.supervisor.models.limits import default_memory_budget
from corral.supervisor.settings import ModelPreset, Settings

DEFAULT_PARALLEL = 8
# The KV-cache cost per context token when a model's header does not say (no file yet, a
# fake model, an architecture without attention numbers): an upper-ish figure for small models.
# The catalog's footprint uses it too.
FALLBACK_KV_BYTES_PER_TOKEN = 32 << 10


def fitting_slots(shape: MemoryShape, *, weights: int, n_ctx: int, parked: int, budget: int) -> int:
    """The slots, up to 8, for a model of ``weights`` bytes whose every slot holds ``n_ctx``
    tokens of KV, with ``parked`` bytes of parked KV beside them, within ``budget`` bytes
    (0: no limit)."""
    if budget <= 0:
        return DEFAULT_PARALLEL
    fallback = FALLBACK_KV_BYTES_PER_TOKEN
    fixed = weights + parked + shape.runtime_bytes(0, fallback)
    per_slot = shape.runtime_bytes(n_ctx, fallback) - shape.runtime_bytes(0, fallback)
    return max(1, min(DEFAULT_PARALLEL, (budget - fixed) // per_slot))


@dataclass(frozen=True)
class Parallelism:
    default_budget: int
    """The memory budget when the settings set none, measured once at start as the model
    manager's is: measured later, the models already loaded would shrink it."""

    @classmethod
    def measured(cls, settings: Settings) -> Parallelism:
        return cls(default_memory_budget(settings))

    def slots(
        self, preset: ModelPreset, settings: Settings, shape: MemoryShape, weights: int, parked: int
    ) -> int:
        """The preset's ``parallel``, else the settings', else as many as fit."""
        explicit = preset.parallel or settings.parallel
        if explicit:
            return explicit
        budget = settings.memory_budget
        return fitting_slots(
            shape,
            weights=weights,
            n_ctx=preset.n_ctx or settings.n_ctx,
            parked=parked,
            budget=self.default_budget if budget is None else budget,
        )
