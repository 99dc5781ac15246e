"""How long a ``corral`` command takes to start, against a bare Python start-up (the anchor).

    .venv/bin/python bench/cli_startup.py [--rounds 10]

Every CLI command a person types (``corral run``, ``ls``, ``pull``) pays this before its first
byte. It runs ``corral ls`` against an address where nothing listens (so the command starts,
fails fast and exits) and ``python -c pass``, alternating, and prints the medians and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def _seconds(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, capture_output=True, check=False)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    anchor_argv = [sys.executable, "-c", "pass"]
    corral_argv = [sys.executable, "-m", "corral.supervisor", "ls", "--url", "http://127.0.0.1:9"]
    _seconds(corral_argv)  # warm the page cache and the bytecode
    anchor, corral = [], []
    for _ in range(args.rounds):
        anchor.append(_seconds(anchor_argv))
        corral.append(_seconds(corral_argv))
    a, c = statistics.median(anchor), statistics.median(corral)
    print(f"python -c pass       {a * 1000:7.1f} ms (median of {args.rounds})")
    print(f"corral ls (no server) {c * 1000:7.1f} ms")
    print(f"ratio                 x{c / a:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
