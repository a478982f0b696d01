"""Bradley–Terry reward models: TRL training, scoring that matches it, and the reward adapter.

The task is synthetic and separable: the chosen response contains the word "dragon", the
rejected one does not. Every model is a nano Qwen2 classifier trained for a few dozen steps.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from posttrain.config import ConfigError, load_config
from posttrain.data.io import write_jsonl
from posttrain.rewards.registry import reward_name
from posttrain.rewards.reward_model import (
    RewardModel,
    RewardModelConfig,
    Scorer,
    build_reward_trainer,
    encode,
    load_preferences,
    reward_model_reward,
    train_reward_model,
)
from posttrain.rewards.spec import get_reward
from posttrain.runs import Run, read_metrics

# Filler vocabulary for responses; the chosen one of each pair also contains KEYWORD.
WORDS = "the a fox dog cat ran sat over under big small red blue tree hill moon".split()  # noqa: SIM905
ANIMALS = "fox owl bear wolf deer hare".split()  # noqa: SIM905
KEYWORD = "dragon"


def preference_pairs(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)

    def response(with_keyword: bool) -> str:
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 12))]
        if with_keyword:
            words.insert(rng.randrange(len(words) + 1), KEYWORD)
        return " ".join(words)

    return [
        {
            "prompt": f"Tell a story about the {rng.choice(ANIMALS)}.",
            "chosen": response(True),
            "rejected": response(False),
        }
        for _ in range(n)
    ]


def nano_config(tmp: Path, **changes: Any) -> RewardModelConfig:
    settings: dict[str, Any] = {
        "model_size": "nano",
        "steps": 40,
        "batch_size": 16,
        "learning_rate": 3e-3,
        "output_dir": str(tmp / "out"),
        **changes,
    }
    return RewardModelConfig(**settings)


def pairwise(scorer: Scorer, rows: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    prompts = [r["prompt"] for r in rows]
    chosen = scorer.score(prompts, [r["chosen"] for r in rows])
    rejected = scorer.score(prompts, [r["rejected"] for r in rows])
    return chosen, rejected


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Nano models gain nothing from more threads, and on a busy 2-core machine OpenMP's
    hand-offs made this file 20x slower (140 s instead of 8 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("preferences")
    train, heldout = preference_pairs(200, seed=0), preference_pairs(100, seed=1)
    write_jsonl(root / "train.jsonl", train)
    write_jsonl(root / "eval.jsonl", heldout)
    return {"root": root, "train": train, "heldout": heldout}


@pytest.fixture(scope="module")
def trained(data: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("trained")
    config = nano_config(
        tmp,
        train_file=str(data["root"] / "train.jsonl"),
        eval_file=str(data["root"] / "eval.jsonl"),
    )
    with Run(tmp / "run") as run:
        final = train_reward_model(config, run)
    return {"config": config, "final": final, "run": run.path, "model": RewardModel(final)}


def test_training_separates_heldout_pairs(trained: dict[str, Any], data: dict[str, Any]) -> None:
    chosen, rejected = pairwise(trained["model"], data["heldout"])
    accuracy = sum(c > r for c, r in zip(chosen, rejected, strict=True)) / len(chosen)
    # Measured 1.00 on seeds 0-5 (chance is 0.5; an untrained model scores near 0.5).
    assert accuracy > 0.9, accuracy
    metrics = read_metrics(trained["run"])
    losses = [m["rm_loss"] for m in metrics if "rm_loss" in m]
    assert len(losses) >= 10 and losses[-1] < 0.5 * losses[0] and losses[0] > 0.5
    assert any(m.get("rm_eval_accuracy", 0) > 0.9 for m in metrics)
    assert (trained["run"] / "checkpoints" / "final").resolve() == trained["final"].resolve()
    assert (trained["final"] / "reward_model.json").is_file()
    assert not (trained["final"].parent / "trainer").exists()  # scratch removed


@pytest.mark.parametrize("seed", [1, 2])
def test_accuracy_holds_over_seeds(seed: int, data: dict[str, Any], tmp_path: Path) -> None:
    final = _train_small(tmp_path, preference_pairs(200, seed=10 + seed), seed=seed, steps=30)
    chosen, rejected = pairwise(RewardModel(final), data["heldout"])
    accuracy = sum(c > r for c, r in zip(chosen, rejected, strict=True)) / len(chosen)
    assert accuracy > 0.9, (seed, accuracy)


def test_scores_equal_trainer_side_logits(trained: dict[str, Any], data: dict[str, Any]) -> None:
    """TRL's preprocessing and our scoring agree on token ids, and hence on scores."""
    rows = data["heldout"][:12]
    trainer = build_reward_trainer(
        trained["config"], trained["final"], rows, output_dir=trained["final"].parent / "t"
    )
    processed = trainer.train_dataset
    model: RewardModel = trained["model"]
    for row, ids in zip(rows, processed, strict=True):
        assert ids["chosen_ids"] == model.encode(row["prompt"], row["chosen"])
        assert ids["rejected_ids"] == model.encode(row["prompt"], row["rejected"])
    batch = trainer.data_collator([processed[i] for i in range(len(processed))])
    batch = {k: v.to(trainer.model.device) for k, v in batch.items()}
    trainer.model.eval()
    with torch.no_grad():
        logits = trainer.model(**batch).logits.squeeze(-1).tolist()
    chosen, rejected = pairwise(model, rows)
    assert logits == pytest.approx(chosen + rejected, abs=1e-4)


def test_margin_and_centring_enter_the_loss_as_trl_defines(
    trained: dict[str, Any], data: dict[str, Any]
) -> None:
    rows = [{**r, "margin": 2.0 * i} for i, r in enumerate(data["heldout"][:8])]
    model: RewardModel = trained["model"]
    chosen, rejected = (torch.tensor(s) for s in pairwise(model, rows))
    margins = torch.tensor([r["margin"] for r in rows])

    def loss(**changes: Any) -> float:
        config = nano_config(Path(trained["final"]).parent, **changes)
        trainer = build_reward_trainer(config, trained["final"], rows)
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])
        batch = {k: v.to(trainer.model.device) for k, v in batch.items()}
        with torch.no_grad():
            return float(trainer.compute_loss(trainer.model, batch))

    bt = -torch.nn.functional.logsigmoid(chosen - rejected).mean()
    with_margin = -torch.nn.functional.logsigmoid(chosen - rejected - margins).mean()
    centring = torch.mean((chosen + rejected) ** 2)
    assert loss() == pytest.approx(float(bt), abs=1e-4)  # margin column dropped
    assert loss(margin=True) == pytest.approx(float(with_margin), abs=1e-4)
    assert with_margin > bt + 0.1  # the margins really change the number
    assert loss(margin=True, center_rewards_coefficient=0.5) == pytest.approx(
        float(with_margin + 0.5 * centring), abs=1e-4
    )


def _train_small(tmp: Path, rows: list[dict[str, Any]], **changes: Any) -> Path:
    write_jsonl(tmp / "train.jsonl", rows)
    return train_reward_model(nano_config(tmp, train_file=str(tmp / "train.jsonl"), **changes))


def test_centring_shrinks_rewards(data: dict[str, Any], tmp_path: Path) -> None:
    msq = {}
    for coefficient in (None, 1.0):
        final = _train_small(
            tmp_path / str(coefficient), data["train"], center_rewards_coefficient=coefficient
        )
        chosen, rejected = pairwise(RewardModel(final), data["heldout"])
        msq[coefficient] = sum(c * c + r * r for c, r in zip(chosen, rejected, strict=True))
    # Measured over seeds 0-2: about 10.7 without centring, 0.2-2.6 with coefficient 1.
    assert msq[1.0] < 0.5 * msq[None], msq


def test_training_with_margin_rows(data: dict[str, Any], tmp_path: Path) -> None:
    rows = [{**r, "margin": 3.0} for r in data["train"]]
    final = _train_small(tmp_path, rows, margin=True, steps=20)
    chosen, rejected = pairwise(RewardModel(final), data["heldout"])
    # The margin loss asks for r_chosen - r_rejected > 3, and training gets there.
    gaps = [c - r for c, r in zip(chosen, rejected, strict=True)]
    assert sum(gaps) / len(gaps) > 3.0


def test_scoring_is_batch_invariant(trained: dict[str, Any], data: dict[str, Any]) -> None:
    rows = data["heldout"][:20]
    prompts = [r["prompt"] for r in rows]
    responses = [r["chosen"] if i % 2 else r["rejected"] * (1 + i % 3) for i, r in enumerate(rows)]
    model: RewardModel = trained["model"]
    alone = [model.score([p], [r])[0] for p, r in zip(prompts, responses, strict=True)]
    for batch_size in (3, 7, 32):
        batched = RewardModel(trained["final"], batch_size=batch_size)
        assert batched.score(prompts, responses) == pytest.approx(alone, abs=1e-5)
    order = list(range(len(rows)))
    random.Random(0).shuffle(order)
    shuffled = model.score([prompts[i] for i in order], [responses[i] for i in order])
    assert shuffled == pytest.approx([alone[i] for i in order], abs=1e-5)
    assert model.score([], []) == []
    with pytest.raises(ValueError, match="prompts has 2 items but responses has 1"):
        model.score(["a", "b"], ["c"])


def test_long_inputs_keep_their_end(trained: dict[str, Any]) -> None:
    model = RewardModel(trained["final"], max_length=16)
    ids = model.encode("a prompt", "the fox ran " * 20 + KEYWORD)
    full = encode(model.tokenizer, "a prompt", "the fox ran " * 20 + KEYWORD)
    assert len(ids) == 16 and ids == full[-16:]
    # The chat template (ChatML) closes the reply with <|im_end|> and a newline.
    assert model.tokenizer.convert_ids_to_tokens(ids[-2:]) == ["<|im_end|>", "Ċ"]
    assert all(math.isfinite(s) for s in model.score(["a prompt"], ["the fox ran " * 200]))


def test_reward_adapter_takes_strings_and_conversations(
    trained: dict[str, Any], data: dict[str, Any]
) -> None:
    rows = data["heldout"][:6]
    model: RewardModel = trained["model"]
    reward = reward_model_reward(model, name="story_rm")
    assert reward.__name__ == "story_rm"
    prompts = [r["prompt"] for r in rows]
    completions = [r["chosen"] for r in rows]
    expected = model.score(prompts, completions)
    assert reward(prompts, completions, completion_ids=None, extra=[0] * 6) == pytest.approx(
        expected, abs=1e-6
    )
    # A string is one user (or assistant) message, so the chat forms score the same ...
    chat_prompts = [[{"role": "user", "content": p}] for p in prompts]
    chat_completions = [[{"role": "assistant", "content": c}] for c in completions]
    assert reward(chat_prompts, chat_completions) == pytest.approx(expected, abs=1e-6)
    # ... and a system message is part of the conversation the model scores.
    system = [[{"role": "system", "content": "You tell stories."}, *p] for p in chat_prompts]
    with_system = reward(system, completions)
    assert with_system == pytest.approx(model.score(system, completions), abs=1e-6)
    assert with_system != pytest.approx(expected, abs=1e-6)
    assert reward([], []) == []
    # An RL config names a reward model by its directory.
    named = get_reward(f"reward-model:{trained['final']}")
    assert named(prompts, completions) == pytest.approx(expected, abs=1e-6)
    assert reward_name(named) == "reward_model"
    with pytest.raises(ValueError, match="no such directory"):
        get_reward("reward-model:/nowhere/at/all")


def test_reward_adapter_accepts_any_scorer() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.seen: list[tuple[Any, Any]] = []

        def score(self, prompts: list[Any], responses: list[Any]) -> list[float]:
            self.seen.extend(zip(prompts, responses, strict=True))
            return [float(len(r)) for r in responses]

    recorder = Recorder()
    reward = reward_model_reward(recorder)
    assert reward.__name__ == "reward_model"
    history = [{"role": "user", "content": "ab"}, {"role": "assistant", "content": "c"}]
    assert reward([history], ["xyz"]) == [3.0]
    assert recorder.seen == [(history, "xyz")]  # the whole conversation reaches the scorer
    with pytest.raises(TypeError, match="score"):
        reward_model_reward(object())  # type: ignore[arg-type]


def test_conversational_rows_tokenise_as_trl_does(trained: dict[str, Any]) -> None:
    rows = [
        {
            "prompt": [{"role": "user", "content": "Tell a story about the owl."}],
            "chosen": [{"role": "assistant", "content": "the owl met a dragon"}],
            "rejected": [{"role": "assistant", "content": "the owl sat"}],
        }
    ]
    trainer = build_reward_trainer(
        trained["config"], trained["final"], rows, output_dir=trained["final"].parent / "t"
    )
    tokenizer = trainer.processing_class
    ids = encode(tokenizer, rows[0]["prompt"], rows[0]["chosen"])
    assert trainer.train_dataset[0]["chosen_ids"] == ids
    assert tokenizer.convert_tokens_to_ids("<|im_start|>") in ids  # the chat template was used
    # A plain-string response to a conversational prompt becomes the assistant message.
    assert encode(tokenizer, rows[0]["prompt"], "the owl met a dragon") == ids
    # With a chat template, plain-text rows train as one-turn conversations, so a file may
    # mix both and every row is tokenised the way scoring tokenises it.
    mixed = [*rows, {"prompt": "p", "chosen": "c", "rejected": "r"}]
    trainer = build_reward_trainer(
        trained["config"], trained["final"], mixed, output_dir=trained["final"].parent / "t"
    )
    plain = encode(tokenizer, "p", "c")
    assert trainer.train_dataset[1]["chosen_ids"] == plain
    assert tokenizer.convert_tokens_to_ids("<|im_start|>") in plain


def test_config_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="batch_size must be positive"):
        RewardModelConfig(batch_size=0)
    with pytest.raises(ConfigError, match="model_size must be one of"):
        load_config(RewardModelConfig, overrides=["model_size=huge"])
    with pytest.raises(ConfigError, match="center_rewards_coefficient"):
        load_config(RewardModelConfig, overrides=["center_rewards_coefficient=-1"])
    with pytest.raises(ValueError, match="train_file is required"):
        train_reward_model(RewardModelConfig(output_dir=str(tmp_path)))

    path = tmp_path / "bad.jsonl"
    write_jsonl(path, [{"prompt": "p", "chosen": "c", "rejected": "r"}, {"prompt": "p"}])
    with pytest.raises(ValueError, match=r"row 2 has no 'chosen' field"):
        load_preferences(path)
    write_jsonl(path, [{"prompt": "p", "chosen": 3, "rejected": "r"}])
    with pytest.raises(ValueError, match=r"row 1: 'chosen' must be a string"):
        load_preferences(path)
    write_jsonl(path, [{"prompt": "p", "chosen": "c", "rejected": "r"}])
    with pytest.raises(ValueError, match=r"row 1: margin=true needs a numeric 'margin'"):
        load_preferences(path, margin=True)


def test_rows_longer_than_max_length_are_refused(trained: dict[str, Any]) -> None:
    rows = [{"prompt": "p", "chosen": "the fox " * 50, "rejected": "the dog " * 50}]
    config = nano_config(trained["final"].parent, max_length=8)
    with pytest.raises(ValueError, match="longer than max_length=8"):
        build_reward_trainer(config, trained["final"], rows)
