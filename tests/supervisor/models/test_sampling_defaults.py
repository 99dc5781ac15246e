"""Per-model default sampling: request > preset > the GGUF's general.sampling.* > backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.supervisor.models.catalog import Catalog
from corral.supervisor.models.demo_model import header_part
from corral.supervisor.models.gguf_header import read_metadata
from corral.supervisor.models.sampling_defaults import DEMO_SAMPLING, from_gguf
from corral.supervisor.openai.schemas import ChatCompletionRequest
from corral.supervisor.settings import DEMO_MODEL_ID, SamplingDefaults, Settings
from tests.conftest import SupervisorFactory, client_for, have_llama
from tests.support.tiny_gguf import write_tiny_gguf


def test_gguf_sampling_keys_are_read(tmp_path: Path) -> None:
    path = write_tiny_gguf(
        tmp_path / "m.gguf", sampling={"temp": 0.6, "top_p": 0.9, "top_k": 20, "min_p": 0.05}
    )
    found = from_gguf(read_metadata(path))
    assert found == SamplingDefaults(temperature=0.6, top_p=0.9, top_k=20, min_p=0.05)
    # Out of the child's ranges: ignored as a whole, never a 500 on the request.
    bad = write_tiny_gguf(tmp_path / "bad.gguf", sampling={"top_p": 3.0, "temp": 0.5})
    assert from_gguf(read_metadata(bad)) == SamplingDefaults()
    assert from_gguf(read_metadata(write_tiny_gguf(tmp_path / "none.gguf"))) == SamplingDefaults()


def test_request_then_preset_then_gguf(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    write_tiny_gguf(models / "m.gguf", sampling={"temp": 0.3, "top_k": 5})
    settings = Settings.model_validate(
        {
            "data_dir": tmp_path / "data",
            "models_dir": models,
            "models": {"tuned": {"path": "m.gguf", "sampling": {"temperature": 0.9}}},
        }
    )
    catalog = Catalog(settings)
    assert catalog.resolve("m").preset.sampling == SamplingDefaults(temperature=0.3, top_k=5)
    tuned = catalog.resolve("tuned")
    assert tuned.preset.sampling == SamplingDefaults(temperature=0.9, top_k=5)
    request = ChatCompletionRequest.model_validate(
        {"messages": [{"role": "user", "content": "hi"}], "top_k": 40}
    )
    params = request.to_generate("r1", tuned.preset, 1000).params
    assert (params.temperature, params.top_k) == (0.9, 40)


def test_demo_preset_ships_qwen_sampling(tmp_path: Path) -> None:
    settings = Settings.model_validate({"data_dir": tmp_path, "models_dir": tmp_path / "m"})
    demo = Catalog(settings).entries()[DEMO_MODEL_ID]
    qwen = SamplingDefaults(temperature=0.7, top_p=0.8, top_k=20, repeat_penalty=1.05)
    assert demo.preset.sampling == qwen
    if header_part() is not None:  # the demo GGUF has no keys of its own: nothing is lost
        assert Catalog(settings).resolve(DEMO_MODEL_ID).preset.sampling == DEMO_SAMPLING


@pytest.mark.skipif(not have_llama(), reason="needs llama-cpp-python")
def test_gguf_default_reaches_the_model(supervisor: SupervisorFactory, tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    # top_k 1 is greedy decoding: the seed cannot change the answer, unless a request
    # overrides the model's default.
    write_tiny_gguf(models / "greedy.gguf", seed=3, sampling={"top_k": 1})
    sup = supervisor(models_dir=models)
    client = client_for(sup)

    def answer(seed: int, **extra: object) -> str:
        reply = client.chat.completions.create(
            model="greedy",
            messages=[{"role": "user", "content": "hello there"}],
            max_tokens=24,
            temperature=1.5,
            seed=seed,
            extra_body=extra,
        )
        return reply.choices[0].message.content or ""

    assert answer(1) == answer(2)
    assert answer(1, top_k=0) != answer(2, top_k=0)
