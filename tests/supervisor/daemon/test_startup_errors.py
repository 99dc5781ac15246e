"""Low: a bad config or a taken port is one line on stderr and a non-zero exit, no traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

BAD_CONFIGS = {
    "duplicate key names": (
        '[[api_keys]]\nname = "a"\nkey = "0123456789abcdef01"\n'
        '[[api_keys]]\nname = "a"\nkey = "fedcba98765432100"\n',
        "api key names must be unique: a",
    ),
    "bad key_sha256": (
        '[[api_keys]]\nname = "b"\nkey_sha256 = "not-hex"\n',
        "key_sha256 must be 64 hex digits",
    ),
    "non-finite keep_alive": ("keep_alive = nan\n", "keep_alive"),
}


def corral_serve(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "corral.supervisor", "serve", "--data-dir", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_a_bad_config_is_one_line(tmp_path: Path, case: str) -> None:
    text, expected = BAD_CONFIGS[case]
    config = tmp_path / "corral.toml"
    config.write_text(text)
    done = corral_serve(tmp_path, "--config", str(config), "--port", "0")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert expected in lines[0]


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (tmp_path / "corral.toml").write_text('demo_model = false\ndefault_model = "x"\n')
        done = corral_serve(
            tmp_path, "--config", str(tmp_path / "corral.toml"), "--port", str(port)
        )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert f"port {port} on 127.0.0.1 is already in use" in last
    assert "--port" in last
