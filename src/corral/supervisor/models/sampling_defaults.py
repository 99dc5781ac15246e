"""Per-model default sampling: a preset's ``sampling`` table, then the GGUF's own metadata.

A request's fields always win; what it leaves out comes from the preset, and what the preset
leaves out from the ``general.sampling.*`` keys that llama.cpp's converter writes from a
model's ``generation_config.json`` (the values its authors recommend). The demo model's
GGUF predates those keys, so its preset carries Qwen2.5's published values: without them a
0.5B model at llama.cpp's defaults repeats itself until the token cap.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from pydantic import ValidationError

from corral.protocol.messages import SamplingParams
from corral.supervisor.models.gguf_header import Value
from corral.supervisor.settings import SamplingDefaults

log = logging.getLogger("corral.catalog")

# Qwen2.5-Coder-0.5B-Instruct's generation_config.json.
DEMO_SAMPLING = SamplingDefaults(temperature=0.7, top_p=0.8, top_k=20, repeat_penalty=1.05)

# GGUF key (gguf.Keys.General.SAMPLING_*) -> our field.
GGUF_SAMPLING_KEYS = {
    "general.sampling.temp": "temperature",
    "general.sampling.top_p": "top_p",
    "general.sampling.top_k": "top_k",
    "general.sampling.min_p": "min_p",
    "general.sampling.penalty_repeat": "repeat_penalty",
}


def from_gguf(metadata: Mapping[str, Value]) -> SamplingDefaults:
    """The sampling a GGUF's header recommends; values out of range are left out, logged."""
    found: dict[str, float | int] = {}
    for key, field in GGUF_SAMPLING_KEYS.items():
        value = metadata.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            # GGUF stores float32: 0.8 reads back as 0.800000011920929, so round to what
            # its authors wrote.
            found[field] = int(value) if field == "top_k" else float(f"{value:.6g}")
    if found.get("top_k") == 0:  # llama.cpp's "no top-k"
        del found["top_k"]
    try:
        SamplingParams(**found)  # the ranges the child accepts: a bad header is no 500 later
    except ValidationError as exc:
        log.warning("ignoring the GGUF's sampling defaults %s: %s", found, exc)
        return SamplingDefaults()
    return SamplingDefaults(**found)


def layered(first: SamplingDefaults, then: SamplingDefaults) -> SamplingDefaults:
    """``first``'s values, with the ones it leaves out taken from ``then``."""
    own = first.model_dump(exclude_none=True)
    return SamplingDefaults(**{**then.model_dump(exclude_none=True), **own})
