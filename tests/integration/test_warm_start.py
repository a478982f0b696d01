"""The warm-started arithmetic policy: learnable but unsolved, and cached by content hash."""

from dataclasses import replace

from posttrain.data.arithmetic import ArithmeticTask, make_splits
from posttrain.models.warm_start import WarmStartConfig, content_key, warm_start
from posttrain.runs import Run, read_metrics


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
    # The rows are hashed, not where they were read from: a copy elsewhere hits the cache.
    assert content_key(replace(config, train_file="/copy/of/train.jsonl"), rows) == key
    assert content_key(replace(config, steps=10), rows) != key
    assert content_key(config, rows[:-1]) != key
    assert content_key(replace(config, task=ArithmeticTask(seed=1)), rows) != key


def test_train_and_test_splits_are_disjoint():
    train, test = make_splits(ArithmeticTask())
    seen = {r["prompt"][0]["content"] for r in train}
    assert not seen & {r["prompt"][0]["content"] for r in test}
    assert len(train) == 8000 and len(test) == 200
