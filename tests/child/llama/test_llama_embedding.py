"""The llama embedding engine's packing and pooling choice (its vectors: the e2e tests)."""

from __future__ import annotations

import pytest

from corral.child.llama.embedding import gguf_pooling, pack


def test_inputs_are_packed_in_order_into_as_few_batches_as_fit() -> None:
    assert pack([3, 3, 3], n_batch=10, max_sequences=64) == [range(0, 3)]
    assert pack([6, 5, 4, 6], n_batch=10, max_sequences=64) == [
        range(0, 1),
        range(1, 3),
        range(3, 4),
    ]
    assert pack([10, 10], n_batch=10, max_sequences=64) == [range(0, 1), range(1, 2)]
    assert pack([1] * 5, n_batch=100, max_sequences=2) == [
        range(0, 2),
        range(2, 4),
        range(4, 5),
    ]
    assert pack([], n_batch=10, max_sequences=2) == []


@pytest.mark.parametrize(
    ("metadata", "pooling"),
    [
        ({"general.architecture": "bert", "bert.pooling_type": "2"}, "cls"),
        ({"general.architecture": "qwen3", "qwen3.pooling_type": "3"}, "last"),
        ({"general.architecture": "llama", "llama.pooling_type": "1"}, "mean"),
        ({"general.architecture": "bert", "bert.pooling_type": "0"}, "mean"),
        ({"general.architecture": "llama"}, "mean"),
    ],
)
def test_the_pooling_is_the_headers_or_the_mean(metadata: dict[str, str], pooling: str) -> None:
    assert gguf_pooling(metadata) == pooling


def test_a_reranker_gguf_does_not_load_as_an_embedder() -> None:
    with pytest.raises(ValueError, match="reranker"):
        gguf_pooling({"general.architecture": "bert", "bert.pooling_type": "4"})


def test_pooling_without_embedding_mode_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    from corral.child.__main__ import main

    with pytest.raises(SystemExit) as exited:
        main(["llama", "--model", "m.gguf", "--pooling", "cls"])
    assert exited.value.code == 2
    assert "--pooling needs --embedding" in capsys.readouterr().err
