"""The chat's input: one message per prompt, of one line or several.

``input()`` with the standard library's readline gives line editing and history. A message
of several lines is written as Ollama's is: ``\"\"\"`` opens it and ``\"\"\"`` closes it (on the
same line or a later one); a line ending in a backslash also continues. Ctrl-C at the prompt
drops what was typed, as in a shell; Ctrl-D on an empty prompt ends the chat.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable

FENCE = '"""'
PROMPT = ">>> "
MORE = "... "


class EndOfInput(Exception):
    pass


class LineReader:
    def __init__(self, read: Callable[[str], str] = input) -> None:
        if read is input:
            with contextlib.suppress(ImportError):  # line editing where the platform has it
                import readline  # noqa: F401
        self._read = read

    def message(self) -> str:
        """The next message; EndOfInput at Ctrl-D."""
        while True:
            try:
                return self._message()
            except KeyboardInterrupt:
                print("\n(Ctrl-D or /bye to quit)", file=sys.stderr, flush=True)
            except EOFError:
                print(file=sys.stderr, flush=True)
                raise EndOfInput from None

    def _message(self) -> str:
        line = self._read(PROMPT)
        if line.startswith(FENCE):
            return self._fenced(line[len(FENCE) :])
        lines = [line]
        while lines[-1].endswith("\\"):
            lines[-1] = lines[-1][:-1]
            lines.append(self._read(MORE))
        return "\n".join(lines)

    def _fenced(self, first: str) -> str:
        lines: list[str] = []
        line = first
        while not line.rstrip().endswith(FENCE):
            lines.append(line)
            line = self._read(MORE)
        lines.append(line.rstrip()[: -len(FENCE)])
        return "\n".join(lines).strip("\n")
