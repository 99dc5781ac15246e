"""Ollama's ``options`` as Corral's sampling fields, or a 400 naming the option.

Each option is one of three kinds:

- mapped: it becomes the OpenAI request field of the same meaning (``num_predict`` is
  ``max_tokens``), so it is checked and honoured exactly as on ``/v1``;
- accepted as a no-op because it cannot change the output: ``num_thread``, ``use_mmap``,
  ``use_mlock`` and ``numa`` (threads and memory placement; Corral sets those per model in its
  config), the Mirostat constants while Mirostat is off, and any option set to the value that
  turns it off (``typical_p: 1``, ``tfs_z: 1``, ``mirostat: 0``, ``penalize_newline: false``...);
- refused: everything else that would ask for something Corral does not do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from corral.supervisor.errors import BadRequest
from corral.supervisor.ollama.schemas import Options

# Ollama's name -> the OpenAI request field that honours it.
MAPPED: Mapping[str, str] = {
    "num_predict": "max_tokens",
    "temperature": "temperature",
    "top_k": "top_k",
    "top_p": "top_p",
    "min_p": "min_p",
    "repeat_penalty": "repeat_penalty",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "seed": "seed",
    "stop": "stop",
}
# Options whose value changes nothing about the tokens sampled.
HARMLESS = frozenset(
    {"num_thread", "use_mmap", "use_mlock", "numa", "mirostat_tau", "mirostat_eta"}
)
# The value that asks for nothing, for options Corral does not otherwise serve.
NEUTRAL: Mapping[str, object] = {
    "typical_p": 1.0,
    "tfs_z": 1.0,
    "mirostat": 0,
    "penalize_newline": False,
    "low_vram": False,
    "f16_kv": True,  # the KV cache is f16 already
    "logits_all": False,
    "vocab_only": False,
    "embedding_only": False,
}
REPEAT_LAST_N = 64  # the llama child's fixed penalty window (child/llama/sampling.py)
WHY: Mapping[str, str] = {
    "typical_p": "locally typical sampling is not supported; use top_p, top_k or min_p",
    "tfs_z": "tail-free sampling is not supported (llama.cpp removed it)",
    "mirostat": "Mirostat sampling is not supported; use temperature, top_p, top_k or min_p",
    "penalize_newline": "newline penalties are not supported",
    "num_keep": "Corral does not shift the context; a prompt that does not fit is refused",
    "num_batch": "the batch size is the model's, set in Corral's config",
    "num_gpu": "GPU offload is set per model in Corral's config (n_gpu_layers)",
    "main_gpu": "the GPU is chosen per model in Corral's config",
    "low_vram": "memory placement is set per model in Corral's config",
    "f16_kv": "the KV cache is always f16",
    "logits_all": "per-token logits are not returned; ask for logprobs instead",
    "vocab_only": "a model is always loaded whole",
    "embedding_only": "a model serves what its files hold",
}


def refuse(param: str, why: str) -> BadRequest:
    return BadRequest(f"'{param}': {why}", param=param, code="unsupported")


def sampling_fields(options: Options | None, n_ctx: int | None) -> dict[str, Any]:
    """The OpenAI request fields ``options`` asks for; ``n_ctx`` is the model's context (None
    when its own files decide it)."""
    if options is None:
        return {}
    fields: dict[str, Any] = {}
    for name, value in options.model_dump(exclude_none=True).items():
        param = f"options.{name}"
        if name in MAPPED:
            if name == "num_predict" and value < 0:
                continue  # -1 (no limit) and -2 (fill the context): the model's own cap
            fields[MAPPED[name]] = value
        elif name in HARMLESS:
            continue
        elif name in NEUTRAL:
            if value != NEUTRAL[name]:
                raise refuse(param, WHY[name])
        elif name == "repeat_last_n":
            if value != REPEAT_LAST_N:
                raise refuse(param, f"the repeat penalty looks back {REPEAT_LAST_N} tokens, fixed")
        elif name == "num_ctx":
            if value != n_ctx:
                size = f"{n_ctx} tokens" if n_ctx is not None else "the model's own"
                raise refuse(
                    param,
                    f"this model's context is {size}, set in Corral's config (n_ctx of its "
                    "preset), not per request; leave num_ctx out or send that",
                )
        else:
            raise refuse(param, WHY.get(name, "not supported"))
    return fields


def only_hardware(options: Options | None) -> None:
    """For requests that generate nothing (a load, an embedding): no sampling option may be
    set, since none could change what they return."""
    if options is None:
        return
    for name in options.model_dump(exclude_none=True):
        if name not in HARMLESS:
            raise refuse(f"options.{name}", "this request samples no tokens; leave it out")
