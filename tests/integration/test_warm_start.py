"""The warm-started arithmetic policy: learnable but unsolved, and cached by content hash."""

import json
from dataclasses import replace

import pytest

from posttrain.data.arithmetic import ArithmeticTask, make_splits, validation_split
from posttrain.data.io import write_jsonl
from posttrain.runs import Run, read_metrics
from posttrain.sft.warm_start import WarmStartConfig, content_key, warm_start


def test_heldout_accuracy_is_clearly_nontrivial_but_imperfect(warm_started):
    result, run_dir = warm_started
    # SFT stops at the first validation evaluation (every 25 steps from 400) at >= 50%, so
    # the held-out accuracy lands mid-range whatever the machine's floating-point order
    # (with a fixed 800 steps it was 52%, 55% or 28%). RL needs a reward that is neither
    # always 0 nor always 1.
    assert 0.40 <= result.accuracy <= 0.65, result.accuracy
    assert result.stopped_at_step is not None and result.stopped_at_step <= 1200
    losses = [r["sft_loss"] for r in read_metrics(run_dir) if "sft_loss" in r]
    assert len(losses) >= 10 and losses[-1] < 0.5 * losses[0]


def test_rerun_with_same_inputs_reuses_the_cache(warm_started, warm_start_config, tmp_path):
    first, _ = warm_started
    with Run.create("again", root=tmp_path) as run:
        again = warm_start(warm_start_config, run)
    assert again.cached and again.model_dir == first.model_dir
    assert again.accuracy == first.accuracy
    # The run still shows the whole SFT curve and points at the model it used.
    assert sum("sft_loss" in r for r in read_metrics(run.path)) >= 10
    assert (run.checkpoints / "final").resolve() == first.model_dir.resolve()


def test_cache_key_follows_content(tmp_path):
    config = WarmStartConfig()
    train, _ = make_splits(config.task)
    rows = [{"prompt": r["prompt"], "completion": r["completion"]} for r in train]
    key = content_key(config, rows)
    assert content_key(replace(config, cache_dir="/elsewhere"), rows) == key
    # Trackers only watch the training.
    assert content_key(replace(config, report_to=["tensorboard", "wandb"]), rows) == key
    # The rows are hashed, not where they were read from: a copy elsewhere hits the cache.
    assert content_key(replace(config, train_file="/copy/of/train.jsonl"), rows) == key
    # Recomputing activations changes memory, not weights (test_sft: bitwise equal).
    assert content_key(replace(config, gradient_checkpointing=True), rows) == key
    assert content_key(replace(config, steps=10), rows) != key
    assert content_key(config, rows[:-1]) != key
    assert content_key(replace(config, task=ArithmeticTask(seed=1)), rows) != key
    # Where SFT stops changes the weights: the target, the cadence and the rows watched.
    assert content_key(replace(config, stop_at_accuracy=0.6), rows) != key
    assert content_key(replace(config, eval_every=10), rows) != key
    assert content_key(replace(config, eval_start=0), rows) != key
    assert content_key(replace(config, task=ArithmeticTask(n_validation=100)), rows) != key
    validation = [{"prompt": r["prompt"], "answer": r["answer"]} for r in train[:5]]
    assert content_key(config, rows, validation) != key
    assert content_key(replace(config, validation_file="/a.jsonl"), rows, validation) == (
        content_key(replace(config, validation_file="/b.jsonl"), rows, validation)
    )
    # A base model is its files, wherever they lie (a recipe builds one per run directory).
    for name in ("run-a", "run-b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text('{"hidden_size": 8}')
    base = content_key(replace(config, base_model=str(tmp_path / "run-a")), rows)
    assert content_key(replace(config, base_model=str(tmp_path / "run-b")), rows) == base
    (tmp_path / "run-b" / "config.json").write_text('{"hidden_size": 16}')
    assert content_key(replace(config, base_model=str(tmp_path / "run-b")), rows) != base


def test_the_default_cache_key_is_the_one_the_readme_figures_were_measured_with():
    # A new WarmStartConfig field that does not change the weights belongs in content_key's
    # `ignored`; one that does changes this key, and the README's figures must be remeasured.
    config = WarmStartConfig()
    train, _ = make_splits(config.task)
    rows = [{"prompt": r["prompt"], "completion": r["completion"]} for r in train]
    assert content_key(config, rows) == "db598827e65b3fee"


def test_warm_start_hands_its_settings_and_trackers_to_the_sft_stage(
    tiny_model_dir, tmp_path, monkeypatch
):
    from posttrain.data.io import write_jsonl
    from posttrain.sft import warm_start as module

    seen = {}

    def fake_fine_tune(settings, rows, out, trainer_dir, run=None, name="sft"):
        seen.update(settings=settings, trainer_dir=trainer_dir, n=len(rows))
        out.mkdir(parents=True, exist_ok=True)  # the warm start stages it
        return [{"step": 1, "loss": 2.0, "mean_token_accuracy": 0.5}]

    monkeypatch.setattr(module, "fine_tune", fake_fine_tune)
    train, _ = make_splits(ArithmeticTask(n_train=16, n_test=1))
    config = WarmStartConfig(
        base_model=str(tiny_model_dir),
        train_file=str(write_jsonl(tmp_path / "train.jsonl", train)),
        steps=3,
        learning_rate=1e-3,
        cache_dir=str(tmp_path / "cache"),
        report_to=["tensorboard"],
    )
    with Run.create("warm", root=tmp_path) as run:
        result = warm_start(config, run)
    settings = seen["settings"]
    assert (settings.model, settings.steps, settings.learning_rate) == (
        str(tiny_model_dir),
        3,
        1e-3,
    )
    assert settings.report_to == ["tensorboard"] and seen["n"] == 16
    assert settings.gradient_checkpointing is False  # the warm start's default, not TRL's
    # TRL's tracker files go to the run, not to the cache entry that is renamed into place.
    assert seen["trainer_dir"] == run.path
    assert [r["sft_loss"] for r in read_metrics(run.path) if "sft_loss" in r] == [2.0]
    assert result.accuracy is None and not result.cached


def test_train_and_test_splits_are_disjoint():
    train, test = make_splits(ArithmeticTask())
    seen = {r["prompt"][0]["content"] for r in train}
    assert not seen & {r["prompt"][0]["content"] for r in test}
    assert len(train) == 8000 and len(test) == 200


def _operands(rows):
    return {tuple(int(x) for x in r["prompt"][0]["content"][8:-1].split(" + ")) for r in rows}


def test_the_validation_split_shares_nothing_with_train_or_test():
    task = ArithmeticTask()
    train, test = make_splits(task)
    validation = validation_split(task)
    assert len(validation) == 200
    held_out = _operands(test)
    watched = _operands(validation)
    assert not watched & _operands(train) and not watched & held_out
    # Not even a test question with its operands swapped (the same sum).
    assert not {(b, a) for a, b in watched} & held_out
    assert validation == validation_split(task)  # deterministic
    with pytest.raises(ValueError, match="n_validation"):
        validation_split(ArithmeticTask(max_operand=9, n_train=90, n_test=5, n_validation=10))


def test_stopping_is_on_only_where_there_are_rows_to_watch(tmp_path):
    from posttrain.sft.warm_start import _validation_rows

    assert len(_validation_rows(WarmStartConfig())) == 200
    assert _validation_rows(WarmStartConfig(stop_at_accuracy=None)) == []
    assert _validation_rows(WarmStartConfig(steps=10, eval_every=25, eval_start=0)) == []
    assert _validation_rows(WarmStartConfig(steps=399)) == []  # first evaluation at 400
    assert WarmStartConfig(eval_every=25, eval_start=401).first_eval_step() == 425
    assert WarmStartConfig(eval_every=25, eval_start=0).first_eval_step() == 25
    # A user's own train_file (the recipes'): fixed steps unless a validation_file is given.
    assert _validation_rows(WarmStartConfig(train_file="train.jsonl")) == []
    rows = [{"prompt": [{"role": "user", "content": "What is 1 + 2?"}], "answer": "3"}]
    path = str(write_jsonl(tmp_path / "validation.jsonl", rows))
    assert _validation_rows(WarmStartConfig(train_file="t.jsonl", validation_file=path)) == rows
    with pytest.raises(ValueError, match="stop_at_accuracy"):
        WarmStartConfig(stop_at_accuracy=1.5)
    with pytest.raises(ValueError, match="eval_every"):
        WarmStartConfig(eval_every=0)


def test_sft_stops_at_the_first_evaluation_that_reaches_the_target(
    tiny_model_dir, tmp_path, monkeypatch
):
    """The stopping logic with a scripted validation score: a real SFT run on the untrained
    micro model that ends at the step whose score first reaches the target."""
    from posttrain.sft import warm_start as module

    script = iter([0.1, 0.3, 0.55, 0.9])
    calls = []

    def fake_scorer(tokenizer_dir, rows, max_tokens):
        def score(model):
            calls.append(model.training)  # the callback restores training mode after
            return next(script)

        return score

    monkeypatch.setattr(module, "_greedy_accuracy", fake_scorer)
    task = ArithmeticTask(n_train=64, n_test=4, n_validation=4)
    config = WarmStartConfig(
        base_model=str(tiny_model_dir),
        task=task,
        steps=20,
        batch_size=4,
        eval_every=2,
        eval_start=0,
        stop_at_accuracy=0.5,
        cache_dir=str(tmp_path / "cache"),
    )
    with Run.create("warm", root=tmp_path) as run:
        result = warm_start(config, run)
    assert result.stopped_at_step == 6 and len(calls) == 3
    meta = json.loads((result.model_dir / "warm_start.json").read_text())
    assert meta["stopped_at_step"] == 6 and meta["n_validation"] == 4
    watched = [
        (r["step"], r["validation_accuracy"]) for r in meta["history"] if "validation_accuracy" in r
    ]
    assert watched == [(2, 0.1), (4, 0.3), (6, 0.55)]
    assert max(r["step"] for r in meta["history"]) == 6  # no step after the stop
    logged = read_metrics(run.path)
    assert [r["stopped_at_step"] for r in logged if "stopped_at_step" in r] == [6]
    assert warm_start(config).stopped_at_step == 6  # a cache hit reports it too


def test_the_validation_score_is_greedy_exact_match_of_the_model_in_training(
    tiny_model_dir, tmp_path
):
    """The real scorer on an untrained model: evaluated at each cadence step, never reaching
    a target of 1.0, so all steps are trained and no stop step is recorded."""
    config = WarmStartConfig(
        base_model=str(tiny_model_dir),
        task=ArithmeticTask(n_train=32, n_test=4, n_validation=4),
        steps=4,
        batch_size=4,
        eval_every=2,
        eval_start=0,
        stop_at_accuracy=1.0,
        cache_dir=str(tmp_path / "cache"),
    )
    result = warm_start(config)
    meta = json.loads((result.model_dir / "warm_start.json").read_text())
    watched = [r for r in meta["history"] if "validation_accuracy" in r]
    assert [r["step"] for r in watched] == [2, 4]
    assert all(r["validation_accuracy"] == 0.0 for r in watched)  # untrained: no sum right
    assert result.stopped_at_step is None and meta["stopped_at_step"] is None
