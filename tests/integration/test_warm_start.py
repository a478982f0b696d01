"""The warm-started arithmetic policy: learnable but unsolved, and cached by content hash."""

from dataclasses import replace

from posttrain.data.arithmetic import ArithmeticTask, make_splits
from posttrain.runs import Run, read_metrics
from posttrain.sft.warm_start import WarmStartConfig, content_key, warm_start


def test_heldout_accuracy_is_clearly_nontrivial_but_imperfect(warm_started):
    result, run_dir = warm_started
    # Measured on the 2-core CPU: 0.52 at 800 steps. Accuracy climbs steeply between 600
    # and 900 steps and run-to-run floating-point differences move the climb (two 700-step
    # builds gave 0.51 and 0.225), hence the wide band. Later RL issues need a policy whose
    # reward is neither always 0 nor always 1.
    assert 0.10 <= result.accuracy <= 0.90, result.accuracy
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


def test_cache_key_follows_content():
    config = WarmStartConfig()
    train, _ = make_splits(config.task)
    rows = [{"prompt": r["prompt"], "completion": r["completion"]} for r in train]
    key = content_key(config, rows)
    assert content_key(replace(config, cache_dir="/elsewhere"), rows) == key
    # Trackers only watch the training.
    assert content_key(replace(config, report_to=["tensorboard", "wandb"]), rows) == key
    # The rows are hashed, not where they were read from: a copy elsewhere hits the cache.
    assert content_key(replace(config, train_file="/copy/of/train.jsonl"), rows) == key
    assert content_key(replace(config, steps=10), rows) != key
    assert content_key(config, rows[:-1]) != key
    assert content_key(replace(config, task=ArithmeticTask(seed=1)), rows) != key


def test_the_default_cache_key_is_the_one_the_readme_figures_were_measured_with():
    # A new WarmStartConfig field that does not change the weights belongs in content_key's
    # `ignored`; one that does changes this key, and the README's figures must be remeasured.
    config = WarmStartConfig()
    train, _ = make_splits(config.task)
    rows = [{"prompt": r["prompt"], "completion": r["completion"]} for r in train]
    assert content_key(config, rows) == "cd9992e7801c3595"


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
    # TRL's tracker files go to the run, not to the cache entry that is renamed into place.
    assert seen["trainer_dir"] == run.path
    assert [r["sft_loss"] for r in read_metrics(run.path) if "sft_loss" in r] == [2.0]
    assert result.accuracy is None and not result.cached


def test_train_and_test_splits_are_disjoint():
    train, test = make_splits(ArithmeticTask())
    seen = {r["prompt"][0]["content"] for r in train}
    assert not seen & {r["prompt"][0]["content"] for r in test}
    assert len(train) == 8000 and len(test) == 200
