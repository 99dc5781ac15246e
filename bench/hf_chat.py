"""Chat decode speed of the hf backend: Corral's streamed ``/v1/chat/completions`` against
transformers' ``model.generate`` in-process, alternating round by round in one run.

    .venv/bin/python bench/hf_chat.py [--model DIR] [--rounds 5] [--max-tokens 64] [--threads 2]
    .venv/bin/python bench/hf_chat.py --batching 4   # also: generate_batch vs one at a time

Without --model it builds a random Qwen2 of about 30M parameters (8 layers, hidden 512) in a
temp dir: small enough for a 2-core machine, big enough that the forward pass, not Python,
sets the pace. Both sides decode greedily with the end-of-sequence token suppressed, so every
round produces exactly --max-tokens tokens. Prints time to first token, decode tokens/s and
the Corral/in-process ratios. ``--batching N`` times N prompts through transformers'
continuous batching (``generate_batch``) against N ``generate`` calls one after another.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.streaming import stream_events
from tests.support.supervisor_proc import Supervisor

MESSAGES = [{"role": "user", "content": "Write a long story about horses and the sea."}]


def build_model(directory: Path) -> Path:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from tests.support.tiny_hf import _byte_level_tokenizer

    tokenizer: Any = _byte_level_tokenizer()
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=512, intermediate_size=1408,
        num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=2,
        max_position_embeddings=4096, eos_token_id=eos, tie_word_embeddings=True,
    )  # fmt: skip
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = eos
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def in_process(model: Any, tokenizer: Any, max_tokens: int) -> tuple[float, float]:
    import torch
    from transformers.generation.streamers import BaseStreamer

    stamps: list[float] = []

    class Clock(BaseStreamer):
        def put(self, value: Any) -> None:
            stamps.append(time.perf_counter())

        def end(self) -> None:
            pass

    text = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
    start = time.perf_counter()
    with torch.inference_mode():
        model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_tokens,
            do_sample=False, suppress_tokens=[tokenizer.eos_token_id], streamer=Clock(),
        )  # fmt: skip
    first, last = stamps[1], stamps[-1]  # stamps[0] is the prompt
    return first - start, (max_tokens - 1) / (last - first)


def corral(client: httpx.Client, eos: int, max_tokens: int) -> tuple[float, float]:
    body = {
        "model": "bench", "messages": MESSAGES, "max_tokens": max_tokens, "temperature": 0,
        "logit_bias": {str(eos): -100}, "stream": True,
        "stream_options": {"include_usage": True},
    }  # fmt: skip
    start = time.perf_counter()
    first = last = 0.0
    completion = 0
    for event in stream_events(client, body):
        if event.get("usage"):
            completion = event["usage"]["completion_tokens"]
        if event.get("choices") and event["choices"][0]["delta"].get("content"):
            last = time.perf_counter()
            first = first or last
    assert completion == max_tokens, completion
    return first - start, (max_tokens - 1) / (last - first)


def batching(model: Any, tokenizer: Any, n: int, max_tokens: int) -> None:
    import torch
    from transformers import GenerationConfig

    prompts = [tokenizer(f"Story {i} about horses:")["input_ids"] for i in range(n)]
    config = GenerationConfig(
        max_new_tokens=max_tokens, do_sample=False, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id or 0,
    )  # fmt: skip
    model.generate_batch(inputs=prompts[:1], generation_config=config)  # warm up its cache
    start = time.perf_counter()
    one_by_one = 0
    for ids in prompts:
        tensor = torch.tensor([ids])
        with torch.inference_mode():
            out = model.generate(input_ids=tensor, attention_mask=torch.ones_like(tensor),
                                 generation_config=config)  # fmt: skip
        one_by_one += out.shape[1] - len(ids)
    sequential = one_by_one / (time.perf_counter() - start)
    start = time.perf_counter()
    outputs = model.generate_batch(inputs=prompts, generation_config=config)
    made = sum(len(o.generated_tokens) for o in outputs.values())
    batched = made / (time.perf_counter() - start)
    print(f"one at a time  {sequential:8.1f} tok/s  ({n} prompts, {one_by_one} tokens)")
    print(
        f"generate_batch {batched:8.1f} tok/s  ({made} tokens)  ratio x{batched / sequential:.3f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, help="checkpoint dir (default: a random Qwen2)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batching", type=int, default=0, help="also time N prompts batched")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_dir = args.model or build_model(work / "qwen2-random")
        model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True).eval()
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        config = work / "corral.toml"
        config.write_text(
            'default_model = "bench"\ndemo_model = false\n[models.bench]\nbackend = "hf"\n'
            f'path = "{model_dir.resolve()}"\nn_threads = {args.threads}\n'
        )
        (work / "models").mkdir()
        print(f"model {model_dir.name}, {args.max_tokens} tokens, {args.threads} threads, "
              f"{args.rounds} rounds")  # fmt: skip
        sup = Supervisor(data_dir=work / "data", models_dir=work / "models", config=config)
        sup.start()
        samples: dict[str, list[tuple[float, float]]] = {"in-process": [], "corral": []}
        try:
            with httpx.Client(base_url=sup.base_url, timeout=600) as client:
                corral(client, tokenizer.eos_token_id, 4)  # load, warm up
                in_process(model, tokenizer, 4)
                for round_ in range(args.rounds):
                    order = (
                        ("corral", "in-process") if round_ % 2 == 0 else ("in-process", "corral")
                    )
                    for side in order:
                        samples[side].append(
                            corral(client, tokenizer.eos_token_id, args.max_tokens)
                            if side == "corral"
                            else in_process(model, tokenizer, args.max_tokens)
                        )
        finally:
            sup.terminate()
        if args.batching:
            batching(model, tokenizer, args.batching, args.max_tokens)
    medians = {
        side: (statistics.median(s[0] for s in v), statistics.median(s[1] for s in v))
        for side, v in samples.items()
    }
    for side, (ttft, tps) in medians.items():
        print(f"{side:<12} TTFT median {ttft * 1000:8.1f} ms   decode median {tps:7.2f} tok/s")
    (in_ttft, in_tps), (co_ttft, co_tps) = medians["in-process"], medians["corral"]
    print(f"ratio corral/in-process: TTFT x{co_ttft / in_ttft:.3f}   decode x{co_tps / in_tps:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
