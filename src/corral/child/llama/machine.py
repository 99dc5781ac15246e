"""Defaults that use the machine: every physical core, and the GPU when the build has one."""

from __future__ import annotations

import os

import llama_cpp
import psutil
from llama_cpp._internals import LlamaModel


def default_threads() -> int:
    """Physical cores: llama-cpp-python's own default (logical // 2) is one thread on a 2-core
    box, half of what llama-server and Ollama use; hyper-threads add little to matmuls."""
    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def default_gpu_layers() -> int:
    """All layers (-1) on a GPU build (CMAKE_ARGS="-DGGML_CUDA=on"), none on a CPU one."""
    return -1 if llama_cpp.llama_supports_gpu_offload() else 0


def extra_buffers_work() -> bool:
    """Whether llama.cpp's extra CPU weight buffers (AMX, repacked layouts) are safe here.

    A build with AMX kernels dies of SIGILL on the first quantized matmul on the virtual
    machines that advertise AMX without enabling it (``tilezero`` faults). The Makefile builds
    without AMX, which keeps the repacked AVX-512 layouts; a build that has AMX (another
    install) falls back to the plain kernels on a CPU that reports it.
    """
    if b"AMX" not in llama_cpp.llama_print_system_info():
        return True
    try:
        with open("/proc/cpuinfo") as info:
            return " amx_tile" not in info.read()
    except OSError:
        return True


def gpu_layers(asked: int | None) -> int:
    """How many layers go to the GPU: as asked, else the build's default."""
    return asked if asked is not None else default_gpu_layers()


def load_model(path: str, n_gpu_layers: int | None) -> LlamaModel:
    """The GGUF's weights, offloaded as this machine allows: every layer on a GPU build unless
    ``n_gpu_layers`` says otherwise (-1: all), and no AMX buffers where they would fault."""
    if not os.path.isfile(path):
        raise FileNotFoundError(path)
    llama_cpp.llama_backend_init()
    params = llama_cpp.llama_model_default_params()
    layers = gpu_layers(n_gpu_layers)
    params.n_gpu_layers = 0x7FFFFFFF if layers < 0 else layers
    params.use_extra_bufts = extra_buffers_work()
    return LlamaModel(path_model=path, params=params, verbose=False)
