"""Stop strings and UTF-8 across token boundaries."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from corral.child.text_stream import StopTextStream


def run(pieces: list[bytes], stops: list[str]) -> tuple[str, bool]:
    stream = StopTextStream(stops)
    out = "".join(stream.push(p) for p in pieces) + stream.flush()
    # The string named is one of the request's, and the text stopped right before it.
    assert stream.stop_sequence == stream.matched
    assert stream.matched is None or stream.matched in stops
    return out, stream.stopped


def test_stop_string_split_across_tokens_is_cut_and_never_leaks() -> None:
    stream = StopTextStream(["<|end|>"])
    assert stream.push(b"hello <|") == "hello "
    assert stream.push(b"en") == ""
    assert stream.push(b"d|> more") == ""
    assert stream.stopped
    assert stream.flush() == ""


def test_the_stop_string_that_ended_the_text_is_named() -> None:
    stream = StopTextStream(["END", "<|x|>"])
    assert stream.push(b"one <|") == "one "
    assert stream.stop_sequence is None
    assert stream.push(b"x|> two END") == ""
    assert stream.matched == stream.stop_sequence == "<|x|>"


def test_the_earliest_match_wins_and_at_one_place_the_first_listed() -> None:
    stream = StopTextStream(["b c", "a", "b"])
    assert stream.push(b"x b c a") == "x "
    assert stream.stop_sequence == "b c"
    tied = StopTextStream(["ab", "abc"])
    assert tied.push(b"-abc") == "-"
    assert tied.stop_sequence == "ab"


def test_a_template_end_cuts_the_text_but_is_no_stop_sequence() -> None:
    stream = StopTextStream(["STOP"], ends=["<|im_end|>"])
    assert stream.push(b"answer<|im_end|> STOP") == "answer"
    assert stream.stopped
    assert stream.matched == "<|im_end|>"
    assert stream.stop_sequence is None
    # A string the request names itself is reported even when the template ends on it too.
    both = StopTextStream(["<|im_end|>"], ends=["<|im_end|>"])
    assert both.push(b"answer<|im_end|>") == "answer"
    assert both.stop_sequence == "<|im_end|>"


def test_text_that_ends_on_its_own_names_no_stop() -> None:
    stream = StopTextStream(["END"], ends=["<|im_end|>"])
    assert stream.push(b"almost EN") == "almost "
    assert stream.flush() == "EN"
    assert not stream.stopped
    assert stream.matched is stream.stop_sequence is None


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
        assert any(text[len(got) :].startswith(s) for s in stops)
    else:
        assert got == expected
