"""Picking one GGUF of a hub repository by quantisation tag, or by default."""

from __future__ import annotations

import pytest

from corral.supervisor.cli.pull import Reference, parse_reference
from corral.supervisor.errors import BadRequest, NotFound
from corral.supervisor.hub.quant import DEFAULT, choose, quant_of


@pytest.mark.parametrize(
    ("name", "tag"),
    [
        ("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "Q4_K_M"),
        ("Llama-3.2-1B-Instruct-Q8_0.gguf", "Q8_0"),
        ("model.IQ4_XS.gguf", "IQ4_XS"),
        ("Q4_K_M/big-Q4_K_M-00001-of-00002.gguf", "Q4_K_M"),
        ("gemma-3-4b-it-UD-Q4_K_XL.gguf", "Q4_K_XL"),
        ("phi-4-f16.gguf", "F16"),
        ("phi-4-BF16.gguf", "BF16"),
        ("gpt-oss-20b-MXFP4.gguf", "MXFP4"),
        ("tiny.gguf", None),
        ("qwen2.5-7b.gguf", None),
    ],
)
def test_quant_of(name: str, tag: str | None) -> None:
    assert quant_of(name) == tag


MULTI = {
    "multi-Q2_K.gguf": 200,
    "multi-Q4_0.gguf": 400,
    "multi-Q4_K_M.gguf": 450,
    "multi-Q8_0.gguf": 800,
    "multi-F16.gguf": 1600,
    "mmproj-multi-f16.gguf": 90,
    "README.md": 5,
}


def test_by_tag_any_case_or_file_stem() -> None:
    assert choose("o/r", MULTI, "q8_0") == ["multi-Q8_0.gguf"]
    assert choose("o/r", MULTI, "Q4_K_M") == ["multi-Q4_K_M.gguf"]
    assert choose("o/r", MULTI, "multi-F16") == ["multi-F16.gguf"]  # as corral ls prints it
    with pytest.raises(NotFound, match=r"no file of o/r matches 'Q6_K'; it has .*Q8_0"):
        choose("o/r", MULTI, "Q6_K")


def test_default_is_q4_k_m_then_smallest_four_bit_then_refusal() -> None:
    assert choose("o/r", MULTI, DEFAULT) == ["multi-Q4_K_M.gguf"]
    no_k_m = {"m-Q5_K_M.gguf": 500, "m-Q4_0.gguf": 420, "m-IQ4_XS.gguf": 380}
    assert choose("o/r", no_k_m, DEFAULT) == ["m-IQ4_XS.gguf"]
    assert choose("o/r", {"only.gguf": 1, "mmproj-x.gguf": 1}, DEFAULT) == ["only.gguf"]
    with pytest.raises(BadRequest, match=r"no 4-bit one.*o/r:TAG. It has F16 \(m-F16.gguf\), Q8_0"):
        choose("o/r", {"m-Q8_0.gguf": 8, "m-F16.gguf": 16}, DEFAULT)
    with pytest.raises(NotFound, match="o/r has no GGUF model file Corral can serve"):
        choose("o/r", {"model.safetensors": 9, "README.md": 1}, DEFAULT)


def test_split_models_come_whole() -> None:
    sizes = {
        "big-Q4_K_M-00001-of-00002.gguf": 5,
        "big-Q4_K_M-00002-of-00002.gguf": 5,
        "big-Q8_0.gguf": 9,  # smaller than the two shards together, but not 4-bit
    }
    parts = ["big-Q4_K_M-00001-of-00002.gguf", "big-Q4_K_M-00002-of-00002.gguf"]
    assert choose("o/r", sizes, DEFAULT) == parts
    assert choose("o/r", sizes, "big-Q4_K_M-00001-of-00002") == parts


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("org/repo", Reference("org/repo", DEFAULT)),
        ("org/repo:Q4_K_M", Reference("org/repo", "Q4_K_M")),
        ("hf.co/org/repo:multi-F16", Reference("org/repo", "multi-F16")),
        ("https://huggingface.co/org/repo/", Reference("org/repo", DEFAULT)),
    ],
)
def test_references(text: str, ref: Reference) -> None:
    assert parse_reference(text) == ref
