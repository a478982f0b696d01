"""Reward models score the chat template's rendering of the whole conversation, in every path.

The model is `llama_template_rm` (tests/conftest.py): a nano classifier whose tokenizer carries
a Llama-3-style header template, not posttrain's ChatML, as a real checkpoint would. A spy on
`batched_logits` records the token ids each path actually scores.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from posttrain.eval.best_of_n import best_of_n_quality
from posttrain.eval.rm_bench import evaluate_scorer
from posttrain.eval.set_scorers import load_scorer
from posttrain.rewards import ordinal
from posttrain.rewards import reward_model as rm_module
from posttrain.rewards.ordinal import OrdinalRewardConfig, OrdinalRewardModel
from posttrain.rewards.reward_model import (
    RewardModel,
    RewardModelConfig,
    build_reward_trainer,
    parse_model_options,
)
from posttrain.rewards.spec import get_reward
from posttrain.specs import SpecKind, parse_spec

PROMPT = "Tell a story about the owl."
REPLY = "the owl sat on the hill"
HISTORY = [
    {"role": "system", "content": "You tell short stories."},
    {"role": "user", "content": "Tell a story about the fox."},
    {"role": "assistant", "content": "the fox ran over the hill"},
    {"role": "user", "content": PROMPT},
]


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def templated(tokenizer: Any, conversation: list[dict[str, str]]) -> list[int]:
    """The ids `apply_chat_template` gives the whole conversation (checked not to be ChatML)."""
    ids = list(
        tokenizer.apply_chat_template(conversation, tokenize=True, return_dict=True)["input_ids"]
    )
    assert tokenizer.convert_tokens_to_ids("<|start_header_id|>") in ids
    assert "<|im_start|>" not in tokenizer.convert_ids_to_tokens(ids)
    return ids


@pytest.fixture(scope="module")
def model(llama_template_rm: Path) -> RewardModel:
    return RewardModel(llama_template_rm)


@pytest.fixture
def scored_ids(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """Every row of token ids a reward model runs its classifier on, in input order."""
    seen: list[list[int]] = []
    real = rm_module.batched_logits

    def spy(model: Any, ids: list[list[int]], *args: Any) -> torch.Tensor:
        seen.extend(list(x) for x in ids)
        return real(model, ids, *args)

    monkeypatch.setattr(rm_module, "batched_logits", spy)
    monkeypatch.setattr(ordinal, "batched_logits", spy)
    return seen


def direct_score(model: RewardModel, ids: list[int]) -> float:
    with torch.inference_mode():
        return float(model.model(input_ids=torch.tensor([ids])).logits[0, 0])


def test_a_string_pair_is_one_user_and_one_assistant_message(
    model: RewardModel, scored_ids: list[list[int]]
) -> None:
    [score] = model.score([PROMPT], [REPLY])
    expected = templated(model.tokenizer, [user(PROMPT), assistant(REPLY)])
    assert scored_ids == [expected]
    assert expected[-1] == model.tokenizer.convert_tokens_to_ids("<|eot_id|>")
    assert score == pytest.approx(direct_score(model, expected), abs=1e-5)


def test_history_is_scored_whole(model: RewardModel, scored_ids: list[list[int]]) -> None:
    scores = model.score([HISTORY, HISTORY], [REPLY, [assistant(REPLY)]])
    expected = templated(model.tokenizer, [*HISTORY, assistant(REPLY)])
    assert scored_ids == [expected, expected]
    assert scores[0] == scores[1]
    # The history matters: without it the model sees (and scores) something else.
    assert scores[0] != pytest.approx(model.score([PROMPT], [REPLY])[0], abs=1e-6)


def test_rl_reward_scores_whole_conversations(
    llama_template_rm: Path, model: RewardModel, scored_ids: list[list[int]]
) -> None:
    reward = get_reward(f"reward-model:{llama_template_rm}?device=cpu&batch_size=2")
    # TRL's shapes: conversational prompts with history, completions as strings or messages
    # (and a tuple, as a prompt may arrive from verl's parquet columns).
    prompts: list[Any] = [HISTORY, [user(PROMPT)], PROMPT, tuple(HISTORY)]
    completions: list[Any] = [REPLY, [assistant(REPLY)], REPLY, [assistant("a dragon")]]
    values = reward(prompts, completions, completion_ids=None, extra=[0] * 4)
    conversations = [
        [*HISTORY, assistant(REPLY)],
        [user(PROMPT), assistant(REPLY)],
        [user(PROMPT), assistant(REPLY)],
        [*HISTORY, assistant("a dragon")],
    ]
    expected = [templated(model.tokenizer, c) for c in conversations]
    assert scored_ids == expected
    assert values == pytest.approx([direct_score(model, ids) for ids in expected], abs=1e-5)
    with pytest.raises(TypeError, match="string or a list of chat messages"):
        reward([{"text": PROMPT}], [REPLY])


def test_model_spec_options_are_checked(llama_template_rm: Path) -> None:
    text = f"reward-model:{llama_template_rm}?torch_dtype=bfloat16&max_length=64"
    spec = parse_spec(text, [SpecKind.REWARD_MODEL])
    assert spec.path == llama_template_rm
    assert parse_model_options(spec.query, text) == {"torch_dtype": "bfloat16", "max_length": 64}
    # A server has its own settings: a URL's query is the URL's.
    served = parse_spec("reward-model:http://127.0.0.1:8100/?a=b", [SpecKind.REWARD_MODEL])
    assert served.url == "http://127.0.0.1:8100/?a=b" and not served.query
    with pytest.raises(ValueError, match="unknown option 'precision'"):
        get_reward(f"reward-model:{llama_template_rm}?precision=fp8")
    with pytest.raises(ValueError, match="torch_dtype must be one of"):
        get_reward(f"reward-model:{llama_template_rm}?torch_dtype=fp8")
    with pytest.raises(ValueError, match="batch_size must be an integer, got 'two'"):
        get_reward(f"reward-model:{llama_template_rm}?batch_size=two")
    with pytest.raises(ValueError, match="key=value"):
        get_reward(f"reward-model:{llama_template_rm}?bfloat16")


def test_dtype_and_device_options(llama_template_rm: Path, model: RewardModel) -> None:
    assert model.model.dtype == torch.float32  # auto on the CPU
    half = RewardModel(llama_template_rm, torch_dtype="bfloat16", device="cpu")
    assert half.model.dtype == torch.bfloat16 and half.device == torch.device("cpu")
    [low], [full] = half.score([PROMPT], [REPLY]), model.score([PROMPT], [REPLY])
    assert low == pytest.approx(full, abs=0.1)
    with pytest.raises(ValueError, match="torch_dtype must be one of"):
        RewardModel(llama_template_rm, torch_dtype="fp8")
    with pytest.raises(ValueError, match="device 'tpu9' is not a torch device"):
        RewardModel(llama_template_rm, device="tpu9")


def test_rm_bench_and_best_of_n_score_through_the_template(
    llama_template_rm: Path, model: RewardModel, scored_ids: list[list[int]], tmp_path: Path
) -> None:
    scorer = load_scorer(f"{llama_template_rm}?torch_dtype=float32")
    candidates = [REPLY, "a dragon sat", "the moon"]
    instance = {"id": "a", "prompt": PROMPT, "chosen": REPLY, "rejected": candidates[1:]}
    evaluate_scorer(scorer, [instance], tmp_path)
    expected = [templated(model.tokenizer, [user(PROMPT), assistant(c)]) for c in candidates]
    assert scored_ids == expected
    record = json.loads((tmp_path / "scores.jsonl").read_text())
    assert record["scores"] == pytest.approx(
        [direct_score(model, ids) for ids in expected], abs=1e-5
    )
    scored_ids.clear()
    pool = {
        "prompt": PROMPT,
        "candidates": [
            {"text": c, "flawed": i > 0, "route": "r"} for i, c in enumerate(candidates)
        ],
    }
    best_of_n_quality(scorer, [pool], [3])
    assert scored_ids == expected


def test_plain_rows_train_on_the_rendering_scoring_uses(
    llama_template_rm: Path, model: RewardModel, tmp_path: Path
) -> None:
    rows = [
        {"prompt": PROMPT, "chosen": REPLY, "rejected": "the moon"},
        {"prompt": HISTORY, "chosen": [assistant(REPLY)], "rejected": "the moon"},
    ]
    config = RewardModelConfig(model_size="nano", output_dir=str(tmp_path))
    trainer = build_reward_trainer(config, llama_template_rm, rows, output_dir=tmp_path / "t")
    for row, processed in zip(rows, trainer.train_dataset, strict=True):
        for key in ("chosen", "rejected"):
            prompt, response = row["prompt"], row[key]
            messages = prompt if isinstance(prompt, list) else [user(prompt)]
            reply = response if isinstance(response, list) else [assistant(response)]
            expected = templated(model.tokenizer, [*messages, *reply])
            assert processed[f"{key}_ids"] == expected == model.encode(prompt, response)


def test_ordinal_model_scores_through_the_template(
    llama_template_rm: Path, model: RewardModel, scored_ids: list[list[int]], tmp_path: Path
) -> None:
    rows = [
        {"prompt": PROMPT, "response": REPLY, "label": 3},
        {"history": HISTORY[:3], "messages": [HISTORY[3], assistant("the moon")], "label": 1},
    ]
    config = OrdinalRewardConfig(
        model=str(llama_template_rm), steps=1, batch_size=2, output_dir=str(tmp_path)
    )
    final = ordinal.train_ordinal_reward_model(config, rows=rows)
    scored = OrdinalRewardModel(final, torch_dtype="float32")
    scored.score([HISTORY, PROMPT], [REPLY, REPLY])
    assert scored_ids == [
        templated(model.tokenizer, [*HISTORY, assistant(REPLY)]),
        templated(model.tokenizer, [user(PROMPT), assistant(REPLY)]),
    ]


@pytest.fixture(scope="module")
def plain_rm(llama_template_rm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same model with the chat template removed from its tokenizer."""
    out = tmp_path_factory.mktemp("plain-rm") / "plain-rm"
    shutil.copytree(llama_template_rm, out)
    (out / "chat_template.jinja").unlink()
    config = json.loads((out / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (out / "tokenizer_config.json").write_text(json.dumps(config))
    return out


def test_without_a_template_the_plain_format_and_one_warning(
    plain_rm: Path, scored_ids: list[list[int]], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="posttrain.rewards.reward_model"):
        first = RewardModel(plain_rm)
        second = RewardModel(plain_rm)
        first.score([PROMPT, HISTORY], [REPLY, [assistant(REPLY)]])
        second.score([PROMPT], [REPLY])
    warned = [r.getMessage() for r in caplog.records if "no chat template" in r.getMessage()]
    assert len(warned) == 1 and "plain-rm" in warned[0]
    tokenizer = first.tokenizer
    assert not tokenizer.chat_template
    history = "\n\n".join(m["content"] for m in HISTORY)
    eos = tokenizer.eos_token
    assert scored_ids == [
        tokenizer(text=f"{PROMPT}\n\n{REPLY}{eos}")["input_ids"],
        tokenizer(text=f"{history}\n\n{REPLY}{eos}")["input_ids"],
        tokenizer(text=f"{PROMPT}\n\n{REPLY}{eos}")["input_ids"],
    ]
