"""``python -m corral.child KIND [options]``: one model (or one job) per process."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from corral.child.runtime import Backend, Runtime
from corral.child.stdio import Channel, configure_logging, die_with_parent
from corral.protocol.speech import Speak, Transcribe


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m corral.child")
    kinds = parser.add_subparsers(dest="kind", required=True)

    llama = kinds.add_parser("llama", help="llama-cpp-python on one GGUF file")
    llama.add_argument("--model", required=True, help="path of the .gguf file")
    llama.add_argument("--model-id", default=None, help="the id the supervisor knows it by")
    llama.add_argument("--n-ctx", type=int, default=4096)
    llama.add_argument("--n-threads", type=int, default=None)
    llama.add_argument("--n-batch", type=int, default=512)
    llama.add_argument(
        "--n-gpu-layers", type=int, default=None, help="-1 all; default: all on a GPU build"
    )
    llama.add_argument("--parallel", type=int, default=8, help="requests decoded together")
    llama.add_argument("--prefill-chunk", type=int, default=256, help="prompt tokens a step")
    llama.add_argument("--kv-park-bytes", type=int, default=0, help="idle conversations' KV")
    llama.add_argument("--chat-template", default=None, help="Jinja template overriding the GGUF's")
    llama.add_argument("--embedding", action="store_true", help="embed instead of generating")
    llama.add_argument("--pooling", choices=["mean", "cls", "last"], default=None)

    hf = kinds.add_parser("hf", help="transformers on one checkpoint directory")
    hf.add_argument("--model", required=True, type=Path, help="checkpoint directory")
    hf.add_argument("--model-id", default=None, help="the id the supervisor knows it by")
    hf.add_argument("--task", choices=["chat", "embed", "rerank"], default=None)
    hf.add_argument("--n-ctx", type=int, default=None, help="at most the config's positions")
    hf.add_argument("--n-threads", type=int, default=None)
    hf.add_argument("--device", default=None, help="cuda when torch sees a GPU, else cpu")
    hf.add_argument("--dtype", default="auto")
    hf.add_argument("--device-map", default=None)
    hf.add_argument("--trust-remote-code", action="store_true")
    hf.add_argument("--chat-template", default=None, help="Jinja template overriding the model's")

    fake = kinds.add_parser("fake", help="no model; speaks the protocol for tests")
    fake.add_argument("--model-id", default="fake")
    fake.add_argument("--load-delay", type=float, default=0.0)
    fake.add_argument("--tokens-per-second", type=float, default=0.0)
    fake.add_argument("--reply-tokens", type=int, default=8)
    fake.add_argument("--crash-after", type=int, default=None)
    fake.add_argument("--hang", choices=["never", "load", "generate"], default="never")
    fake.add_argument("--fail-load", action="store_true")
    fake.add_argument("--n-ctx", type=int, default=4096)
    remote = kinds.add_parser("remote", help="an OpenAI-compatible engine elsewhere")
    remote.add_argument("--model-id", required=True)
    remote.add_argument("--url", action="append", required=True, help="base URL; once a replica")
    remote.add_argument("--upstream-model", required=True, help="the upstream's name for it")
    # The key itself never goes on the command line (ps shows it to every user).
    remote.add_argument("--api-key-env", default=None, help="environment variable with the key")
    remote.add_argument("--api-key-file", type=Path, default=None, help="file with the key")
    remote.add_argument("--connect-timeout", type=float, default=5.0)
    remote.add_argument("--read-timeout", type=float, default=120.0)
    remote.add_argument("--serves", action="append", default=None)
    whisper = kinds.add_parser("whisper", help="faster-whisper on one CTranslate2 Whisper dir")
    whisper.add_argument("--model", required=True, help="the model directory")
    whisper.add_argument("--model-id", default=None)
    whisper.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    whisper.add_argument("--compute-type", default=None, help="default: int8 CPU, float16 GPU")
    whisper.add_argument("--cpu-threads", type=int, default=0)

    tts = kinds.add_parser("tts", help="Piper (an .onnx voice) or Coqui (a model directory)")
    tts.add_argument("--model", required=True, help="the .onnx file or the Coqui directory")
    tts.add_argument("--model-id", default=None)
    tts.add_argument("--cuda", action="store_true")
    download = kinds.add_parser("download", help="one hub download job (huggingface-hub)")
    download.add_argument("--cache-dir", required=True, type=Path, help="huggingface-hub cache")
    download.add_argument("--progress-interval", type=float, default=0.25, help="seconds")
    return parser


def _download(args: argparse.Namespace, channel: Channel) -> int:
    from corral.child.download.backend import DownloadChild  # huggingface-hub: only when used
    from corral.child.download.hub_fetch import configure_hub

    configure_hub()
    return DownloadChild(channel, args.cache_dir, args.progress_interval).run()


def _backend(args: argparse.Namespace) -> Backend:
    if args.kind == "llama" and args.embedding:
        from corral.child.llama.embedding import LlamaEmbedder

        return LlamaEmbedder(
            model_path=args.model,
            model_id=args.model_id or args.model,
            n_ctx=args.n_ctx,
            n_threads=args.n_threads,
            n_gpu_layers=args.n_gpu_layers,
            pooling=args.pooling,
        )
    if args.kind == "llama":
        from corral.child.llama.backend import LlamaBackend  # heavy import, only when used

        return LlamaBackend(
            model_path=args.model,
            model_id=args.model_id or args.model,
            n_ctx=args.n_ctx,
            n_threads=args.n_threads,
            n_batch=args.n_batch,
            n_gpu_layers=args.n_gpu_layers,
            chat_template=args.chat_template,
            parallel=max(1, args.parallel),
            prefill_chunk=max(1, args.prefill_chunk),
            park_bytes=max(0, args.kv_park_bytes),
        )
    if args.kind == "hf":
        from corral.child.hf.backend import HfBackend  # torch: only when used

        return HfBackend(
            model_dir=args.model,
            model_id=args.model_id or str(args.model),
            task=args.task,
            n_ctx=args.n_ctx,
            device=args.device,
            dtype=args.dtype,
            device_map=args.device_map,
            trust_remote_code=args.trust_remote_code,
            chat_template=args.chat_template,
            n_threads=args.n_threads,
        )
    if args.kind == "remote":
        from corral.child.remote.command import remote_backend

        return remote_backend(args)
    from corral.child.fake.backend import FakeBackend

    return FakeBackend(
        model=args.model_id,
        load_delay=args.load_delay,
        tokens_per_second=args.tokens_per_second,
        reply_tokens=args.reply_tokens,
        crash_after=args.crash_after,
        hang=args.hang,
        fail_load=args.fail_load,
        n_ctx=args.n_ctx,
    )


def _speech(args: argparse.Namespace, channel: Channel) -> int:
    """The speech kinds serve their own request types (transcribe, speak)."""
    if args.kind == "whisper":
        from corral.child.whisper.backend import WhisperBackend

        model_id = args.model_id or args.model
        whisper = WhisperBackend(
            args.model, model_id, args.device, args.compute_type, args.cpu_threads
        )
        return Runtime(whisper, channel, accepts=(Transcribe,)).run()
    if Path(args.model).is_dir():
        from corral.child.tts.coqui_backend import CoquiBackend  # torch: only when used

        coqui = CoquiBackend(args.model, args.model_id or args.model, use_cuda=args.cuda)
        return Runtime(coqui, channel, accepts=(Speak,)).run()
    from corral.child.tts.piper_backend import PiperBackend

    voice = Path(args.model).name.removesuffix(".onnx")
    piper = PiperBackend(args.model, args.model_id or args.model, voice, use_cuda=args.cuda)
    return Runtime(piper, channel, accepts=(Speak,)).run()


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.kind == "llama" and args.pooling is not None and not args.embedding:
        parser.error("--pooling needs --embedding (a chat model does not pool)")
    die_with_parent()
    configure_logging(args.kind)
    channel = Channel()  # before the backend import: native libraries may print on load
    if args.kind == "download":
        return _download(args, channel)
    if args.kind in ("whisper", "tts"):
        return _speech(args, channel)
    return Runtime(_backend(args), channel).run()


if __name__ == "__main__":
    sys.exit(main())
