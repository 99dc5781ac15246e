"""Ollama's API end to end: a real supervisor process, real llama (and hf) children, and the
official ``ollama`` Python client unchanged, as an Ollama-speaking app would use it."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import ollama
import pytest

from tests.conftest import FAKE_PRESETS, SupervisorFactory
from tests.support.fake_hub import FakeHub
from tests.support.supervisor_proc import Supervisor
from tests.support.tiny_gguf import write_tiny_gguf

pytestmark = [pytest.mark.e2e, pytest.mark.llama]

HELLO = [{"role": "user", "content": "tell me about the sea"}]


@pytest.fixture(scope="module")
def sup(
    tiny_models_dir: Path, shared_data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Supervisor]:
    """One supervisor for the module: the tests only read, so they can share it."""
    tmp = tmp_path_factory.mktemp("ollama-sup")
    config = tmp / "corral.toml"
    config.write_text(
        'default_model = "tiny"\nn_ctx = 512\nshutdown_grace = 10\n'
        f'database_path = "{tmp / "corral.db"}"\n' + FAKE_PRESETS
    )
    started = Supervisor(data_dir=shared_data_dir, models_dir=tiny_models_dir, config=config)
    yield started.start()
    started.terminate()


@pytest.fixture(scope="module")
def client(sup: Supervisor) -> Iterator[ollama.Client]:
    with ollama.Client(host=sup.base_url, timeout=180) as c:
        yield c


def test_list_show_and_ps(client: ollama.Client) -> None:
    listed = {m.model: m for m in client.list().models}
    tiny = listed["tiny:latest"]
    assert tiny.details is not None
    assert (tiny.details.format, tiny.details.family, tiny.details.quantization_level) == (
        "gguf",
        "llama",
        "F32",
    )
    assert (tiny.size or 0) > 0
    assert tiny.modified_at is not None
    assert "qwen2.5-coder-0.5b-instruct:latest" in listed
    shown = client.show("tiny")
    assert shown.capabilities is not None
    assert "completion" in shown.capabilities
    assert shown.modelinfo is not None
    assert shown.modelinfo["general.architecture"] == "llama"
    assert shown.template is not None
    assert "<|im_start|>" in shown.template
    assert shown.parameters is not None
    assert "num_ctx" in shown.parameters
    client.generate("tiny", "hi", options={"num_predict": 1}, keep_alive="10m")
    running = {m.model: m for m in client.ps().models}
    assert "tiny:latest" in running
    assert running["tiny:latest"].size_vram == 0
    expires = running["tiny:latest"].expires_at
    assert expires is not None
    assert expires > datetime.now(UTC)


def test_chat_whole_and_streamed_agree_at_temperature_zero(client: ollama.Client) -> None:
    options = {"temperature": 0, "seed": 7, "num_predict": 16}
    whole = client.chat("tiny", messages=HELLO, options=options)
    assert whole.message.role == "assistant"
    assert whole.done is True
    assert whole.done_reason in ("stop", "length")
    assert whole.eval_count is not None
    assert 0 < whole.eval_count <= 16
    assert (whole.prompt_eval_count or 0) > 0
    assert (whole.total_duration or 0) > 0
    parts = list(client.chat("tiny", messages=HELLO, options=options, stream=True))
    assert "".join(p.message.content or "" for p in parts) == whole.message.content
    assert [p.done for p in parts] == [False] * (len(parts) - 1) + [True]
    final = parts[-1]
    assert (final.eval_count, final.done_reason) == (whole.eval_count, whole.done_reason)
    assert final.eval_duration is not None
    assert final.total_duration is not None
    assert final.total_duration >= final.eval_duration


def test_generate_with_num_predict_and_seeds(client: ollama.Client) -> None:
    capped = client.generate("tiny", "the cat", options={"num_predict": 3, "temperature": 0})
    assert capped.eval_count is not None
    assert capped.eval_count <= 3
    assert capped.done_reason == ("length" if capped.eval_count == 3 else "stop")
    longer = client.generate("tiny", "the cat", options={"num_predict": 12, "temperature": 0})
    assert longer.response.startswith(capped.response)
    hot = {"temperature": 1.5, "num_predict": 16}
    first = client.generate("tiny", "the cat", options={**hot, "seed": 11}).response
    again = client.generate("tiny", "the cat", options={**hot, "seed": 11}).response
    assert first == again
    others = {
        client.generate("tiny", "the cat", options={**hot, "seed": s}).response for s in (1, 2, 3)
    }
    assert others - {first}  # another seed samples differently
    raw = client.generate(
        "tiny", "<|im_start|>user\nhi<|im_end|>\n", raw=True, options={"num_predict": 4}
    )
    assert raw.eval_count is not None
    assert 0 < raw.eval_count <= 4


def test_stop_sequences_cut_the_answer(client: ollama.Client) -> None:
    options = {"temperature": 0, "num_predict": 24}
    free = client.generate("tiny", "the sea", options=options).response
    assert len(free) > 4
    stop = free[2:4]
    cut = client.generate("tiny", "the sea", options={**options, "stop": [stop]}).response
    assert stop not in cut
    assert free.startswith(cut)


def test_refusals_and_unknown_models_are_errors_naming_them(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as refused:
        client.chat("tiny", messages=HELLO, options={"mirostat": 2})
    assert refused.value.status_code == 400
    assert "options.mirostat" in refused.value.error
    with pytest.raises(ollama.ResponseError) as streamed:
        list(client.generate("tiny", "x", options={"typical_p": 0.3}, stream=True))
    assert "options.typical_p" in streamed.value.error
    with pytest.raises(ollama.ResponseError) as missing:
        client.chat("no-such-model", messages=HELLO)
    assert missing.value.status_code == 404
    assert "no-such-model" in missing.value.error
    with pytest.raises(ollama.ResponseError) as unsupported:
        client.create("mine", from_="tiny")
    assert unsupported.value.status_code == 400


def test_load_and_unload_like_ollama(client: ollama.Client) -> None:
    loaded = client.generate("fake")
    assert (loaded.done, loaded.done_reason) == (True, "load")
    assert "fake:latest" in {m.model for m in client.ps().models}
    unloaded = client.chat("fake", messages=[], keep_alive=0)
    assert unloaded.done_reason == "unload"


@pytest.mark.hf
def test_embed_with_the_bundled_minilm(client: ollama.Client) -> None:
    embedded = client.embed("all-minilm-l6-v2", input=["cat", "kitten", "carburetor"])
    vectors = embedded.embeddings
    assert [len(v) for v in vectors] == [384] * 3
    assert (embedded.prompt_eval_count or 0) >= 3

    def cosine(a: Sequence[float], b: Sequence[float]) -> float:
        dot = sum(x * y for x, y in zip(a, b, strict=True))
        return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))

    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2])
    single = client.embeddings("all-minilm-l6-v2", prompt="cat").embedding
    assert cosine(single, vectors[0]) > 0.999
    same = client.embed("all-minilm-l6-v2:latest", input="cat", dimensions=384).embeddings
    assert len(same[0]) == 384
    with pytest.raises(ollama.ResponseError) as shortened:  # MiniLM was not trained to shorten
        client.embed("all-minilm-l6-v2", input="cat", dimensions=64)
    assert shortened.value.status_code == 400
    assert "dimensions" in shortened.value.error
    with pytest.raises(ollama.ResponseError) as refused:
        client.embed("tiny", input="cat")
    assert refused.value.status_code == 400


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    fake = FakeHub().start()
    monkeypatch.delenv("HF_TOKEN", raising=False)
    yield fake
    fake.stop()


def test_pull_chat_and_delete_a_hub_model(
    supervisor: SupervisorFactory, hub: FakeHub, tmp_path: Path
) -> None:
    q4 = write_tiny_gguf(tmp_path / "q4.gguf", seed=5).read_bytes()
    q8 = write_tiny_gguf(tmp_path / "q8.gguf", seed=6).read_bytes()
    hub.add("org/tiny-GGUF", {"tiny-Q4_K_M.gguf": q4, "tiny-Q8_0.gguf": q8, "README.md": b"# t\n"})
    env = {"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_TELEMETRY": "1"}
    sup = supervisor(
        "demo_model = false\n[hub]\nprogress_interval = 0.05\n", env=env, data_dir=tmp_path / "data"
    )
    with ollama.Client(host=sup.base_url, timeout=120) as client:
        progress = list(client.pull("hf.co/org/tiny-GGUF:Q4_K_M", stream=True))
        assert progress[0].status == "pulling manifest"
        assert progress[-1].status == "success"
        files = [p for p in progress if p.digest]
        assert {p.digest for p in files} == {"tiny-Q4_K_M.gguf"}
        assert files[-1].completed == files[-1].total == len(q4)
        name = "hf.co/org/tiny-GGUF:tiny-Q4_K_M"
        assert name in {m.model for m in client.list().models}
        answer = client.chat(name, messages=HELLO, options={"num_predict": 2})
        assert answer.eval_count is not None
        assert 0 < answer.eval_count <= 2
        # Not streamed: one object once the download is done (the same files: nothing to fetch).
        assert client.pull("org/tiny-GGUF:q4_k_m").status == "success"
        with pytest.raises(ollama.ResponseError) as unknown:
            client.pull("org/no-such-repo")
        assert unknown.value.status_code == 404
        client.generate(name, keep_alive=0)  # unload before the delete
        assert client.delete(name).status == "success"
        assert name not in {m.model for m in client.list().models}
        with pytest.raises(ollama.ResponseError) as gone:
            client.delete(name)
        assert gone.value.status_code == 404


def test_keys_guard_ollamas_routes(
    supervisor: SupervisorFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-ollama-e2e-0123456789"
    sup = supervisor(f'[[api_keys]]\nname = "app"\nkey = "{key}"\n')
    with (
        ollama.Client(host=sup.base_url, timeout=60) as anonymous,
        pytest.raises(ollama.ResponseError) as refused,
    ):
        anonymous.list()
    assert refused.value.status_code == 401
    assert "API key" in refused.value.error  # a message, not an OpenAI error object
    monkeypatch.setenv("OLLAMA_API_KEY", key)  # the client sends it as a Bearer token
    with ollama.Client(host=sup.base_url, timeout=60) as client:
        assert "fake:latest" in {m.model for m in client.list().models}
        answer = client.chat("fake", messages=HELLO, options={"num_predict": 2})
        assert answer.message.content == "tok0 tok1"
        with pytest.raises(ollama.ResponseError) as not_admin:
            client.pull("org/repo")
        assert not_admin.value.status_code == 403
