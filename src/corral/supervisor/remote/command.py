"""The remote child's command line for a preset."""

from __future__ import annotations

import sys

from corral.supervisor.child_process import ChildCommand
from corral.supervisor.settings import ModelPreset, Settings


def read_timeout(stall: float) -> float:
    """The child gives up on a silent upstream before the supervisor's stall timeout would
    kill the child (and every other stream it relays): a tenth sooner, or a second when
    that is more, and never under half."""
    return max(stall / 2, min(stall * 0.9, stall - 1.0))


def remote_command(model_id: str, preset: ModelPreset, settings: Settings) -> ChildCommand:
    assert preset.model is not None
    stall = preset.stall_timeout or settings.stall_timeout
    first = preset.first_token_timeout or settings.first_token_timeout
    argv = [
        sys.executable, "-m", "corral.child", "remote",
        "--model-id", model_id,
        "--upstream-model", preset.model,
        "--connect-timeout", str(preset.connect_timeout),
        "--read-timeout", str(read_timeout(min(stall, first))),
    ]  # fmt: skip
    for url in preset.upstream_urls:
        argv += ["--url", url]
    for capability in preset.serves:
        argv += ["--serves", capability]
    if preset.api_key_env:
        argv += ["--api-key-env", preset.api_key_env]
    if preset.api_key_file:
        argv += ["--api-key-file", str(preset.api_key_file.expanduser())]
    return ChildCommand([*argv, *preset.args], label=model_id)
