"""A run directory's state files: what the loop has done, for the monitor and for resuming.

The contract (read by the web monitor too):

- `state.json`: status ("running" | "paused" | "stopped" | "finished" | "budget_exhausted"),
  round, rounds, k, best {approach, score, round} or null, budget {spent, limit, remaining},
  approaches [{name, round, status, score, valid, ...}], updated; rewritten atomically after
  every change;
- `events.jsonl`: append-only, one JSON object per event {time, type, round, approach,
  message, score};
- `control/`: `pause` and `stop` files, and `notes.jsonl` ({time, text} per line), written
  by a person (or the monitor) and read by the loop;
- `rounds/round-NNN.json`: one round's proposals, assignments, results and ranking, with
  `done` once the round is complete (a resumed run keeps done rounds and redoes the rest);
- `config.json`: the run's settings, so the same command resumes the same run;
- `approaches/<name>/` (git repositories) and `results/` (the grader's) are not written here.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from posttrain.atomic import write_text
from posttrain.errors import InputError

STATUSES = ("running", "paused", "stopped", "finished", "budget_exhausted")
EVENT_TYPES = (
    "round_start",
    "proposal",
    "implement_start",
    "command",
    "submission",
    "graded",
    "round_end",
    "note",
    "paused",
    "resumed",
    "stopped",
    "finished",
    "budget",
)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"cannot read run state: {err}", path) from None


class RunState:
    """The state files of run directory `root`; thread-safe (implementers report at once)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.control = self.root / "control"
        self.rounds_dir = self.root / "rounds"
        self.approaches_dir = self.root / "approaches"
        self.results_dir = self.root / "results"
        for folder in (self.control, self.rounds_dir, self.approaches_dir, self.results_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        path = self.root / "state.json"
        self.state: dict[str, Any] = (
            _read_json(path)
            if path.exists()
            else {
                "status": "running",
                "round": 0,
                "rounds": 0,
                "k": 0,
                "best": None,
                "budget": {"spent": 0.0, "limit": None, "remaining": None},
                "approaches": [],
                "notes_seen": 0,
                "updated": now(),
            }
        )

    # --- config ---------------------------------------------------------------------------

    def check_config(self, config: dict, same: tuple[str, ...]) -> dict:
        """Save `config` on the first start; on a resume, keys in `same` must not change
        (another problem or agent is another run) while the others (rounds, limits) may."""
        path = self.root / "config.json"
        with self._lock:
            if path.exists():
                old = _read_json(path)
                for key in same:
                    if old.get(key) != config.get(key):
                        raise InputError(
                            f"this run was started with {key}={old.get(key)!r}, not "
                            f"{config.get(key)!r}; use another run folder",
                            path,
                            key=key,
                        )
            write_text(path, json.dumps(config, indent=1, sort_keys=True) + "\n")
            return config

    # --- state.json and events.jsonl ------------------------------------------------------

    def update(self, **changes: Any) -> dict:
        """Change top-level fields of state.json and write it atomically."""
        with self._lock:
            if "status" in changes and changes["status"] not in STATUSES:
                raise ValueError(f"status must be one of {STATUSES}, got {changes['status']!r}")
            self.state.update(changes)
            self.state["updated"] = now()
            write_text(self.root / "state.json", json.dumps(self.state, indent=1) + "\n")
            return dict(self.state)

    def set_approach(self, name: str, **fields: Any) -> None:
        """Add or change one approach's entry in state.json."""
        with self._lock:
            for entry in self.state["approaches"]:
                if entry["name"] == name:
                    entry.update(fields)
                    break
            else:
                self.state["approaches"].append({"name": name, **fields})
            self.update()

    def event(
        self,
        type: str,
        message: str = "",
        *,
        round: int | None = None,
        approach: str | None = None,
        score: float | None = None,
        valid: bool | None = None,
    ) -> dict:
        """Append one event to events.jsonl (flushed and fsynced: the monitor tails it);
        a graded event carries `valid` too (the monitor's curve skips invalid scores)."""
        if type not in EVENT_TYPES:
            raise ValueError(f"event type must be one of {EVENT_TYPES}, got {type!r}")
        record = {
            "time": now(),
            "type": type,
            "round": self.state.get("round") if round is None else round,
            "approach": approach,
            "message": message,
            "score": score,
            **({} if valid is None else {"valid": valid}),
        }
        with self._lock, open(self.root / "events.jsonl", "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
            out.flush()
            os.fsync(out.fileno())
        return record

    def events(self) -> list[dict]:
        path = self.root / "events.jsonl"
        if not path.exists():
            return []
        lines = path.read_text(encoding="utf-8").splitlines()
        found = []
        for number, line in enumerate(lines, 1):
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                if number != len(lines):  # a torn last line is a crash mid-write
                    raise InputError("not JSON", path, line=number) from None
        return found

    # --- rounds ---------------------------------------------------------------------------

    def round_path(self, number: int) -> Path:
        return self.rounds_dir / f"round-{number:03d}.json"

    def read_round(self, number: int) -> dict | None:
        path = self.round_path(number)
        return _read_json(path) if path.exists() else None

    def write_round(self, number: int, data: dict) -> None:
        write_text(self.round_path(number), json.dumps(data, indent=1, sort_keys=True) + "\n")

    def done_rounds(self) -> list[int]:
        """Numbers of the rounds completed, in order."""
        done = []
        for path in sorted(self.rounds_dir.glob("round-*.json")):
            data = _read_json(path)
            if data.get("done"):
                done.append(int(data["round"]))
        return done

    # --- control --------------------------------------------------------------------------

    def pause_requested(self) -> bool:
        return (self.control / "pause").exists()

    def stop_requested(self) -> bool:
        return (self.control / "stop").exists()

    def take_notes(self) -> list[str]:
        """Notes not yet shown to a proposer (each once), marked seen and logged as events."""
        path = self.control / "notes.jsonl"
        if not path.exists():
            return []
        with self._lock:
            seen = int(self.state.get("notes_seen", 0))
            lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line]
            notes = []
            for line in lines[seen:]:
                try:
                    note = json.loads(line)
                except json.JSONDecodeError:
                    break  # being written: read next time
                text = note.get("text") if isinstance(note, dict) else None
                seen += 1
                if isinstance(text, str) and text.strip():
                    notes.append(text.strip())
                    self.event("note", text.strip())
            self.update(notes_seen=seen)
            return notes
