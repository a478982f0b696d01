"""The EurekAgent monitor in a real browser: Debian's chromium driven by Playwright
(`executable_path`, no browser download) against a monitor process whose run directory a
fake loop thread keeps writing. Checks live updates, the four controls' files, and a reload
mid-run."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from browser_gate import CHROMIUM, require_browser  # beside this file

from posttrain.atomic import write_text
from posttrain.eureka.monitor import start_monitor

require_browser("the monitor's browser test")
from playwright import sync_api  # noqa: E402


def write_state(run: Path, **fields) -> None:
    state = {"status": "running", "round": 1, "rounds": 9, "k": 2, "best": None}
    state["budget"] = {"spent": 0.25, "limit": 5.0, "remaining": 4.75}
    write_text(run / "state.json", json.dumps({**state, "approaches": [], **fields}))


def append_event(run: Path, type: str, message: str, score=None, approach="a1") -> None:
    event = {"time": time.time(), "type": type, "round": 1, "approach": approach}
    with open(run / "events.jsonl", "a") as handle:
        handle.write(json.dumps({**event, "message": message, "score": score}) + "\n")


class FakeLoop(threading.Thread):
    """Appends graded events and rewrites state.json, as the loop does, until stopped."""

    def __init__(self, run: Path, start_at: int = 1) -> None:
        super().__init__(daemon=True)
        self.dir, self.next, self.halt = run, start_at, threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            self.step()
            time.sleep(0.1)

    def step(self) -> None:
        i, run = self.next, self.dir
        append_event(run, "graded", f"fake submission {i}", score=i / 10, approach=f"a{i % 2}")
        best = {"approach": f"a{i % 2}", "score": i / 10, "round": i}
        approaches = [{"name": "a0", "round": i, "status": "graded", "score": i / 10}]
        write_state(run, round=i, best=best, approaches=[{**approaches[0], "valid": True}])
        self.next += 1


def test_page_live_controls_and_reload(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    write_state(run)
    append_event(run, "round_start", "round 1 begins", approach=None)
    with start_monitor(run) as monitor, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM)
        try:
            page = browser.new_page()
            page.set_default_timeout(10_000)
            errors: list[str] = []
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.goto(monitor.page_url)
            page.wait_for_selector("#conn.live")
            page.wait_for_selector("#log .event[data-index='0']")
            assert "round 1 begins" in page.inner_text("#log")

            loop = FakeLoop(run)
            loop.start()
            try:
                # Live: new events and state rewrites reach the page without a reload.
                page.wait_for_selector("#log .event[data-index='4']")
                page.wait_for_function(
                    "parseInt(document.getElementById('round').textContent) >= 4"
                )
                assert page.locator("#approaches tr").count() == 1
                assert page.locator("#curve #best-line").count() == 1

                page.click("#pause")
                _wait(lambda: (run / "control" / "pause").is_file())
                page.wait_for_selector("#flags:has-text('PAUSE requested')")
                page.click("#resume")
                _wait(lambda: not (run / "control" / "pause").exists())
                page.fill("#note-text", "try a hexagonal start")
                page.click("#note-send")
                notes = run / "control" / "notes.jsonl"
                _wait(lambda: notes.is_file() and notes.read_text().strip())
                assert json.loads(notes.read_text())["text"] == "try a hexagonal start"
                page.wait_for_selector("#notes li:has-text('hexagonal')")

                # Reload mid-run: the page rebuilds from the stream and keeps going.
                page.reload()
                page.wait_for_selector("#conn.live")
                page.wait_for_selector("#log .event[data-index='0']")
                seen = loop.next
                page.wait_for_selector(f"#log .event[data-index='{seen + 1}']")
                assert "hexagonal" in page.inner_text("#notes")

                page.click("#stop")
                _wait(lambda: (run / "control" / "stop").is_file())
                page.wait_for_selector("#flags:has-text('STOP requested')")
            finally:
                loop.halt.set()
                loop.join()
            indexes = page.eval_on_selector_all(
                "#log .event", "rows => rows.map(r => Number(r.dataset.index))"
            )
            assert indexes == sorted(set(indexes)) and indexes[0] == 0  # no repeats, no gaps
            assert indexes == list(range(len(indexes)))
            assert errors == []
        finally:
            browser.close()


def _wait(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the control file did not change in time"
        time.sleep(0.05)
