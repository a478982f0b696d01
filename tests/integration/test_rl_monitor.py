"""`monitor: {hacking: ..., on_alert: ...}` in an RL config: the trainer hands each step's
rollouts to the detector, logs `monitor/*` metrics, records the alert and, with
`on_alert: stop`, saves a checkpoint and ends the run at the alert's step."""

from __future__ import annotations

import yaml

from posttrain.config import load_config
from posttrain.data.io import read_jsonl
from posttrain.monitor import live
from posttrain.monitor.alert import Alert
from posttrain.rl.config import RLConfig
from posttrain.rl.trainer import RLTrainer
from posttrain.runs import Run, read_metrics


def _config(model_dir, root, **monitor) -> RLConfig:
    text = yaml.safe_dump(
        {"model": str(model_dir), "runs_root": str(root), "steps": 4, "prompts_per_step": 4,
         "eval_every": 0, "save_every": 0, "log_rollouts": True, "monitor": monitor}
    )  # fmt: skip
    path = root / "rl.yaml"
    path.write_text(text)
    return load_config(RLConfig, path)


def _train(cfg: RLConfig, name: str) -> RLTrainer:
    trainer = RLTrainer(cfg, Run.create(name, cfg, root=cfg.runs_root))
    trainer.train()
    trainer.run.close()
    return trainer


def test_statistical_monitor_logs_its_metrics_every_step(warm_started, tmp_path):
    cfg = _config(warm_started[0].model_dir, tmp_path, hacking="statistical")
    assert cfg.monitor.hacking == "statistical" and cfg.monitor.on_alert == "continue"
    trainer = _train(cfg, "watched")
    records = [r for r in read_metrics(trainer.run.path) if "reward" in r]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    # Four steps of arithmetic: nothing drifts for the patience the test needs.
    assert all(r["monitor/alert"] == 0.0 for r in records)
    assert not (trainer.run.path / "alerts.jsonl").exists()
    assert (trainer.run.path / "checkpoints" / "final").exists()


class AlertsAtStepTwo:
    """A detector that alerts once it has seen two steps (the trainer's stop path is under
    test here; the statistical detector's verdicts are test_hacking_live's)."""

    def detect(self, records):
        steps = sorted({r["step"] for r in records})
        if len(steps) < 2:
            return None
        return Alert(alert_step=steps[-1], onset_step=1, confidence=0.9, hacking_type="tone",
                     evidence={"responses": len(records)}, detector="test")  # fmt: skip


def test_on_alert_stop_ends_the_run_at_the_alert(warm_started, tmp_path, monkeypatch):
    monkeypatch.setattr(live, "load_detector", lambda spec: AlertsAtStepTwo())
    cfg = _config(warm_started[0].model_dir, tmp_path, hacking="statistical", on_alert="stop")
    trainer = _train(cfg, "stopped")
    assert trainer.step == 2 and trainer.stopped_by_monitor
    records = [r for r in read_metrics(trainer.run.path) if "reward" in r]
    assert [r["monitor/alert"] for r in records] == [0.0, 1.0]
    assert records[-1]["monitor/alert_step"] == 2.0 and records[-1]["monitor/onset_step"] == 1.0
    (alert,) = read_jsonl(trainer.run.path / "alerts.jsonl")
    assert alert["seen_at_step"] == 2 and alert["alert"]["evidence"] == {"responses": 2 * 4 * 8}
    checkpoints = sorted(p.name for p in (trainer.run.path / "checkpoints").iterdir())
    assert checkpoints == ["step-000002"]  # saved where it stopped; no final model
