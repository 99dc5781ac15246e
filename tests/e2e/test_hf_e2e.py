"""The hf backend end to end: a real supervisor, real hf children on tiny random checkpoints,
the official openai client."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import openai
import pytest

from tests.conftest import client_for
from tests.support.supervisor_proc import Supervisor, pid_alive, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.hf]

HELLO = [{"role": "user", "content": "Hello, how are you today?"}]


@pytest.fixture(scope="module")
def hf_sup(hf_models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supervisor]:
    """One supervisor for the module: loading torch in a child is the slow part, so the
    children stay loaded from test to test (each test reads only the log lines after its start)."""
    tmp = tmp_path_factory.mktemp("hf-sup")
    config = tmp / "corral.toml"
    config.write_text(
        'default_model = "tiny/chat"\nshutdown_grace = 10\nmax_loaded_models = 6\n'
        "demo_model = false\nembedding_model = true\n"
    )
    sup = Supervisor(data_dir=tmp / "data", models_dir=hf_models_dir, config=config).start()
    yield sup
    assert sup.proc is not None
    children = _child_pids(sup.proc.pid)
    sup.terminate()
    for pid in children:
        assert not pid_alive(pid), f"child {pid} outlived its supervisor"


def _child_pids(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(p) for p in handle.read().split()]
    except FileNotFoundError:
        return []


def _wait_for_new_log(sup: Supervisor, since: int, pattern: str) -> re.Match[str]:
    regex = re.compile(pattern)
    found: list[re.Match[str]] = []

    def seen() -> bool:
        found.extend(m for line in sup.lines[since:] if (m := regex.search(line)))
        return bool(found)

    wait_until(seen, 60, f"log line /{pattern}/")
    return found[0]


def _prompt_tokens(directory: Path, messages: list[dict[str, str]]) -> int:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory)
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _loaded_pid(sup: Supervisor, model: str) -> int:
    matches = re.findall(rf"loaded {re.escape(model)} \(pid (\d+)\)", sup.log_text())
    assert matches, f"no load of {model} in the log"
    return int(matches[-1])


def test_models_list_says_what_each_model_serves(hf_sup: Supervisor) -> None:
    with hf_sup.http() as http:
        listed = {m["id"]: m["capabilities"] for m in http.get("/v1/models").json()["data"]}
    assert listed["tiny/chat"] == ["chat", "completion"]
    assert listed["tiny/embed"] == ["embeddings"]
    assert listed["tiny/rerank"] == ["rerank"]
    assert listed["all-minilm-l6-v2"] == ["embeddings"]


def test_streaming_chat_usage_and_finish(hf_sup: Supervisor, hf_models_dir: Path) -> None:
    client = client_for(hf_sup)
    args = {"model": "tiny/chat", "messages": HELLO, "max_tokens": 12, "temperature": 0}
    whole = client.chat.completions.create(**args)  # type: ignore[call-overload]
    chunks = list(
        client.chat.completions.create(**args, stream=True, stream_options={"include_usage": True})  # type: ignore[call-overload]
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finals = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finals == [whole.choices[0].finish_reason]
    expected_prompt = _prompt_tokens(hf_models_dir / "tiny" / "chat", HELLO)
    for usage in (whole.usage, chunks[-1].usage):
        assert usage is not None
        assert usage.prompt_tokens == expected_prompt
        if whole.choices[0].finish_reason == "length":
            assert usage.completion_tokens == 12
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_seed_reproduces_and_stop_strings_cut(hf_sup: Supervisor) -> None:
    from transformers import AutoTokenizer

    client = client_for(hf_sup)
    eos = AutoTokenizer.from_pretrained(hf_sup.models_dir / "tiny" / "chat").eos_token_id
    args = {
        "model": "tiny/chat", "messages": HELLO, "max_tokens": 40, "temperature": 1.0,
        "logit_bias": {str(eos): -100},  # all 40 tokens, whatever the random weights say
    }  # fmt: skip
    first = client.chat.completions.create(**args, seed=11)  # type: ignore[call-overload]
    again = client.chat.completions.create(**args, seed=11)  # type: ignore[call-overload]
    text = first.choices[0].message.content or ""
    assert text == again.choices[0].message.content
    assert len(text) > 12, text
    stop = text[8:11]
    cut = text[: text.index(stop)]
    stopped = client.chat.completions.create(**args, seed=11, stop=[stop])  # type: ignore[call-overload]
    assert stopped.choices[0].message.content == cut
    assert stopped.choices[0].finish_reason == "stop"
    assert (stopped.choices[0].model_extra or {}).get("stop_reason") == stop
    streamed = list(client.chat.completions.create(**args, seed=11, stop=[stop], stream=True))  # type: ignore[call-overload]
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == cut
    ends = [c.choices[0] for c in streamed if c.choices and c.choices[0].finish_reason]
    assert [(e.finish_reason, (e.model_extra or {}).get("stop_reason")) for e in ends] == [
        ("stop", stop)
    ]
    # Run to max_tokens, no stop string ended it.
    assert (first.choices[0].model_extra or {}).get("stop_reason", "absent") is None


def test_raw_completion_and_logit_bias_forces_a_token(hf_sup: Supervisor) -> None:
    from transformers import AutoTokenizer

    client = client_for(hf_sup)
    tokenizer = AutoTokenizer.from_pretrained(hf_sup.models_dir / "tiny" / "chat")
    token = tokenizer(" sea")["input_ids"][0]  # a whole, plain-ASCII token
    reply = client.completions.create(
        model="tiny/chat",
        prompt="The horse",
        max_tokens=6,
        temperature=0.8,
        seed=1,
        logit_bias={str(token): 100},
    )
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == len(tokenizer("The horse")["input_ids"])
    assert reply.choices[0].text == tokenizer.decode([token]) * 6


def test_prompt_past_the_context_is_a_400(hf_sup: Supervisor) -> None:
    client = client_for(hf_sup)
    long = [{"role": "user", "content": "horses run across the green field " * 200}]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="tiny/chat", messages=long, max_tokens=4)  # type: ignore[arg-type]
    assert caught.value.code == "context_length_exceeded"
    assert "context holds 400" in caught.value.message


def test_disconnect_cancels_generation_in_the_hf_child(hf_sup: Supervisor) -> None:
    since = len(hf_sup.lines)
    body = {"model": "tiny/long", "messages": HELLO, "stream": True, "max_tokens": 8000}
    with (
        hf_sup.http() as http,
        http.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        seen = 0
        for line in response.iter_lines():
            if line.startswith("data: ") and '"content"' in line:
                seen += 1
                if seen == 3:
                    break
    match = _wait_for_new_log(hf_sup, since, r"finished: reason=cancelled completion_tokens=(\d+)")
    assert int(match.group(1)) < 8000


def test_hf_child_killed_mid_stream_then_restarts(hf_sup: Supervisor) -> None:
    body = {"model": "tiny/long", "messages": HELLO, "stream": True, "max_tokens": 8000}
    with hf_sup.http() as http:
        events: list[str] = []
        with http.stream("POST", "/v1/chat/completions", json=body) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith("data: "):
                    events.append(line.removeprefix("data: "))
                    if len(events) == 3:
                        pid = _loaded_pid(hf_sup, "tiny/long")
                        os.kill(pid, signal.SIGKILL)
        assert events[-1] == "[DONE]"
        error = json.loads(events[-2])["error"]
        assert error["code"] == "model_failed"
        assert "signal 9" in error["message"]
        wait_until(lambda: not pid_alive(pid), 10, "the killed child to be gone")
        again = http.post(
            "/v1/chat/completions", json={"model": "tiny/long", "messages": HELLO, "max_tokens": 2}
        )
        assert again.status_code == 200
        assert again.json()["usage"]["completion_tokens"] <= 2


def test_embeddings_shapes_normalisation_and_usage(hf_sup: Supervisor, hf_models_dir: Path) -> None:
    from sentence_transformers import SentenceTransformer

    client = client_for(hf_sup)
    texts = ["the cat sat on the mat", "a kitten plays", "the carburetor"]
    reply = client.embeddings.create(model="tiny/embed", input=texts)  # base64 on the wire
    vectors = np.array([d.embedding for d in reply.data])
    assert vectors.shape == (3, 32)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    reference = SentenceTransformer(str(hf_models_dir / "tiny" / "embed"), device="cpu")
    assert np.allclose(vectors, reference.encode(texts), atol=1e-5)
    tokens = sum(len(ids) for ids in reference.tokenizer(texts)["input_ids"])
    assert reply.usage.prompt_tokens == tokens == reply.usage.total_tokens
    floats = client.embeddings.create(model="tiny/embed", input="a kitten", encoding_format="float")
    assert np.allclose(floats.data[0].embedding, reference.encode(["a kitten"])[0], atol=1e-5)
    ids = client.embeddings.create(model="tiny/embed", input=[[2, 10, 11, 3], [2, 12, 3]])
    assert [len(d.embedding) for d in ids.data] == [32, 32]
    assert ids.usage.prompt_tokens == 7


def test_embedding_refusals_are_400s(hf_sup: Supervisor) -> None:
    client = client_for(hf_sup)
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="tiny/embed", input="x", dimensions=8)
    assert caught.value.code == "invalid_dimensions"
    assert caught.value.param == "dimensions"
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="tiny/chat", input="x")
    assert caught.value.code == "model_not_supported"
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="tiny/embed", messages=HELLO)  # type: ignore[arg-type]
    assert caught.value.code == "model_not_supported"
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="tiny/chat", messages=HELLO, tools=[tool])  # type: ignore[arg-type,list-item]
    assert (caught.value.code, caught.value.param) == ("unsupported", "tools")
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="tiny/chat",
            messages=HELLO,
            response_format={"type": "json_object"},  # type: ignore[arg-type]
        )
    assert (caught.value.code, caught.value.param) == ("unsupported", "response_format")
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="tiny/chat", messages=HELLO, logprobs=True)  # type: ignore[arg-type]
    assert (caught.value.code, caught.value.param) == ("unsupported", "logprobs")
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="tiny/embed", input="horses " * 100)
    assert caught.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="tiny/embed", input=[[10_000]])
    assert caught.value.code == "invalid_input"
    # A field these routes do not know is refused by name, never dropped.
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="tiny/embed", input="x", user="alice")
    assert caught.value.param == "user"
    with hf_sup.http() as http:
        reranked = http.post(
            "/v1/rerank",
            json={"model": "tiny/rerank", "query": "q", "documents": ["d"], "rank_fields": ["x"]},
        )
    assert reranked.status_code == 400
    assert reranked.json()["error"]["param"] == "rank_fields"


def test_rerank_orders_by_the_cross_encoders_scores(
    hf_sup: Supervisor, hf_models_dir: Path
) -> None:
    from sentence_transformers import CrossEncoder

    query = "a cat on the mat"
    documents = ["the cat sat on the mat", "the carburetor of the old engine", "a kitten", "sky"]
    with hf_sup.http() as http:
        response = http.post(
            "/v1/rerank",
            json={"model": "tiny/rerank", "query": query, "documents": documents, "top_n": 3,
                  "return_documents": True},
        )  # fmt: skip
        assert response.status_code == 200, response.text
        body = response.json()
        refused = http.post(
            "/v1/rerank", json={"model": "tiny/embed", "query": "q", "documents": ["d"]}
        )
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "model_not_supported"
        long = http.post(
            "/v1/rerank", json={"model": "tiny/rerank", "query": "q", "documents": ["sea " * 200]}
        )
        assert long.status_code == 400
        assert (long.json()["error"]["code"], long.json()["error"]["param"]) == (
            "context_length_exceeded",
            "documents",
        )
    reference = CrossEncoder(str(hf_models_dir / "tiny" / "rerank"), device="cpu")
    scores = reference.predict([(query, d) for d in documents])
    expected = sorted(range(4), key=lambda i: -scores[i])[:3]
    assert [r["index"] for r in body["results"]] == expected
    assert [r["relevance_score"] for r in body["results"]] == pytest.approx(
        [float(scores[i]) for i in expected], abs=1e-5
    )
    assert [r["document"]["text"] for r in body["results"]] == [documents[i] for i in expected]
    assert body["usage"]["prompt_tokens"] > 0


def test_memory_estimate_covers_the_real_rss(hf_sup: Supervisor) -> None:
    client = client_for(hf_sup)
    client.chat.completions.create(model="tiny/chat", messages=HELLO, max_tokens=4)  # type: ignore[arg-type]
    with hf_sup.http() as http:
        models = {m["id"]: m for m in http.get("/admin/models").json()["data"]}
    estimate = models["tiny/chat"]["estimated_bytes"]
    pid = _loaded_pid(hf_sup, "tiny/chat")
    with open(f"/proc/{pid}/status") as status:
        rss = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM"))
    assert rss <= estimate <= 1.6 * rss


@pytest.mark.skipif(
    importlib.util.find_spec("all_minilm_l6_v2") is None,
    reason="the bundled embedding model's package is not installed",
)
def test_bundled_minilm_knows_a_cat_from_a_carburetor(hf_sup: Supervisor) -> None:
    client = client_for(hf_sup)
    reply = client.embeddings.create(
        model="all-minilm-l6-v2", input=["cat", "kitten", "carburetor"]
    )
    cat, kitten, carburetor = (np.array(d.embedding) for d in reply.data)
    assert len(cat) == 384
    assert float(cat @ kitten) > float(cat @ carburetor)


def test_an_hf_model_is_deleted_with_its_directory(hf_sup: Supervisor, hf_models_dir: Path) -> None:
    doomed = hf_models_dir / "scratch" / "doomed"
    shutil.copytree(hf_models_dir / "tiny" / "rerank", doomed)
    size = sum(p.stat().st_size for p in doomed.rglob("*") if p.is_file())
    try:
        with hf_sup.http() as http:
            assert "scratch/doomed" in {m["id"] for m in http.get("/v1/models").json()["data"]}
            response = http.post("/admin/models/delete", json={"model": "scratch/doomed"})
            assert response.status_code == 200, response.text
            assert response.json()["freed_bytes"] == size
            assert "scratch/doomed" not in {m["id"] for m in http.get("/v1/models").json()["data"]}
        assert not doomed.exists()
    finally:
        shutil.rmtree(hf_models_dir / "scratch", ignore_errors=True)
