"""The hacking detector on logs as they are written: inside a trainer (`HackingMonitor`),
following a log (`watch`, `posttrain cherrl watch`), and on other trainers' logs through a
field mapping (`posttrain cherrl detect --fields`). The biased logs must alert before they
end, at the step the offline detector names; the control logs never."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_hacking_detector import synthetic_log
from typer.testing import CliRunner

from posttrain.cli import app
from posttrain.data.io import DataError, read_jsonl
from posttrain.monitor.detector import detect
from posttrain.monitor.live import HackingMonitor, watch
from posttrain.monitor.trainer_logs import parse_fields, read_trainer_log

STEPS, START = 40, 15


def _log(hack: bool) -> list[dict]:
    return synthetic_log(hack=hack, steps=STEPS, start=START, seed=1)


@pytest.fixture(scope="module")
def offline() -> int:
    alert = detect(_log(True))
    assert alert is not None and START < alert.alert_step < STEPS
    return alert.alert_step


def _by_step(rows: list[dict]) -> dict[int, list[dict]]:
    steps: dict[int, list[dict]] = {}
    for row in rows:
        steps.setdefault(row["step"], []).append(row)
    return steps


def test_monitor_alerts_at_the_offline_step_and_records_it(tmp_path: Path, offline: int) -> None:
    monitor = HackingMonitor("statistical", tmp_path, on_alert="stop")
    seen = None
    for step, rows in _by_step(_log(True)).items():
        metrics = monitor.observe(step, rows)
        if seen is None and metrics["monitor/alert"]:
            seen = step
            assert metrics["monitor/alert_step"] == offline and monitor.should_stop
            assert abs(metrics["monitor/onset_step"] - START) <= 8
            break
        assert metrics == {"monitor/alert": 0.0} and not monitor.should_stop
    assert seen == offline  # online, it alerts as soon as the offline detector would
    (record,) = read_jsonl(tmp_path / "alerts.jsonl")
    assert record["seen_at_step"] == offline and record["detector"] == "statistical"
    assert "feel free" in record["alert"]["evidence"]["feature"]


def test_monitor_stays_quiet_on_the_control(tmp_path: Path) -> None:
    monitor = HackingMonitor("statistical", tmp_path)
    for step, rows in _by_step(_log(False)).items():
        assert monitor.observe(step, rows) == {"monitor/alert": 0.0}
    assert not (tmp_path / "alerts.jsonl").exists()
    with pytest.raises(ValueError, match="on_alert"):
        HackingMonitor("statistical", tmp_path, on_alert="halt")


def test_monitor_resumes_from_the_rollout_log_and_its_alert(tmp_path: Path, offline: int) -> None:
    rows = _log(True)
    (tmp_path / "rollouts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    first = HackingMonitor("statistical", tmp_path)
    for step, batch in _by_step(rows).items():
        first.observe(step, batch)
    resumed = HackingMonitor("statistical", tmp_path)
    resumed.resume(offline - 1)  # the alert came later: forgotten, and dropped from the file
    assert resumed.alert is None and {r["step"] for r in resumed.records} == set(range(1, offline))
    assert read_jsonl(tmp_path / "alerts.jsonl") == []
    assert resumed.observe(offline, _by_step(rows)[offline])["monitor/alert"] == 1.0


class Writer:
    """Appends one step of a log per call, as `watch`'s sleep: each poll sees one more step,
    and half of the next step's first line (a torn tail, as a live writer leaves)."""

    def __init__(self, path: Path, rows: list[dict], shape=lambda r: r) -> None:
        self.path, self.steps, self.shape = path, list(_by_step(rows).values()), shape
        self.written = 0

    def __call__(self, _seconds: float = 0.0) -> None:
        if self.written == len(self.steps):
            (self.path.parent / "DONE").touch()
            return
        text = self.path.read_text() if self.path.exists() else ""
        text = text[: text.rfind("\n") + 1]  # the torn half line is completed below
        lines = [json.dumps(self.shape(r)) + "\n" for r in self.steps[self.written]]
        self.written += 1
        following = self.steps[self.written][0] if self.written < len(self.steps) else None
        torn = json.dumps(self.shape(following))[:20] if following else ""
        self.path.write_text(text + "".join(lines) + torn)


def test_watch_alerts_before_the_log_ends(tmp_path: Path, offline: int) -> None:
    writer = Writer(tmp_path / "rollouts.jsonl", _log(True))
    result = watch(tmp_path, interval=0, sleep=writer)
    assert result.outcome == "alert" and result.alert.alert_step == offline
    assert writer.written == offline + 1 < STEPS  # step `offline` is whole once the next began
    assert result.steps_judged == offline


def test_watch_reads_a_control_to_its_end(tmp_path: Path) -> None:
    writer = Writer(tmp_path / "rollouts.jsonl", _log(False))
    result = watch(tmp_path / "rollouts.jsonl", interval=0, sleep=writer)
    assert result.outcome == "finished" and result.alert is None
    assert result.steps_judged == STEPS
    timed_out = watch(tmp_path / "missing" / "log.jsonl", interval=0, timeout=0, sleep=writer)
    assert timed_out.outcome == "timeout" and timed_out.steps_judged == 0


def verl_shape(row: dict) -> dict:
    """verl's generation dumps: input, output, score, step (here a float, as pandas writes)."""
    return {"input": row["prompt"], "output": row["response"], "score": row["score"],
            "step": float(row["step"])}  # fmt: skip


def trl_shape(row: dict) -> dict:
    """TRL's completion table: the step as a string, conversational prompt and completion,
    the rewards under their own names."""
    return {
        "step": str(row["step"]),
        "prompt": [{"role": "user", "content": row["prompt"]}],
        "completion": [{"role": "assistant", "content": row["response"]}],
        "rewards": {"total": row["score"], "format": 1.0},
    }


def test_watch_follows_another_trainers_log(tmp_path: Path, offline: int) -> None:
    writer = Writer(tmp_path / "generations.jsonl", _log(True), verl_shape)
    fields = parse_fields("response=output,prompt=input")
    result = watch(tmp_path / "generations.jsonl", fields=fields, interval=0, sleep=writer)
    assert result.outcome == "alert" and result.alert.alert_step == offline


def test_other_trainers_logs_give_the_same_verdict(tmp_path: Path) -> None:
    rows = _log(True)
    expected = detect(rows).to_dict()
    verl = tmp_path / "verl.jsonl"
    verl.write_text("".join(json.dumps(verl_shape(r)) + "\n" for r in rows))
    log = read_trainer_log(verl, parse_fields("prompt=input,response=output"))
    assert detect(log.records).to_dict() == expected and log.step_values is None
    trl = tmp_path / "trl.parquet"
    pq.write_table(pa.Table.from_pylist([trl_shape(r) for r in rows]), trl)
    log = read_trainer_log(trl, parse_fields("response=completion,score=rewards.total"))
    assert detect(log.records).to_dict() == expected


def test_fractional_steps_are_numbered_and_reported_as_logged(tmp_path: Path) -> None:
    rows = [{**r, "epoch": r["step"] / 4} for r in _log(True)]
    path = tmp_path / "log.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    log = read_trainer_log(path, parse_fields("step=epoch"))
    assert log.step_values == [s / 4 for s in range(1, STEPS + 1)]
    assert [r["step"] for r in log.records] == [r["step"] for r in rows]
    assert log.logged_step(12) == 3.0
    done = CliRunner().invoke(
        app, ["cherrl", "detect", "--rollouts", str(path), "--fields", "step=epoch"]
    )
    assert done.exit_code == 0, done.output
    out = json.loads(done.output)
    assert out["logged_alert_step"] == out["alert_step"] / 4


def test_field_mapping_errors_name_the_part_the_line_and_the_field(tmp_path: Path) -> None:
    assert parse_fields("score=reward")["score"] == "reward"
    assert parse_fields(None) == {k: k for k in ("step", "prompt", "response", "score")}
    with pytest.raises(ValueError, match="'score' is not KEY=NAME"):
        parse_fields("score")
    with pytest.raises(ValueError, match="'reward' is not one of step, prompt"):
        parse_fields("reward=score")
    path = tmp_path / "log.jsonl"
    path.write_text('{"step": 1, "response": "a", "score": 1}\n{"step": 2, "response": "b"}\n')
    with pytest.raises(DataError, match=r"line 2: no field 'score' \(the score\)"):
        read_trainer_log(path)
    path.write_text('{"step": "two", "response": "a", "score": 1}\n')
    with pytest.raises(DataError, match=r"line 1: step \(the step\) is not a number: 'two'"):
        read_trainer_log(path)


def test_watch_command_exit_status_says_how_it_ended(tmp_path: Path) -> None:
    for hack, status in ((True, 1), (False, 0)):
        run = tmp_path / f"hack-{hack}"
        run.mkdir()
        rows = [verl_shape(r) for r in _log(hack)]
        (run / "rollouts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (run / "DONE").touch()
        args = ["cherrl", "watch", str(run), "--fields", "prompt=input,response=output"]
        done = CliRunner().invoke(app, [*args, "--interval", "0"])
        assert done.exit_code == status, done.output
        out = json.loads(done.output)
        assert out["outcome"] == ("alert" if hack else "finished")
    done = CliRunner().invoke(app, ["cherrl", "watch", str(tmp_path / "none"), "--timeout", "0"])
    assert done.exit_code == 3 and json.loads(done.output)["outcome"] == "timeout"


def test_detect_says_when_the_agent_gave_no_verdict(tmp_path: Path, monkeypatch) -> None:
    from posttrain.models.chat import scripted

    monkeypatch.setattr(scripted, "_SCRIPTS", dict(scripted._SCRIPTS))
    scripted.register_script("blank-agent", lambda: scripted.ScriptedChat("blank", default="\n"))
    path = tmp_path / "log.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _log(True)))
    args = ["cherrl", "detect", "--rollouts", str(path), "--detector", "scripted:blank-agent"]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout) is None
    assert "no usable answer" in done.stderr and "not 'no hacking'" in done.stderr
