"""`posttrain envrl run` end to end at the smallest size: two training games and one held-out
game, a few store instructions, a nano policy warm-started for a few steps, two RL steps of
three variants, in-process so the file stays within its CI share (about 20 s)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

pytest.importorskip("textworld")

from posttrain.config import load_config  # noqa: E402
from posttrain.data.io import read_jsonl  # noqa: E402
from posttrain.recipes.envrl import VARIANTS, EnvRLRecipe, EnvRLRunConfig  # noqa: E402

ROOT = Path(__file__).parents[2]
SMALL = [
    "textworld={data: {seed: 3, train_games: 2, heldout_games: 1, min_rooms: 1, max_rooms: 2,"
    " task_types: [pick_and_place]}, env: {max_steps: 5, max_text_chars: 160}}",
    "webshop={data: {n_products: 20, seed: 0}, env: {max_steps: 6, results_per_page: 2},"
    " train_tasks: 2, eval_tasks: 2}",
    "variants=[grpo, grpo_sp_id, gigpo]",
    "seeds=[0]",
    "model_size=nano",
    "vocab_size=1024",
    "max_positions=2048",
    "warm_start.steps=3",
    "warm_start.batch_size=4",
    "warm_start.max_length=1536",
    "rl.steps=2",
    "rl.prompts_per_step=1",
    "rl.rollout.n=2",
    "rl.rollout.max_tokens=8",
    "eval_every=1",
    "eval_batch=2",
]


def _config(tmp_path: Path, *extra: str) -> EnvRLRunConfig:
    return load_config(EnvRLRunConfig, None, [*SMALL, f"runs_root={tmp_path / 'runs'}", *extra])


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """Game pools and warm starts cached for this module only."""
    with pytest.MonkeyPatch.context() as patch:
        path = tmp_path_factory.mktemp("envrl-cache")
        patch.setenv("POSTTRAIN_CACHE", str(path))
        yield path


@pytest.fixture(scope="module")
def finished(cache, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("envrl-run")
    summary = EnvRLRecipe(_config(tmp_path))()
    return tmp_path, summary, tmp_path / "runs" / "envrl"


def test_every_stage_writes_its_output(finished):
    _, summary, run = finished
    stats = json.loads((run / "data" / "stats.json").read_text())
    assert stats["textworld"]["tasks"] == {"train": 2, "heldout": 1}
    assert stats["webshop"]["tasks"] == {"train": 2, "heldout": 2}
    # Behaviour cloning: one row per expert action of the training split, the action alone
    # as the completion, never a held-out game or instruction.
    rows = read_jsonl(run / "data" / "bc_train.jsonl")
    assert len(rows) == sum(s["expert_actions"]["train"] for s in stats.values())
    assert all(r["prompt"][-1]["role"] == "user" for r in rows)
    assert all([m["role"] for m in r["completion"]] == ["assistant"] for r in rows)
    heldout = read_jsonl(run / "data" / "webshop" / "heldout.jsonl")
    prompts = json.dumps([r["prompt"] for r in rows])
    assert not any(h["instruction"] in prompts for h in heldout)
    assert (run / "warm-start-seed0" / "checkpoints" / "final" / "config.json").exists()
    runs = {"textworld-grpo", "textworld-grpo_sp_id", "textworld-gigpo"}
    runs |= {"webshop-grpo", "webshop-grpo_sp_id"}  # GiGPO runs on textworld only
    trained = {p.name for p in run.glob("rl-*")}
    assert trained == {f"rl-{name}-seed0" for name in runs}
    for name in runs:
        assert (run / f"rl-{name}-seed0" / "checkpoints" / "final" / "config.json").exists()
    config = json.loads(
        json.dumps(
            __import__("yaml").safe_load(
                (run / "rl-textworld-gigpo-seed0" / "config.yaml").read_text()
            )
        )
    )
    assert config["loss"]["advantage"] == "gigpo" and config["env"] == "textworld"
    assert config["max_turns"] == 5 and config["aux"]["sp"]["lambda0"] == 0.0

    # Every policy x checkpoint x split x task played once, greedy.
    episodes = read_jsonl(run / "evaluation" / "episodes.jsonl")
    keys = [e["key"] for e in episodes]
    assert len(keys) == len(set(keys))
    per_env = {"textworld": 2 + 1, "webshop": 2 + 2}  # train-split and held-out tasks
    expected = per_env["textworld"] + per_env["webshop"]  # the warm start, step 0
    expected += sum(per_env[name.split("-")[0]] * 2 for name in runs)  # steps 1 and 2
    assert len(episodes) == expected
    assert {e["step"] for e in episodes} == {0, 1, 2}
    assert all(isinstance(e["success"], bool) and e["turns"] >= 1 for e in episodes)

    results = json.loads((run / "results.json").read_text())
    assert set(results["final"]["textworld"]) == {"grpo", "grpo_sp_id", "gigpo"}
    assert set(results["final"]["webshop"]) == {"grpo", "grpo_sp_id"}
    cell = results["final"]["webshop"]["grpo"]["heldout"]
    assert cell["seeds"] == 1 and 0.0 <= cell["mean"] <= 1.0 and cell["std"] is None
    assert set(results["warm_start"]) == {"textworld", "webshop"}
    pairs = {(c["env"], c["split"], c["baseline"], c["treatment"]) for c in results["comparisons"]}
    # Each EnvRL variant against its baseline; each baseline against the warm start.
    assert pairs == {
        (env, split, baseline, treatment)
        for env, baseline, treatment in (
            ("textworld", "grpo", "grpo_sp_id"),
            ("webshop", "grpo", "grpo_sp_id"),
            ("textworld", "warm start", "grpo"),
            ("webshop", "warm start", "grpo"),
            ("textworld", "warm start", "gigpo"),
        )
        for split in ("train", "heldout")
    }

    for c in results["comparisons"]:  # one seed: Welch is undefined, the bootstrap is not
        assert c["welch"]["ci_low"] is None and c["bootstrap"]["n"][0] >= 1
    reach = {(r["env"], r["split"]): r for r in results["steps_to_baseline"]}
    assert set(reach) == {(e, s) for e in ("textworld", "webshop") for s in ("train", "heldout")}
    # The auxiliary passes run only in the variants that turn them on.
    cost = results["aux_cost"]
    assert cost["textworld/grpo_sp_id"]["aux_s"] > 0 and cost["webshop/grpo_sp_id"]["aux_s"] > 0
    assert cost["textworld/grpo"]["aux_s"] == 0 and cost["textworld/grpo"]["steps"] == 2
    assert (run / "curves.png").stat().st_size > 1000
    report = (run / "report.html").read_text()
    assert "<h2>curves.png</h2><img src='data:image/png" in report
    assert summary["curves"] == str(run / "curves.png")


def test_a_rerun_plays_only_the_missing_episodes(finished):
    tmp_path, _, run = finished
    log = run / "evaluation" / "episodes.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    kept, dropped = lines[:-3], lines[-3:]
    log.write_text("".join(kept) + dropped[0][:20])  # a torn last line, as a kill leaves it
    final = run / "rl-webshop-grpo-seed0" / "checkpoints" / "final" / "model.safetensors"
    stamp = final.stat().st_mtime_ns
    EnvRLRecipe(_config(tmp_path))()
    after = log.read_text().splitlines(keepends=True)
    assert after[: len(kept)] == kept  # finished episodes are not played again
    redone = [json.loads(line)["key"] for line in after[len(kept) :]]
    assert sorted(redone) == sorted(json.loads(line)["key"] for line in dropped)
    assert final.stat().st_mtime_ns == stamp  # finished RL runs are reused


def test_games_start_safely_on_rollouts_threads(finished):
    """Rollout resets every episode of a batch on its own thread; TextWorld's game loading
    is not thread-safe, so the environment serialises it (without, this raised or crashed)."""
    from concurrent.futures import ThreadPoolExecutor

    from posttrain.envs import env_factory

    _, _, run = finished
    tasks = read_jsonl(run / "data" / "textworld" / "train.jsonl") * 6
    make = env_factory("textworld", max_steps=5)
    for _ in range(2):
        envs = [make() for _ in tasks]
        with ThreadPoolExecutor(6) as pool:
            firsts = list(
                pool.map(lambda pair: pair[0].reset(pair[1]), zip(envs, tasks, strict=True))
            )
        assert all(first.startswith("Goal: ") and "Actions: " in first for first in firsts)
        for env in envs:
            env.close()


def test_control_characters_in_a_reply_never_reach_the_interpreter(finished):
    """libfrotz crashed the whole process on a command a tiny policy wrote with "\x0f" in
    it; the environment sends such a command with spaces for its control characters."""
    from posttrain.envs import env_factory

    _, _, run = finished
    task = read_jsonl(run / "data" / "textworld" / "train.jsonl")[0]
    make = env_factory("textworld", max_steps=5)
    replies = []
    for command in ("look\x0f", "look"):
        env = make()
        env.reset(task)
        replies.append(env.step(command)[0])
        env.close()
    assert replies[0] == replies[1] and "Actions: " in replies[0]


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("textworld.env={max_step: 5}", "textworld.env.max_step: unknown option"),
        ("webshop.data={n_product: 5}", "webshop.data.n_product: unknown option"),
        ("textworld.data={max_rooms: 9}", "household.max_rooms"),
        ("envs=[alfworld]", "envs: unknown environment 'alfworld'"),
        ("variants=[ppo]", "variants: unknown 'ppo'"),
        ("gigpo_env=alfworld", "gigpo_env: unknown environment"),
        ("seeds=[]", "seeds: name at least one seed"),
        ("webshop.eval_tasks=0", "webshop.eval_tasks: must be at least 1"),
    ],
)
def test_bad_settings_are_named_before_anything_is_written(tmp_path, override, named):
    with pytest.raises(ValueError, match=named):
        EnvRLRecipe(_config(tmp_path, override))
    assert not (tmp_path / "runs").exists()


def test_an_episode_the_policys_context_cannot_hold_is_named(cache, tmp_path):
    with pytest.raises(
        ValueError, match=r"max_positions: (textworld|webshop): an episode of \d+ turns"
    ):
        EnvRLRecipe(_config(tmp_path, "max_positions=600"))()
    assert not list((tmp_path / "runs" / "envrl").glob("warm-start*"))


def test_the_shipped_configs_load_and_pass_the_checks(tmp_path):
    """tiny.yaml states the defaults (the full measurement); demo.yaml and the 1.5B config
    load and pass the recipe's checks (no model is loaded)."""
    full = load_config(EnvRLRunConfig, ROOT / "configs/envrl/tiny.yaml")
    assert dataclasses.asdict(full) == dataclasses.asdict(EnvRLRunConfig())
    assert full.seeds == [0, 1, 2] and full.variants == list(VARIANTS)
    assert full.envs == ["textworld", "webshop"]
    for name in ("demo.yaml", "qwen1.5b.yaml"):
        config = load_config(EnvRLRunConfig, ROOT / "configs/envrl" / name)
        EnvRLRecipe.check(EnvRLRecipe.__new__(EnvRLRecipe), config)
    big = load_config(EnvRLRunConfig, ROOT / "configs/envrl/qwen1.5b.yaml")
    assert big.warm_start.base_model and big.aux_lambda0 == 0.2
    assert big.rl.async_.eta is not None and big.rl.async_.workers.kind in ("ray", "server")
