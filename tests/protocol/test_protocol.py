"""Protocol round trips and malformed frames."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from corral.protocol import (
    FROM_CHILD,
    MAX_FRAME_BYTES,
    TO_CHILD,
    LineSplitter,
    ProtocolError,
    decode,
    encode,
)
from corral.protocol.messages import (
    Cancel,
    ChatMessage,
    Delta,
    Done,
    DownloadFailed,
    DownloadFinished,
    DownloadProgress,
    DownloadStart,
    Error,
    Generate,
    Hello,
    LoadProgress,
    Ready,
    SamplingParams,
    Shutdown,
    Started,
    Stats,
    StatsRequest,
    Usage,
)
from corral.protocol.tools import Tool, ToolCall, ToolCallDelta, ToolName

TO_CHILD_EXAMPLES = [
    Generate(
        request_id="r1",
        messages=(
            ChatMessage(role="user", content="héllo\n"),
            ChatMessage(role="assistant", content=""),
        ),
        params=SamplingParams(
            max_tokens=5, temperature=0.0, stop=("\n",), logit_bias={15: -100.0}, seed=1
        ),
    ),
    Generate(request_id="r2", prompt="once upon"),
    Generate(
        request_id="r3",
        messages=(
            ChatMessage(role="user", content="weather?"),
            ChatMessage(
                role="assistant",
                content="",
                tool_calls=(ToolCall(id="call_1", name="get_weather", arguments='{"city":"P"}'),),
            ),
            ChatMessage(role="tool", content="sunny", tool_call_id="call_1"),
        ),
        tools=(Tool(name="get_weather", parameters={"type": "object"}),),
        tool_choice=ToolName(name="get_weather"),
        parallel_tool_calls=False,
    ),
    Cancel(request_id="r1"),
    StatsRequest(),
    Shutdown(),
    DownloadStart(job_id="j1", repo="org/model", files=("a.gguf",)),
]
FROM_CHILD_EXAMPLES = [
    Hello(protocol_version=1, kind="llama", pid=42, capabilities=("chat",)),
    LoadProgress(progress=0.5, message="half"),
    Ready(model="m", n_ctx=2048, chat_template=True),
    Started(request_id="r1", prompt_tokens=12),
    Delta(request_id="r1", text="tok tok", tokens=2),
    Delta(
        request_id="r1",
        text="",
        tokens=9,
        tool_calls=(ToolCallDelta(index=0, id="call_x", name="f", arguments="{}"),),
        finish_reason="tool_calls",
    ),
    Delta(request_id="r1", text="", tokens=1, index=2, finish_reason="stop", stop_sequence="\n\n"),
    Done(
        request_id="r1", finish_reason="length", usage=Usage(prompt_tokens=1, completion_tokens=2)
    ),
    Error(request_id=None, code="load_failed", message="boom"),
    Stats(active_requests=1, queued_requests=0, tokens_generated=10),
    DownloadProgress(
        job_id="j1", bytes_done=5, bytes_total=10, bytes_per_second=1.5, files={"a": (5, 10)}
    ),
    DownloadFinished(job_id="j1", paths=("/x/a.gguf",)),
    DownloadFailed(job_id="j1", reason="404"),
]


@pytest.mark.parametrize("message", TO_CHILD_EXAMPLES, ids=lambda m: m.type)
def test_to_child_round_trip(message: object) -> None:
    line = encode(message)  # type: ignore[arg-type]
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert decode(TO_CHILD, line[:-1]) == message


@pytest.mark.parametrize("message", FROM_CHILD_EXAMPLES, ids=lambda m: m.type)
def test_from_child_round_trip(message: object) -> None:
    assert decode(FROM_CHILD, encode(message)[:-1]) == message  # type: ignore[arg-type]


@given(
    text=st.text(),
    tokens=st.integers(min_value=0, max_value=10_000),
    rid=st.text(min_size=1, max_size=128),
)
def test_delta_round_trip_any_text(text: str, tokens: int, rid: str) -> None:
    delta = Delta(request_id=rid, text=text, tokens=tokens)
    line = encode(delta)
    assert line.count(b"\n") == 1  # newlines inside text are escaped by JSON
    assert decode(FROM_CHILD, line[:-1]) == delta


@pytest.mark.parametrize(
    ("line", "request_id", "fragment"),
    [
        (b"{not json", None, "invalid frame"),
        (
            b'{"type": "teleport", "request_id": "r9"}',
            "r9",
            "does not match any of the expected tags",
        ),
        (
            b'{"type": "delta", "request_id": "r3", "text": "x", "tokens": 1, "extra": 1}',
            "r3",
            "extra",
        ),
        (b'{"type": "delta", "request_id": "r4", "text": "x", "tokens": -1}', "r4", "tokens"),
        (b'{"type": "done", "request_id": "r5"}', "r5", "finish_reason"),
        (b"[]", None, "invalid frame"),
    ],
)
def test_malformed_frames_are_protocol_errors_naming_their_request(
    line: bytes, request_id: str | None, fragment: str
) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode(FROM_CHILD, line)
    assert caught.value.request_id == request_id
    assert fragment in str(caught.value)


def test_messages_are_frozen_and_forbid_extras() -> None:
    cancel = Cancel(request_id="x")
    with pytest.raises(Exception, match="frozen"):
        cancel.request_id = "y"  # type: ignore[misc]
    with pytest.raises(Exception, match="Extra inputs"):
        TypeAdapter(Cancel).validate_python({"type": "cancel", "request_id": "x", "more": 1})


def test_splitter_reassembles_lines_across_chunks() -> None:
    splitter = LineSplitter()
    data = b"".join(encode(m) for m in FROM_CHILD_EXAMPLES)
    got: list[bytes | ProtocolError] = []
    for i in range(0, len(data), 7):
        got.extend(splitter.feed(data[i : i + 7]))
    assert [
        decode(FROM_CHILD, line) for line in got if isinstance(line, bytes)
    ] == FROM_CHILD_EXAMPLES
    assert splitter.pending == 0


@given(
    st.lists(st.binary(max_size=50).filter(lambda b: b"\n" not in b and b.strip()), max_size=20),
    st.integers(1, 64),
)
def test_splitter_any_chunking(lines: list[bytes], size: int) -> None:
    data = b"".join(line + b"\n" for line in lines)
    splitter = LineSplitter()
    got = []
    for i in range(0, len(data), size):
        got.extend(splitter.feed(data[i : i + size]))
    assert got == lines


def test_oversized_frame_is_dropped_and_reading_goes_on() -> None:
    splitter = LineSplitter(max_bytes=100)
    good = encode(Cancel(request_id="ok"))
    huge = (
        json.dumps({"type": "delta", "request_id": "big", "text": "x" * 500, "tokens": 1}).encode()
        + b"\n"
    )
    out: list[bytes | ProtocolError] = []
    # Fed in small pieces, so the splitter sees the frame grow past the limit before its end.
    for i in range(0, len(huge), 30):
        out.extend(splitter.feed(huge[i : i + 30]))
    out.extend(splitter.feed(good))
    errors = [o for o in out if isinstance(o, ProtocolError)]
    lines = [o for o in out if isinstance(o, bytes)]
    assert len(errors) == 1
    assert "exceeds 100 bytes" in str(errors[0])
    assert lines == [good[:-1]]


def test_oversized_frame_in_one_chunk_names_its_request() -> None:
    splitter = LineSplitter(max_bytes=100)
    huge = json.dumps(
        {"type": "delta", "request_id": "big", "text": "x" * 500, "tokens": 1}
    ).encode()
    (error,) = list(splitter.feed(huge + b"\n"))
    assert isinstance(error, ProtocolError)
    assert error.request_id == "big"


def test_encode_refuses_frames_over_the_limit() -> None:
    with pytest.raises(ProtocolError, match="exceeds"):
        encode(Generate(request_id="r", prompt="x" * MAX_FRAME_BYTES))


def test_a_choices_last_delta_names_the_stop_string_that_ended_it() -> None:
    ended = Delta(request_id="r", text="", tokens=1, finish_reason="stop", stop_sequence="END")
    decoded = decode(FROM_CHILD, encode(ended)[:-1])
    assert isinstance(decoded, Delta)
    assert (decoded.finish_reason, decoded.stop_sequence) == ("stop", "END")
    with pytest.raises(Exception, match="frozen"):
        decoded.stop_sequence = "other"  # type: ignore[misc]
    # A delta that says nothing of it (any other delta, or an older child's) names none.
    plain = decode(FROM_CHILD, b'{"type":"delta","request_id":"r","text":"x","tokens":1}')
    assert isinstance(plain, Delta)
    assert plain.stop_sequence is None
