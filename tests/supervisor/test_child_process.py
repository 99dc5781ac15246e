"""The supervisor's side of the pipe against scripted children that misbehave."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from corral.protocol import FROM_CHILD, PROTOCOL_VERSION, decode
from corral.protocol.messages import Delta, Done, Error, Generate, Hello
from corral.supervisor.child_process import ChildCommand, ChildFailed, ChildProcess

HELLO = f'{{"type":"hello","protocol_version":{PROTOCOL_VERSION},"kind":"fake","pid":1}}'


def scripted(body: str) -> ChildCommand:
    script = "import sys, json\ndef out(s):\n    sys.stdout.write(s + '\\n'); sys.stdout.flush()\n"
    return ChildCommand([sys.executable, "-c", script + textwrap.dedent(body)], label="scripted")


async def test_protocol_version_mismatch_is_a_clear_error() -> None:
    child = ChildProcess(
        scripted("""
        out('{"type":"hello","protocol_version":999,"kind":"fake","pid":1}')
        sys.stdin.read()
        """)
    )
    with pytest.raises(ChildFailed, match="speaks protocol 999"):
        await child.start(hello_timeout=10, load_timeout=10)
    assert not child.alive


async def test_child_that_exits_during_load_reports_code_and_stderr() -> None:
    child = ChildProcess(
        scripted(f"""
        out('{HELLO}')
        sys.stderr.write('CUDA error: out of memory\\n')
        sys.exit(7)
        """)
    )
    with pytest.raises(ChildFailed) as caught:
        await child.start(hello_timeout=10, load_timeout=10)
    assert "exited with code 7" in caught.value.message
    assert "out of memory" in caught.value.message


async def test_garbage_frames_fail_only_their_request_and_reading_goes_on() -> None:
    child = ChildProcess(
        scripted(f"""
        out('{HELLO}')
        out('this is not json')
        out('{{"type":"ready","model":"m","n_ctx":8}}')
        for raw in sys.stdin:
            req = json.loads(raw)
            rid = req.get("request_id")
            if req["type"] != "generate":
                continue
            if rid == "bad":
                out('{{"type":"delta","request_id":"bad","text":1}}')
            else:
                out(json.dumps({{"type":"started","request_id":rid,"prompt_tokens":1}}))
                out(json.dumps({{"type":"delta","request_id":rid,"text":"ok","tokens":1}}))
                out(json.dumps({{"type":"done","request_id":rid,"finish_reason":"stop",
                                "usage":{{"prompt_tokens":1,"completion_tokens":1}}}}))
        """)
    )
    ready = await child.start(hello_timeout=10, load_timeout=10)
    assert ready.model == "m"
    bad = await child.open_request(Generate(request_id="bad", prompt="x"))
    failure = await bad.next_event()
    assert isinstance(failure, ChildFailed)
    assert "protocol error" in failure.message
    good = await child.open_request(Generate(request_id="good", prompt="x"))
    events = [await good.next_event() for _ in range(3)]
    assert [type(e) for e in events[1:]] == [Delta, Done]
    assert child.open_requests == 0
    await child.stop(grace=5)
    assert not child.alive


async def test_crash_fails_every_open_request() -> None:
    child = ChildProcess(
        scripted(f"""
        out('{HELLO}')
        out('{{"type":"ready","model":"m","n_ctx":8}}')
        sys.stdin.readline(); sys.stdin.readline()
        import os; os._exit(9)
        """)
    )
    await child.start(hello_timeout=10, load_timeout=10)
    first = await child.open_request(Generate(request_id="a", prompt="x"))
    second = await child.open_request(Generate(request_id="b", prompt="x"))
    for handle in (first, second):
        event = await handle.next_event()
        assert isinstance(event, ChildFailed)
        assert "exited with code 9" in event.message
    with pytest.raises(ChildFailed):
        await child.open_request(Generate(request_id="c", prompt="x"))


def test_child_stdout_carries_frames_only_even_when_native_code_prints() -> None:
    script = textwrap.dedent("""
        import os
        from corral.child.stdio import Channel
        from corral.protocol.messages import Hello
        channel = Channel()
        os.write(1, b"native library noise on fd 1\\n")
        print("python print noise")
        channel.send(Hello(protocol_version=1, kind="fake", pid=os.getpid()))
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, timeout=30, check=True
    )
    lines = done.stdout.splitlines()
    assert len(lines) == 1
    assert isinstance(decode(FROM_CHILD, lines[0]), Hello)
    assert b"native library noise" in done.stderr
    assert b"python print noise" in done.stderr


def test_fake_child_answers_cancel_during_slow_load_and_exits_on_stdin_close() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "corral.child", "fake", "--load-delay", "30"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    assert proc.stdin is not None
    hello = decode(FROM_CHILD, proc.stdout.readline())
    assert isinstance(hello, Hello)
    proc.stdin.write(b'{"type":"stats_request"}\n{"type":"frobnicate"}\n')
    proc.stdin.flush()
    # Control messages are answered while the load is still running.
    frames = []
    while len(frames) < 2:
        frame = decode(FROM_CHILD, proc.stdout.readline())
        if frame.type != "load_progress":
            frames.append(frame)
    assert frames[0].type == "stats"
    assert isinstance(frames[1], Error)
    assert frames[1].code == "protocol_error"
    proc.stdin.close()  # the supervisor is gone: the child must not linger
    assert proc.wait(timeout=10) == 0
    proc.stdout.close()
