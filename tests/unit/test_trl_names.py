"""TRL GRPOConfig names in RL configs: each translates with TRL's meaning, or fails by name."""

import dataclasses

import pytest
import yaml

from posttrain.config import ConfigError, load_config
from posttrain.rl.config import RLConfig
from posttrain.rl.trl_names import TRL_NAMES, from_trl


def load(tmp_path, mapping, overrides=()):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(mapping))
    return load_config(RLConfig, path, list(overrides))


def test_the_name_list_is_installed_trls():
    """TRL_NAMES must follow the installed TRL: a new GRPOConfig field fails here first."""
    from trl import DatasetMixtureConfig, GRPOConfig, ModelConfig
    from trl.scripts.grpo import GRPOScriptArguments

    classes = (GRPOConfig, GRPOScriptArguments, ModelConfig, DatasetMixtureConfig)
    installed = {f.name for cls in classes for f in dataclasses.fields(cls)}
    assert installed == TRL_NAMES


def test_every_listed_name_translates(tmp_path):
    config = load(
        tmp_path,
        {
            "model_name_or_path": "/models/policy",
            "num_generations": 4,
            "max_completion_length": 32,
            "temperature": 0.7,
            "top_p": 0.9,
            "beta": 0.04,
            "epsilon": 0.1,
            "epsilon_high": 0.3,
            "loss_type": "grpo",
            "scale_rewards": False,
            "learning_rate": "1e-6",  # YAML 1.1 reads this as a string
            "reward_funcs": ["exact_match", "think_format"],
            "reward_weights": [1.0, 0.5],
            "per_device_train_batch_size": 8,
            "gradient_accumulation_steps": 2,
            "max_steps": 30,
            "logging_steps": 5,
            "save_steps": 10,
            "seed": 7,
            "output_dir": "out/grpo-run",
        },
    )
    assert config.model == "/models/policy"
    assert (config.rollout.n, config.rollout.max_tokens) == (4, 32)
    assert (config.rollout.temperature, config.rollout.top_p) == (0.7, 0.9)
    assert config.loss.kl_coef == 0.04
    assert (config.loss.eps_low, config.loss.eps_high) == (0.1, 0.3)
    assert config.loss.aggregation == "seq-mean-token-mean"
    assert config.loss.scale_advantages is False
    assert config.optim.lr == 1e-6
    assert config.rewards == ["exact_match", "think_format"]
    assert config.reward_weights == [1.0, 0.5]
    # 8 completions x 2 accumulation steps = 16 completions = 4 prompts of 4 per optimizer step
    assert (config.prompts_per_step, config.mini_batches, config.micro_batch_size) == (4, 1, 8)
    assert (config.steps, config.log_every, config.save_every, config.seed) == (30, 5, 10, 7)
    assert (config.runs_root, config.run_name) == ("out", "grpo-run")


@pytest.mark.parametrize(
    ("loss_type", "aggregation"),
    [
        ("grpo", "seq-mean-token-mean"),
        ("dapo", "token-mean"),
        ("bnpo", "token-mean"),
        ("dr_grpo", "seq-mean-token-sum-norm"),
    ],
)
def test_loss_types_map_to_aggregations(tmp_path, loss_type, aggregation):
    assert load(tmp_path, {"loss_type": loss_type}).loss.aggregation == aggregation


@pytest.mark.parametrize("loss_type", ["cispo", "sapo", "luspo", "vespo", "ppo"])
def test_loss_types_without_an_aggregation_fail(tmp_path, loss_type):
    with pytest.raises(ConfigError, match=f"loss_type: '{loss_type}' has no posttrain"):
        load(tmp_path, {"loss_type": loss_type})


@pytest.mark.parametrize(
    ("value", "scale"), [(True, True), ("group", True), (False, False), ("none", False)]
)
def test_scale_rewards(tmp_path, value, scale):
    assert load(tmp_path, {"scale_rewards": value}).loss.scale_advantages is scale


def test_scale_rewards_batch_and_nonsense_fail(tmp_path):
    with pytest.raises(ConfigError, match="scale_rewards: 'batch' has no posttrain equivalent"):
        load(tmp_path, {"scale_rewards": "batch"})
    with pytest.raises(ConfigError, match="scale_rewards: expected true, false"):
        load(tmp_path, {"scale_rewards": "sometimes"})


def test_epsilon_high_defaults_to_epsilon_as_in_trl(tmp_path):
    loss = load(tmp_path, {"epsilon": 0.15}).loss
    assert (loss.eps_low, loss.eps_high) == (0.15, 0.15)
    loss = load(tmp_path, {"epsilon": 0.15, "loss": {"eps_high": 0.3}}).loss
    assert (loss.eps_low, loss.eps_high) == (0.15, 0.3)  # posttrain's own key still counts
    assert load(tmp_path, {}).loss.eps_high == 0.28  # no TRL name: posttrain's default


def batch_of(mapping):
    out = from_trl(mapping)
    return out["prompts_per_step"], out["mini_batches"]


def test_batch_sizes_match_trls_generation_batch():
    """Prompts per rollout batch and optimizer steps per rollout batch, as TRL computes them
    (generation_batch_size / num_generations, steps_per_generation / accumulation)."""
    from trl import GRPOConfig

    cases = [
        {"per_device_train_batch_size": 8, "gradient_accumulation_steps": 4},
        {"per_device_train_batch_size": 6, "num_generations": 3},
        {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 2, "num_generations": 4,
         "steps_per_generation": 6},
        {"per_device_train_batch_size": 4, "num_generations": 2, "generation_batch_size": 16},
    ]  # fmt: skip
    for case in cases:
        trl = GRPOConfig(output_dir="unused", use_cpu=True, bf16=False, report_to="none", **case)
        prompts = trl.generation_batch_size // trl.num_generations
        optimizer_steps = trl.steps_per_generation // trl.gradient_accumulation_steps
        assert batch_of(case) == (prompts, optimizer_steps), case


def test_processes_multiply_the_rollout_batch():
    mapping = {"per_device_train_batch_size": 8, "gradient_accumulation_steps": 4}
    assert batch_of({**mapping, "num_generations": 16, "num_processes": 2}) == (4, 1)


def test_step_counts_are_optimizer_steps(tmp_path):
    """With 2 optimizer steps per rollout batch, 10 TRL steps are 5 posttrain steps."""
    mapping = {
        "per_device_train_batch_size": 8,
        "gradient_accumulation_steps": 1,
        "steps_per_generation": 2,
        "num_generations": 4,
        "max_steps": 10,
        "save_steps": 4,
    }
    config = load(tmp_path, mapping)
    assert (config.mini_batches, config.steps, config.save_every) == (2, 5, 2)
    with pytest.raises(ConfigError, match="max_steps: 9 optimizer steps is not a whole number"):
        load(tmp_path, {**mapping, "max_steps": 9})


def test_strategies(tmp_path):
    config = load(tmp_path, {"eval_strategy": "no", "save_strategy": "no"})
    assert (config.eval_every, config.save_every) == (0, 0)
    config = load(tmp_path, {"eval_strategy": "steps", "eval_steps": 4})
    assert config.eval_every == 4
    with pytest.raises(ConfigError, match="eval_strategy: epoch has no posttrain equivalent"):
        load(tmp_path, {"eval_strategy": "epoch"})


def test_batches_trl_itself_rejects_fail_by_name():
    with pytest.raises(ConfigError, match="not a whole number of groups of num_generations = 4"):
        from_trl({"per_device_train_batch_size": 6, "num_generations": 4})
    with pytest.raises(ConfigError, match="cannot both be set"):
        from_trl({"steps_per_generation": 2, "generation_batch_size": 16})
    with pytest.raises(ConfigError, match=r"steps_per_generation \(3\) must be a multiple"):
        from_trl({"gradient_accumulation_steps": 2, "steps_per_generation": 3})
    with pytest.raises(ConfigError, match="per_device_train_batch_size: expected an integer"):
        from_trl({"per_device_train_batch_size": "eight"})


def test_a_trl_name_and_its_posttrain_key_must_agree(tmp_path):
    with pytest.raises(ConfigError, match="num_generations and rollout.n set the same thing"):
        load(tmp_path, {"num_generations": 8, "rollout": {"n": 4}})
    with pytest.raises(ConfigError, match="learning_rate and optim.lr"):
        load(tmp_path, {"learning_rate": 1e-5}, ["optim.lr=3e-4"])
    with pytest.raises(ConfigError, match="output_dir and run_name"):
        load(tmp_path, {"output_dir": "runs/a", "run_name": "b"})
    same = load(tmp_path, {"num_generations": 4, "rollout": {"n": 4}, "learning_rate": "3e-4"})
    assert (same.rollout.n, same.optim.lr) == (4, 3e-4)


def test_trl_names_work_as_overrides(tmp_path):
    config = load(tmp_path, {"num_generations": 8}, ["num_generations=2", "beta=0.1"])
    assert (config.rollout.n, config.loss.kl_coef) == (2, 0.1)


def test_names_without_an_equivalent_fail_by_name(tmp_path):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, {"use_liger_kernel": True, "dataset_name": "gsm8k"})
    message = str(err.value)
    assert "use_liger_kernel: a TRL setting with no posttrain equivalent" in message
    assert "dataset_name: a TRL setting with no posttrain equivalent (set data.train" in message


def test_names_accepted_only_with_posttrains_behaviour(tmp_path):
    neutral = {"num_iterations": 1, "use_vllm": False, "optim": "adamw_torch", "top_k": 0}
    assert load(tmp_path, neutral).optim.lr == 3e-4  # `optim` the string is TRL's optimizer
    with pytest.raises(ConfigError, match="num_iterations: 2 has no posttrain equivalent"):
        load(tmp_path, {"num_iterations": 2})
    with pytest.raises(ConfigError, match="use_vllm: true has no posttrain equivalent"):
        load(tmp_path, {"use_vllm": True})


def test_bad_values_name_the_trl_key(tmp_path):
    for mapping, message in [
        ({"num_generations": 1}, "num_generations: expected an integer >= 2"),
        ({"top_p": 1.5}, r"top_p: expected a number in \(0, 1\]"),
        ({"beta": "lots"}, "beta: expected a number >= 0"),
        ({"reward_funcs": [3]}, "reward_funcs: expected a list of names"),
        ({"output_dir": ""}, "output_dir: expected a non-empty string"),
    ]:
        with pytest.raises(ConfigError, match=message):
            load(tmp_path, mapping)


def test_posttrain_configs_pass_through_untouched():
    mapping = {"steps": 3, "seed": 1, "run_name": "x", "optim": {"lr": 1e-3}, "report_to": []}
    assert from_trl(mapping) is mapping
