"""A remote preset's fields (`backend = "remote"`), mixed into `ModelPreset`.

The API key is read from an environment variable or a file, by the child: it is never in the
config in clear, never on a command line, never in a log line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, Field, model_validator

RemoteCapability = Literal["chat", "completion", "embeddings"]


class RemoteFields(BaseModel):
    url: str | None = Field(default=None, description="the upstream's OpenAI base URL (…/v1)")
    replicas: list[str] = Field(default=[], description="more base URLs serving the same model")
    model: str | None = Field(default=None, description="the upstream's name for the model")
    mount: bool = Field(default=False, description="every model the upstream lists, prefixed")
    api_key_env: str | None = Field(default=None, description="environment variable with the key")
    api_key_file: Path | None = Field(default=None, description="file holding the key")
    connect_timeout: float = Field(default=5.0, gt=0, description="seconds to connect upstream")
    serves: list[RemoteCapability] = ["chat", "completion"]

    @model_validator(mode="before")
    @classmethod
    def _no_key_in_clear(cls, data: Any) -> Any:
        if isinstance(data, dict) and "api_key" in data:
            raise ValueError(
                "api_key is not read from the config in clear: name an environment variable "
                "(api_key_env) or a file (api_key_file)"
            )
        return data

    @property
    def upstream_urls(self) -> list[str]:
        urls = [self.url] if self.url else []
        return [u.rstrip("/") for u in urls + self.replicas]

    def check_remote(self, backend: str) -> None:
        """A remote preset names an http(s) upstream and the model there; others name none."""
        if backend != "remote":
            if self.url or self.replicas or self.api_key_env or self.api_key_file:
                raise ValueError("url, replicas and api keys are for backend = 'remote'")
            return
        if not self.upstream_urls or bool(self.model) == self.mount:
            raise ValueError(
                "a remote preset needs url (or replicas), and model or mount = true (not both)"
            )
        for url in self.upstream_urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"upstream url {url!r} must start with http:// or https://")
        if self.api_key_env and self.api_key_file:
            raise ValueError("give one of api_key_env and api_key_file")

    def mounted(self, prefix: str, ids: Iterable[str]) -> Iterator[tuple[str, Self]]:
        """A mounting preset's models: ``prefix/id`` and a preset naming ``id`` upstream."""
        for upstream_id in ids:
            yield (
                f"{prefix}/{upstream_id}",
                self.model_copy(update={"model": upstream_id, "mount": False}),
            )
