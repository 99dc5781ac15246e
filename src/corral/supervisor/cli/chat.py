"""``corral run MODEL [PROMPT]`` and ``corral chat [MODEL]``: chat with the running server.

With a prompt (or with text piped in) it answers once and exits, the answer alone on stdout,
for scripts. Otherwise it is an interactive chat in the terminal: answers stream in, Ctrl-C
stops the answer and keeps the program (Ctrl-D or ``/bye`` quits), and the history goes with
every request. Status lines go to stderr, so a pipe gets only answers.

The model loads on the server as needed: the first request waits for it, and the chat says
so. No model runs in this process.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO
from urllib.parse import quote

from corral.supervisor.cli.chat_input import EndOfInput, LineReader
from corral.supervisor.cli.client import CliError, Daemon

HELP = """\
  /model NAME    chat with another model (the history stays)
  /system TEXT   set the system prompt (/system alone removes it)
  /clear         forget the conversation (the system prompt stays)
  /bye           quit (or Ctrl-D)
  Ctrl-C stops an answer; \"\"\" starts and ends a message of several lines."""


@dataclass
class Answer:
    text: str
    finish_reason: str | None  # None: stopped by Ctrl-C
    usage: dict[str, int] | None
    seconds: float


@dataclass
class ChatSession:
    daemon: Daemon
    model: str
    params: dict[str, Any]
    system: str | None = None
    verbose: bool = False
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    history: list[dict[str, str]] = field(default_factory=list)

    def use_model(self, name: str) -> None:
        """Switch to ``name`` (an id ``corral ls`` prints, an alias or "default")."""
        found = self.daemon.call("GET", "/v1/models/" + quote(name, safe="/:"))
        self.model = str(found["id"])
        if found.get("state") not in ("loaded", "reachable", "degraded"):  # remote: upstream's
            self.note(f"{self.model} is {found.get('state')}; it loads with the first message")

    def note(self, text: str) -> None:
        print(text, file=self.err, flush=True)

    def ask(self, text: str) -> Answer:
        """Send ``text`` with the history and stream the answer to ``out``."""
        messages = [{"role": "system", "content": self.system}] if self.system else []
        messages += [*self.history, {"role": "user", "content": text}]
        body = {
            "model": self.model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            **self.params,
        }
        started = time.monotonic()
        parts: list[str] = []
        finish: str | None = None
        usage: dict[str, int] | None = None
        events: Iterator[tuple[str, Any]] | None = None
        try:
            events = self.daemon.stream("/v1/chat/completions", body)
            for _, data in events:
                if "error" in data:
                    raise CliError(str(data["error"].get("message", data["error"])))
                usage = data.get("usage") or usage
                for choice in data.get("choices") or []:
                    delta = (choice.get("delta") or {}).get("content") or ""
                    if delta:
                        parts.append(delta)
                        self.out.write(delta)
                        self.out.flush()
                    finish = choice.get("finish_reason") or finish
        except KeyboardInterrupt:
            finish = None  # the connection closes below, which stops the generation
        finally:
            if events is not None and hasattr(events, "close"):
                events.close()
        answer = Answer("".join(parts), finish, usage, time.monotonic() - started)
        self._finish_line(answer)
        if answer.text or finish is not None:
            self.history += [
                {"role": "user", "content": text},
                {"role": "assistant", "content": answer.text},
            ]
        return answer

    def _finish_line(self, answer: Answer) -> None:
        if answer.text and not answer.text.endswith("\n"):
            self.out.write("\n")
            self.out.flush()
        if answer.finish_reason is None:
            self.note("[stopped]")
        elif answer.finish_reason == "length":
            self.note("[the answer reached the token limit (--max-tokens) and was cut short]")
        if self.verbose and answer.usage is not None:
            done = answer.usage.get("completion_tokens", 0)
            rate = done / answer.seconds if answer.seconds > 0 else 0.0
            self.note(
                f"[prompt {answer.usage.get('prompt_tokens', 0)} tokens, answer {done} "
                f"tokens, {answer.seconds:.2f} s, {rate:.1f} tokens/s]"
            )

    def command(self, line: str) -> bool:
        """Run a /command; False when the chat should end."""
        name, _, rest = line.strip().partition(" ")
        rest = rest.strip()
        if name in ("/bye", "/exit", "/quit"):
            return False
        if name == "/clear":
            self.history.clear()
            self.note("cleared the conversation")
        elif name == "/system":
            self.system = rest or None
            self.note(f"system prompt: {rest}" if rest else "no system prompt")
        elif name == "/model":
            if not rest:
                self.note(f"chatting with {self.model}")
            else:
                try:
                    self.use_model(rest)
                except CliError as exc:
                    self.note(f"corral: {exc}")
                else:
                    self.note(f"using {self.model}")
        elif name in ("/help", "/?"):
            self.note(HELP)
        else:
            self.note(f"unknown command {name}; /help lists them")
        return True

    def repl(self, reader: LineReader) -> int:
        self.note(f"chatting with {self.model}; /help for commands, Ctrl-D to quit")
        while True:
            try:
                text = reader.message()
            except EndOfInput:
                return 0
            if not text.strip():
                continue
            if text.startswith("/") and "\n" not in text:
                if not self.command(text):
                    return 0
                continue
            try:
                self.ask(text)
            except CliError as exc:
                self.note(f"corral: {exc}")


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--system", help="system prompt")
    options.add_argument("--temperature", type=float)
    options.add_argument("--top-p", type=float)
    options.add_argument("--max-tokens", type=int)
    options.add_argument("--seed", type=int, help="for answers that repeat")
    options.add_argument("--verbose", action="store_true", help="token counts and speed")
    run = commands.add_parser(
        "run", parents=[common, options], help="chat with a model, or answer one prompt"
    )
    run.add_argument("model", help="a model id as corral ls prints it, or an alias")
    run.add_argument("prompt", nargs="*", help="answer this once and exit")
    chat = commands.add_parser(
        "chat", parents=[common, options], help="chat with a model (default: the default one)"
    )
    chat.add_argument("model", nargs="?", default="default")


def _params(args: argparse.Namespace) -> dict[str, Any]:
    named = {
        "temperature": args.temperature,
        "top_p": args.top_p,
        "max_tokens": args.max_tokens,
        "seed": args.seed,
    }
    return {k: v for k, v in named.items() if v is not None}


def run(args: argparse.Namespace) -> int:
    daemon = Daemon(args.url, args.api_key)
    session = ChatSession(daemon, args.model, _params(args), args.system, args.verbose)
    prompt = " ".join(getattr(args, "prompt", None) or [])
    piped = not sys.stdin.isatty()
    try:
        session.use_model(args.model)
        if prompt or piped:
            if piped:  # `cat notes.txt | corral run m "summarise this"`
                prompt = "\n\n".join(p for p in (prompt, sys.stdin.read().strip()) if p)
            if not prompt:
                raise CliError("nothing to answer: the prompt is empty")
            answer = session.ask(prompt)
            return 130 if answer.finish_reason is None else 0
        return session.repl(LineReader())
    except CliError as exc:
        hint = " (corral ls lists the models)" if exc.status == 404 else ""
        print(f"corral: {exc}{hint}", file=sys.stderr)
        return 1
