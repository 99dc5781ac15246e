"""Ollama's request bodies as its clients send them, parsed strictly: a field Corral does not
know is a 400 naming it. What each field becomes is ``translate.py``'s and ``options.py``'s
business; this module only says what may be sent."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Duration = float | str  # seconds, or "5m" / "90s" / "1h"; negative keeps the model loaded
Format = Literal["", "json"] | dict[str, Any]
Think = bool | Literal["low", "medium", "high"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Options(_Strict):
    """Every option Ollama's Modelfile knows; ``options.py`` maps or refuses each one."""

    # Sampling
    num_predict: int | None = None
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    typical_p: float | None = None
    tfs_z: float | None = None
    repeat_last_n: int | None = None
    repeat_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    mirostat: int | None = None
    mirostat_tau: float | None = None
    mirostat_eta: float | None = None
    penalize_newline: bool | None = None
    num_keep: int | None = None
    # Load time
    num_ctx: int | None = None
    num_batch: int | None = None
    num_gpu: int | None = None
    main_gpu: int | None = None
    low_vram: bool | None = None
    f16_kv: bool | None = None
    logits_all: bool | None = None
    vocab_only: bool | None = None
    use_mmap: bool | None = None
    use_mlock: bool | None = None
    embedding_only: bool | None = None
    numa: bool | None = None
    num_thread: int | None = None


class ToolFunction(_Strict):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)  # an object, not OpenAI's string
    index: int | None = None


class ToolCall(_Strict):
    function: ToolFunction
    id: str | None = None


class Message(_Strict):
    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    images: list[str] | None = None
    thinking: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_name: str | None = None


class GenerationBody(_Strict):
    model: str | None = None
    stream: bool = True  # Ollama streams unless told not to
    format: Format | None = None
    options: Options | None = None
    keep_alive: Duration | None = None
    think: Think | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None


class ChatBody(GenerationBody):
    messages: list[Message] | None = None
    tools: list[dict[str, Any]] | None = None


class GenerateBody(GenerationBody):
    prompt: str | None = None
    suffix: str | None = None
    system: str | None = None
    template: str | None = None
    context: list[int] | None = None
    raw: bool | None = None
    images: list[str] | None = None
    # Image generation (Ollama's experimental image models)
    width: int | None = None
    height: int | None = None
    steps: int | None = None


class EmbedBody(_Strict):
    model: str | None = None
    input: str | list[str]
    truncate: bool | None = None
    options: Options | None = None
    keep_alive: Duration | None = None
    dimensions: int | None = Field(default=None, ge=1)


class EmbeddingsBody(_Strict):
    """The legacy ``/api/embeddings``: one prompt, one vector."""

    model: str | None = None
    prompt: str | None = None
    options: Options | None = None
    keep_alive: Duration | None = None


class _Named(_Strict):
    # Older clients say "name" where newer ones say "model".
    model: str | None = Field(default=None, min_length=1, max_length=256)
    name: str | None = Field(default=None, min_length=1, max_length=256)

    def target(self) -> str | None:
        return self.model or self.name


class ShowBody(_Named):
    verbose: bool | None = None


class PullBody(_Named):
    insecure: bool | None = None
    stream: bool = True


class DeleteBody(_Named):
    pass
