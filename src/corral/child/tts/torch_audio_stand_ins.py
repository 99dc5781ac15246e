"""Stand-ins for ``torchaudio`` and ``torchcodec``, installed only when the real ones are missing.

``import TTS`` refuses to start without both (it checks ``importlib.util.find_spec``), and
no torchaudio on PyPI matches the CPU torch this project pins (the newest, 2.11, is a CUDA
build that does not import with torch 2.13). VITS synthesis never calls either library: they
are used for reading reference audio (voice cloning), some resampling layers and training.
(XTTS does need torchaudio: its decoder holds a torchaudio MelSpectrogram; the Coqui child
refuses it with a clear message when only the stand-in is there.) So when the import fails,
the Coqui child puts modules in ``sys.modules`` whose every attribute is a function that
raises a clear error the moment anything actually calls it; a model that needs torchaudio
fails loudly (its load or its request errors with this message) instead of Coqui refusing
every model.

A real torchaudio, when one imports, is always used instead.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import types
from typing import Any, NoReturn

_SUBMODULES = {
    "torchaudio": ("functional", "transforms", "io", "backend", "utils"),
    "torchcodec": ("decoders", "encoders"),
}


class StandInCalled(RuntimeError):
    """A Coqui code path needed the real torchaudio/torchcodec."""


class _StandIn(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _refusal(f"{self.__name__}.{name}")


def _refusal(qualified: str) -> Any:
    def refuse(*_args: object, **_kwargs: object) -> NoReturn:
        raise StandInCalled(
            f"{qualified} is not available: this model needs torchaudio/torchcodec (voice "
            "cloning from reference audio, or a resampling layer), which are not installed "
            "with a torch they match; Corral's Coqui child synthesises without them"
        )

    refuse.__name__ = qualified.rsplit(".", 1)[-1]
    return refuse


def _works(name: str) -> bool:
    try:
        importlib.import_module(name)
    except (
        Exception
    ):  # a CUDA build raises OSError (a missing CUDA library), a missing one ImportError
        sys.modules.pop(name, None)
        return False
    return True


def _install(name: str) -> None:
    module = _StandIn(name)
    # find_spec() on a module in sys.modules returns its __spec__ (and raises without one).
    module.__spec__ = importlib.machinery.ModuleSpec(name, loader=None, is_package=True)
    module.__path__ = []
    module.__version__ = "0.0+corral.stand-in"  # type: ignore[attr-defined]
    sys.modules[name] = module
    for sub in _SUBMODULES[name]:
        child = _StandIn(f"{name}.{sub}")
        child.__spec__ = importlib.machinery.ModuleSpec(child.__name__, loader=None)
        sys.modules[child.__name__] = child
        setattr(module, sub, child)


def ensure_torch_audio() -> tuple[str, ...]:
    """Install stand-ins for whichever of torchaudio and torchcodec does not import; returns
    the names of those that were stood in for (logged by the child)."""
    missing = tuple(name for name in _SUBMODULES if not _works(name))
    for name in missing:
        _install(name)
    return missing
