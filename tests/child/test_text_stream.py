"""Stop strings and UTF-8 across token boundaries."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from corral.child.text_stream import StopTextStream


def run(pieces: list[bytes], stops: list[str]) -> tuple[str, bool]:
    stream = StopTextStream(stops)
    out = "".join(stream.push(p) for p in pieces)
    return out + stream.flush(), stream.stopped


def test_stop_string_split_across_tokens_is_cut_and_never_leaks() -> None:
    stream = StopTextStream(["<|end|>"])
    assert stream.push(b"hello <|") == "hello "
    assert stream.push(b"en") == ""
    assert stream.push(b"d|> more") == ""
    assert stream.stopped
    assert stream.flush() == ""


def test_false_alarm_is_released() -> None:
    assert run([b"a <", b"b>"], ["<|end|>"]) == ("a <b>", False)


def test_multibyte_character_split_across_tokens() -> None:
    euro = "€".encode()
    assert run([b"price ", euro[:1], euro[1:], b"5"], []) == ("price €5", False)


@given(
    st.text(max_size=60), st.lists(st.text(min_size=1, max_size=4), max_size=3), st.integers(1, 5)
)
def test_any_chunking_equals_cutting_the_whole_text(text: str, stops: list[str], size: int) -> None:
    data = text.encode()
    pieces = [data[i : i + size] for i in range(0, len(data), size)]
    got, stopped = run(pieces, stops)
    cuts = [i for s in stops if (i := text.find(s)) >= 0]
    expected = text[: min(cuts)] if cuts else text
    if cuts:
        # The stream stops at the first stop string it can see complete; it never emits one.
        assert stopped
        assert not any(s in got for s in stops)
        # Which stop wins depends on which completes first in the chunking, but the output
        # is always a prefix of the text that reaches at least to the earliest stop.
        assert text.startswith(got)
        assert len(got) >= len(expected)
    else:
        assert got == expected
