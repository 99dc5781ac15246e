"""A llama model's default slots: 8, fewer when 8 slots of KV would not fit the memory budget,
never below 1; a preset's or the settings' ``parallel`` wins."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from corral.supervisor.models.catalog import Catalog
from corral.supervisor.models.gguf_header import BATCH_TOKENS, LOGIT_BYTES, MemoryShape
from corral.supervisor.models.parallelism import (
    DEFAULT_PARALLEL,
    FALLBACK_KV_BYTES_PER_TOKEN,
    Parallelism,
    fitting_slots,
)
from corral.supervisor.settings import ModelPreset, load_settings
from tests.support.tiny_gguf import build_vocab, write_tiny_gguf

SHAPE = MemoryShape(kv_bytes_per_token=1000, vocab_size=10)
LOGITS = 10 * BATCH_TOKENS * LOGIT_BYTES


def slots_within(budget: int, *, weights: int = 50_000, n_ctx: int = 100, parked: int = 0) -> int:
    return fitting_slots(SHAPE, weights=weights, n_ctx=n_ctx, parked=parked, budget=budget)


def test_eight_slots_when_they_fit_or_there_is_no_budget() -> None:
    assert DEFAULT_PARALLEL == 8
    assert slots_within(0) == 8
    assert slots_within(10**12) == 8
    # exactly 8 slots of 100 tokens x 1000 bytes beside the weights and the logits
    assert slots_within(50_000 + LOGITS + 8 * 100_000) == 8


@pytest.mark.parametrize("room_for", [1, 2, 3, 5, 7])
def test_as_many_slots_as_fit_the_budget(room_for: int) -> None:
    budget = 50_000 + LOGITS + room_for * 100_000
    assert slots_within(budget) == room_for
    assert slots_within(budget - 1) == max(1, room_for - 1)


def test_parked_kv_counts_against_the_slots() -> None:
    budget = 50_000 + LOGITS + 4 * 100_000
    assert slots_within(budget) == 4
    assert slots_within(budget, parked=200_000) == 2


def test_never_fewer_than_one_slot() -> None:
    # Not even the weights fit: the scheduler refuses the model (never_fits), not this rule.
    assert slots_within(1000) == 1


def test_a_header_without_kv_figures_costs_the_fallback() -> None:
    unknown = MemoryShape(kv_bytes_per_token=None, vocab_size=None)
    per_slot = 100 * FALLBACK_KV_BYTES_PER_TOKEN
    budget = 50_000 + 3 * per_slot
    assert fitting_slots(unknown, weights=50_000, n_ctx=100, parked=0, budget=budget) == 3


def test_an_explicit_parallel_wins(tmp_path: Path) -> None:
    tight = Parallelism(default_budget=50_000 + LOGITS + 2 * 100_000)
    settings = load_settings(None, data_dir=tmp_path, n_ctx=100)
    assert tight.slots(ModelPreset(), settings, SHAPE, 50_000, 0) == 2
    assert tight.slots(ModelPreset(parallel=6), settings, SHAPE, 50_000, 0) == 6
    chosen = load_settings(None, data_dir=tmp_path, n_ctx=100, parallel=5)
    assert tight.slots(ModelPreset(), chosen, SHAPE, 50_000, 0) == 5
    assert tight.slots(ModelPreset(parallel=3), chosen, SHAPE, 50_000, 0) == 3
    # a preset's n_ctx sizes its slots: 50 tokens a slot, so twice as many fit
    assert tight.slots(ModelPreset(n_ctx=50), settings, SHAPE, 50_000, 0) == 4
    # the settings' memory_budget wins over the measured default
    roomy = load_settings(None, data_dir=tmp_path, n_ctx=100, memory_budget=10**12)
    assert tight.slots(ModelPreset(), roomy, SHAPE, 50_000, 0) == 8


def test_the_catalog_sizes_slots_and_footprint_from_the_budget(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    tiny = write_tiny_gguf(models / "tiny.gguf")
    (models / "pinned.gguf").write_bytes(tiny.read_bytes())
    logits = len(build_vocab()[0]) * BATCH_TOKENS * LOGIT_BYTES
    weights = tiny.stat().st_size
    # the tiny GGUF's KV: 512 bytes a token, 1024 tokens a slot; room for 3 slots and the parking
    budget = weights + logits + 5000 + 3 * 1024 * 512
    config = tmp_path / "corral.toml"
    config.write_text('[models.pinned]\npath = "pinned.gguf"\nparallel = 7\n')
    settings = load_settings(
        config,
        data_dir=tmp_path / "data",
        models_dir=models,
        demo_model=False,
        n_ctx=1024,
        kv_park_bytes=5000,
        memory_budget=budget,
    )
    catalog = Catalog(settings)
    tiny_entry = catalog.resolve("tiny")
    assert catalog.parallel(tiny_entry) == 3
    assert catalog.footprint(tiny_entry) == budget
    argv = _argv(catalog, "tiny")
    assert argv[argv.index("--parallel") + 1] == "3"
    assert catalog.parallel(catalog.resolve("pinned")) == 7
    # a reload with a larger budget gives the model its 8 slots
    catalog.apply(settings.model_copy(update={"memory_budget": budget * 100}))
    assert catalog.parallel(catalog.resolve("tiny")) == 8


def _argv(catalog: Catalog, model_id: str) -> list[str]:
    return list(asyncio.run(catalog.command(catalog.resolve(model_id))).argv)
