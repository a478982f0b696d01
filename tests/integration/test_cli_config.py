"""`--config FILE` on every command, TRL-named RL configs through `posttrain rl`, `model: null`
resolved before the trainer exists, and the offline defaults set by the command, not the import.

The trainer and the warm start are replaced by recorders: these tests check what the command
hands them, in a second; `test_cli.py` trains for real."""

import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
from typer.testing import CliRunner

from posttrain.cli import app

CONFIGS = Path(__file__).parents[2] / "configs"
TRL_GRPO = CONFIGS / "rl" / "trl_grpo.yaml"


@pytest.fixture
def recorded(monkeypatch, tmp_path):
    """Record each trainer `posttrain rl` builds (sync or async) and each warm start it asks for.

    The trainer modules are stand-ins in sys.modules, so neither torch nor the engine loads."""
    import posttrain.sft.warm_start as sft

    seen = SimpleNamespace(configs=[], warm_starts=[], kinds=[])
    policy = tmp_path / "cached-policy"

    def fake_warm_start(config, run=None):
        seen.warm_starts.append(config)
        return SimpleNamespace(model_dir=policy, accuracy=None, cached=True)

    def recorder(kind):
        class Recorder:
            def __init__(self, config):
                seen.configs.append(config)
                seen.kinds.append(kind)
                seen.model_at_build = config.model
                self.run = SimpleNamespace(path=tmp_path / "run")
                self.is_main = True

            def train(self):
                return {"reward/exact_match": 0.5}

        return Recorder

    monkeypatch.setattr(sft, "warm_start", fake_warm_start)
    sync, asynchronous = ModuleType("sync"), ModuleType("asynchronous")
    sync.RLTrainer, asynchronous.AsyncRLTrainer = recorder("sync"), recorder("async")
    monkeypatch.setitem(sys.modules, "posttrain.rl.trainer", sync)
    monkeypatch.setitem(sys.modules, "posttrain.rl.asynchronous.trainer", asynchronous)
    seen.policy = str(policy)
    return seen


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_rl_takes_a_trl_grpo_yaml(recorded):
    result = invoke("rl", "--config", TRL_GRPO)
    assert result.exit_code == 0, result.output
    (config,) = recorded.configs
    assert (config.rollout.n, config.rollout.max_tokens, config.rollout.temperature) == (8, 8, 1.0)
    # 32 completions per device x 2 accumulation steps / 8 per prompt = 8 prompts per step
    assert (config.prompts_per_step, config.mini_batches, config.micro_batch_size) == (8, 1, 32)
    assert (config.loss.aggregation, config.loss.scale_advantages) == ("token-mean", True)
    assert (config.loss.eps_low, config.loss.eps_high, config.loss.kl_coef) == (0.2, 0.28, 0.0)
    assert (config.optim.lr, config.rewards) == (3e-4, ["exact_match"])
    assert (config.steps, config.log_every, config.save_every) == (40, 1, 20)
    assert (config.runs_root, config.run_name) == ("runs", "trl-grpo")
    assert '"reward/exact_match": 0.5' in result.stdout


def test_model_null_is_warm_started_before_the_trainer_is_built(recorded, tmp_path):
    for extra in ([], ["--set", "async.eta=1"]):
        result = invoke("rl", "--config", TRL_GRPO, *extra)
        assert result.exit_code == 0, result.output
        assert recorded.model_at_build == recorded.policy
    assert recorded.kinds == ["sync", "async"]
    assert len(recorded.warm_starts) == 2
    recorded.warm_starts.clear()
    policy = tmp_path / "some-policy"  # checked before the trainer: it must hold a model
    policy.mkdir()
    (policy / "config.json").write_text("{}")
    result = invoke("rl", "--config", TRL_GRPO, "--set", f"model={policy}")
    assert result.exit_code == 0, result.output
    assert recorded.model_at_build == str(policy) and not recorded.warm_starts


def test_a_trl_name_without_an_equivalent_is_an_error_naming_it(recorded):
    result = invoke("rl", "--config", TRL_GRPO, "--set", "use_liger_kernel=true")
    assert result.exit_code == 2
    assert "use_liger_kernel: a TRL setting with no posttrain equivalent" in result.stderr
    assert str(TRL_GRPO) in result.stderr
    result = invoke("rl", "--config", TRL_GRPO, "--set", "rollout.n=4")
    assert result.exit_code == 2
    assert "num_generations and rollout.n set the same thing differently" in result.stderr
    assert not recorded.configs


def test_the_positional_config_is_an_alias(recorded):
    assert invoke("rl", TRL_GRPO).exit_code == 0
    assert invoke("rl", TRL_GRPO, "--config", TRL_GRPO).exit_code == 0
    assert [c.run_name for c in recorded.configs] == ["trl-grpo", "trl-grpo"]


@pytest.mark.parametrize("command", ["warm-start", "rl", "quickstart", "demo"])
def test_every_config_command_takes_config(command, tmp_path):
    """--config reaches the loader (a missing file is named); two different configs fail."""
    missing = tmp_path / "missing.yaml"
    for args in (["--config", missing], [missing]):
        result = invoke(command, *args)
        assert result.exit_code == 2, result.output
        assert f"{missing}: config file not found" in result.stderr
    result = invoke(command, CONFIGS / "rl" / "tiny.yaml", "--config", missing)
    assert result.exit_code == 2
    assert "two configs given" in result.stderr


def python(code: str) -> list[str]:
    """Run `code` in a fresh interpreter whose environment has no HF_HUB_* settings; the
    words of its last line of output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_HUB_")}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[-1].split()


def test_import_leaves_the_environment_alone_and_the_command_goes_offline():
    imported = "import os, sys, posttrain, posttrain.cli\n" + (
        "print(os.environ.get('HF_HUB_OFFLINE'), 'huggingface_hub' in sys.modules)"
    )
    assert python(imported) == ["None", "False"]
    ran = (
        "import os, sys\nfrom posttrain.cli import main\nsys.argv = ['posttrain', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "from huggingface_hub import constants\n"
        "print(os.environ['HF_HUB_OFFLINE'], os.environ['HF_HUB_DISABLE_TELEMETRY'],"
        " constants.HF_HUB_OFFLINE)"
    )
    assert python(ran) == ["1", "1", "True"]
