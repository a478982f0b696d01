"""Reward specs: built-ins registered on first lookup, and one reading of a reward-model directory.

`reward-model:DIR` in RL, a bare DIR given to rm-bench / best-of-n and `serve-rm DIR` must load
the same model: WildReward's ordinal model when the directory holds ordinal.json, else a
Bradley–Terry model. Stand-in classes record which one was built, so no weights are needed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from posttrain.eval.set_scorers import Pointwise, load_scorer
from posttrain.rewards import reward_model_dir
from posttrain.rewards.spec import get_reward, load_reward_model
from posttrain.specs import SpecKind, parse_spec

BUILT_IN = {
    "exact_match",
    "numeric_match",
    "think_format",
    "rubric_main",
    "instruction_following",
    "ifeval",
    "longtrace_outcome",
    "longtrace_rubric",
    "longtrace_rubric_mixed",
    "longtrace_rubric_negative",
    "longtrace_rubric_recall",
    "wild_reply_quality",
}


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_importing_rewards_loads_no_data_generator_and_registers_on_first_lookup() -> None:
    code = (
        "import sys, json, posttrain.rewards as r\n"
        "before = sorted(m for m in sys.modules if m.startswith('posttrain.data'))\n"
        "names = r.reward_names()\n"
        "print(json.dumps([before, names]))\n"
    )
    before, names = json.loads(_run(code))
    assert before == []
    assert set(names) >= BUILT_IN


def test_a_built_in_is_found_by_name_in_a_fresh_process() -> None:
    code = (
        "from posttrain.rewards import get_reward\n"
        "print(get_reward('wild_reply_quality').__name__)\n"
    )
    assert _run(code) == "wild_reply_quality"


class _StandIn:
    """Records the directory and options it was built with; scores every pair `VALUE`."""

    VALUE = 0.0

    def __init__(self, model_dir: str | Path, **options: Any) -> None:
        self.model_dir = Path(model_dir)
        self.options = options
        self.name = self.model_dir.name

    def score(self, prompts: Sequence[Any], responses: Sequence[Any]) -> list[float]:
        return [self.VALUE] * len(responses)


class _Ordinal(_StandIn):
    VALUE = 3.0


class _BradleyTerry(_StandIn):
    VALUE = -1.0


@pytest.fixture
def stand_ins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reward_model_dir, "OrdinalRewardModel", _Ordinal)
    monkeypatch.setattr(reward_model_dir, "RewardModel", _BradleyTerry)


def _classifier(path: Path, ordinal_head: bool) -> Path:
    path.mkdir()
    config = {"architectures": ["Qwen2ForSequenceClassification"], "id2label": {"0": "LABEL_0"}}
    (path / "config.json").write_text(json.dumps(config))
    if ordinal_head:
        (path / "ordinal.json").write_text(json.dumps({"head": "coral", "num_levels": 4}))
    return path


@pytest.mark.parametrize(("ordinal_head", "built"), [(True, _Ordinal), (False, _BradleyTerry)])
def test_rl_and_set_scorers_read_a_directory_alike(
    stand_ins: None, tmp_path: Path, ordinal_head: bool, built: type
) -> None:
    model_dir = _classifier(tmp_path / "rm", ordinal_head)
    scorer = load_scorer(f"{model_dir}?device=cpu&batch_size=2")
    assert isinstance(scorer, Pointwise) and type(scorer.scorer) is built
    assert scorer.scorer.options == {"device": "cpu", "batch_size": 2}
    assert scorer.name == str(model_dir)

    reward = get_reward(f"reward-model:{model_dir}?device=cpu")
    assert reward(["q", "q"], ["a", "b"]) == [built.VALUE] * 2
    assert reward.__name__ == "reward_model"

    loaded = load_reward_model(parse_spec(f"reward-model:{model_dir}", [SpecKind.REWARD_MODEL]))
    assert type(loaded) is built and loaded.model_dir == model_dir


@pytest.mark.parametrize(("ordinal_head", "built"), [(True, _Ordinal), (False, _BradleyTerry)])
def test_the_server_reads_a_directory_alike(
    stand_ins: None, tmp_path: Path, ordinal_head: bool, built: type
) -> None:
    from posttrain.rewards.reward_model_server import create_app

    app = create_app(_classifier(tmp_path / "rm", ordinal_head), batch_size=4)
    assert type(app.state.model) is built and app.state.model.options["batch_size"] == 4


def test_a_hub_name_is_left_to_the_bradley_terry_loader(stand_ins: None) -> None:
    loaded = reward_model_dir.load_reward_model_dir("some-org/some-reward-model")
    assert type(loaded) is _BradleyTerry


def test_a_reward_model_spec_is_loaded_once(stand_ins: None, tmp_path: Path) -> None:
    spec = f"reward-model:{_classifier(tmp_path / 'rm', ordinal_head=True)}"
    assert get_reward(spec) is get_reward(spec)
