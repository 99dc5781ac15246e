"""Embeddings per second: the bundled MiniLM through Corral's ``/v1/embeddings`` against
sentence-transformers in-process, alternating round by round in one run.

    .venv/bin/python bench/embeddings.py [--rounds 5] [--batch 64] [--threads 2] [--model DIR]

Both sides embed the same batches of sentences with the same model and thread count; Corral's
side goes through the official openai client (base64 on the wire, as the client asks by
default). Prints inputs/s for both and the Corral/in-process ratio (goal: >= 0.9).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.supervisor_proc import Supervisor

WORDS = [
    "the",
    "cat",
    "sat",
    "on",
    "the",
    "mat",
    "while",
    "horses",
    "ran",
    "across",
    "a",
    "green",
    "field",
    "at",
    "dawn",
    "and",
    "an",
    "old",
    "engine",
    "with",
    "a",
    "dirty",
    "carburetor",
    "coughed",
    "in",
    "the",
    "barn",
    "as",
    "the",
    "sea",
    "rolled",
    "under",
    "a",
    "grey",
    "sky",
]


def sentences(count: int, offset: int) -> list[str]:
    return [
        " ".join(WORDS[(i * 7 + j + offset) % len(WORDS)] for j in range(12 + i % 9))
        for i in range(count)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, help="sentence-transformers dir (default: MiniLM)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64, help="inputs per request")
    parser.add_argument("--requests", type=int, default=4, help="requests per round")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import openai
    import torch
    from sentence_transformers import SentenceTransformer

    from corral.supervisor.models.bundled_embedder import ensure_embedder

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = args.model or ensure_embedder(work / "embeddings")
        models_dir = work / "models"
        models_dir.mkdir()
        config = work / "corral.toml"
        config.write_text(
            'demo_model = false\nembedding_model = false\n[models.bench]\nbackend = "hf"\n'
            f'path = "{model.resolve()}"\nn_threads = {args.threads}\n'
        )
        local = SentenceTransformer(str(model), device="cpu", local_files_only=True)
        sup = Supervisor(data_dir=work / "data", models_dir=models_dir, config=config).start()
        client = openai.OpenAI(base_url=sup.base_url + "/v1", api_key="x", max_retries=0)
        print(f"model {model.name}, {args.requests} x {args.batch} inputs per round, "
              f"{args.threads} threads, {args.rounds} rounds")  # fmt: skip
        rates: dict[str, list[float]] = {"in-process": [], "corral": []}
        try:
            client.embeddings.create(model="bench", input=sentences(4, 0))  # load, warm up
            local.encode(sentences(4, 0))
            for round_ in range(args.rounds):
                order = ("corral", "in-process") if round_ % 2 == 0 else ("in-process", "corral")
                for side in order:
                    batches = [sentences(args.batch, round_ * 31 + r) for r in range(args.requests)]
                    start = time.perf_counter()
                    for batch in batches:
                        if side == "corral":
                            client.embeddings.create(model="bench", input=batch)
                        else:
                            local.encode(batch, batch_size=32)
                    elapsed = time.perf_counter() - start
                    rates[side].append(args.requests * args.batch / elapsed)
        finally:
            client.close()
            sup.terminate()
    medians = {side: statistics.median(values) for side, values in rates.items()}
    for side, value in medians.items():
        print(f"{side:<12} median {value:8.1f} inputs/s   ({len(rates[side])} rounds)")
    print(f"ratio corral/in-process: x{medians['corral'] / medians['in-process']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
