"""``corral keys ...`` and ``corral users ...``: manage credentials in the database directly.

These work with the daemon running or not: SQLite in WAL mode takes both, and the daemon asks
the database whether auth is on, so a new key takes effect within a second. Which database:
cli/datadir.py (the running server's, unless one is named).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from corral.supervisor.cli.datadir import AmbiguousServer, resolve_target
from corral.supervisor.settings import Settings

if TYPE_CHECKING:
    from corral.supervisor.auth.credentials import Credentials
    from corral.supervisor.store import Store


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML settings file")
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="where the database lives (default: the running server's, else the default)",
    )


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser("keys", help="API keys: create, list, revoke")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key; it is printed once, only")
    create.add_argument("name")
    create.add_argument("--admin", action="store_true", help="may use /admin and the dashboard")
    create.add_argument("--models", help="comma-separated model ids this key may use")
    _common(create)
    listing = keys_sub.add_parser("list", help="list keys (never the secrets)")
    listing.add_argument("--all", action="store_true", help="include revoked keys")
    _common(listing)
    revoke = keys_sub.add_parser("revoke", help="revoke a key by name")
    revoke.add_argument("name")
    _common(revoke)

    users = commands.add_parser("users", help="web UI users: add, list, remove")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    add = users_sub.add_parser("add", help="add a user (asks for the password)")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    _common(add)
    _common(users_sub.add_parser("list", help="list users"))
    remove = users_sub.add_parser("remove", help="remove a user and end their sessions")
    remove.add_argument("name")
    _common(remove)


def _credentials(args: argparse.Namespace) -> tuple[Store, Credentials]:
    # Imported here: the store and the auth policy pull in sqlite-utils and aiohttp, a second
    # of start-up that every other CLI command (corral run, ls, ...) would pay for nothing.
    from corral.supervisor.auth.policy import build_credentials
    from corral.supervisor.store import Store

    target = resolve_target(args.config, args.data_dir)
    print(f"corral: {target.note}", file=sys.stderr)
    settings = target.settings
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.resolved_database_path.parent.mkdir(parents=True, exist_ok=True)
    store = Store(settings.resolved_database_path)
    return store, build_credentials(store, settings)


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the passwords differ")
    return first


def run(args: argparse.Namespace) -> int:
    try:
        store, credentials = _credentials(args)
    except AmbiguousServer as exc:
        print(f"corral: {exc}", file=sys.stderr)
        return 2
    except (ValidationError, FileNotFoundError, ValueError) as exc:
        print(f"corral: invalid settings: {exc}", file=sys.stderr)
        return 2
    with store:
        try:
            return _dispatch(args, credentials)
        except ValueError as exc:
            print(f"corral: {exc}", file=sys.stderr)
            return 1


def _dispatch(args: argparse.Namespace, credentials: Credentials) -> int:
    if args.command == "keys":
        if args.keys_command == "create":
            models = [m.strip() for m in args.models.split(",")] if args.models else None
            print(credentials.create_key(args.name, admin=args.admin, models=models))
            return 0
        if args.keys_command == "list":
            for key in credentials.list_keys(include_revoked=args.all):
                scope = "all models" if key.models is None else ",".join(sorted(key.models))
                state = " revoked" if key.revoked_at else ""
                role = "admin" if key.admin else "user"
                print(f"{key.name}\t{key.prefix}\t{role}\t{scope}{state}")
            return 0
        if credentials.revoke_key(args.name):
            return 0
        print(f"corral: no active key named {args.name!r}", file=sys.stderr)
        return 1
    if args.users_command == "add":
        credentials.add_user(args.name, _password(args), admin=args.admin)
        return 0
    if args.users_command == "list":
        for user in credentials.list_users():
            print(f"{user.name}\t{'admin' if user.admin else 'user'}")
        return 0
    if credentials.remove_user(args.name):
        return 0
    print(f"corral: no user named {args.name!r}", file=sys.stderr)
    return 1


def public_bind_refusal(settings: Settings) -> str | None:
    """Why serving ``settings.host`` would be unsafe, or None when it is fine."""
    from corral.supervisor.auth.policy import build_credentials, open_without_keys
    from corral.supervisor.store import Store

    if open_without_keys(settings):
        return None
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with Store(settings.resolved_database_path) as store:
        if build_credentials(store, settings).auth_configured():
            return None
    return (
        f"refusing to listen on {settings.host} without API keys: anyone who can reach it could "
        "use and administer this server. Create a key (corral keys create NAME --admin), add "
        "api_keys to the config, or pass --insecure-no-auth if the network is yours alone."
    )
