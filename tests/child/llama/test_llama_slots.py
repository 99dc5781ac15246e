"""Slot choice: a conversation's own slot, else the longest shared prefix, else the oldest."""

from __future__ import annotations

from corral.child.llama.slots import SlotTable, common_prefix


def test_common_prefix() -> None:
    assert common_prefix([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix([], [1]) == 0
    assert common_prefix([1, 2], [1, 2, 3]) == 2


def test_a_conversation_goes_back_to_its_slot_even_when_another_shares_more() -> None:
    table = SlotTable(3)
    a, _ = table.claim([1, 2], "a") or (None, 0)
    b, _ = table.claim([1, 2, 3, 4], "b") or (None, 0)
    assert a is not None
    assert b is not None
    table.release(a, [1, 2, 9])
    table.release(b, [1, 2, 3, 4, 5])
    slot, shared = table.claim([1, 2, 3, 4, 5, 6], "a") or (None, 0)
    assert slot is a
    assert shared == 2


def test_without_a_key_the_longest_prefix_wins_then_the_least_recently_used() -> None:
    table = SlotTable(3)
    claimed = [table.claim([i], None) for i in range(3)]
    slots = [c[0] for c in claimed if c is not None]
    table.release(slots[0], [7, 8, 9])
    table.release(slots[1], [5])
    table.release(slots[2], [6])
    slot, shared = table.claim([7, 8, 1], None) or (None, 0)
    assert (slot, shared) == (slots[0], 2)
    slot, shared = table.claim([4], None) or (None, 0)
    assert (slot, shared) == (slots[1], 0)  # released before slots[2]


def test_no_free_slot_is_none_and_busy_counts() -> None:
    table = SlotTable(1)
    assert table.claim([1], None) is not None
    assert table.busy == 1
    assert table.claim([1], None) is None
