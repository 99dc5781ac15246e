"""Offsets of the resumable-stream ring buffer."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.supervisor.streams.ring import (
    OffsetAhead,
    OffsetGone,
    RingBuffer,
    StreamOffsetError,
)


def test_empty_ring() -> None:
    ring = RingBuffer(8)
    assert (ring.start, ring.end, ring.retained, len(ring)) == (0, 0, 0, 0)
    assert ring.read(0) == b""
    with pytest.raises(OffsetAhead):
        ring.read(1)


def test_append_returns_end_and_empty_append_is_a_no_op() -> None:
    ring = RingBuffer(8)
    assert ring.append(b"abc") == 3
    assert ring.append(b"") == 3
    assert ring.append(b"de") == 5
    assert ring.read(0) == b"abcde"
    assert ring.read(3) == b"de"


def test_append_across_capacity_drops_oldest() -> None:
    ring = RingBuffer(8)
    ring.append(b"0123456")
    ring.append(b"789")  # 10 bytes written, newest 8 kept
    assert (ring.start, ring.end, ring.retained) == (2, 10, 8)
    assert ring.read(2) == b"23456789"
    assert ring.read(10) == b""


def test_single_append_larger_than_capacity_keeps_its_tail() -> None:
    ring = RingBuffer(4)
    ring.append(b"ab")
    assert ring.append(b"cdefghij") == 10
    assert (ring.start, ring.end) == (6, 10)
    assert ring.read(6) == b"ghij"


def test_append_of_exactly_capacity() -> None:
    ring = RingBuffer(4)
    ring.append(b"xy")
    ring.append(b"abcd")
    assert (ring.start, ring.end) == (2, 6)
    assert ring.read(2) == b"abcd"


def test_read_at_exact_boundaries() -> None:
    ring = RingBuffer(5)
    ring.append(b"abcdefgh")  # start 3, end 8
    assert ring.read(3) == b"defgh"  # exactly start
    assert ring.read(8) == b""  # exactly end
    with pytest.raises(OffsetGone):
        ring.read(2)  # one below start
    with pytest.raises(OffsetAhead):
        ring.read(9)  # one past end


def test_errors_carry_the_available_range() -> None:
    ring = RingBuffer(5)
    ring.append(b"abcdefgh")
    with pytest.raises(OffsetGone, match=r"offset 0 .*offsets 3 to 8 are available") as gone:
        ring.read(0)
    assert (gone.value.offset, gone.value.start, gone.value.end) == (0, 3, 8)
    with pytest.raises(OffsetAhead, match=r"offset 20 is past the end") as ahead:
        ring.read(20)
    assert isinstance(ahead.value, StreamOffsetError)
    assert isinstance(ahead.value, ValueError)
    with pytest.raises(StreamOffsetError, match="must not be negative") as negative:
        ring.check(-1)
    assert type(negative.value) is StreamOffsetError


def test_max_bytes() -> None:
    ring = RingBuffer(16)
    ring.append(b"abcdefgh")
    assert ring.read(2, 3) == b"cde"
    assert ring.read(2, 0) == b""
    assert ring.read(6, 100) == b"gh"
    with pytest.raises(ValueError, match="max_bytes"):
        ring.read(0, -1)


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RingBuffer(0)


def test_storage_stays_bounded_over_many_appends() -> None:
    ring = RingBuffer(100)
    expected = bytearray()
    for i in range(2000):
        chunk = bytes([i % 251]) * (i % 37)
        ring.append(chunk)
        expected += chunk
        # Lazy compaction keeps the backing store under twice the capacity plus one append.
        assert len(ring._buf) <= 2 * 100 + 37
    assert ring.end == len(expected)
    assert ring.read(ring.start) == bytes(expected[-100:])


@settings(max_examples=200, deadline=None)
@given(
    capacity=st.integers(min_value=1, max_value=40),
    chunks=st.lists(st.binary(max_size=50), max_size=30),
)
def test_read_matches_original_for_every_retained_offset(
    capacity: int, chunks: list[bytes]
) -> None:
    ring = RingBuffer(capacity)
    original = b""
    for chunk in chunks:
        assert ring.append(chunk) == len(original) + len(chunk)
        original += chunk
        assert ring.end == len(original)
        assert ring.start == max(0, len(original) - capacity)
        for offset in range(ring.start, ring.end + 1):
            assert ring.read(offset) == original[offset:]
            assert ring.read(offset, 7) == original[offset : offset + 7]
        if ring.start > 0:
            with pytest.raises(OffsetGone):
                ring.read(ring.start - 1)
        with pytest.raises(OffsetAhead):
            ring.read(ring.end + 1)
