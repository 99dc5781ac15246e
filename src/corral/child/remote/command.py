"""The remote backend from the child's command line, with its API key read here."""

from __future__ import annotations

import argparse
import logging
import os

from corral.child.remote.backend import RemoteBackend


def api_key(env_name: str | None, file: os.PathLike[str] | None) -> str | None:
    """The upstream's key, from the environment variable or the file the preset names."""
    if env_name:
        value = os.environ.get(env_name)
        if not value:
            raise SystemExit(f"the environment variable {env_name} (api_key_env) is not set")
        return value.strip()
    if file is not None:
        with open(file, encoding="utf-8") as handle:
            return handle.read().strip() or None
    return None


def remote_backend(args: argparse.Namespace) -> RemoteBackend:
    # httpx logs every call at INFO: with health probes every few seconds that would bury the
    # model's log; failures are logged by the backend itself.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return RemoteBackend(
        model_id=args.model_id,
        urls=list(args.url),
        upstream_model=args.upstream_model,
        api_key=api_key(args.api_key_env, args.api_key_file),
        connect_timeout=args.connect_timeout,
        read_timeout=args.read_timeout,
        serves=tuple(args.serves or ("chat", "completion")),
    )
