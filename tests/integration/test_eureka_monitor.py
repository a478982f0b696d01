"""The EurekAgent web monitor over HTTP: a real monitor process on a run directory that the
test writes as the loop would (state.json rewritten atomically, events appended), its
server-sent events read with httpx streaming, the controls' files, and the token guard."""

from __future__ import annotations

import json
import threading
import time
from itertools import accumulate
from pathlib import Path

import httpx
import pytest

from posttrain.atomic import write_text
from posttrain.eureka.monitor import best_curve, start_monitor


def write_state(run: Path, **fields) -> dict:
    state = {
        "status": "running",
        "round": 1,
        "rounds": 4,
        "k": 2,
        "best": None,
        "budget": {"spent": 0.0, "limit": 5.0, "remaining": 5.0},
        "approaches": [],
        "updated": time.time(),
        **fields,
    }
    write_text(run / "state.json", json.dumps(state))
    return state


def append_event(run: Path, type: str, message: str, score=None, round=1, approach="a1") -> None:
    event = {"time": time.time(), "type": type, "round": round, "approach": approach}
    event.update(message=message, score=score)
    with open(run / "events.jsonl", "a") as handle:
        handle.write(json.dumps(event) + "\n")


class SSEReader:
    """Reads one server-sent-events stream on a thread into a list of parsed messages."""

    def __init__(self, url: str, headers: dict) -> None:
        self.messages: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(url, headers), daemon=True)
        self._thread.start()

    def _read(self, url: str, headers: dict) -> None:
        timeout = httpx.Timeout(5.0, read=None)
        with httpx.stream("GET", url, headers=headers, timeout=timeout) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            message: dict = {}
            for line in response.iter_lines():
                if self._stop.is_set():
                    return
                if not line:
                    if "data" in message:
                        message["data"] = json.loads(message["data"])
                        self.messages.append(message)
                    message = {}
                elif not line.startswith(":"):
                    key, _, value = line.partition(":")
                    message[key] = value[1:] if value.startswith(" ") else value

    def wait_for(self, predicate, timeout: float = 5.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [m for m in list(self.messages) if predicate(m)]
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError(f"no such message within {timeout} s: {self.messages[-5:]}")

    def events(self) -> list[dict]:
        return [m for m in list(self.messages) if "event" not in m]

    def close(self) -> None:
        self._stop.set()


@pytest.fixture(scope="module")
def monitor(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    write_state(run)
    with start_monitor(run) as handle:
        yield handle


@pytest.fixture
def run(monitor) -> Path:
    # Each test starts from an empty run directory (the one the monitor process watches).
    for path in sorted(monitor.run_dir.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    write_state(monitor.run_dir)
    return monitor.run_dir


def test_token_and_host_guard(monitor, run):
    url = monitor.url
    assert httpx.get(f"{url}/healthz").status_code == 200  # open: a liveness probe
    for path in ("/", "/api/state", "/api/events", "/api/stream"):
        assert httpx.get(url + path).status_code == 401, path
        bad = {"authorization": "Bearer wrong"}
        assert httpx.get(url + path, headers=bad).status_code == 401, path
        assert httpx.get(url + path, params={"token": "wrong"}).status_code == 401, path
    for path in ("/api/pause", "/api/stop", "/api/note"):
        assert httpx.post(url + path, json={"text": "x"}).status_code == 401
    assert not (run / "control").exists()  # nothing written by a refused request
    assert httpx.get(f"{url}/api/state", headers=monitor.headers).status_code == 200
    page = httpx.get(monitor.page_url)
    assert page.status_code == 200 and "EurekAgent monitor" in page.text
    assert "nonce-" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"
    # A page re-pointing its own name at 127.0.0.1 (DNS rebinding) is refused by Host.
    rebound = {**monitor.headers, "host": "evil.example"}
    assert httpx.get(f"{url}/api/state", headers=rebound).status_code == 400


def test_state_events_and_curve(monitor, run):
    scores = [0.5, None, 0.9, 0.7, 1.2]
    for i, score in enumerate(scores):
        append_event(run, "graded", f"submission {i}", score=score)
    best = {"approach": "a1", "score": 1.2, "round": 1}
    write_state(run, best=best)
    with open(run / "events.jsonl", "a") as handle:
        handle.write('{"type": "command", "message": "half a li')  # still being written
    got = httpx.get(f"{monitor.url}/api/state", headers=monitor.headers).json()
    assert got["state"]["best"] == best and got["events"] == len(scores)
    expected = list(accumulate([s for s in scores if s is not None], max))
    assert [p["best"] for p in got["curve"]] == expected
    assert [p["index"] for p in got["curve"]] == [0, 2, 3, 4]
    after = httpx.get(f"{monitor.url}/api/events?after=2", headers=monitor.headers).json()
    assert [e["index"] for e in after["events"]] == [3, 4]
    assert after["events"][0]["message"] == "submission 3"
    with open(run / "events.jsonl", "a") as handle:
        handle.write('ne"}\nnot json\n')  # the torn line completes; a bad line keeps its index
    events = httpx.get(f"{monitor.url}/api/events", headers=monitor.headers).json()["events"]
    assert [e["type"] for e in events[-2:]] == ["command", "unreadable"]
    assert events[-1]["index"] == 6 and "line 7" in events[-1]["message"]


def test_best_curve_direction():
    events = [
        {"type": "graded", "score": s, "index": i} for i, s in enumerate([3.0, 1.0, 2.0, 0.5])
    ]
    events.append({"type": "graded", "score": 0.1, "valid": False, "index": 4})
    events.append({"type": "command", "score": 0.0, "index": 5})
    # Lower is better: the loop's best (0.5) sits below the highest score.
    low = best_curve(events, {"best": {"score": 0.5}})
    assert [p["best"] for p in low] == list(accumulate([3.0, 1.0, 2.0, 0.5], min))
    high = best_curve(events, {"best": {"score": 3.0}})
    assert [p["best"] for p in high] == list(accumulate([3.0, 1.0, 2.0, 0.5], max))
    stated = best_curve(events, {"direction": "min", "best": None})
    assert [p["best"] for p in stated] == [p["best"] for p in low]


def test_stream_live_updates_and_resume(monitor, run):
    append_event(run, "round_start", "round 1")
    reader = SSEReader(f"{monitor.url}/api/stream", monitor.headers)
    try:
        reader.wait_for(lambda m: m.get("id") == "0")
        reader.wait_for(lambda m: m.get("event") == "state" and m["data"]["events"] == 1)

        def writer():  # the loop, elsewhere: events appended, the state rewritten
            for i in range(1, 6):
                append_event(run, "graded", f"graded {i}", score=float(i))
                write_state(run, round=i, best={"approach": "a1", "score": float(i), "round": i})
                time.sleep(0.05)

        thread = threading.Thread(target=writer)
        thread.start()
        thread.join()
        reader.wait_for(lambda m: m.get("id") == "5")
        final = reader.wait_for(
            lambda m: m.get("event") == "state" and m["data"]["state"]["round"] == 5
        )
        assert [p["best"] for p in final[-1]["data"]["curve"]] == [1.0, 2.0, 3.0, 4.0, 5.0]
        events = reader.events()
        assert [int(m["id"]) for m in events] == list(range(6))  # each once, in order
        assert [m["data"]["index"] for m in events] == list(range(6))
        assert events[3]["data"]["message"] == "graded 3"
    finally:
        reader.close()
    # A reconnecting EventSource sends Last-Event-ID: only later events come again.
    resumed = SSEReader(f"{monitor.url}/api/stream", {**monitor.headers, "last-event-id": "3"})
    try:
        resumed.wait_for(lambda m: m.get("id") == "5")
        resumed.wait_for(lambda m: m.get("event") == "state")
        assert [int(m["id"]) for m in resumed.events()] == [4, 5]
    finally:
        resumed.close()


def test_controls_write_only_control_files(monitor, run):
    append_event(run, "round_start", "round 1")
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    post = lambda path, **kw: httpx.post(monitor.url + path, headers=monitor.headers, **kw)  # noqa: E731
    control = run / "control"
    assert post("/api/pause").json()["pause"] is True
    assert (control / "pause").is_file()
    assert post("/api/resume").json()["pause"] is False
    assert not (control / "pause").exists()
    assert post("/api/resume").status_code == 200  # resuming twice is fine
    assert post("/api/stop").json()["stop"] is True and (control / "stop").is_file()
    for text in ("try basin hopping", "ünïcode ok\nsecond line"):
        assert post("/api/note", json={"text": text}).status_code == 200
    for bad in ({"text": ""}, {"text": "   "}, {}, {"text": "x" * 5000}):
        assert post("/api/note", json=bad).status_code == 422, bad
    notes = [json.loads(line) for line in (control / "notes.jsonl").read_text().splitlines()]
    assert [n["text"] for n in notes] == ["try basin hopping", "ünïcode ok\nsecond line"]
    assert all(n["time"].endswith("+00:00") for n in notes)
    state = httpx.get(f"{monitor.url}/api/state", headers=monitor.headers).json()
    assert state["control"]["stop"] is True and state["control"]["notes_total"] == 2
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and control not in p.parents}
    assert after == before


def test_missing_run_dir_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="not a run directory"):
        start_monitor(tmp_path / "nope")
