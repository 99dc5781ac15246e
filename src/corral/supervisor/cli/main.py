"""The ``corral`` command line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from corral.deploy import install as install_service
from corral.supervisor.cli import admin as admin_cli
from corral.supervisor.cli import chat as chat_cli
from corral.supervisor.cli import keys as keys_cli
from corral.supervisor.cli.client import daemon_options
from corral.supervisor.daemon import logs
from corral.supervisor.settings import Settings, load_settings


def _settings_help() -> str:
    lines = ["settings (TOML key = CORRAL_<KEY> environment variable; flags win over both):"]
    for name, field in Settings.model_fields.items():
        default = (
            field.default_factory.__name__ + "()" if field.default_factory else repr(field.default)
        )
        note = f" - {field.description}" if field.description else ""
        lines.append(f"  {name:<22} CORRAL_{name.upper():<24} default {default}{note}")
    lines.append(
        "  [models.<id>] tables define presets: backend, path, n_ctx, n_threads, n_gpu_layers,"
    )
    lines.append("  chat_template, system_prompt, sampling, keep_alive, pinned, aliases, args.")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="corral",
        description="Corral: a self-hosted, OpenAI-compatible LLM server.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_settings_help(),
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="run the server",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_settings_help(),
    )
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8080; 0 picks a free one)")
    serve.add_argument("--config", type=Path, help="TOML settings file")
    serve.add_argument("--data-dir", type=Path, help="state: demo model, databases, downloads")
    serve.add_argument("--models-dir", type=Path, help="where *.gguf models are found")
    serve.add_argument("--default-model", help="model used when a request names none")
    serve.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    serve.add_argument(
        "--insecure-no-auth",
        action="store_true",
        default=None,
        help="allow a non-loopback address without API keys (only on a network you trust)",
    )
    keys_cli.add_commands(commands)
    daemon = daemon_options()
    admin_cli.add_commands(commands, daemon)
    chat_cli.add_commands(commands, daemon)
    install_service.add_command(commands)
    return parser


def _serve(args: argparse.Namespace) -> int:
    flags = {
        "host": args.host,
        "port": args.port,
        "data_dir": args.data_dir,
        "models_dir": args.models_dir,
        "default_model": args.default_model,
        "log_level": args.log_level,
        "insecure_no_auth": args.insecure_no_auth,
    }

    def reload() -> Settings:
        return load_settings(args.config, **flags)

    try:
        settings = reload()
    except (ValidationError, FileNotFoundError, ValueError) as exc:
        print(f"corral: invalid settings: {one_line(exc)}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level)
    if (refusal := keys_cli.public_bind_refusal(settings)) is not None:
        print(f"corral: {refusal}", file=sys.stderr)
        return 2
    if settings.insecure_no_auth and settings.host not in ("127.0.0.1", "::1", "localhost"):
        logging.getLogger("corral.server").warning(
            "serving %s with no authentication (--insecure-no-auth)", settings.host
        )
    import uvloop  # only the real daemon runs on uvloop; tests may use either loop

    from corral.supervisor.daemon.server import PortInUse, serve

    try:
        return uvloop.run(serve(settings, reload))
    except PortInUse as exc:
        print(f"corral: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the port is taken, the address is not ours...
        print(f"corral: cannot serve {settings.host}:{settings.port}: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # what only the data can tell, such as a stored key's clash
        print(f"corral: cannot start: {exc}", file=sys.stderr)
        return 2


def one_line(exc: Exception) -> str:
    """A start-up error as one line, naming each bad setting: systemd shows the last line."""
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
    return " ".join(str(exc).split())


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    # parse_known_args: argparse takes `run MODEL --seed 1 some words` as a prompt after the
    # options only this way (intermixed parsing does not work with subcommands).
    args, extra = parser.parse_known_args(argv)
    if extra and (args.command != "run" or any(word.startswith("-") for word in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.prompt = [*args.prompt, *extra]
    if args.command == "serve":
        return _serve(args)
    if args.command in ("keys", "users"):
        return keys_cli.run(args)
    if args.command in ("run", "chat"):
        return chat_cli.run(args)
    if args.command in admin_cli.COMMANDS:
        return admin_cli.run(args)
    if args.command == "install-service":
        return install_service.run(args)
    return 2
