"""llama.cpp's `llama-server`, built from the `vendor/llama.cpp` tree of the llama-cpp-python
sdist that Corral pins, for the remote-engine tests and benchmarks (an upstream on loopback).

    python bench/llama_server.py            # build unless cached, then print the binary's path
    python bench/llama_server.py --sdist llama_cpp_python-0.3.36.tar.gz

The build is cached once per pin and flags at ~/.cache/corral/llama-server-<digest>/llama-server,
outside the clone, so every checkout and CI run on a machine reuses it. `binary()` answers the
cached path or None (tests skip with a reason then); `build()` makes it. Only the standard
library is used, so this runs before the virtualenv exists.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The Makefile's LLAMA_FLAGS (which `make llama-server` passes on): the VMs we run on advertise
# AMX in cpuid and then SIGILL on its tile instructions, so -march=native must leave AMX out.
FLAGS = os.environ.get("LLAMA_FLAGS", "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16")
CMAKE_ARGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_NATIVE=ON",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    # One self-contained executable to cache, not a binary with an rpath into the build tree.
    "-DBUILD_SHARED_LIBS=OFF",
    # The embedded web UI would come from a Hugging Face bucket or npm; the API does not need it.
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
)


def pin() -> str:
    """The `llama-cpp-python==X` requirement from pyproject.toml."""
    found = re.search(r"llama-cpp-python==[0-9.]+", (ROOT / "pyproject.toml").read_text())
    if found is None:
        raise RuntimeError("pyproject.toml pins no llama-cpp-python version")
    return found.group(0)


def cache_dir() -> Path:
    digest = hashlib.sha256(f"{pin()} {FLAGS} {' '.join(CMAKE_ARGS)}".encode()).hexdigest()[:12]
    return Path.home() / ".cache" / "corral" / f"llama-server-{digest}"


def binary() -> Path | None:
    """The cached llama-server, or None when it has not been built for this pin and flags."""
    path = cache_dir() / "llama-server"
    return path if path.is_file() and os.access(path, os.X_OK) else None


def download_sdist(into: Path) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--dest",
            str(into),
            pin(),
        ],
        check=True,
    )
    return next(into.glob("llama_cpp_python-*.tar.gz"))


def build(sdist: Path | None = None, jobs: int = 2) -> Path:
    """Build llama-server into the cache (a no-op when it is there) and answer its path."""
    cached = binary()
    if cached is not None:
        return cached
    with tempfile.TemporaryDirectory(prefix="corral-llama-server-") as tmp:
        work = Path(tmp)
        archive = sdist or download_sdist(work)
        with tarfile.open(archive) as tar:
            tar.extractall(work, filter="data")
        source = next(work.glob("llama_cpp_python-*/vendor/llama.cpp"))
        build_dir = work / "build"
        env = {**os.environ, "CFLAGS": FLAGS, "CXXFLAGS": FLAGS}
        subprocess.run(
            ["cmake", "-S", str(source), "-B", str(build_dir), *CMAKE_ARGS], check=True, env=env
        )
        subprocess.run(
            ["cmake", "--build", str(build_dir), "--target", "llama-server", f"-j{jobs}"],
            check=True,
            env=env,
        )
        target = cache_dir()
        target.mkdir(parents=True, exist_ok=True)
        # Copy then rename, so a build killed half-way never leaves a truncated binary cached.
        partial = target / "llama-server.partial"
        shutil.copy2(build_dir / "bin" / "llama-server", partial)
        partial.rename(target / "llama-server")
    built = binary()
    assert built is not None
    return built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sdist", type=Path, help="a llama-cpp-python sdist (else pip download)")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    print(build(args.sdist, args.jobs))


if __name__ == "__main__":
    main()
