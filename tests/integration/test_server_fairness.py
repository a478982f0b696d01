"""The server's engine in process: a batch yields to waiting requests at a decode step and
its rows resume from the tokens they have, ending exactly as if generated in one go; a
request given up (its time budget spent) stops generating at once."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest

from posttrain.models.chat.base import GenerationParams
from posttrain.models.chat.hf import HFChat
from posttrain.models.server.engine import Engine

PROMPTS = [[5, 6, 7], [9, 10, 11, 12, 13], [20, 21]]
GREEDY = GenerationParams(max_tokens=40, temperature=0.0, logprobs=True)


@pytest.fixture(scope="module")
def chat(tiny_model_dir):
    return HFChat(tiny_model_dir)


def _alone(chat: HFChat, prompts, params):
    return [c for per_prompt in chat.generator.generate(prompts, params) for c in per_prompt]


def _interleaved(engine: Engine, first, second):
    """Run two jobs with different settings at once, both queued before either starts: with
    a zero time slice each batch yields after one decode step to the other job, which is
    always waiting, so every piece is one token long."""
    gate, held = threading.Event(), threading.Event()
    engine.batcher.between(lambda: (held.set(), gate.wait(30)))
    assert held.wait(30)
    results: dict[str, object] = {}

    def run(name, prompts, params):
        results[name] = engine.generate(prompts, params)

    threads = [
        threading.Thread(target=run, args=("first", *first)),
        threading.Thread(target=run, args=("second", *second)),
    ]
    batches = engine.batcher.batches
    threads[0].start()
    while engine.batcher.waiting < 1:
        time.sleep(0.01)
    threads[1].start()
    while engine.batcher.waiting < 2:
        time.sleep(0.01)
    gate.set()
    for thread in threads:
        thread.join(120)
    flat = {
        name: [g.choice for per_prompt in answer.generated for g in per_prompt]
        for name, answer in results.items()
    }
    return flat["first"], flat["second"], engine.batcher.batches - batches


def test_rows_that_yield_resume_to_the_same_output(chat):
    other = replace(GREEDY, max_tokens=37)  # other settings: never merged into one batch
    engine = Engine(chat, time_slice_s=1e-9)
    try:
        first, second, batches = _interleaved(engine, (PROMPTS, GREEDY), (PROMPTS[:1], other))
    finally:
        engine.close()
    assert batches >= 2 * 37  # the two jobs took turns, one decode step each
    for got, want in zip(
        first + second,
        _alone(chat, PROMPTS, GREEDY) + _alone(chat, PROMPTS[:1], other),
        strict=True,
    ):
        assert got.token_ids == want.token_ids
        assert (got.text, got.finish_reason) == (want.text, want.finish_reason)
        assert got.logprobs == pytest.approx(want.logprobs, abs=1e-4)


def test_stop_strings_are_found_across_the_seams(chat):
    # This prompt's greedy answer repeats the token "user": the stop string "ru" starts in
    # the first token and ends in the second, across the seam of two one-token pieces.
    prompt = [PROMPTS[1]]
    stopping = replace(GREEDY, stop=("ru",))
    want = _alone(chat, prompt, stopping)[0]
    assert (want.text, want.finish_reason, len(want.token_ids)) == ("use", "stop", 2)
    engine = Engine(chat, time_slice_s=1e-9)
    try:
        [got], _, batches = _interleaved(
            engine, (prompt, stopping), (PROMPTS[:1], replace(GREEDY, max_tokens=6))
        )
    finally:
        engine.close()
    assert batches >= 3  # the stopping job ran in pieces
    assert (got.text, got.finish_reason, got.token_ids) == (
        want.text,
        want.finish_reason,
        want.token_ids,
    )
    assert got.logprobs == pytest.approx(want.logprobs, abs=1e-4)


def test_a_request_given_up_stops_generating(chat):
    engine = Engine(chat)
    long = GenerationParams(n=8, max_tokens=480, temperature=0.0)
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            engine.generate(PROMPTS, long, timeout=0.3)
        # The abandoned batch ends at its next decode step: the engine is free at once.
        short = engine.generate(PROMPTS[:1], replace(GREEDY, max_tokens=4))
        elapsed = time.monotonic() - started
    finally:
        engine.close()
    assert len(short.generated[0][0].choice.token_ids) == 4
    # 24 rows x 480 greedy tokens take over 10 s here; the stop costs one step.
    assert elapsed < 5.0, elapsed
