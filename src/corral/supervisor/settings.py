"""All settings in one pydantic model: command-line flags > ``CORRAL_*`` env > TOML > defaults."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from corral.protocol.hub_names import check_file_name, check_repo_id, check_revision
from corral.protocol.messages import MaxTokens, Probability, RepeatPenalty, Temperature, TopK
from corral.supervisor.hub.settings import HubSettings
from corral.supervisor.remote.preset import RemoteFields

DEMO_MODEL_ID = "qwen2.5-coder-0.5b-instruct"


def _default_data_dir() -> Path:
    # systemd's StateDirectory= sets STATE_DIRECTORY; otherwise follow XDG.
    if state := os.environ.get("STATE_DIRECTORY"):
        return Path(state.split(":")[0])
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "corral"


class SamplingDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    # The protocol's bounds: a preset the child would refuse is refused when the config loads,
    # not on every request to the model.
    temperature: Temperature | None = None
    top_p: Probability | None = None
    top_k: TopK | None = None
    min_p: Probability | None = None
    max_tokens: MaxTokens | None = None
    repeat_penalty: RepeatPenalty | None = None


class ModelPreset(RemoteFields, BaseModel):
    """A model named in the config file, with its own settings (a remote engine's are in
    `RemoteFields`)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    backend: Literal["llama", "fake", "hf", "whisper", "tts", "remote"] = "llama"
    path: Path | None = Field(default=None, description="GGUF file, relative to models_dir")
    repo: str | None = Field(default=None, description="hub repo of the GGUF (with file)")
    file: str | None = Field(default=None, description="GGUF file in repo, from the hub cache")
    revision: str | None = Field(default=None, description="branch, tag or commit of repo")
    n_ctx: int | None = Field(default=None, ge=16)
    n_threads: int | None = Field(default=None, ge=1)
    n_gpu_layers: int | None = None
    # hf backend: torch device ("cuda", "cpu", "cuda:1"; default cuda when torch sees a GPU),
    # dtype ("auto", "float32", "bfloat16", ...), accelerate's device_map, remote code (off).
    device: str | None = None
    dtype: str | None = None
    device_map: str | None = None
    trust_remote_code: bool = False

    parallel: int | None = Field(default=None, ge=1, le=256, description="llama slots")
    # llama backend: serve /v1/embeddings instead of chat (None: as the GGUF's header says).
    embedding: bool | None = None
    kv_park_bytes: int | None = Field(default=None, ge=0, description="parked KV budget")
    chat_template: str | None = None
    system_prompt: str | None = None
    sampling: SamplingDefaults = SamplingDefaults()
    keep_alive: float | None = None
    # A child that stops answering is killed after these (None: the global settings).
    first_token_timeout: float | None = Field(default=None, gt=0)
    stall_timeout: float | None = Field(default=None, gt=0)
    pinned: bool = False
    aliases: list[str] = []
    args: list[str] = Field(default=[], description="extra arguments for the child process")

    @model_validator(mode="after")
    def _embedding_is_llama(self) -> ModelPreset:
        if self.embedding is not None and self.backend != "llama":
            raise ValueError(
                "embedding is for the llama backend (an hf checkpoint's files say what it serves)"
            )
        return self

    @model_validator(mode="after")
    def _one_source(self) -> ModelPreset:
        self.check_remote(self.backend)
        if self.repo is None:
            if self.file is not None or self.revision is not None:
                raise ValueError("file and revision need repo")
            return self
        # An hf checkpoint is a whole snapshot: repo alone names it.
        if self.path is not None or (self.file is None and self.backend != "hf"):
            raise ValueError("give either path, or repo with file")
        check_repo_id(self.repo)
        if self.file is not None:
            check_file_name(self.file)
        if self.revision is not None:
            check_revision(self.revision)
        return self


class ApiKeyConfig(BaseModel):
    """A key from the config file or ``CORRAL_API_KEYS``: its plaintext or its SHA-256."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    key: SecretStr | None = None
    key_sha256: str | None = None
    admin: bool = False
    models: list[str] | None = None

    @model_validator(mode="after")
    def _one_secret(self) -> ApiKeyConfig:
        if (self.key is None) == (self.key_sha256 is None):
            raise ValueError(f"api key {self.name!r}: give exactly one of key or key_sha256")
        digest = (self.key_sha256 or "0" * 64).strip().lower().removeprefix("sha256:")
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"api key {self.name!r}: key_sha256 must be 64 hex digits")
        return self


class UiMode(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str
    system_prompt: str


DEFAULT_UI_MODES = {
    "fast": UiMode(label="Fast", system_prompt="Answer briefly and directly, in a few sentences."),
    "normal": UiMode(label="Normal", system_prompt="You are a helpful assistant."),
    "deep": UiMode(
        label="Deep",
        system_prompt="Think the question through step by step and answer thoroughly, "
        "with examples where they help.",
    ),
}


class UiDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # None: the UI sends none, so each model's own defaults (preset, GGUF metadata) apply.
    temperature: Temperature | None = None
    top_p: Probability | None = None
    max_tokens: MaxTokens = 1024


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CORRAL_", env_nested_delimiter="__", extra="forbid", allow_inf_nan=False
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    data_dir: Path = Field(default_factory=_default_data_dir)
    models_dir: Path | None = Field(default=None, description="default: DATA_DIR/models")
    default_model: str = DEMO_MODEL_ID
    demo_model: bool = Field(default=True, description="offer the bundled demo model")
    embedding_model: bool | None = Field(
        default=None, description="offer the bundled MiniLM embedder (default: as demo_model)"
    )
    models: dict[str, ModelPreset] = {}

    # llama defaults for models without a preset
    n_ctx: int = Field(default=4096, ge=16)
    n_threads: int | None = Field(default=None, ge=1, description="default: physical cores")
    n_gpu_layers: int | None = Field(default=None, description="default: all on a GPU build")
    parallel: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="requests a llama model decodes together; default: 8, fewer if their KV "
        "would not fit the memory budget",
    )
    kv_park_bytes: int = Field(
        default=256 << 20, ge=0, description="host memory for idle conversations' KV, per model"
    )

    # scheduling
    max_loaded_models: int = Field(default=2, ge=1)
    max_queue: int = Field(default=64, ge=0)
    keep_alive: float = Field(default=300.0, description="seconds idle before unload; <0 never")
    memory_budget: int | None = Field(
        default=None,
        ge=0,
        description="bytes for all loaded models (estimated); default: a share of available RAM",
    )
    memory_budget_share: float = Field(default=0.8, gt=0, le=1)
    preload: list[str] = Field(default=[], description="models loaded at start")

    # limits and timeouts
    max_body_bytes: int = Field(default=8 << 20, ge=1024)
    max_tokens_limit: int = Field(default=32768, ge=1)
    child_hello_timeout: float = Field(default=30.0, gt=0)
    child_load_timeout: float = Field(default=300.0, gt=0)
    first_token_timeout: float = Field(
        default=600.0, gt=0, description="seconds from a request to its first token"
    )
    stall_timeout: float = Field(default=120.0, gt=0, description="seconds between two tokens")
    child_stop_timeout: float = Field(default=10.0, gt=0)
    shutdown_grace: float = Field(default=30.0, ge=0)
    sse_ping_interval: float = Field(default=15.0, gt=0)
    http_idle_timeout: float = Field(
        default=75.0, gt=0, description="seconds an idle or half-sent connection is kept"
    )

    # resumable streams
    stream_buffer_bytes: int = Field(default=4 << 20, ge=4096, description="ring per stream")
    stream_total_bytes: int = Field(default=256 << 20, ge=4096, description="all streams")
    stream_bytes_per_owner: int | None = Field(
        default=None, ge=4096, description="one key's or user's streams; default: a quarter"
    )
    stream_ttl: float = Field(default=300.0, ge=0, description="seconds a finished stream is kept")

    # access control
    api_keys: list[ApiKeyConfig] = []
    insecure_no_auth: bool = Field(default=False, description="serve a public address without keys")
    session_lifetime: float = Field(default=7 * 86400, gt=0, description="web UI login, seconds")
    login_max_failures_per_user: int = Field(default=5, ge=1)
    login_max_failures_per_ip: int = Field(default=20, ge=1)
    login_failure_window: float = Field(default=900.0, gt=0)
    cors_origins: list[str] = []
    allowed_hosts: list[str] = Field(
        default=[], description="Host names served besides loopback and IPs; '*' for any"
    )
    trusted_proxies: list[str] = ["127.0.0.0/8", "::1/128"]

    # analytics
    database_path: Path | None = Field(default=None, description="default: DATA_DIR/corral.db")
    geoip_database: Path | None = Field(default=None, description="a MaxMind-format .mmdb")
    analytics: bool = True
    analytics_retention_days: int = Field(default=90, ge=1)
    analytics_queue_size: int = Field(default=10000, ge=1)

    # web UI
    ui_modes: dict[str, UiMode] = DEFAULT_UI_MODES
    ui_defaults: UiDefaults = UiDefaults()

    # hub downloads
    hub: HubSettings = HubSettings()

    # speech (the whisper and tts children)
    speech_models: bool = Field(default=True, description="offer the bundled speech models")
    speech_device: Literal["auto", "cpu", "cuda"] = "auto"
    whisper_compute_type: str | None = Field(
        default=None, description="CTranslate2 compute type; default int8 on CPU, float16 on GPU"
    )
    max_audio_bytes: int = Field(default=25_000_000, ge=1024, description="upload limit (413)")
    max_speech_input: int = Field(default=4096, ge=1, description="characters of text to speak")

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("api_keys")
    @classmethod
    def _unique_key_names(cls, keys: list[ApiKeyConfig]) -> list[ApiKeyConfig]:
        names = [k.name for k in keys]
        if duplicates := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"api key names must be unique: {', '.join(duplicates)}")
        return keys

    @field_validator("data_dir", "models_dir")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @model_validator(mode="after")
    def _streams_fit(self) -> Settings:
        if self.stream_total_bytes < self.stream_buffer_bytes:
            raise ValueError("stream_total_bytes must be at least stream_buffer_bytes")
        return self

    @property
    def resolved_models_dir(self) -> Path:
        return self.models_dir or self.data_dir / "models"

    @property
    def resolved_database_path(self) -> Path:
        return self.database_path or self.data_dir / "corral.db"


class LiveSettings:
    """The settings in force; a reload (SIGHUP) swaps ``current`` as one assignment."""

    def __init__(self, settings: Settings) -> None:
        self.current = settings


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from ``config_file`` (TOML), the environment, then ``overrides`` (flags)."""
    if config_file is not None and not config_file.is_file():
        raise FileNotFoundError(f"config file {config_file} does not exist")

    class _Layered(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            if config_file is not None:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
            return tuple(sources)

    layered = _Layered(**{k: v for k, v in overrides.items() if v is not None})
    return Settings.model_validate(layered.model_dump())
