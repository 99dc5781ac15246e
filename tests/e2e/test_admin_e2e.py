"""The admin API and hub downloads end to end: a real supervisor, real download children, a fake hub.

Mid-download states are reached by stalling the fake hub at a byte offset; every wait is on a
condition (an event seen, a state reached) with a deadline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import SupervisorFactory, client_for, have_llama
from tests.support.fake_hub import FakeHub
from tests.support.supervisor_proc import Supervisor, pid_alive, wait_until
from tests.support.tiny_gguf import write_tiny_gguf

pytestmark = pytest.mark.e2e

MiB = 1 << 20
BIG = os.urandom(3 * MiB)


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    fake = FakeHub().start()
    yield fake
    fake.stop()


def hub_env(hub: FakeHub) -> dict[str, str]:
    return {"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_ETAG_TIMEOUT": "5"}


class Events:
    """Collects ``/admin/events`` on a thread; ``wait`` blocks until a matching event came."""

    def __init__(self, sup: Supervisor) -> None:
        self.items: list[tuple[str, Any]] = []
        self._client = httpx.Client(base_url=sup.base_url, timeout=httpx.Timeout(10, read=None))
        self._connected = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        assert self._connected.wait(10), "no event stream"

    def _read(self) -> None:
        name = "message"
        try:
            with self._client.stream("GET", "/admin/events") as response:
                self._connected.set()
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        name = line.removeprefix("event: ")
                    elif line.startswith("data: "):
                        self.items.append((name, json.loads(line.removeprefix("data: "))))
        except Exception:  # closed under us at the end of a test: the stream is over
            pass

    def mark(self) -> int:
        """A point in the stream: ``wait(since=mark)`` looks only at later events."""
        return len(self.items)

    def wait(
        self, name: str, predicate: Callable[[Any], bool], timeout: float = 60, since: int = 0
    ) -> Any:
        found: list[Any] = []

        def seen() -> bool:
            found[:] = [d for n, d in self.items[since:] if n == name and predicate(d)]
            return bool(found)

        wait_until(seen, timeout, f"an {name} event")
        return found[0]

    def close(self) -> None:
        self._client.close()


def _job(http: httpx.Client, job_id: str) -> dict[str, Any]:
    jobs = {j["job"]: j for j in http.get("/admin/downloads").json()["data"]}
    return jobs[job_id]


def _until_job(
    http: httpx.Client, job_id: str, predicate: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    wait_until(lambda: predicate(_job(http, job_id)), 60, what)
    return _job(http, job_id)


def _models(http: httpx.Client) -> dict[str, Any]:
    return {m["id"]: m for m in http.get("/v1/models").json()["data"]}


def _admin_models(http: httpx.Client) -> dict[str, Any]:
    return {m["id"]: m for m in http.get("/admin/models").json()["data"]}


def _pull(http: httpx.Client, **body: Any) -> dict[str, Any]:
    response = http.post("/admin/models/pull", json=body)
    assert response.status_code == 202, response.text
    return response.json()


@pytest.mark.llama
@pytest.mark.skipif(not have_llama(), reason="llama-cpp-python is not installed")
def test_pull_load_chat_unload_delete(
    supervisor: SupervisorFactory, hub: FakeHub, tmp_path: Path
) -> None:
    gguf = tmp_path / "tiny.gguf"
    write_tiny_gguf(gguf, seed=3, n_ctx=512)
    hub.add("corral-test/tiny-GGUF", {"tiny.gguf": gguf.read_bytes(), "README.md": b"# tiny\n"})
    data = tmp_path / "data"
    sup = supervisor(env=hub_env(hub), data_dir=data, models_dir=tmp_path / "models")
    model = "hf.co/corral-test/tiny-GGUF:tiny"
    events = Events(sup)
    with sup.http() as http:
        job = _pull(http, repo="corral-test/tiny-GGUF", files=["tiny.gguf"])
        assert job["state"] in ("queued", "running")
        done = events.wait(
            "download", lambda d: d["job"] == job["job"] and d["state"] == "finished"
        )
        assert done["bytes_done"] == done["bytes_total"] == gguf.stat().st_size
        assert done["files"] == {"tiny.gguf": [gguf.stat().st_size] * 2}
        assert _models(http)[model]["state"] == "unloaded"

        assert http.post("/admin/models/load", json={"model": model}).status_code == 202
        events.wait("model", lambda d: d["id"] == model and d["state"] == "loaded")
        item = _admin_models(http)[model]
        assert item["memory_bytes"] > 0
        assert item["pid"] > 0
        assert item["source"] == "hf:corral-test/tiny-GGUF/tiny.gguf"
        assert item["size_bytes"] == gguf.stat().st_size
        assert item["estimated_bytes"] > item["size_bytes"]  # plus the KV cache and logits
        assert item["keep_alive_deadline"] > time.time()

        refused = http.post("/admin/models/delete", json={"model": model})
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "model_in_use"

        reply = client_for(sup).chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=4
        )
        assert reply.choices[0].message.content is not None

        mark = events.mark()
        assert http.post("/admin/models/unload", json={"model": model}).status_code == 200
        events.wait("model", lambda d: d["id"] == model and d["state"] == "unloaded", since=mark)

        deleted = http.post("/admin/models/delete", json={"model": model})
        assert deleted.status_code == 200, deleted.text
        assert deleted.json()["freed_bytes"] >= gguf.stat().st_size
        assert model not in _models(http)
        assert not (data / "hub" / "models--corral-test--tiny-GGUF").exists()
        events.wait("deleted", lambda d: d["id"] == model)
    events.close()


def test_downloading_shows_in_v1_models_and_cancel_resumes(
    supervisor: SupervisorFactory, hub: FakeHub, tmp_path: Path
) -> None:
    hub.add("org/big-GGUF", {"big.gguf": BIG})
    hub.stall("big.gguf", MiB)
    data = tmp_path / "data"
    sup = supervisor(env=hub_env(hub), data_dir=data, models_dir=tmp_path / "models")
    model = "hf.co/org/big-GGUF:big"
    with sup.http() as http:
        job = _pull(http, repo="org/big-GGUF", include=["*.gguf"])
        _until_job(http, job["job"], lambda j: j["bytes_done"] == MiB, "a third of the file")
        listed = _models(http)[model]
        assert listed["state"] == "downloading"
        assert listed["progress"] == pytest.approx(1 / 3)
        assert http.get(f"/v1/models/{model}").json() == listed
        assert _admin_models(http)[model]["job"] == job["job"]

        cancelled = http.post("/admin/models/cancel", json={"job": job["job"]})
        assert cancelled.status_code == 200
        assert cancelled.json()["state"] == "cancelled"
        assert model not in _models(http)
        assert http.get(f"/v1/models/{model}").status_code == 404
        partial = data / "hub" / "models--org--big-GGUF" / "blobs"
        assert [p.stat().st_size for p in partial.glob("*.incomplete")] == [MiB]

        again = _pull(http, repo="org/big-GGUF", include=["*.gguf"])
        assert again["job"] == job["job"]
        _until_job(
            http, job["job"], lambda j: j["state"] == "finished", "the resumed job to finish"
        )
        assert hub.ranges_for("big.gguf") == [None, f"bytes={MiB}-"]
        assert _models(http)[model]["state"] == "unloaded"


def test_supervisor_killed_mid_download_resumes_after_restart(
    supervisor: SupervisorFactory, hub: FakeHub, tmp_path: Path
) -> None:
    hub.add("org/big-GGUF", {"big.gguf": BIG})
    hub.stall("big.gguf", MiB)
    data = tmp_path / "data"
    sup = supervisor(env=hub_env(hub), data_dir=data, models_dir=tmp_path / "models")
    with sup.http() as http:
        job = _pull(http, repo="org/big-GGUF", files=["big.gguf"])
        _until_job(http, job["job"], lambda j: j["bytes_done"] == MiB, "a third of the file")
    assert sup.proc is not None
    children = [
        int(p)
        for p in Path(f"/proc/{sup.proc.pid}/task/{sup.proc.pid}/children").read_text().split()
    ]
    assert children
    sup.kill()
    for pid in children:
        wait_until(
            lambda pid=pid: not pid_alive(pid), 10, "the download child to die with the supervisor"
        )

    again = supervisor(env=hub_env(hub), data_dir=data, models_dir=tmp_path / "models")
    with again.http() as http:
        assert _job(http, job["job"])["state"] == "interrupted"
        resumed = http.post("/admin/downloads/resume", json={"job": job["job"]})
        assert resumed.status_code == 202, resumed.text
        _until_job(
            http, job["job"], lambda j: j["state"] == "finished", "the resumed job to finish"
        )
        assert hub.ranges_for("big.gguf") == [None, f"bytes={MiB}-"]
        assert "hf.co/org/big-GGUF:big" in _models(http)


def test_refusals_are_openai_errors(
    supervisor: SupervisorFactory, hub: FakeHub, tmp_path: Path
) -> None:
    hub.add("org/repo", {"big.bin": BIG})
    sup = supervisor(
        "[hub]\ndisk_reserve_bytes = 1_000_000_000_000_000\n",
        env=hub_env(hub),
        data_dir=tmp_path / "data",
        models_dir=tmp_path / "models",
    )
    cases: list[tuple[dict[str, Any], int, str, str]] = [
        ({"repo": "org/repo"}, 507, "insufficient_storage", "kept in reserve"),
        ({"repo": "org/nope"}, 404, "repo_not_found", "repository org/nope was not found"),
        ({"repo": "org/repo", "files": ["nope.gguf"]}, 404, "file_not_found", "nope.gguf"),
        ({"repo": "org/repo", "revision": "v9"}, 404, "revision_not_found", "revision v9"),
        ({"repo": "../../etc/passwd"}, 400, "invalid_name", "invalid repo id"),
        (
            {"repo": "org/repo", "files": ["../../../x.gguf"]},
            400,
            "invalid_name",
            "invalid file name",
        ),
        ({"repo": "org/repo", "files": ["/etc/passwd"]}, 400, "invalid_name", "invalid file name"),
        ({"repo": "org/repo", "revision": "main/../../x"}, 400, "invalid_name", "invalid revision"),
        ({"repo": "org/repo", "include": ["../*"]}, 400, "invalid_name", "invalid include"),
        ({"repo": "org/repo", "extra": 1}, 400, "", "extra"),
    ]
    with sup.http() as http:
        for body, status, code, message in cases:
            response = http.post("/admin/models/pull", json=body)
            assert response.status_code == status, (body, response.text)
            error = response.json()["error"]
            assert message in error["message"], (body, error)
            if code:
                assert error["code"] == code
        assert http.post("/admin/models/cancel", json={"job": "dl-nope"}).status_code == 404
        assert http.post("/admin/models/load", json={"model": "nope"}).status_code == 404
        assert http.post("/admin/models/delete", json={"model": "../../x"}).status_code == 404
        assert http.get("/admin/downloads").json()["data"] == []
    assert [s for s in hub.served if s.method == "GET"] == []


def test_checksum_mismatch_fails_and_leaves_no_model(
    supervisor: SupervisorFactory, hub: FakeHub, tmp_path: Path
) -> None:
    hub.add("org/bad-GGUF", {"bad.gguf": BIG})
    hub.corrupt.add("bad.gguf")
    data = tmp_path / "data"
    sup = supervisor(env=hub_env(hub), data_dir=data, models_dir=tmp_path / "models")
    with sup.http() as http:
        job = _pull(http, repo="org/bad-GGUF", files=["bad.gguf"])
        failed = _until_job(http, job["job"], lambda j: j["state"] == "failed", "the job to fail")
        assert failed["error_code"] == "checksum"
        assert "verification" in failed["error"]
        assert "hf.co/org/bad-GGUF:bad" not in _models(http)
    blobs = data / "hub" / "models--org--bad-GGUF" / "blobs"
    assert list(blobs.iterdir()) == []


def test_hub_token_reaches_the_hub_and_nothing_else(
    supervisor: SupervisorFactory, hub: FakeHub, tmp_path: Path
) -> None:
    secret = "hf_e2e_secret_value_1234"
    hub.token = secret
    hub.add("org/gated-GGUF", {"g.gguf": b"GGUF" + os.urandom(1000)}, gated=True)
    sup = supervisor(
        f'[hub]\ntoken = "{secret}"\n',
        env=hub_env(hub),
        data_dir=tmp_path / "data",
        models_dir=tmp_path / "models",
    )
    with sup.http() as http:
        job = _pull(http, repo="org/gated-GGUF", files=["g.gguf"])
        _until_job(http, job["job"], lambda j: j["state"] == "finished", "the gated pull")
        bodies = [
            http.get(path).text
            for path in ("/admin/downloads", "/admin/models", "/v1/models", "/admin/server")
        ]
    assert f"Bearer {secret}" in hub.auth_seen
    assert all(secret not in body for body in bodies)
    assert secret not in sup.log_text()


def test_admin_models_events_memory_and_delete(
    supervisor: SupervisorFactory, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "junk.gguf").write_bytes(b"GGUF junk")
    config = '[models.fake-file]\nbackend = "fake"\npath = "junk.gguf"\n'
    sup = supervisor(config, data_dir=tmp_path / "data", models_dir=models)
    events = Events(sup)
    with sup.http() as http:
        assert (
            http.post("/admin/models/unload", json={"model": "fake"}).status_code == 200
        )  # never ran: nothing to do
        assert http.post("/admin/models/load", json={"model": "fake-file"}).status_code == 202
        events.wait("model", lambda d: d["id"] == "fake-file" and d["state"] == "loaded")
        states = [d["state"] for n, d in events.items if n == "model" and d["id"] == "fake-file"]
        assert "loading" in states
        item = _admin_models(http)["fake-file"]
        assert item["memory_bytes"] > 0
        assert item["keep_alive_deadline"] > time.time()
        assert item["backend"] == "fake"
        assert item["pinned"] is False

        refused = http.post("/admin/models/delete", json={"model": "fake-file"})
        assert refused.status_code == 409
        assert (models / "junk.gguf").exists()
        mark = events.mark()
        forced = http.post("/admin/models/delete", json={"model": "fake-file", "force": True})
        assert forced.status_code == 200, forced.text
        assert forced.json() == {"deleted": "fake-file", "freed_bytes": 9, "preset_remains": True}
        assert not (models / "junk.gguf").exists()
        events.wait(
            "model",
            lambda d: d["id"] == "fake-file" and d["state"] in ("unloaded", "unloading"),
            since=mark,
        )
        assert (
            http.post("/admin/models/delete", json={"model": "fake"}).json()["error"]["code"]
            == "no_file"
        )
    events.close()


def test_cli_pull_ls_ps_rm(supervisor: SupervisorFactory, hub: FakeHub, tmp_path: Path) -> None:
    hub.add("org/cli-GGUF", {"c.gguf": b"GGUF" + os.urandom(300_000)})
    sup = supervisor(env=hub_env(hub), data_dir=tmp_path / "data", models_dir=tmp_path / "models")

    def corral(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "CORRAL_URL": sup.base_url}
        return subprocess.run(
            [sys.executable, "-m", "corral.supervisor", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )

    pulled = corral("pull", "org/cli-GGUF", "c.gguf")
    assert pulled.returncode == 0, pulled.stderr
    assert "pulled org/cli-GGUF" in pulled.stdout
    listed = corral("ls")
    assert listed.returncode == 0
    assert "hf.co/org/cli-GGUF:c" in listed.stdout
    assert "hf:org/cli-GGUF/c.gguf" in listed.stdout
    assert corral("ps").stdout.startswith("MODEL")
    missing = corral("pull", "org/none")
    assert missing.returncode == 1
    assert "repository org/none was not found" in missing.stderr
    removed = corral("rm", "hf.co/org/cli-GGUF:c")
    assert removed.returncode == 0, removed.stderr
    assert "hf.co/org/cli-GGUF:c" not in corral("ls").stdout
    unreachable = subprocess.run(
        [sys.executable, "-m", "corral.supervisor", "ls", "--url", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert unreachable.returncode == 1
    assert "cannot reach the daemon" in unreachable.stderr
