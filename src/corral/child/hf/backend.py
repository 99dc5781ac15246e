"""transformers + torch on one Hugging Face checkpoint directory: chat, embeddings or rerank.

What the directory is decides the task: a sentence-transformers directory (``modules.json``)
embeds, a sequence-classification head reranks, anything else is a causal LM that chats.
Loading is offline always (``HF_HUB_OFFLINE``): a model that names remote files fails to load
rather than reaching for the network.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from corral.child.runtime import EncodeJob, Job, RequestFailed
from corral.protocol.messages import ChildKind, FinishReason, Ready, Usage

log = logging.getLogger("corral.child.hf")

Task = Literal["chat", "embed", "rerank"]
_CAPABILITIES: dict[Task, tuple[str, ...]] = {
    "chat": ("chat", "completion"),
    "embed": ("embeddings",),
    "rerank": ("rerank",),
}


def detect_task(directory: Path) -> Task:
    if (directory / "modules.json").is_file():
        return "embed"
    config = json.loads((directory / "config.json").read_text())
    architectures = config.get("architectures") or []
    if any(str(a).endswith("ForSequenceClassification") for a in architectures):
        return "rerank"
    return "chat"


def resolve_device(device: str | None) -> str:
    import torch

    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str, device: str, directory: Path) -> object:
    """``auto``: bfloat16 on a GPU; on the CPU the checkpoint's own dtype, else float32."""
    import torch

    if dtype != "auto":
        resolved = getattr(torch, dtype, None)
        if not isinstance(resolved, torch.dtype):
            raise ValueError(f"unknown dtype {dtype!r}")
        return resolved
    if not device.startswith("cpu"):
        return torch.bfloat16
    config = json.loads((directory / "config.json").read_text())
    named = config.get("dtype") or config.get("torch_dtype")
    found = getattr(torch, str(named), None) if named else None
    return found if isinstance(found, torch.dtype) else torch.float32


@dataclass
class HfBackend:
    model_dir: Path
    model_id: str
    task: Task | None = None
    n_ctx: int | None = None
    device: str | None = None
    dtype: str = "auto"
    device_map: str | None = None
    trust_remote_code: bool = False
    chat_template: str | None = None
    n_threads: int | None = None
    concurrency: int = 1  # one generate at a time; see the README's hf section
    kind: ChildKind = "hf"
    capabilities: tuple[str, ...] = field(init=False)
    _chat: object | None = field(default=None, init=False)
    _encoder: object | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.task is None:
            try:
                self.task = detect_task(self.model_dir)
            except (OSError, ValueError):  # no config.json: load() will say so, after hello
                self.task = "chat"
        self.capabilities = _CAPABILITIES[self.task]

    def load(self, progress: Callable[[float, str], None]) -> Ready:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        import torch

        if self.n_threads:
            torch.set_num_threads(self.n_threads)
        if self.trust_remote_code:
            log.warning("trust_remote_code is on: %s may run its own Python code", self.model_dir)
        device = resolve_device(self.device)
        progress(0.0, f"loading {self.task} model on {device}")
        if self.task == "chat":
            return self._load_chat(device, progress)
        from corral.child.hf.encoders import EmbeddingModel, RerankModel

        # The same dtype rule as for chat, and a device_map when one is set.
        kwargs: dict[str, Any] = {"dtype": resolve_dtype(self.dtype, device, self.model_dir)}
        if self.device_map is not None:
            kwargs["device_map"] = self.device_map
        encoder: EmbeddingModel | RerankModel
        model = EmbeddingModel if self.task == "embed" else RerankModel
        encoder = model(str(self.model_dir), device, self.trust_remote_code, kwargs)
        self._encoder = encoder
        progress(1.0, "ready")
        return Ready(model=self.model_id, n_ctx=encoder.max_tokens, chat_template=False)

    def _load_chat(self, device: str, progress: Callable[[float, str], None]) -> Ready:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from corral.child.hf.chat import ChatModel

        dtype = resolve_dtype(self.dtype, device, self.model_dir)
        tokenizer = AutoTokenizer.from_pretrained(
            self.model_dir, local_files_only=True, trust_remote_code=self.trust_remote_code
        )
        # device_map (accelerate) only when asked: it splits a model over devices; one
        # device is a plain .to().
        model = AutoModelForCausalLM.from_pretrained(
            self.model_dir,
            dtype=dtype,
            device_map=self.device_map,
            local_files_only=True,
            trust_remote_code=self.trust_remote_code,
        )
        if self.device_map is None:
            model.to(device)  # type: ignore[arg-type]
        model.eval()  # type: ignore[no-untyped-call]
        limit = int(getattr(model.config.get_text_config(), "max_position_embeddings", 0) or 0)
        n_ctx = min(self.n_ctx, limit) if self.n_ctx and limit else (self.n_ctx or limit or 2048)
        self._chat = ChatModel(model, tokenizer, n_ctx, self.chat_template)
        progress(1.0, "ready")
        return Ready(model=self.model_id, n_ctx=n_ctx, chat_template=True)

    def generate(self, job: Job) -> tuple[FinishReason, Usage]:
        from corral.child.hf.chat import ChatModel

        if not isinstance(self._chat, ChatModel):
            raise RequestFailed("unsupported", f"this is a {self.task} model; it does not chat")
        return self._chat.generate(job)

    def encode(self, job: EncodeJob) -> Usage:
        from corral.child.hf.encoders import EmbeddingModel, RerankModel

        wanted = EmbeddingModel if job.request.type == "embed" else RerankModel
        if not isinstance(self._encoder, wanted):
            raise RequestFailed(
                "unsupported", f"this is a {self.task} model; it does not serve {job.request.type}"
            )
        return self._encoder.encode(job)
