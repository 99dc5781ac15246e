"""The child's end of the pipe: protocol frames on a private copy of stdout, nothing else.

Native libraries (llama.cpp, CUDA) print to fd 1 at will. At start-up we keep a private
duplicate of fd 1 for the protocol and point fd 1 at stderr, so nothing they print can
corrupt the frame stream; the supervisor reads stderr as log lines.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator

from pydantic import BaseModel

from corral.protocol import TO_CHILD, LineSplitter, ProtocolError, decode, encode
from corral.protocol.messages import ToChild

log = logging.getLogger("corral.child")

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL us when the supervisor dies, even by ``kill -9``."""
    expected_parent = os.environ.get("CORRAL_PARENT_PID")
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: stdin EOF still ends us
        return
    # The parent may have died before prctl took effect; then we were re-parented already.
    if expected_parent is not None and os.getppid() != int(expected_parent):
        os._exit(1)


class Channel:
    """Thread-safe frame writer plus a blocking frame reader over stdin."""

    def __init__(self) -> None:
        sys.stdout.flush()
        self._out = os.fdopen(os.dup(1), "wb", buffering=0)
        os.dup2(2, 1)
        sys.stdout = sys.stderr  # Python-level prints go to the log too
        self._lock = threading.Lock()
        self._in = sys.stdin.buffer

    def send(self, message: BaseModel) -> None:
        data = encode(message)
        # A broken pipe means the supervisor is gone; we will see EOF on stdin next.
        with self._lock, contextlib.suppress(BrokenPipeError):
            self._out.write(data)

    def messages(self) -> Iterator[ToChild | ProtocolError]:
        """Yield control messages until stdin closes."""
        splitter = LineSplitter()
        fd = self._in.fileno()
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return
            for item in splitter.feed(chunk):
                if isinstance(item, ProtocolError):
                    yield item
                    continue
                try:
                    yield decode(TO_CHILD, item)
                except ProtocolError as exc:
                    yield exc


def configure_logging(kind: str) -> None:
    level = os.environ.get("CORRAL_CHILD_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        stream=sys.stderr,
        level=level,
        format=f"%(levelname)s child={kind} %(message)s",
    )
