"""The asynchronous engine end to end: engines (thread, process, server) generate, take
weight pushes between batches and record versions; the trainer keeps its staleness bounds
under a latency-skewed, failing environment and trains with every off-policy loss."""

from __future__ import annotations

import json
import threading

import pytest
import torch

from posttrain.data.arithmetic import ArithmeticTask, tokenizer_corpus
from posttrain.models.chat.base import GenerationParams
from posttrain.models.server_process import serve_model
from posttrain.models.tiny import build_tiny_model
from posttrain.rl.asynchronous.engines import BatchedEngine, EngineCore, WeightUpdate
from posttrain.rl.asynchronous.trainer import AsyncRLTrainer
from posttrain.rl.config import RLConfig
from posttrain.rl.rollout import encode_prompt
from posttrain.runs import Run, read_metrics

GREEDY = GenerationParams(max_tokens=5, logprobs=True)


@pytest.fixture(scope="module")
def other_model_dir(tmp_path_factory):
    """Same architecture and tokenizer as `tiny_model_dir`, different weights."""
    out = tmp_path_factory.mktemp("other-model")
    return build_tiny_model(out, tokenizer_corpus(ArithmeticTask()), size="micro", seed=1)


@pytest.fixture(scope="module")
def prompts(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    return [encode_prompt(tokenizer, f"What is {a}+{b}?") for a, b in [(3, 4), (12, 7), (5, 50)]]


def _state(model_dir) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir).state_dict()


def test_thread_engine_batches_concurrent_requests_and_versions_every_choice(
    tiny_model_dir, other_model_dir, prompts
):
    engine = BatchedEngine(EngineCore(str(tiny_model_dir)), "t0", gather_s=0.05)
    try:
        solo = engine.generate(prompts, GREEDY)
        results: dict[int, list] = {}

        def ask(i: int) -> None:
            results[i] = engine.generate([prompts[i]], GREEDY)

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # Batched together or not, every request gets its own prompt's greedy answer.
        for i in range(3):
            assert results[i][0][0].token_ids == solo[i][0].token_ids
            assert results[i][0][0].weight_version == 0

        engine.push(WeightUpdate(1, state=_state(other_model_dir)), wait=True)
        pushed = engine.generate(prompts, GREEDY)
        assert engine.version == 1 and pushed[0][0].weight_version == 1
        reference = EngineCore(str(other_model_dir)).generate_many([(prompts, GREEDY)])[0]
        assert [c[0].token_ids for c in pushed] == [c[0].token_ids for c in reference]

        # A push the engine cannot load is reported to the pusher; the engine keeps serving.
        with pytest.raises(RuntimeError, match="weight push 2 failed"):
            engine.push(WeightUpdate(2, state={"nonsense.weight": torch.zeros(1)}), wait=True)
        again = engine.generate(prompts, GREEDY)
        assert engine.version == 1 and again[0][0].token_ids == pushed[0][0].token_ids
    finally:
        engine.close()
    with pytest.raises(RuntimeError, match="closed"):
        engine.generate(prompts, GREEDY)


def test_process_engine_generates_like_the_in_process_core(
    tiny_model_dir, other_model_dir, prompts
):
    from posttrain.rl.asynchronous.process_engine import ProcessBackend

    core = EngineCore(str(tiny_model_dir))
    backend = ProcessBackend(str(tiny_model_dir))
    try:
        [here] = core.generate_many([(prompts, GREEDY)])
        [there] = backend.generate_many([(prompts, GREEDY)])
        for a, b in zip(here, there, strict=True):
            assert a[0].token_ids == b[0].token_ids
            assert a[0].logprobs == pytest.approx(b[0].logprobs, abs=1e-5)
        backend.load(WeightUpdate(4, state=_state(other_model_dir)))
        [after] = backend.generate_many([(prompts, GREEDY)])
        assert backend.version == 4 and after[0][0].weight_version == 4
        with pytest.raises(RuntimeError, match="lack|unknown"):
            backend.load(WeightUpdate(5, state={"nonsense.weight": torch.zeros(1)}))
        assert backend.version == 4  # a refused push changes nothing
    finally:
        backend.close()


def test_server_engine_syncs_weights_through_checkpoint_directories(
    tiny_model_dir, other_model_dir, prompts, tmp_path
):
    from posttrain.rl.asynchronous.server_engine import ServerBackend

    root = str(other_model_dir.parent)  # the pushed checkpoint's folder
    process = serve_model(
        tiny_model_dir, "--weights-root", root, log_path=tmp_path / "server.log"
    ).start()
    backend = ServerBackend(process.base_url, process=process)
    try:
        assert backend.version == 0
        backend.load(WeightUpdate(3, path=str(other_model_dir)))
        [choices] = backend.generate_many([(prompts[:1], GREEDY)])
        assert backend.version == 3 and choices[0][0].weight_version == 3
        expected = EngineCore(str(other_model_dir)).generate_many([(prompts[:1], GREEDY)])[0]
        assert choices[0][0].token_ids == expected[0][0].token_ids
    finally:
        backend.close()


def _config(model_dir, root, **async_settings) -> RLConfig:
    config = RLConfig(
        model=str(model_dir),
        runs_root=str(root),
        steps=4,
        prompts_per_step=4,
        eval_every=0,
        save_every=0,
        env="latency",
        # Heavy-tailed latency (median 10 ms) with a 60 ms timeout, at reset too (the untrained
        # policy rarely ends a turn): some episodes time out, so groups are padded or dropped,
        # and groups finish out of order.
        env_args={
            "inner": "arithmetic_tool",
            "median_s": 0.01,
            "sigma": 1.5,
            "timeout_s": 0.06,
            "on_reset": True,
        },
        rewards=[],
    )
    config.rollout.n = 4
    config.rollout.max_tokens = 6
    for key, value in async_settings.items():
        setattr(config.async_, key, value)
    return config


def _train(config: RLConfig, name: str) -> tuple[AsyncRLTrainer, list[dict]]:
    trainer = AsyncRLTrainer(config, Run.create(name, config, root=config.runs_root))
    trainer.train()
    trainer.run.close()
    return trainer, [r for r in read_metrics(trainer.run.path) if "reward" in r]


def test_synchronous_special_case_trains_only_on_current_weights(tiny_model_dir, tmp_path):
    trainer, records = _train(_config(tiny_model_dir, tmp_path, eta=0), "eta0")
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert all(r["async/staleness_max"] == 0 for r in records)
    assert [r["async/weight_version"] for r in records] == [0, 1, 2, 3]
    assert trainer.gate.peak_excess == 0
    assert trainer.engines[0].version == 4  # the last push reached the worker
    for key in ("logp_abs_diff", "mismatch_kl_k3", "async/trainer_idle_frac", "samples/failed"):
        assert key in records[-1]
    # Train and rollout log-probs come from the same weights: the mismatch is numerical noise.
    assert max(r["logp_abs_diff"] for r in records) < 1e-3


@pytest.mark.parametrize(
    ("loss_kind", "engines", "settings"),
    [
        ("ppo", 1, {"eta": 2, "max_version_gap": 1}),
        (
            "direct_is",
            1,
            {
                "eta": 2,
                "max_version_gap": 2,
                "push_every": 2,
                "reset_optimizer": True,
                "partial_rollout": "resume",
                "mask_stale_prefix": True,
            },
        ),
        ("decoupled_ppo", 2, {"eta": 1}),
    ],
)
def test_asynchronous_training_respects_its_bounds(
    tiny_model_dir, tmp_path, loss_kind, engines, settings
):
    config = _config(tiny_model_dir, tmp_path, **settings)
    config.loss.kind = loss_kind
    config.async_.workers.count = engines
    trainer, records = _train(config, loss_kind)
    tau = settings.get("max_version_gap")
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert trainer.gate.peak_excess == 0
    if tau is not None:
        assert all(r["async/staleness_max"] <= tau for r in records)
    k = settings.get("push_every", 1)
    assert [r["async/weight_version"] for r in records] == [(s - 1) // k for s in range(1, 5)]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in records)
    # The last step pushed; with reset_optimizer the AdamW moments went with it.
    assert bool(trainer.optimizer.state) != settings.get("reset_optimizer", False)
    counts = trainer.producer.counts
    assert counts.samples_failed > 0  # the 60 ms timeout fired ...
    summary = json.loads((trainer.run.path / "async_summary.json").read_text())
    assert summary["samples_failed"] == counts.samples_failed  # ... and was reported
    assert summary["capacity_exceeded_by"] == 0 and summary["steps"] == 4
    assert counts.groups_padded + counts.groups_invalid > 0


def test_cli_trains_asynchronously_on_a_served_policy(tiny_model_dir, tmp_path):
    """`posttrain rl --set async.eta=2` with `posttrain serve` as the rollout worker."""
    import subprocess
    import sys

    command = [
        sys.executable,
        "-m",
        "posttrain",
        "rl",
        "--set",
        f"model={tiny_model_dir}",
        "--set",
        "async.eta=2",
        "--set",
        "async.workers.kind=server",
        *("--set", "steps=2", "--set", "prompts_per_step=2", "--set", "rollout.n=2"),
        *("--set", "eval_size=4", "--set", "save_every=0", "--set", f"runs_root={tmp_path}"),
        *("--set", "run_name=served"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    run = next(tmp_path.glob("served*"))
    records = [r for r in read_metrics(run) if "reward" in r]
    assert [r["async/weight_version"] for r in records] == [0, 1]
    summary = json.loads((run / "async_summary.json").read_text())
    assert summary["workers"] == "1 x server" and summary["steps"] == 2
    # The served policy got each pushed checkpoint directory; the two newest are kept.
    assert sorted(p.name for p in (run / "weights").iterdir()) == ["v000001", "v000002"]


def test_process_engine_aborts_mid_generation_on_an_interrupting_push(tiny_model_dir, prompts):
    from interrupted_push import check_interrupting_pushes  # beside this file

    from posttrain.rl.asynchronous.process_engine import ProcessBackend

    landed = check_interrupting_pushes(
        lambda: ProcessBackend(str(tiny_model_dir)), str(tiny_model_dir), prompts[0]
    )
    assert 0 < landed[-1] < 48
