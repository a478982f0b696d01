"""EurekAgent's web monitor: a person watches a run and steers it from a browser.

The loop writes the run directory; the monitor reads it and writes only `RUN/control/`:

- reads `state.json` (rewritten atomically by the loop) and `events.jsonl` (append-only;
  an event's index is its line number, counted from 0);
- writes `control/pause` (exists: the loop pauses), `control/stop` (exists: the loop stops
  cleanly) and appends `{"time", "text"}` lines to `control/notes.jsonl` (notes the next
  round's proposers see).

Routes: `GET /` (the page: inline JS and CSS, no build step), `GET /api/state`,
`GET /api/events?after=N` (events with index > N), `GET /api/stream` (server-sent events:
each run event with `id:` its index, so a reconnecting EventSource resumes after
Last-Event-ID, and an `event: state` message whenever the state, curve or controls change),
`POST /api/pause`, `/api/resume`, `/api/stop`, `/api/note` {text}; `GET /healthz` is open.
Everything else needs the token, as `Authorization: Bearer <token>` or `?token=` (a browser
opens the page, and an EventSource connects, with the token in the URL only). The Host
header must name the bound address (DNS rebinding), as for `posttrain serve`.

`start_monitor(run_dir)` runs `python -m posttrain.eureka.monitor` as its own process, as
the grader service is started (`grader_service.spawn_service`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import secrets
import sys
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from pydantic import BaseModel, Field
from starlette.requests import Request  # at module level: FastAPI resolves annotations here

from posttrain.atomic import write_text
from posttrain.errors import InputError
from posttrain.eureka.grader_service import GraderHandle, spawn_service
from posttrain.models.server.security import (
    PageTokenGuard,
    allowed_hosts,
    is_wildcard,
    page_headers,
)
from posttrain.models.server_process import free_port

TOKEN_ENV = "POSTTRAIN_MONITOR_TOKEN"
POLL_SECONDS = 0.2  # how often a stream looks at the run files (the loop is another process)
KEEPALIVE_SECONDS = 15.0
MAX_NOTE_CHARS = 4000
CONTROL_NOTES_SHOWN = 20


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def best_curve(events: list[dict], state: dict | None) -> list[dict]:
    """The best-so-far curve: one point per graded event with a score (`valid` False skipped),
    `{"index", "round", "approach", "score", "best"}`.

    The direction is `state["direction"]` ("max"/"min") when the loop writes one, else read
    off `state["best"]`: a best score below the highest graded score means lower is better.
    """
    graded = [
        e
        for e in events
        if e.get("type") == "graded"
        and _number(e.get("score")) is not None
        and e.get("valid", True) is not False
    ]
    direction = (state or {}).get("direction")
    if direction not in ("max", "min"):
        best = _number(((state or {}).get("best") or {}).get("score"))
        top = max((float(e["score"]) for e in graded), default=None)
        direction = "min" if best is not None and top is not None and best < top else "max"
    pick = max if direction == "max" else min
    points, best = [], None
    for event in graded:
        score = float(event["score"])
        best = score if best is None else pick(best, score)
        points.append(
            {
                "index": event["index"],
                "round": event.get("round"),
                "approach": event.get("approach"),
                "score": score,
                "best": best,
            }
        )
    return points


class RunWatcher:
    """Reads a run directory incrementally: complete lines of events.jsonl from a byte offset
    (a line still being written waits for its newline), state.json as a whole."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.events: list[dict] = []
        self._offset = 0
        self._lock = threading.Lock()
        self._notes_lock = threading.Lock()

    @property
    def control_dir(self) -> Path:
        return self.run_dir / "control"

    def refresh(self) -> int:
        """Read newly completed events; returns how many events there are."""
        path = self.run_dir / "events.jsonl"
        with self._lock:
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                size = 0
            if size < self._offset:  # the file was replaced: read it again from the start
                self.events, self._offset = [], 0
            if size > self._offset:
                with open(path, "rb") as handle:
                    handle.seek(self._offset)
                    chunk = handle.read(size - self._offset)
                complete = chunk[: chunk.rfind(b"\n") + 1]
                self._offset += len(complete)
                for line in complete.splitlines():
                    self.events.append(self._parse(line, len(self.events)))
            return len(self.events)

    @staticmethod
    def _parse(line: bytes, index: int) -> dict:
        # A bad line keeps its index (a placeholder), so indexes stay line numbers.
        try:
            event = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            event = {"type": "unreadable", "message": f"events.jsonl line {index + 1}: {err}"}
        if not isinstance(event, dict):
            event = {"type": "unreadable", "message": f"events.jsonl line {index + 1}: not {{}}"}
        return {**event, "index": index}

    def events_after(self, after: int) -> list[dict]:
        self.refresh()
        with self._lock:
            return self.events[max(after + 1, 0) :]

    def read_state(self) -> tuple[dict | None, str | None]:
        path = self.run_dir / "state.json"
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None, None
        except (OSError, ValueError) as err:
            return None, f"{path}: {err}"
        if not isinstance(state, dict):
            return None, f"{path}: not a JSON object"
        return state, None

    def control(self) -> dict:
        notes = []
        path = self.control_dir / "notes.jsonl"
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    notes.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return {
            "pause": (self.control_dir / "pause").exists(),
            "stop": (self.control_dir / "stop").exists(),
            "notes": notes[-CONTROL_NOTES_SHOWN:],
            "notes_total": len(notes),
        }

    def payload(self) -> dict:
        """What the page draws: the state, the best-so-far curve, the controls."""
        total = self.refresh()
        state, error = self.read_state()
        with self._lock:
            curve = best_curve(self.events, state)
        return {
            "state": state,
            "error": error,
            "curve": curve,
            "control": self.control(),
            "events": total,
        }

    # The monitor's only writes: the control files.
    def set_flag(self, name: str, on: bool) -> None:
        path = self.control_dir / name
        if on:
            self.control_dir.mkdir(parents=True, exist_ok=True)
            write_text(path, _now() + "\n")
        else:
            path.unlink(missing_ok=True)

    def add_note(self, text: str) -> dict:
        note = {"time": _now(), "text": text}
        self.control_dir.mkdir(parents=True, exist_ok=True)
        line = json.dumps(note, ensure_ascii=False) + "\n"
        with self._notes_lock, open(self.control_dir / "notes.jsonl", "a", encoding="utf-8") as f:
            f.write(line)  # one write of a whole line: the loop never reads half a note
            f.flush()
            os.fsync(f.fileno())
        return note


class NoteRequest(BaseModel):
    text: str = Field(min_length=1, max_length=MAX_NOTE_CHARS)


def _sse(data: dict, event: str | None = None, id: int | None = None) -> str:
    lines = [f"id: {id}"] if id is not None else []
    lines += [f"event: {event}"] if event else []
    lines.append("data: " + json.dumps(data, ensure_ascii=False))
    return "\n".join(lines) + "\n\n"


def create_app(run_dir: str | Path, token: str, host: str = "127.0.0.1"):
    """The ASGI app (FastAPI behind the token guard) over one run directory."""
    from fastapi import FastAPI, Header, Query
    from fastapi.responses import HTMLResponse, StreamingResponse

    if not token:
        raise ValueError("the monitor needs a non-empty token")
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: not a run directory (no such folder)")
    watcher = RunWatcher(run_dir)
    app = FastAPI(title="posttrain eureka monitor", docs_url=None, redoc_url=None)
    no_store = {"cache-control": "no-store"}

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/", response_class=HTMLResponse)
    def page() -> HTMLResponse:
        nonce = secrets.token_urlsafe(16)
        # Agent-written text is shown on this page: only our own inline script runs.
        headers = page_headers(nonce)
        return HTMLResponse(PAGE.replace("__NONCE__", nonce), headers=headers)

    @app.get("/api/state")
    def state() -> dict:
        return watcher.payload()

    @app.get("/api/events")
    def events(after: int = Query(-1, ge=-1)) -> dict:
        found = watcher.events_after(after)
        return {"events": found, "total": len(watcher.events)}

    @app.get("/api/stream")
    async def stream(
        request: Request,
        after: int = Query(-1, ge=-1),
        last_event_id: str | None = Header(None),
    ) -> StreamingResponse:
        if last_event_id and last_event_id.strip().lstrip("-").isdigit():
            after = int(last_event_id)

        async def messages():
            sent, last_payload, quiet = after, None, 0.0
            yield f"retry: 1000\n: events after {after}\n\n"
            while not await request.is_disconnected():
                for event in await asyncio.to_thread(watcher.events_after, sent):
                    sent = event["index"]
                    yield _sse(event, id=sent)
                payload = await asyncio.to_thread(watcher.payload)
                encoded = json.dumps(payload, sort_keys=True)
                if encoded != last_payload:
                    last_payload, quiet = encoded, 0.0
                    yield _sse(payload, event="state")
                quiet += POLL_SECONDS
                if quiet >= KEEPALIVE_SECONDS:  # proxies close silent connections
                    quiet = 0.0
                    yield ": keepalive\n\n"
                await asyncio.sleep(POLL_SECONDS)

        headers = {**no_store, "x-accel-buffering": "no"}
        return StreamingResponse(messages(), media_type="text/event-stream", headers=headers)

    @app.post("/api/pause")
    def pause() -> dict:
        watcher.set_flag("pause", True)
        return watcher.control()

    @app.post("/api/resume")
    def resume() -> dict:
        watcher.set_flag("pause", False)
        return watcher.control()

    @app.post("/api/stop")
    def stop() -> dict:
        watcher.set_flag("stop", True)
        return watcher.control()

    @app.post("/api/note")
    def note(request: NoteRequest) -> dict:
        from fastapi import HTTPException

        if not request.text.strip():
            raise HTTPException(422, "a note needs some text")
        return {"note": watcher.add_note(request.text), "control": watcher.control()}

    return PageTokenGuard(app, token, allowed_hosts(host))


@dataclass
class MonitorHandle(GraderHandle):
    """A running monitor process: `url`, `token`, `page_url` (open it in a browser), `stop()`."""

    run_dir: Path = field(default_factory=Path)

    @property
    def page_url(self) -> str:
        return f"{self.url}/?token={quote(self.token)}"


def start_monitor(
    run_dir: str | Path,
    port: int = 0,
    host: str = "127.0.0.1",
    log_path: str | Path | None = None,
    startup_timeout: float = 60.0,
) -> MonitorHandle:
    """Start the monitor on `host` (loopback by default; `port` 0: a free one) with a random
    token and wait until it answers."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: not a run directory (no such folder)")
    port = port or free_port()
    token = secrets.token_urlsafe(32)
    argv = [sys.executable, "-m", "posttrain.eureka.monitor", str(run_dir)]
    argv += ["--host", host, "--port", str(port)]
    reach = "127.0.0.1" if is_wildcard(host) else host.strip("[]")
    url = f"http://{reach}:{port}" if ":" not in reach else f"http://[{reach}]:{port}"
    process = spawn_service(argv, {TOKEN_ENV: token}, url, log_path, startup_timeout, "monitor")
    return MonitorHandle(url, token, process, run_dir)


def serve(run_dir: str | Path, token: str, host: str = "127.0.0.1", port: int = 0) -> None:
    """Serve the monitor in this process until interrupted."""
    import uvicorn

    app = create_app(run_dir, token, host)
    # Streams never end by themselves: give them a second to close at shutdown.
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=1)


def main(argv: list[str] | None = None) -> None:
    """`python -m posttrain.eureka.monitor RUN --port N`; the token comes from
    $POSTTRAIN_MONITOR_TOKEN."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    token = os.environ.pop(TOKEN_ENV, "")
    if not token:
        raise SystemExit(f"{TOKEN_ENV} is not set: the monitor never runs without a token")
    serve(args.run_dir, token, args.host, args.port)


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>EurekAgent monitor</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1em 2em; color: #222; }
h1 { font-size: 1.3em; margin: 0 0 .5em; }
.bar { display: flex; gap: 1.5em; flex-wrap: wrap; align-items: baseline; }
.bar b { font-variant-numeric: tabular-nums; }
#conn.live { color: #1a7f37; } #conn.down { color: #b42318; }
section { margin-top: 1em; }
table { border-collapse: collapse; } td, th { padding: 2px 10px; text-align: left; }
tbody tr:nth-child(odd) { background: #f4f4f4; }
#log { height: 16em; overflow-y: auto; background: #111; color: #ddd; padding: .5em;
  font: 12px/1.35 ui-monospace, monospace; white-space: pre-wrap; }
button { margin-right: .5em; padding: .3em .9em; }
textarea { width: 30em; height: 3em; vertical-align: middle; }
.flag { color: #b42318; font-weight: bold; }
svg { background: #fafafa; border: 1px solid #ddd; }
</style></head>
<body>
<h1>EurekAgent monitor <span id="conn" class="down">connecting</span></h1>
<div class="bar">
  <span>status <b id="status">-</b></span>
  <span>round <b id="round">-</b></span>
  <span>k <b id="k">-</b></span>
  <span>best <b id="best">-</b></span>
  <span>budget <b id="budget">-</b></span>
  <span>events <b id="events">0</b></span>
  <span id="flags"></span>
</div>
<div id="error" class="flag"></div>
<section><h2>Controls</h2>
  <button id="pause">Pause</button><button id="resume">Resume</button>
  <button id="stop">Stop</button>
  <textarea id="note-text" placeholder="A note for the next round's proposers"></textarea>
  <button id="note-send">Add note</button> <span id="control-msg"></span>
  <ul id="notes"></ul>
</section>
<section><h2>Best so far</h2><svg id="curve" width="640" height="200"></svg></section>
<section><h2>Approaches</h2>
  <table><thead><tr><th>name</th><th>round</th><th>status</th><th>score</th><th>valid</th>
  </tr></thead><tbody id="approaches"></tbody></table>
</section>
<section><h2>Log</h2><div id="log"></div></section>
<script nonce="__NONCE__">
"use strict";
const token = new URLSearchParams(location.search).get("token") || "";
const $ = (id) => document.getElementById(id);
const MAX_LOG = 300;
const fmt = (x) => (typeof x === "number"
  ? (Math.abs(x) >= 1e4 || (x !== 0 && Math.abs(x) < 1e-3) ? x.toExponential(4)
    : String(+x.toFixed(6)))
  : (x === null || x === undefined ? "-" : String(x)));
function cell(row, text) { const td = document.createElement("td"); td.textContent = text;
  row.appendChild(td); }
function render(p) {
  const s = p.state || {};
  $("error").textContent = p.error || (p.state ? "" : "waiting for the run's state.json");
  $("status").textContent = s.status || "-";
  $("round").textContent = s.round === undefined ? "-" : s.round + " / " + fmt(s.rounds);
  $("k").textContent = fmt(s.k);
  $("best").textContent = s.best ? fmt(s.best.score) + " (" + s.best.approach + ", round "
    + s.best.round + ")" : "-";
  const b = s.budget || {};
  $("budget").textContent = "$" + fmt(b.spent) + " of $" + fmt(b.limit) + " (left $"
    + fmt(b.remaining) + ")";
  $("events").textContent = p.events;
  const c = p.control || {};
  $("flags").textContent = (c.pause ? "PAUSE requested " : "") + (c.stop ? "STOP requested" : "");
  $("flags").className = "flag";
  const notes = $("notes"); notes.replaceChildren();
  for (const n of c.notes || []) { const li = document.createElement("li");
    li.textContent = n.time + ": " + n.text; notes.appendChild(li); }
  const body = $("approaches"); body.replaceChildren();
  for (const a of s.approaches || []) { const tr = document.createElement("tr");
    for (const v of [a.name, a.round, a.status, fmt(a.score), a.valid]) cell(tr, fmt(v));
    body.appendChild(tr); }
  drawCurve(p.curve || []);
}
function svgEl(name, attrs) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", name);
  for (const k in attrs) e.setAttribute(k, attrs[k]); return e; }
function drawCurve(points) {
  const svg = $("curve"); svg.replaceChildren();
  const W = 640, H = 200, L = 60, R = 10, T = 10, B = 25;
  if (!points.length) { const t = svgEl("text", {x: L, y: H / 2}); t.textContent = "no scores yet";
    svg.appendChild(t); return; }
  const ys = points.flatMap((p) => [p.score, p.best]);
  let lo = Math.min(...ys), hi = Math.max(...ys); if (hi === lo) { hi += 1; lo -= 1; }
  const x = (i) => L + (points.length === 1 ? 0 : i * (W - L - R) / (points.length - 1));
  const y = (v) => T + (hi - v) * (H - T - B) / (hi - lo);
  svg.appendChild(svgEl("line", {x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#999"}));
  for (const v of [lo, hi]) { const t = svgEl("text", {x: 2, y: y(v) + 4, "font-size": 11});
    t.textContent = fmt(v); svg.appendChild(t); }
  points.forEach((p, i) => svg.appendChild(svgEl("circle", {cx: x(i), cy: y(p.score), r: 3,
    fill: "#9aa"})));
  const d = points.map((p, i) => (i ? "L" : "M") + x(i).toFixed(1) + " " + y(p.best).toFixed(1));
  svg.appendChild(svgEl("path", {id: "best-line", d: d.join(" "), fill: "none",
    stroke: "#1a7f37", "stroke-width": 2}));
  const t = svgEl("text", {x: L, y: H - 6, "font-size": 11});
  t.textContent = points.length + " graded; best " + fmt(points[points.length - 1].best);
  svg.appendChild(t);
}
function logEvent(e) {
  const log = $("log"); const line = document.createElement("div");
  line.className = "event"; line.dataset.index = e.index;
  line.textContent = "#" + e.index + " " + (e.time || "") + " [" + (e.type || "?") + "] r"
    + fmt(e.round) + " " + (e.approach || "") + (e.score === null || e.score === undefined
    ? "" : " score=" + fmt(e.score)) + " " + (e.message || "");
  const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 5;
  log.appendChild(line);
  while (log.childElementCount > MAX_LOG) log.firstElementChild.remove();
  if (atEnd) log.scrollTop = log.scrollHeight;
}
const source = new EventSource("api/stream?token=" + encodeURIComponent(token));
source.onopen = () => { $("conn").textContent = "live"; $("conn").className = "live"; };
source.onerror = () => { $("conn").textContent = "reconnecting"; $("conn").className = "down"; };
source.onmessage = (m) => logEvent(JSON.parse(m.data));
source.addEventListener("state", (m) => render(JSON.parse(m.data)));
async function post(path, body) {
  const r = await fetch(path, {method: "POST", headers: {"authorization": "Bearer " + token,
    "content-type": "application/json"}, body: body ? JSON.stringify(body) : null});
  const out = await r.json().catch(() => ({}));
  $("control-msg").textContent = r.ok ? path.slice(4) + " sent" : "failed: "
    + JSON.stringify(out.detail || out.error || r.status);
  return r.ok;
}
$("pause").onclick = () => post("api/pause");
$("resume").onclick = () => post("api/resume");
$("stop").onclick = () => post("api/stop");
$("note-send").onclick = async () => {
  const text = $("note-text").value;
  if (await post("api/note", {text})) $("note-text").value = "";
};
</script></body></html>
"""


if __name__ == "__main__":
    main()
