"""Ordinal reward models (WildReward): training, scoring, baselines and the pairs for BT.

The task is synthetic and ordinal: the assistant's reply (always 8 words) holds 0-3 "good"
keywords and the label is 1 + their count. Rows have the WildReward layout (history + [user,
assistant]). Every model is a nano Qwen2 classifier trained for at most 300 steps (~3 s).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from posttrain.config import ConfigError, load_config
from posttrain.data.io import write_jsonl
from posttrain.eval.calibration import evaluate_reward_model
from posttrain.models.tiny import build_tiny_model
from posttrain.rewards.ordinal import (
    OrdinalRewardConfig,
    OrdinalRewardModel,
    WholeConversationScorer,
    conversation_text,
    coral_biases,
    expected_label,
    load_ordinal_rows,
    ordinal_corpus,
    ordinal_loss,
    pairs_from_labels,
    row_pair,
    train_ordinal_reward_model,
)
from posttrain.rewards.reward_model import (
    RewardModel,
    RewardModelConfig,
    load_preferences,
    reward_model_reward,
    train_reward_model,
)
from posttrain.runs import Run, read_metrics

FILLER = "the a fox dog cat ran sat over under big small red blue tree hill moon".split()  # noqa: SIM905
ANIMALS = "fox owl bear wolf deer hare".split()  # noqa: SIM905
GOOD = ["gold", "star", "gem"]


def ordinal_rows(n: int, seed: int) -> list[dict[str, Any]]:
    """Rows whose label is 1 + the number of GOOD words in the reply (0-3 of them)."""
    rng = random.Random(seed)
    rows = []
    for index in range(n):
        count = rng.randint(0, 3)
        words = [rng.choice(FILLER) for _ in range(8 - count)]
        for _ in range(count):
            words.insert(rng.randrange(len(words) + 1), rng.choice(GOOD))
        history = (
            []
            if rng.random() < 0.5
            else [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
        )
        rows.append(
            {
                "id": f"s{seed}-{index}",
                "history": history,
                "messages": [
                    {"role": "user", "content": f"Tell me about the {rng.choice(ANIMALS)}."},
                    {"role": "assistant", "content": " ".join(words)},
                ],
                "label": 1 + count,
                "raw_label": 1 + count + (count >= 2),
                "user_id": f"u{index % 7}",
                "language": "en",
            }
        )
    return rows


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Nano models gain nothing from more threads, and on a busy 2-core machine OpenMP's
    hand-offs make them many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("ordinal-data")
    train, test = ordinal_rows(300, seed=0), ordinal_rows(150, seed=1)
    write_jsonl(root / "train.jsonl", train)
    return {"root": root, "train": train, "test": test}


@pytest.fixture(scope="module")
def base(data: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One untrained nano backbone (num_labels=1) that several heads start from."""
    out = tmp_path_factory.mktemp("ordinal-base")
    return build_tiny_model(out, ordinal_corpus(data["train"]), size="nano", kind="seq-cls")


def nano(tmp: Path, **changes: Any) -> OrdinalRewardConfig:
    settings: dict[str, Any] = {
        "model_size": "nano",
        "steps": 200,
        "batch_size": 16,
        "learning_rate": 3e-3,
        "output_dir": str(tmp / "out"),
        **changes,
    }
    return OrdinalRewardConfig(**settings)


@pytest.fixture(scope="module")
def thresholds(data: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """WildReward's head from a fresh tiny model (model=None) on the training file."""
    tmp = tmp_path_factory.mktemp("thresholds")
    config = nano(tmp, train_file=str(data["root"] / "train.jsonl"), steps=300)
    with Run(tmp / "run") as run:
        final = train_ordinal_reward_model(config, run)
    return {"final": final, "run": run.path, "model": OrdinalRewardModel(final)}


@pytest.fixture(scope="module")
def coral(data: dict[str, Any], base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("coral")
    return train_ordinal_reward_model(nano(tmp, model=str(base), head="coral"), rows=data["train"])


@pytest.fixture(scope="module")
def regression(data: dict[str, Any], base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("regression")
    config = nano(tmp, model=str(base), head="regression")
    return train_ordinal_reward_model(config, rows=data["train"])


def test_thresholds_head_learns_the_ordinal_task(
    thresholds: dict[str, Any], data: dict[str, Any]
) -> None:
    result = evaluate_reward_model(thresholds["model"], data["test"])
    # Measured over seeds 0-2: RMSE 0.01-0.07 against 1.12 for the constant guess, threshold
    # accuracy 0.99-1.00, ECE 0.01 (at 200 steps RMSE 0.03-0.24 and accuracy above 0.94).
    assert result["rmse"] < 0.5 * result["rmse_predict_mean"], result
    assert min(result["threshold_accuracy"]) > 0.8, result["threshold_accuracy"]
    assert result["probability_source"] == "model" and result["ece"] < 0.15
    losses = [m["ordinal_loss"] for m in read_metrics(thresholds["run"]) if "ordinal_loss" in m]
    assert len(losses) >= 10 and losses[-1] < 0.5 * losses[0]
    final: Path = thresholds["final"]
    meta = json.loads((final / "ordinal.json").read_text())
    assert (meta["head"], meta["num_levels"], len(meta["biases"])) == ("thresholds", 4, 3)
    assert meta["train"]["steps"] == 300
    assert (thresholds["run"] / "checkpoints" / "final").resolve() == final.resolve()
    assert not (final.parent / "base").exists()  # the fresh tiny base is removed


def test_coral_biases_stay_ordered(coral: Path, data: dict[str, Any]) -> None:
    biases = json.loads((coral / "ordinal.json").read_text())["biases"]
    assert len(biases) == 3 and biases[0] > biases[1] > biases[2], biases
    model = OrdinalRewardModel(coral)
    assert model.model.config.num_labels == 1  # one shared score
    result = evaluate_reward_model(model, data["test"])
    assert result["spearman"] > 0.8, result["spearman"]
    # Whatever the free parameters, the biases come out ordered.
    raw = torch.randn(200, 5) * 3
    assert all(torch.all(coral_biases(r).diff() < 0) for r in raw)


def test_loss_equals_hand_computed_bce() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, -0.5, 3.0]])
    labels = torch.tensor([3, 1])  # targets [1, 1, 0] and [0, 0, 0]

    def log_sigmoid(x: float) -> float:
        return -math.log1p(math.exp(-x))

    by_hand = -(
        log_sigmoid(2.0)
        + log_sigmoid(0.0)
        + log_sigmoid(1.0)  # log(1 - sigmoid(-1))
        + log_sigmoid(-0.5)
        + log_sigmoid(0.5)
        + log_sigmoid(-3.0)
    )
    assert float(ordinal_loss(logits, labels, 4)) == pytest.approx(by_hand / 6, abs=1e-6)
    sigmoid = [[1 / (1 + math.exp(-z)) for z in row] for row in logits.tolist()]
    assert expected_label(logits).tolist() == pytest.approx([1 + sum(s) for s in sigmoid])


def test_reward_is_one_plus_sum_of_sigmoids(
    thresholds: dict[str, Any], data: dict[str, Any]
) -> None:
    model: OrdinalRewardModel = thresholds["model"]
    rows = data["test"][:6]
    predictions = model.predict(rows)
    prompt, response = row_pair(rows[0])
    ids = torch.tensor([model.encode(prompt, response)])
    with torch.no_grad():
        z = model.model(input_ids=ids).logits[0] + model.biases
    assert predictions[0]["threshold_probs"] == pytest.approx(z.sigmoid().tolist(), abs=1e-5)
    scores = model.score([row_pair(r)[0] for r in rows], [row_pair(r)[1] for r in rows])
    for p, score in zip(predictions, scores, strict=True):
        assert p["expected_label"] == pytest.approx(1 + sum(p["threshold_probs"]), abs=1e-6)
        assert p["score"] == pytest.approx(score, abs=1e-6)
        assert sum(p["label_probs"]) == pytest.approx(1.0)
        assert p["label"] == 1 + max(range(4), key=p["label_probs"].__getitem__)


def test_reload_gives_identical_scores_and_training_is_deterministic(
    thresholds: dict[str, Any], base: Path, data: dict[str, Any], tmp_path: Path
) -> None:
    rows = data["test"][:20]
    first = thresholds["model"].predict(rows)
    assert OrdinalRewardModel(thresholds["final"]).predict(rows) == first

    def train(seed: int, name: str) -> list[float]:
        config = nano(tmp_path / name, model=str(base), steps=6, seed=seed)
        return OrdinalRewardModel(train_ordinal_reward_model(config, rows=data["train"])).score(
            [row_pair(r)[0] for r in rows], [row_pair(r)[1] for r in rows]
        )

    assert train(3, "a") == train(3, "b")
    assert train(3, "a") != train(4, "c")


def test_scoring_is_batch_invariant(thresholds: dict[str, Any], data: dict[str, Any]) -> None:
    rows = data["test"][:20]
    prompts = [row_pair(r)[0] for r in rows]
    responses = [row_pair(r)[1] for r in rows]
    model: OrdinalRewardModel = thresholds["model"]
    alone = [model.score([p], [r])[0] for p, r in zip(prompts, responses, strict=True)]
    for batch_size in (3, 7, 32):
        batched = OrdinalRewardModel(thresholds["final"], batch_size=batch_size)
        assert batched.score(prompts, responses) == pytest.approx(alone, abs=1e-5)
    order = list(range(len(rows)))
    random.Random(0).shuffle(order)
    shuffled = model.score([prompts[i] for i in order], [responses[i] for i in order])
    assert shuffled == pytest.approx([alone[i] for i in order], abs=1e-5)
    assert model.score([], []) == []
    with pytest.raises(ValueError, match="prompts has 2 items but responses has 1"):
        model.score(["a", "b"], ["c"])


def test_reward_adapter_and_plain_strings(thresholds: dict[str, Any]) -> None:
    model: OrdinalRewardModel = thresholds["model"]
    reward = reward_model_reward(model, name="wildreward")
    prompts = ["Tell me about the fox.", "Tell me about the owl."]
    replies = ["the fox ran gold star gem", "the owl sat"]
    # A model trained on conversations reads plain strings as a one-turn conversation.
    as_chat = model.score(
        [[{"role": "user", "content": p}] for p in prompts],
        [[{"role": "assistant", "content": r}] for r in replies],
    )
    assert reward(prompts, replies) == pytest.approx(as_chat, abs=1e-6)
    assert as_chat[0] > as_chat[1] + 1.5  # three good words against none


def test_regression_baseline_trains(
    regression: Path, data: dict[str, Any], thresholds: dict[str, Any]
) -> None:
    model = OrdinalRewardModel(regression)
    predictions = model.predict(data["test"][:3])
    assert all(p["threshold_probs"] is None and 1 <= p["expected_label"] <= 4 for p in predictions)
    result = evaluate_reward_model(model, data["test"], calibration_rows=data["train"])
    assert result["rmse"] < 0.6 * result["rmse_predict_mean"], result
    assert result["expected_label_source"] == "model"
    assert result["probability_source"] == "isotonic" and 0 <= result["ece"] < 0.3
    with pytest.raises(ValueError, match="not an ordinal reward model"):
        OrdinalRewardModel(thresholds["final"].parent)


def test_pairs_from_labels(data: dict[str, Any], tmp_path: Path) -> None:
    rows = data["train"]
    by_id = {r["id"]: r for r in rows}
    pairs = pairs_from_labels(rows, seed=0)
    assert len(pairs) >= 0.9 * len(rows)
    for pair in pairs:
        chosen, rejected = by_id[pair["chosen_id"]], by_id[pair["rejected_id"]]
        assert chosen["label"] > rejected["label"]
        assert pair["margin"] == chosen["label"] - rejected["label"]
        assert pair["prompt"] == "" and pair["chosen"] == conversation_text(*row_pair(chosen))
        assert pair["rejected"] == conversation_text(*row_pair(rejected))
    assert pairs == pairs_from_labels(rows, seed=0)
    assert pairs != pairs_from_labels(rows, seed=1)
    # Replies to one prompt are paired within their group (capped), and across groups.
    prompt = [{"role": "user", "content": "Rate this."}]
    group = [
        {
            "id": f"g{i}",
            "messages": [*prompt, {"role": "assistant", "content": f"r{i}"}],
            "label": y,
        }
        for i, y in enumerate([1, 2, 3, 4, 4])
    ]
    other = [{"id": "o", "prompt": "Other.", "response": "x", "label": 2}]
    grouped = pairs_from_labels(group + other, seed=0, max_pairs_per_prompt_group=3)
    kinds = [p["pair"] for p in grouped]
    assert kinds.count("same-prompt") == 3
    assert all(
        "o" in (p["chosen_id"], p["rejected_id"]) for p in grouped if p["pair"] != "same-prompt"
    )
    write_jsonl(tmp_path / "pairs.jsonl", pairs)
    assert len(load_preferences(tmp_path / "pairs.jsonl")) == len(pairs)


def test_bradley_terry_baseline_trains_on_derived_pairs(
    data: dict[str, Any], base: Path, tmp_path: Path
) -> None:
    write_jsonl(tmp_path / "pairs.jsonl", pairs_from_labels(data["train"], seed=0))
    config = RewardModelConfig(
        model=str(base),
        train_file=str(tmp_path / "pairs.jsonl"),
        steps=10,
        batch_size=16,
        learning_rate=3e-3,
        output_dir=str(tmp_path / "bt"),
    )
    bt = RewardModel(train_reward_model(config))
    scorer = WholeConversationScorer(bt)
    prompt, response = row_pair(data["test"][0])
    assert scorer.score([prompt], [response]) == bt.score(
        [""], [conversation_text(prompt, response)]
    )
    result = evaluate_reward_model(scorer, data["test"], calibration_rows=data["train"])
    assert result["probability_source"] == "isotonic"
    assert {"rmse", "ece", "spearman", "margin_accuracy"} <= set(result)


def test_config_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="head must be one of"):
        OrdinalRewardConfig(head="ordinal")
    with pytest.raises(ValueError, match="num_levels must be at least 2"):
        OrdinalRewardConfig(num_levels=1)
    with pytest.raises(ValueError, match="batch_size must be positive"):
        OrdinalRewardConfig(batch_size=0)
    with pytest.raises(ValueError, match="steps must be at least 1"):
        OrdinalRewardConfig(steps=0)
    with pytest.raises(ConfigError, match="head must be one of"):
        load_config(OrdinalRewardConfig, overrides=["head=bogus"])
    with pytest.raises(ConfigError, match="model_size must be one of"):
        load_config(OrdinalRewardConfig, overrides=["model_size=huge"])
    with pytest.raises(ValueError, match="train_file is required"):
        train_ordinal_reward_model(OrdinalRewardConfig(output_dir=str(tmp_path)))

    path = tmp_path / "bad.jsonl"
    good = {"prompt": "p", "response": "r", "label": 2}
    write_jsonl(path, [good, {**good, "label": 5}])
    with pytest.raises(ValueError, match=r"row 2: 'label' must be an integer in 1\.\.4, got 5"):
        load_ordinal_rows(path)
    user = {"role": "user", "content": "hi"}
    write_jsonl(path, [{"messages": [user], "label": 1}])
    with pytest.raises(ValueError, match="row 1: the last message must be the assistant's reply"):
        load_ordinal_rows(path)
    write_jsonl(path, [{"text": "x", "label": 1}])
    with pytest.raises(ValueError, match="row 1: a row needs 'messages'"):
        load_ordinal_rows(path)
    with pytest.raises(ValueError, match="no labelled rows"):
        train_ordinal_reward_model(OrdinalRewardConfig(output_dir=str(tmp_path)), rows=[])
    with pytest.raises(ValueError, match="must be >= 0"):
        pairs_from_labels([good], pairs_per_item=-1)
    with pytest.raises(TypeError, match="score"):
        WholeConversationScorer(object())  # type: ignore[arg-type]
