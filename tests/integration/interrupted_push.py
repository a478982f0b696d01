"""A weight push that interrupts an out-of-process engine mid-generation (process and Ray).

The engine runs elsewhere, so no hook can land the push at a chosen decode step; it is
pushed part-way through a long greedy generation instead. Wherever it lands, the result
must be exact: the tokens before the switch are the old weights' greedy answer, those after
are what the new weights write from that prefix, and every token records its version. A
push can land before the first or after the last step under load, so it is tried at a few
delays; at least one must land strictly inside the response, or the interrupt never reached
the engine.
"""

from __future__ import annotations

import threading
import time

import torch

from posttrain.models.chat.base import GenerationParams
from posttrain.rl.asynchronous.engines import BatchedEngine, EngineCore, WeightUpdate
from posttrain.rl.asynchronous.partial import versions_of

LONG = GenerationParams(max_tokens=48, logprobs=True)


def negated_norm(core: EngineCore) -> dict[str, torch.Tensor]:
    """The same weights with the final norm negated: greedy decoding writes other tokens."""
    state = {k: v.clone() for k, v in core.generator.model.state_dict().items()}
    state["model.norm.weight"] *= -1
    return state


def check_interrupting_pushes(make_backend, model_dir: str, prompt: list[int]) -> list[int]:
    """Push mid-generation into fresh engines from `make_backend()`; return where each landed."""
    reference = EngineCore(model_dir)  # about as fast as the engine: its timing
    started = time.perf_counter()  # tells when the middle of a generation comes
    [[[old]]] = reference.generate_many([([prompt], LONG)])
    whole = time.perf_counter() - started
    assert len(old.token_ids) == LONG.max_tokens  # premise: the old weights never stop early
    new_state = negated_norm(reference)
    reference.load(WeightUpdate(1, state=new_state))

    landed = []
    for fraction in (0.5, 0.25, 0.75, 0.1, 0.9):
        engine = BatchedEngine(make_backend(), "interrupted")
        try:
            timer = threading.Timer(
                fraction * whole,
                engine.push,
                args=(WeightUpdate(1, state=new_state),),
                kwargs={"interrupt": True},
            )
            timer.start()
            [[choice]] = engine.generate([prompt], LONG)
            timer.join()
        finally:
            engine.close()
        versions = versions_of(choice)
        switch = versions.index(1) if 1 in versions else len(versions)
        assert versions == [0] * switch + [1] * (len(choice.token_ids) - switch)
        assert choice.token_ids[:switch] == old.token_ids[:switch]
        if switch < LONG.max_tokens:  # the new weights wrote the rest from the prefix
            rest = GenerationParams(max_tokens=LONG.max_tokens - switch, logprobs=True)
            [[[after]]] = reference.generate_many([([prompt + old.token_ids[:switch]], rest)])
            assert choice.token_ids[switch:] == after.token_ids
            assert choice.finish_reason == after.finish_reason
        landed.append(switch)
        if 0 < switch < len(old.token_ids):
            return landed
    raise AssertionError(f"no push landed inside the response: switches at {landed}")
