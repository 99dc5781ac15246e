"""A bounded, append-only byte log addressed by absolute offsets.

A resumable stream is replayed by byte offset: offset 0 is the first byte of the original
HTTP response body, and a client that received N bytes re-attaches with ``from=N``. The ring
keeps only the newest ``capacity`` bytes, so old offsets eventually become unavailable; that
is reported as ``OffsetGone`` rather than silently returning the wrong bytes.

Storage is one ``bytearray`` plus a head index. Trimming only moves the head; the dead prefix
is deleted once it is at least as large as the live part, so each byte is moved a bounded
number of times (amortised O(1) per byte) and memory stays under about twice ``capacity``
(plus the size of the largest single append).
"""

from __future__ import annotations


class StreamOffsetError(ValueError):
    """An offset that cannot be served. ``start``/``end`` tell what can be."""

    def __init__(self, message: str, offset: int, start: int, end: int) -> None:
        super().__init__(message)
        self.offset = offset
        self.start = start
        self.end = end


class OffsetGone(StreamOffsetError):
    """The offset was buffered once but has been dropped to respect the capacity."""


class OffsetAhead(StreamOffsetError):
    """The offset is past the last byte written so far."""


class RingBuffer:
    """Keeps the newest ``capacity`` bytes of a stream, addressed by absolute offsets."""

    __slots__ = ("_buf", "_capacity", "_end", "_head")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"ring capacity must be at least 1 byte, got {capacity}")
        self._capacity = capacity
        self._buf = bytearray()
        self._head = 0  # index in _buf of the byte at offset ``start``
        self._end = 0

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def start(self) -> int:
        """The oldest offset still retained (0 until the ring first overflows)."""
        return self._end - (len(self._buf) - self._head)

    @property
    def end(self) -> int:
        """Total bytes ever appended: the offset the next byte will have."""
        return self._end

    @property
    def retained(self) -> int:
        """Bytes currently readable (``end - start``), at most ``capacity``."""
        return len(self._buf) - self._head

    def __len__(self) -> int:
        return self.retained

    def append(self, data: bytes) -> int:
        """Append ``data``, dropping the oldest bytes past capacity; returns the new end."""
        size = len(data)
        if size == 0:
            return self._end
        self._end += size
        if size >= self._capacity:
            # Everything already held is dropped anyway; copy only the tail we keep.
            self._buf = bytearray(memoryview(data)[size - self._capacity :])
            self._head = 0
            return self._end
        self._buf += data
        excess = len(self._buf) - self._head - self._capacity
        if excess > 0:
            self._head += excess
        if self._head >= len(self._buf) - self._head:
            # Compact lazily: only when the dead prefix outweighs the live bytes.
            del self._buf[: self._head]
            self._head = 0
        return self._end

    def check(self, offset: int) -> None:
        """Raise ``OffsetGone``/``OffsetAhead`` unless ``offset`` can be read now."""
        start, end = self.start, self._end
        if offset < 0:
            raise StreamOffsetError(f"offset {offset} must not be negative", offset, start, end)
        if offset < start:
            raise OffsetGone(
                f"offset {offset} is no longer buffered; offsets {start} to {end} are available",
                offset,
                start,
                end,
            )
        if offset > end:
            raise OffsetAhead(
                f"offset {offset} is past the end of the stream; offsets {start} to {end} "
                "are available",
                offset,
                start,
                end,
            )

    def read(self, offset: int, max_bytes: int | None = None) -> bytes:
        """The bytes from ``offset`` to the end (at most ``max_bytes`` of them).

        Reading at exactly ``end`` returns ``b""``. Raises ``OffsetGone`` below ``start`` and
        ``OffsetAhead`` past ``end``.
        """
        self.check(offset)
        if max_bytes is not None and max_bytes < 0:
            raise ValueError(f"max_bytes must not be negative, got {max_bytes}")
        lo = self._head + (offset - self.start)
        hi = len(self._buf) if max_bytes is None else min(len(self._buf), lo + max_bytes)
        # Slice through a memoryview so the bytes are copied once, not twice; the view is
        # released at once because a live export would forbid resizing the bytearray.
        with memoryview(self._buf) as view:
            return bytes(view[lo:hi])
