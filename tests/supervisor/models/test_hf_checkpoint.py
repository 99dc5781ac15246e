"""The hf backend's pure parts: checkpoint files, memory estimate, pull selection, sampling."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from corral.child.hf.sampling import LogitBiasProcessor, PenaltyProcessor, generation_settings
from corral.child.runtime import RequestFailed
from corral.protocol import MAX_FRAME_BYTES
from corral.protocol.messages import SamplingParams
from corral.supervisor.hub.cache import HubCache
from corral.supervisor.hub.checkpoint_files import checkpoint_files
from corral.supervisor.models.checkpoint import (
    RUNTIME_BYTES,
    checkpoint_task,
    count_tensors,
    footprint,
    kv_bytes_per_token,
    read_config,
)
from corral.supervisor.models.encoding import split_inputs, vector_floats
from corral.supervisor.models.hf_entries import find_checkpoints, hf_argv
from corral.supervisor.settings import ModelPreset, load_settings

pytestmark = pytest.mark.hf


def test_tasks_and_ids_of_checkpoint_directories(hf_models_dir: Path, tmp_path: Path) -> None:
    found = dict(find_checkpoints(hf_models_dir))
    assert set(found) == {"tiny/chat", "tiny/long", "tiny/embed", "tiny/rerank"}
    tasks = {model_id: checkpoint_task(path) for model_id, path in found.items()}
    assert tasks == {
        "tiny/chat": "chat",
        "tiny/long": "chat",
        "tiny/embed": "embed",
        "tiny/rerank": "rerank",
    }
    # A symlink that leads out of the models directory names nothing.
    root = tmp_path / "models"
    root.mkdir()
    os.symlink(hf_models_dir / "tiny" / "chat", root / "escape")
    assert list(find_checkpoints(root)) == []


def test_weights_from_safetensors_headers_match_the_tensors(hf_models_dir: Path) -> None:
    from safetensors import safe_open

    directory = hf_models_dir / "tiny" / "chat"
    actual = 0
    with safe_open(str(directory / "model.safetensors"), framework="pt") as weights:
        for name in weights.keys():  # noqa: SIM118 (safe_open is not a mapping)
            tensor = weights.get_tensor(name)
            actual += tensor.numel() * tensor.element_size()
    counted = count_tensors(directory)
    assert counted.bytes_at(None) == actual
    assert counted.bytes_at(2) == actual // 2  # all float32 here: half at bfloat16


def test_footprint_adds_the_kv_cache_for_the_context(hf_models_dir: Path) -> None:
    directory = hf_models_dir / "tiny" / "chat"
    config = read_config(directory)
    # 2 layers x 2 KV heads x head_dim 8 (32 / 4 heads), keys and values, float32.
    assert kv_bytes_per_token(config, 4) == 2 * 2 * 2 * 8 * 4
    full = footprint(directory, n_ctx=None)
    short = footprint(directory, n_ctx=100)
    assert full - short == kv_bytes_per_token(config, 4) * 300  # the config holds 400
    weights = count_tensors(directory).bytes_at(4)
    assert full == RUNTIME_BYTES + weights + 400 * 256 + config["vocab_size"] * 16
    embed = hf_models_dir / "tiny" / "embed"
    assert footprint(embed, n_ctx=None) == RUNTIME_BYTES + count_tensors(embed).bytes_at(4)


def test_child_command_carries_the_preset(hf_models_dir: Path, tmp_path: Path) -> None:
    settings = load_settings(None, data_dir=tmp_path)
    preset = ModelPreset(
        backend="hf", n_ctx=128, device="cpu", dtype="bfloat16", trust_remote_code=True
    )
    argv = hf_argv("tiny/chat", hf_models_dir / "tiny" / "chat", preset, settings)
    assert argv[3:] == [
        "hf", "--model", str(hf_models_dir / "tiny" / "chat"), "--model-id", "tiny/chat",
        "--task", "chat", "--n-ctx", "128", "--device", "cpu", "--dtype", "bfloat16",
        "--trust-remote-code",
    ]  # fmt: skip


def test_a_pull_takes_only_the_checkpoint_files() -> None:
    listing = [
        ".gitattributes", "README.md", "config.json", "generation_config.json",
        "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
        "model.safetensors.index.json", "pytorch_model.bin", "tf_model.h5", "onnx/model.onnx",
        "tokenizer.json", "tokenizer_config.json", "merges.txt", "vocab.json",
        "1_Pooling/config.json", "modules.json", "openvino/openvino_model.xml", "logo.png",
    ]  # fmt: skip
    assert checkpoint_files(listing) == [
        "config.json", "generation_config.json", "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors", "model.safetensors.index.json", "tokenizer.json",
        "tokenizer_config.json", "merges.txt", "vocab.json", "1_Pooling/config.json",
        "modules.json",
    ]  # fmt: skip
    assert checkpoint_files(["model.gguf", "README.md"]) is None
    assert checkpoint_files(["config.json", "pytorch_model.bin"]) is None


def test_hub_checkpoints_prefer_the_snapshot_main_names(tmp_path: Path) -> None:
    folder = tmp_path / "models--org--tiny"
    old, new = "a" * 40, "b" * 40
    for commit in (old, new):
        snapshot = folder / "snapshots" / commit
        snapshot.mkdir(parents=True)
        (snapshot / "config.json").write_text("{}")
        (snapshot / "model.safetensors").write_bytes(b"x" * (10 if commit == old else 20))
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(old)
    [point] = HubCache(tmp_path).checkpoints()
    assert (point.model_id, point.commit, point.size) == ("hf.co/org/tiny", old, 10)


def test_embed_requests_split_to_fit_frames_and_vectors_round_trip() -> None:
    texts = tuple("x" * 1000 for _ in range(1500))  # 1.5 MB of text: more than one frame
    batches = split_inputs(texts, ())
    assert len(batches) > 1
    assert sum(len(b.texts) for b in batches) == len(texts)
    assert all(len(b.model_dump_json()) < MAX_FRAME_BYTES for b in batches)
    vector = np.array([0.5, -1.25, 3.0e-8, 7.0], dtype="<f4")
    assert vector_floats(base64.b64encode(vector.tobytes()).decode()) == vector.tolist()


def test_presence_and_frequency_penalties_count_only_the_completion() -> None:
    processor = PenaltyProcessor(prompt_len=2, presence=0.5, frequency=0.25)
    ids = torch.tensor([[1, 1, 2, 2, 3]])  # prompt [1, 1]; completion [2, 2, 3]
    scores = processor(ids, torch.zeros(1, 5))  # type: ignore[arg-type]
    assert scores.tolist() == [[0.0, 0.0, -1.0, -0.75, 0.0]]
    bias = LogitBiasProcessor({4: 10.0, 0: -5.0})(ids, torch.zeros(1, 5))  # type: ignore[arg-type]
    assert bias.tolist() == [[-5.0, 0.0, 0.0, 0.0, 10.0]]


def test_generation_settings_greedy_sampled_and_refused(hf_models_dir: Path) -> None:
    from transformers import GenerationConfig

    defaults = GenerationConfig(eos_token_id=2)
    greedy, none = generation_settings(
        SamplingParams(temperature=0), defaults, prompt_len=3, max_new_tokens=9, vocab_size=50
    )
    assert (greedy.do_sample, greedy.max_new_tokens, greedy.eos_token_id) == (False, 9, 2)
    assert len(none) == 0
    params = SamplingParams(
        temperature=0.7, top_p=0.9, top_k=5, min_p=0.1, repeat_penalty=1.1,
        presence_penalty=0.5, logit_bias={3: 1.0},
    )  # fmt: skip
    sampled, extra = generation_settings(
        params, defaults, prompt_len=3, max_new_tokens=9, vocab_size=50
    )
    assert (sampled.do_sample, sampled.temperature, sampled.top_p, sampled.top_k) == (
        True, 0.7, 0.9, 5,
    )  # fmt: skip
    assert (sampled.min_p, sampled.repetition_penalty) == (0.1, 1.1)
    assert [type(p) for p in extra] == [PenaltyProcessor, LogitBiasProcessor]
    with pytest.raises(RequestFailed, match="past this model's vocabulary"):
        generation_settings(
            SamplingParams(logit_bias={50: 1.0}),
            defaults,
            prompt_len=1,
            max_new_tokens=1,
            vocab_size=50,
        )
    assert json.loads(greedy.to_json_string())["do_sample"] is False


def test_embed_and_rerank_frames_round_trip() -> None:
    from corral.protocol import FROM_CHILD, TO_CHILD, decode, encode
    from corral.protocol.messages import Embed, Embeddings, Rerank, Scores

    for message in (
        Embed(request_id="e", texts=("a", "b"), dimensions=8),
        Embed(request_id="i", token_ids=((1, 2), (3,))),
        Rerank(request_id="r", query="q", documents=("x", "y")),
    ):
        assert decode(TO_CHILD, encode(message).rstrip(b"\n")) == message
    for frame in (
        Embeddings(request_id="e", start=2, vectors=("AACAPw==",)),
        Scores(request_id="r", scores=(0.25, -1.0)),
    ):
        assert decode(FROM_CHILD, encode(frame).rstrip(b"\n")) == frame


async def test_a_child_that_does_not_embed_says_so() -> None:
    """The generic runtime answers embed/rerank for backends without ``encode`` (the fake)."""
    import sys

    from corral.protocol.messages import Embed, Error, Rerank
    from corral.supervisor.child_process import ChildCommand, ChildProcess

    child = ChildProcess(ChildCommand([sys.executable, "-m", "corral.child", "fake"], "fake"))
    try:
        await child.start(hello_timeout=30, load_timeout=30)
        for message in (
            Embed(request_id="e", texts=("x",)),
            Rerank(request_id="r", query="q", documents=("d",)),
        ):
            handle = await child.open_request(message)
            event = await handle.next_event()
            assert isinstance(event, Error)
            assert event.code == "unsupported"
            assert message.type in event.message
    finally:
        await child.stop(5)


def test_child_and_catalog_agree_on_tasks_and_dtypes(hf_models_dir: Path) -> None:
    """The child decides for itself when run by hand; it must decide as the catalog does."""
    from corral.child.hf.backend import detect_task, resolve_dtype

    for _, directory in find_checkpoints(hf_models_dir):
        assert detect_task(directory) == checkpoint_task(directory)
    chat = hf_models_dir / "tiny" / "chat"
    assert resolve_dtype("auto", "cpu", chat) is torch.float32  # the checkpoint's own
    assert resolve_dtype("auto", "cuda", chat) is torch.bfloat16
    assert resolve_dtype("float16", "cpu", chat) is torch.float16
    with pytest.raises(ValueError, match="unknown dtype"):
        resolve_dtype("float17", "cpu", chat)
