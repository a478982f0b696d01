"""report_to: a Run's metrics reach TensorBoard, Trackio and W&B, read back with each one's
own reader; metrics.jsonl keeps everything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from importlib.util import find_spec

import pytest

from posttrain.config import ConfigError, load_config
from posttrain.runs import Run, changed_settings, read_metrics
from posttrain.tracking import check_report_to, numeric, trl_report_to


@dataclass
class Cfg:
    lr: float = 0.1


def test_unknown_tracker_names_the_key_and_the_allowed_values(tmp_path):
    with pytest.raises(
        ValueError,
        match=r"report_to: unknown tracker 'mlflow'; allowed: "
        r"tensorboard, trackio, wandb",
    ):
        Run.create("bad", Cfg(), root=tmp_path, report_to=["mlflow"])
    assert not (tmp_path / "bad").exists()
    assert check_report_to(["wandb", "tensorboard", "wandb"]) == ["wandb", "tensorboard"]
    assert trl_report_to([]) == "none" and trl_report_to(["trackio"]) == ["trackio"]


def test_unknown_tracker_in_a_stage_config_is_a_config_error():
    from posttrain.sft.warm_start import WarmStartConfig

    with pytest.raises(ConfigError, match="report_to: unknown tracker 'tensorbord'"):
        load_config(WarmStartConfig, None, ["report_to=[tensorbord]"])


def test_trackers_never_block_reusing_a_run(tmp_path):
    saved = tmp_path / "config.yaml"
    saved.write_text("steps: 10\nwarm_start:\n  steps: 5\n")  # written before report_to
    now = {"steps": 10, "report_to": ["wandb"], "warm_start": {"steps": 5, "report_to": []}}
    assert changed_settings(saved, now) == []
    assert changed_settings(saved, {**now, "steps": 11}) == ["steps"]


def test_only_numbers_reach_the_trackers():
    import numpy as np
    import torch

    values = numeric(
        {
            "loss": 1,
            "acc": np.float32(0.5),
            "kl": torch.tensor(0.25),
            "note": "x",
            "cached": True,
            "missing": None,
            "hist": [1, 2],
        }
    )
    assert values == {"loss": 1.0, "acc": 0.5, "kl": 0.25}


@pytest.mark.parametrize(
    ("tracker", "module"),
    [("tensorboard", "torch.utils.tensorboard"), ("trackio", "trackio"), ("wandb", "wandb")],
)
def test_a_missing_package_names_the_extra_to_install(tracker, module, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    with pytest.raises(ImportError, match=rf"pip install 'posttrain\[{tracker}\]'"):
        Run.create("r", root=tmp_path, report_to=[tracker])


def test_tensorboard_event_files_hold_the_numeric_metrics(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with Run.create("tb", Cfg(), root=tmp_path, report_to=["tensorboard"]) as run:
        run.log(1, loss=2.0, note="text")
        run.log(2, loss=1.5, accuracy=0.25)
    events = EventAccumulator(str(run.path / "tensorboard"))
    events.Reload()
    assert sorted(events.Tags()["scalars"]) == ["accuracy", "loss"]
    assert [(e.step, e.value) for e in events.Scalars("loss")] == [(1, 2.0), (2, 1.5)]
    # The run's own record is untouched, text included.
    assert [r.get("note") for r in read_metrics(run.path)] == ["text", None]


def _in_child(code: str, env: dict[str, str], tmp_path) -> str:
    """Run `code` in a fresh interpreter: the trackers read their settings (store directory,
    mode) from the environment when first imported. Remote targets are unset."""
    remote = ("TRACKIO_SPACE_ID", "TRACKIO_SERVER_URL", "WANDB_API_KEY", "WANDB_BASE_URL")
    base = {k: v for k, v in os.environ.items() if k not in remote}
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**base, **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


LOG_THREE_STEPS = """
from posttrain.runs import Run
with Run.create("tracked", {{"lr": 0.1}}, root={root!r}, report_to=[{tracker!r}]) as run:
    for step in (1, 2, 3):
        run.log(step, loss=1.0 / step, note="skipped")
"""


@pytest.mark.skipif(find_spec("trackio") is None, reason="trackio is not installed")
def test_trackio_local_store_holds_the_run(tmp_path):
    store = tmp_path / "trackio"
    code = (
        LOG_THREE_STEPS.format(root=str(tmp_path / "runs"), tracker="trackio")
        + """
import json, trackio
from trackio.sqlite_storage import SQLiteStorage
names = [r.name for r in trackio.Api().runs("posttrain")]
logs = SQLiteStorage.get_logs("posttrain", "tracked")
print(json.dumps({"runs": names, "loss": [(r["step"], r["loss"]) for r in logs if "loss" in r]}))
"""
    )
    lines = _in_child(code, {"TRACKIO_DIR": str(store)}, tmp_path).splitlines()
    out = json.loads(next(line for line in lines if line.startswith('{"runs"')))
    assert out["runs"] == ["tracked"]
    assert out["loss"] == [[1, 1.0], [2, 0.5], [3, pytest.approx(1 / 3)]]


@pytest.mark.skipif(find_spec("wandb") is None, reason="wandb is not installed")
def test_wandb_offline_writes_its_run_directory(tmp_path):
    code = LOG_THREE_STEPS.format(root=str(tmp_path / "runs"), tracker="wandb")
    env = {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true"}
    _in_child(code, env, tmp_path)
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    (records,) = run_dir.glob("run-*.wandb")
    # W&B ships no reader for offline records (`wandb sync` uploads them); its history
    # records hold each key and JSON value as plain protobuf strings.
    data = records.read_bytes()
    assert b"loss" in data and b"0.3333" in data and b"note" not in data
