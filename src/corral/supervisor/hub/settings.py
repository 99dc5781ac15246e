"""Settings of hub downloads: the ``[hub]`` table of the config file (``CORRAL_HUB__*`` in env).

The hub's address is huggingface-hub's own setting, ``HF_ENDPOINT``, read from the
environment by the supervisor and its download children alike.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class HubSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: SecretStr | None = Field(
        default=None, description="for gated or private repos (or HF_TOKEN in the environment)"
    )
    disk_reserve_bytes: int = Field(
        default=2 << 30, ge=0, description="free space a pull must leave on the data disk"
    )
    max_concurrent_downloads: int = Field(default=2, ge=1, description="more jobs wait")
    metadata_timeout: float = Field(default=30.0, gt=0, description="seconds for hub API calls")
    progress_interval: float = Field(default=0.25, gt=0, description="seconds between progress")
    keep_jobs: int = Field(default=100, ge=1, description="download jobs remembered")
