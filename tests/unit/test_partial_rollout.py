"""Partial rollouts: a weight push that lands mid-generation aborts the batch at that decode
step, and each unfinished response resumes from its prefix with the new weights."""

from __future__ import annotations

import pytest
import torch

from posttrain.models.chat.base import Choice, GenerationParams
from posttrain.rl.asynchronous.engines import BatchedEngine, EngineCore, WeightUpdate
from posttrain.rl.asynchronous.partial import ABORT, generate_resuming
from posttrain.rl.rollout import encode_prompt

GREEDY = GenerationParams(max_tokens=10, logprobs=True)
ABORT_AT = 4  # tokens generated when the push lands


@pytest.fixture
def core(tiny_model_dir):
    return EngineCore(str(tiny_model_dir))


def _prompts(core):
    tok = core.generator.tokenizer
    return [encode_prompt(tok, q) for q in ("What is 3+4?", "What is 12+7?")]


def _other_weights(core) -> dict[str, torch.Tensor]:
    """The same weights with the final norm negated: every logit changes sign, so greedy
    decoding writes other tokens."""
    state = {k: v.clone() for k, v in core.generator.model.state_dict().items()}
    state["model.norm.weight"] *= -1
    return state


def _push_at_decode_step(core, engine, step, interrupt):
    """Push version 1 while the model runs its `step`-th forward pass (token `step`)."""
    update = WeightUpdate(1, state=_other_weights(core))
    calls = 0

    def hook(module, args):
        nonlocal calls
        calls += 1
        if calls == step:
            engine.push(update, interrupt=interrupt)

    return core.generator.model.register_forward_pre_hook(hook)


def test_push_mid_generation_aborts_and_resumes_from_the_prefix(core):
    prompts = _prompts(core)
    [plain] = core.generate_many([(prompts, GREEDY)])  # old weights, uninterrupted
    assert all(len(c[0].token_ids) == GREEDY.max_tokens for c in plain)  # premise: no early stop
    engine = BatchedEngine(core, "t")
    calls = []
    generate_many = core.generate_many
    core.generate_many = lambda *a: calls.append(len(a[0])) or generate_many(*a)
    hook = _push_at_decode_step(core, engine, ABORT_AT, interrupt=True)
    try:
        resumed = engine.generate(prompts, GREEDY)
    finally:
        hook.remove()
        engine.close()
    assert core.version == 1 and calls == [1, 2]  # the batch, then one continuation per prompt

    # What the new weights write from each prefix, in the same batch shape.
    prefixes = [c[0].token_ids[:ABORT_AT] for c in plain]
    rest = GenerationParams(max_tokens=GREEDY.max_tokens - ABORT_AT, logprobs=True)
    continued = generate_many(
        [([p + prefix], rest) for p, prefix in zip(prompts, prefixes, strict=True)]
    )
    for [choice], [before], [[after]] in zip(resumed, plain, continued, strict=True):
        assert choice.token_ids[:ABORT_AT] == before.token_ids[:ABORT_AT]  # kept exactly
        assert choice.logprobs[:ABORT_AT] == before.logprobs[:ABORT_AT]
        assert choice.token_ids[ABORT_AT:] == after.token_ids
        assert choice.logprobs[ABORT_AT:] == pytest.approx(after.logprobs, abs=1e-5)
        n_after = len(after.token_ids)
        assert choice.token_versions == [0] * ABORT_AT + [1] * n_after
        assert choice.weight_version == 0 and choice.finish_reason == after.finish_reason
        assert choice.text == core.decode(choice.token_ids)
    # The new weights do write something else: the switch is visible in the tokens.
    assert [c[0].token_ids for c in resumed] != [c[0].token_ids for c in plain]


def test_without_an_interrupting_push_nothing_is_aborted(core):
    prompts = _prompts(core)
    [plain] = core.generate_many([(prompts, GREEDY)])
    engine = BatchedEngine(core, "t")
    try:
        quiet = engine.generate(prompts, GREEDY)
        # `partial_rollout: finish`: a push mid-batch waits for the batch to end.
        hook = _push_at_decode_step(core, engine, ABORT_AT, interrupt=False)
        try:
            finished = engine.generate(prompts, GREEDY)
        finally:
            hook.remove()
        after = engine.generate(prompts, GREEDY)  # the push is loaded before the next batch
    finally:
        engine.close()
    for result in (quiet, finished):
        for [choice], [before] in zip(result, plain, strict=True):
            assert choice.token_ids == before.token_ids and choice.logprobs == before.logprobs
            assert choice.finish_reason != ABORT and choice.token_versions is None
            assert choice.weight_version == 0
    assert after[0][0].weight_version == 1 and core.version == 1


def test_resuming_joins_several_aborts_and_cuts_at_a_stop_string_across_a_join():
    """Two pushes land during one response; the stop string "ab" spans the second join."""
    script = iter([["x"], ["y", "a"], ["b", "c"]])  # tokens written by versions 0, 1, 2
    version = 0

    def generate(requests):
        out = []
        for prompts, params in requests:
            assert params.n == 1 and len(prompts) == 1
            tokens = next(script, ["z"] * params.max_tokens)
            aborted = version < 2
            out.append(
                [
                    [
                        Choice(
                            "",
                            ABORT if aborted else "length",
                            [ord(t) for t in tokens],
                            [-1.0] * len(tokens),
                            version,
                        )
                    ]
                ]
            )
        return out

    def reload():
        nonlocal version
        version += 1

    params = GenerationParams(max_tokens=6, stop=("ab",), logprobs=True)
    [[[choice]]] = generate_resuming(
        [([[1, 2]], params)], generate, reload, lambda ids: "".join(map(chr, ids))
    )
    assert choice.token_ids == [ord(t) for t in "xyab"]
    assert choice.token_versions == [0, 1, 1, 2] and choice.weight_version == 0
    assert choice.text == "xy" and choice.finish_reason == "stop"
    assert choice.logprobs == [-1.0] * 4
