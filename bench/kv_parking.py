"""Many conversations taking turns over few slots: the time to first token of their later turns
when their KV must come back from where it was parked, Corral against llama.cpp's
`llama-server`.

    .venv/bin/python bench/kv_parking.py [--model PATH] [--conversations 32] [--slots 4]
        [--clients 4] [--turns 3] [--history 400]

--clients clients each own an equal share of --conversations conversations and cycle through
them, one turn at a time, so every slot is in use and a conversation's slot has gone to another
conversation by the time it returns. Turn 1 reads about --history tokens cold; the TTFT of
turns 2.. is what parking is for (p50, p90, max). Corral parks idle conversations' KV in host
memory (`kv_park_bytes`, LRU); llama-server gets the same slots, context per slot and threads,
and its host-memory prompt cache (`--cache-ram`) of the same size, which is what it offers for
this (`--slot-save-path` needs a client to save and restore slots by hand). Turns alternate
between the two servers, so drift on a shared machine hits both alike.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import llama_side
from bench.batching import corral_stream, model_path
from bench.conversation_ttft import FACT, ttft
from tests.support.supervisor_proc import Supervisor


class Conversation:
    def __init__(self, history: str) -> None:
        self.cid = uuid.uuid4().hex
        self.messages: list[Any] = [
            {"role": "system", "content": f"You are a careful archivist ({self.cid})."},
            {"role": "user", "content": history + "Summarise the archive."},
        ]

    def next_turn(self, turn: int) -> None:
        self.messages += [
            {"role": "assistant", "content": f"Answer {turn}: the letters are about rivers."},
            {"role": "user", "content": f"Question {turn + 1}: which river comes next?"},
        ]


def play_turn(
    client: httpx.Client, conversations: list[Conversation], clients: int, turn: int
) -> list[float]:
    """Turn ``turn`` of every conversation, ``clients`` at a time; their TTFTs."""
    shares = [conversations[i::clients] for i in range(clients)]

    def one_client(share: list[Conversation]) -> list[float]:
        seconds = []
        for conversation in share:
            if turn > 1:
                conversation.next_turn(turn - 1)
            seconds.append(ttft(client, conversation.messages, conversation.cid))
        return seconds

    with ThreadPoolExecutor(clients) as pool:
        return [s for share in pool.map(one_client, shares) for s in share]


def distribution(seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    p90 = ms[min(len(ms) - 1, round(0.9 * (len(ms) - 1)))]
    return f"p50 {statistics.median(ms):8.1f} ms  p90 {p90:8.1f} ms  max {ms[-1]:8.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path)
    parser.add_argument("--conversations", type=int, default=32)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--history", type=int, default=400, help="about this many tokens")
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--park-mib", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with_server = llama_side.available()
    if not with_server:
        print("without llama-server (make llama-server builds it)")
    history = FACT * max(1, args.history // 18)
    first: dict[str, list[float]] = {"corral": [], "server": []}
    later: dict[str, list[float]] = {"corral": [], "server": []}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        model = model_path(args.model, work)
        (work / "models").mkdir()
        config = work / "corral.toml"
        config.write_text(
            f'default_model = "bench"\ndemo_model = false\n[models.bench]\npath = "{model.resolve()}"\n'
            f"n_ctx = {args.n_ctx}\nn_threads = {args.threads}\nparallel = {args.slots}\n"
            f"kv_park_bytes = {args.park_mib << 20}\n"
        )
        print(f"model {model.name}, {args.conversations} conversations of ~{args.history} tokens "
              f"over {args.slots} slots of {args.n_ctx} tokens, {args.clients} clients, "
              f"{args.turns} turns, {args.threads} threads, {args.park_mib} MiB to park in")  # fmt: skip
        servers: dict[str, httpx.Client] = {}
        if with_server:
            servers["server"] = stack.enter_context(
                llama_side.running(
                    model,
                    slots=args.slots,
                    n_ctx=args.n_ctx,
                    threads=args.threads,
                    extra=["--cache-ram", str(args.park_mib)],
                )
            )
        sup = Supervisor(data_dir=work / "data", models_dir=work / "models", config=config).start()
        stack.callback(sup.terminate)
        servers["corral"] = stack.enter_context(httpx.Client(base_url=sup.base_url, timeout=900))
        for client in servers.values():
            corral_stream(client, 0, 4)  # load the model
        talks = {
            name: [Conversation(history) for _ in range(args.conversations)] for name in servers
        }
        for turn in range(1, args.turns + 1):
            order = ["corral", "server"] if turn % 2 else ["server", "corral"]
            for name in [n for n in order if n in servers]:
                seconds = play_turn(servers[name], talks[name], args.clients, turn)
                (first if turn == 1 else later)[name].extend(seconds)
                print(f"turn {turn} {name:<7} {distribution(seconds)}")
    labels = {"corral": "corral", "server": f"llama-server -np {args.slots} --cache-ram"}
    for name in servers:
        print(f"{labels[name]:<30} turn 1:   {distribution(first[name])}")
        if later[name]:
            print(f"{labels[name]:<30} turns 2+: {distribution(later[name])}")
    if with_server and later["corral"]:
        ratio = statistics.median(later["corral"]) / statistics.median(later["server"])
        print(f"ratio of p50 TTFT, turns 2+, corral / llama-server: x{ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
