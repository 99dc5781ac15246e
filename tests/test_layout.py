"""The package layout's rules, read from the source tree: who may import whom, and module size."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "corral"
MAX_MODULE_LINES = 400


def _modules(package: str) -> list[Path]:
    return sorted((SRC / package).rglob("*.py"))


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("child", "corral.supervisor"),
        ("child", "corral.deploy"),
        ("supervisor", "corral.child"),
        ("protocol", "corral.supervisor"),
        ("protocol", "corral.child"),
    ],
)
def test_protocol_is_the_only_shared_code(package: str, forbidden: str) -> None:
    offenders = [
        f"{path.relative_to(SRC)} imports {name}"
        for path in _modules(package)
        for name in _imported(path)
        if name == forbidden or name.startswith(forbidden + ".")
    ]
    assert offenders == []


def test_the_child_runs_without_aiohttp() -> None:
    """A child is a small process: the HTTP stack belongs to the supervisor alone."""
    offenders = [
        str(path.relative_to(SRC))
        for path in _modules("child")
        if any(name.split(".")[0] == "aiohttp" for name in _imported(path))
    ]
    assert offenders == []


def test_appkeys_import_types_only() -> None:
    """``appkeys`` is imported everywhere, so it imports nothing at run time but aiohttp."""
    tree = ast.parse((SRC / "supervisor" / "appkeys.py").read_text())
    runtime_imports = [
        node
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("corral.")
    ]
    assert runtime_imports == []


def test_no_module_is_a_god_module() -> None:
    long = {
        str(path.relative_to(SRC)): n
        for path in SRC.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_every_package_says_what_it_is_for() -> None:
    undocumented = [
        str(init.relative_to(SRC))
        for init in SRC.rglob("__init__.py")
        if ast.get_docstring(ast.parse(init.read_text())) is None
    ]
    assert undocumented == []


def test_the_tests_mirror_the_packages() -> None:
    """``tests/supervisor/streams/`` holds the tests of ``corral.supervisor.streams``, and so
    on; ``tests/e2e/`` holds the end-to-end tier and ``tests/support/`` the helpers."""
    tests = Path(__file__).resolve().parent
    stray = [
        str(d.relative_to(tests))
        for d in tests.rglob("*")
        if d.is_dir()
        and d.name not in ("__pycache__", "e2e", "support")
        and d.relative_to(tests).parts[0] not in ("e2e", "support")
        and not (SRC / d.relative_to(tests)).is_dir()
    ]
    assert stray == []
