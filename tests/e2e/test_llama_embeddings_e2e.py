"""``/v1/embeddings`` from llama children: GGUF embedding models through the real supervisor and
the official client, checked against llama-cpp-python's own ``Llama.embed``."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest

from tests.conftest import SupervisorFactory, client_for
from tests.support.supervisor_proc import Supervisor
from tests.support.tiny_bert_gguf import write_tiny_bert_gguf
from tests.support.tiny_gguf import write_tiny_gguf

pytestmark = [pytest.mark.e2e, pytest.mark.llama]

# "last" is a decoder whose header names its pooling (last token); "bert" an encoder with CLS
# pooling (llama.cpp's encoder graph, [CLS] and [SEP] added); "as-embedder" is a chat GGUF that
# a preset turns into an embedder, pooled by the mean.
PRESET = """
[models.as-embedder]
path = "chat.gguf"
embedding = true
n_threads = 1
"""
TEXTS = ["hello there", "the hello", "in the hell", "hello"]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("embedding-models")
    write_tiny_gguf(directory / "tiny.gguf", seed=1)
    write_tiny_gguf(directory / "chat.gguf", seed=2)
    write_tiny_gguf(directory / "last.gguf", seed=3, pooling=3)
    write_tiny_bert_gguf(directory / "bert.gguf", seed=4)
    return directory


@pytest.fixture
def sup(supervisor: SupervisorFactory, models: Path) -> Supervisor:
    return supervisor(PRESET, models_dir=models)


@pytest.fixture(scope="module")
def reference(models: Path) -> Iterator[dict[str, Any]]:
    """llama-cpp-python's high-level embedder on the same files: one text at a time."""
    import llama_cpp

    pooled = {"as-embedder": ("chat.gguf", llama_cpp.LLAMA_POOLING_TYPE_MEAN)}
    pooled["last"] = ("last.gguf", llama_cpp.LLAMA_POOLING_TYPE_LAST)
    pooled["bert"] = ("bert.gguf", llama_cpp.LLAMA_POOLING_TYPE_CLS)
    llamas = {
        model: llama_cpp.Llama(
            str(models / file),
            embedding=True,
            pooling_type=pooling,
            n_ctx=128 if model == "bert" else 512,
            n_threads=1,
            verbose=False,
        )
        for model, (file, pooling) in pooled.items()
    }
    yield llamas
    for llama in llamas.values():
        llama.close()


def expected(reference: dict[str, Any], model: str, text: str) -> np.ndarray:
    return np.array(reference[model].embed(text, normalize=True), dtype=np.float32)


@pytest.mark.parametrize("model", ["last", "bert", "as-embedder"])
def test_vectors_match_llama_cpp_and_are_unit_length(
    sup: Supervisor, reference: dict[str, Any], model: str
) -> None:
    client = client_for(sup)
    reply = client.embeddings.create(model=model, input=TEXTS)  # base64 on the wire
    assert reply.model == model
    vectors = np.array([d.embedding for d in reply.data])
    assert [d.index for d in reply.data] == list(range(len(TEXTS)))
    assert vectors.shape == (len(TEXTS), 32 if model == "bert" else 64)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    for text, vector in zip(TEXTS, vectors, strict=True):
        # Batched with the others in one decode, each equals the text embedded alone (up to
        # float rounding: the kernels sum in another order for another batch shape).
        assert np.allclose(vector, expected(reference, model, text), atol=2e-3), text
    tokens = sum(len(reference[model].tokenize(t.encode())) for t in TEXTS)
    assert reply.usage.prompt_tokens == tokens == reply.usage.total_tokens
    single = client.embeddings.create(model=model, input="hello", encoding_format="float")
    assert np.allclose(single.data[0].embedding, vectors[3], atol=1e-6)


def test_token_inputs_and_base64(sup: Supervisor, reference: dict[str, Any]) -> None:
    client = client_for(sup)
    ids = [reference["last"].tokenize(t.encode()) for t in TEXTS[:2]]
    texts = client.embeddings.create(model="last", input=TEXTS[:2], encoding_format="float")
    listed = client.embeddings.create(model="last", input=ids, encoding_format="float")
    for by_text, by_ids in zip(texts.data, listed.data, strict=True):
        assert np.allclose(by_text.embedding, by_ids.embedding, atol=1e-6)
    one = client.embeddings.create(model="last", input=ids[0], encoding_format="float")
    assert np.allclose(one.data[0].embedding, texts.data[0].embedding, atol=1e-6)
    assert one.usage.prompt_tokens == len(ids[0])
    with sup.http() as http:
        raw = http.post(
            "/v1/embeddings",
            json={"model": "last", "input": TEXTS[0], "encoding_format": "base64"},
        ).json()
    decoded = np.frombuffer(base64.b64decode(raw["data"][0]["embedding"]), dtype="<f4")
    assert np.allclose(decoded, texts.data[0].embedding, atol=1e-7)


def test_many_inputs_span_several_batches_in_order(
    sup: Supervisor, reference: dict[str, Any]
) -> None:
    client = client_for(sup)
    texts = [f"the hello {i}" for i in range(150)]  # more sequences than one decode carries
    reply = client.embeddings.create(model="last", input=texts, encoding_format="float")
    assert len(reply.data) == len(texts)
    for i in (0, 63, 64, 65, 128, 149):
        assert np.allclose(
            reply.data[i].embedding, expected(reference, "last", texts[i]), atol=2e-3
        )


def test_refusals_are_400s_naming_the_field(sup: Supervisor) -> None:
    client = client_for(sup)
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="last", input="x", dimensions=8)
    assert (caught.value.code, caught.value.param) == ("invalid_dimensions", "dimensions")
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="last", messages=[{"role": "user", "content": "hi"}])
    assert (caught.value.code, caught.value.param) == ("model_not_supported", "model")
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model="as-embedder", prompt="hi")
    assert caught.value.code == "model_not_supported"
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="tiny", input="x")  # a chat model
    assert caught.value.code == "model_not_supported"
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="last", input="hello " * 600)
    assert (caught.value.code, caught.value.param) == ("context_length_exceeded", "input")
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="bert", input="ab " * 100)  # its context: 128 tokens
    assert (caught.value.code, caught.value.param) == ("context_length_exceeded", "input")
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="last", input=[[1, 2, 100_000]])
    assert (caught.value.code, caught.value.param) == ("invalid_input", "input")
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="last", input="")
    assert (caught.value.code, caught.value.param) == ("invalid_input", "input")
    # The model still serves after every refusal.
    assert len(client.embeddings.create(model="last", input="x").data) == 1


def test_models_say_which_embed(sup: Supervisor) -> None:
    rows = {m.id: m.model_dump() for m in client_for(sup).models.list().data}
    for model in ("last", "bert", "as-embedder"):
        assert rows[model]["capabilities"] == ["embeddings"]
        assert rows[model]["kind"] == "embeddings"
    assert rows["tiny"]["capabilities"] == ["chat", "completion"]
