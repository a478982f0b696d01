"""Rollout engines as Ray actors on a local Ray runtime with 2 CPUs (slow: Ray starts up)."""

from __future__ import annotations

import pytest

pytest.importorskip("ray")

from posttrain.models.chat.base import GenerationParams  # noqa: E402
from posttrain.rl.asynchronous.engines import EngineCore, WeightUpdate  # noqa: E402
from posttrain.rl.asynchronous.workers import build_engines  # noqa: E402
from posttrain.rl.config import WorkerSettings  # noqa: E402
from posttrain.rl.rollout import encode_prompt  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_runtime():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_actors_generate_and_take_weight_pushes(ray_runtime, tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompts = [encode_prompt(tokenizer, "What is 2+2?")]
    params = GenerationParams(max_tokens=4, logprobs=True)
    engines = build_engines(WorkerSettings(kind="ray", count=2), str(tiny_model_dir))
    try:
        local = EngineCore(str(tiny_model_dir)).generate_many([(prompts, params)])[0]
        for engine in engines:
            [[choice]] = engine.generate(prompts, params)
            assert choice.token_ids == local[0][0].token_ids
            assert choice.logprobs == pytest.approx(local[0][0].logprobs, abs=1e-5)
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        state = {k: v * 0.5 for k, v in model.state_dict().items()}
        for engine in engines:
            engine.push(WeightUpdate(1, state=state), wait=True)
            [[choice]] = engine.generate(prompts, params)
            assert engine.version == 1 and choice.weight_version == 1
            assert choice.logprobs != pytest.approx(local[0][0].logprobs, abs=1e-5)
    finally:
        for engine in engines:
            engine.close()


def test_ray_engine_aborts_mid_generation_on_an_interrupting_push(ray_runtime, tiny_model_dir):
    from interrupted_push import check_interrupting_pushes  # beside this file
    from transformers import AutoTokenizer

    from posttrain.rl.asynchronous.ray_engine import RayBackend

    prompt = encode_prompt(AutoTokenizer.from_pretrained(tiny_model_dir), "What is 3+4?")
    landed = check_interrupting_pushes(
        lambda: RayBackend(str(tiny_model_dir)), str(tiny_model_dir), prompt
    )
    assert 0 < landed[-1] < 48
