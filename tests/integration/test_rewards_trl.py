"""A posttrain reward goes into TRL's GRPOTrainer as-is: no adapter between the two."""

import math

from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer

from posttrain.rewards import RewardSet, get_reward


def test_builtin_rewards_train_one_grpo_step(tiny_model_dir, tmp_path):
    dataset = Dataset.from_list(
        [{"prompt": [{"role": "user", "content": "What is 2 + 3?"}], "answer": "5"}] * 4
    )
    args = GRPOConfig(
        output_dir=str(tmp_path),
        max_steps=1,
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=8,
        report_to="none",
        use_cpu=True,
        bf16=False,
        logging_steps=1,
        save_strategy="no",
    )
    trainer = GRPOTrainer(
        model=str(tiny_model_dir),
        reward_funcs=[get_reward("exact_match"), get_reward("think_format")],
        args=args,
        train_dataset=dataset,
    )
    trainer.train()

    assert trainer.state.global_step == 1
    logged = {key: value for record in trainer.state.log_history for key, value in record.items()}
    for name in ("exact_match", "think_format"):
        assert 0.0 <= logged[f"rewards/{name}/mean"] <= 1.0
        assert math.isfinite(logged[f"rewards/{name}/std"])
    # RewardSet.metrics reports under the same names TRL logs.
    rewards = RewardSet(["exact_match", "think_format"])
    ours = rewards.metrics(rewards(["q"], ["5"], answer=["5"]))
    assert set(ours) <= set(logged)
