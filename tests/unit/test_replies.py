"""Reading structured answers from chat replies (`json_candidates`) and re-asking the replies
that do not read (`ask_until_parsed`, `ask_parsed`, `retry_params`)."""

from __future__ import annotations

import json

import pytest

from posttrain.models.chat.base import ChatResult, Choice, GenerationParams
from posttrain.models.chat.replies import (
    RETRY_TEMPERATURE,
    JudgeStats,
    ask_parsed,
    ask_until_parsed,
    json_candidates,
    retry_params,
)

# --- json_candidates ----------------------------------------------------------------------------


def test_fenced_blocks_come_first_then_json_inside_prose():
    reply = 'I think {"a": 1} fits.\n```json\n{"b": 2}\n```'
    assert json_candidates(reply) == [{"b": 2}, {"a": 1}, {"b": 2}]


def test_outermost_span_only_and_apostrophes_in_prose_ignored():
    reply = """It doesn't matter: {"outer": {"inner": [1, 2]}, "why": "it's fine"} and [3]."""
    assert json_candidates(reply) == [{"outer": {"inner": [1, 2]}, "why": "it's fine"}, [3]]


def test_lenient_forms_read_and_broken_ones_skipped():
    assert json_candidates("{'a': True, 'b': [1, 2,],}") == [{"a": True, "b": [1, 2]}]
    assert json_candidates('{"why": "line one\nline two"}') == [{"why": "line one\nline two"}]
    assert json_candidates("{unclosed [1, 2} and {x}") == []
    assert json_candidates("no json here") == []


def test_limit_bounds_the_brackets_tried():
    reply = "[x] " * 10 + '{"a": 1}'
    assert json_candidates(reply) == [{"a": 1}]
    assert json_candidates(reply, limit=10) == []


# --- retry_params -------------------------------------------------------------------------------


def test_retry_params_raise_temperature_and_seed_each_attempt():
    greedy = GenerationParams(temperature=0.0, max_tokens=32, seed=123)
    first, second = retry_params(greedy, 1), retry_params(greedy, 2)
    assert first.temperature == RETRY_TEMPERATURE == 0.7 and first.max_tokens == 32
    assert (first.seed, second.seed) == (1, 2)
    assert retry_params(GenerationParams(temperature=1.2), 1).temperature == 1.2
    with pytest.raises(ValueError, match="attempt"):
        retry_params(greedy, 0)


# --- ask_until_parsed ---------------------------------------------------------------------------


class Recording:
    """Answers `answer(prompt, call_number)`; records each call's prompts and params, and can
    raise on chosen calls."""

    name = "recording"

    def __init__(self, answer, raise_on=(), drop_one=False):
        self.answer, self.raise_on, self.drop_one = answer, set(raise_on), drop_one
        self.calls: list[tuple[list[str], GenerationParams]] = []

    def chat(self, conversations, params=None):
        prompts = [c[-1]["content"] for c in conversations]
        self.calls.append((prompts, params))
        if len(self.calls) in self.raise_on:
            raise RuntimeError("backend down")
        results = [
            ChatResult(self.name, [Choice(self.answer(p, len(self.calls)))]) for p in prompts
        ]
        return results[:-1] if self.drop_one else results


def _conversations(*prompts):
    return {p: [{"role": "user", "content": p}] for p in prompts}


def _reads_json(key, reply):
    return bool(json_candidates(reply))


def test_only_rejected_replies_are_asked_again_at_retry_params():
    chat = Recording(lambda p, call: "{}" if p == "easy" or call == 3 else "hmm")
    stats = JudgeStats()
    params = GenerationParams(max_tokens=16)
    never = ask_until_parsed(chat, _conversations("easy", "hard"), _reads_json, params, 2, stats)
    assert never == []
    assert [prompts for prompts, _ in chat.calls] == [["easy", "hard"], ["hard"], ["hard"]]
    assert [(p.temperature, p.seed) for _, p in chat.calls] == [(0.0, None), (0.7, 1), (0.7, 2)]
    assert (stats.calls, stats.batches, stats.retries, stats.errors) == (4, 3, 2, 0)


def test_keys_never_accepted_are_returned():
    chat = Recording(lambda p, call: "hmm")
    never = ask_until_parsed(chat, _conversations("a", "b"), _reads_json, GenerationParams(), 1)
    assert never == ["a", "b"] and len(chat.calls) == 2


def test_a_raising_backend_costs_the_attempt_or_propagates():
    chat = Recording(lambda p, call: "{}", raise_on={1})
    stats = JudgeStats()
    never = ask_until_parsed(chat, _conversations("a"), _reads_json, GenerationParams(), 1, stats)
    assert never == [] and stats.errors == 1 and stats.calls == 2
    chat = Recording(lambda p, call: "{}", raise_on={1})
    with pytest.raises(RuntimeError, match="backend down"):
        ask_until_parsed(
            chat, _conversations("a"), _reads_json, GenerationParams(), 1, on_error="raise"
        )


def test_a_backend_answering_the_wrong_number_of_conversations_is_an_error():
    chat = Recording(lambda p, call: "{}", drop_one=True)
    with pytest.raises(RuntimeError, match="'recording' returned 1 results for 2"):
        ask_until_parsed(chat, _conversations("a", "b"), _reads_json, GenerationParams(), 1)


def test_a_result_without_choices_reads_as_an_empty_reply():
    class Empty:
        name = "empty"

        def chat(self, conversations, params=None):
            return [ChatResult(self.name, []) for _ in conversations]

    seen = []
    never = ask_until_parsed(
        Empty(), _conversations("a"), lambda k, r: seen.append(r) or False, GenerationParams(), 0
    )
    assert never == ["a"] and seen == [""]


def test_bad_arguments_are_refused():
    chat = Recording(lambda p, call: "{}")
    with pytest.raises(ValueError, match="max_retries"):
        ask_until_parsed(chat, _conversations("a"), _reads_json, GenerationParams(), -1)
    with pytest.raises(ValueError, match="on_error"):
        ask_until_parsed(
            chat, _conversations("a"), _reads_json, GenerationParams(), 0, on_error="ignore"
        )


# --- ask_parsed ---------------------------------------------------------------------------------


def _number(text):
    value = json.loads(text) if text.startswith("{") else None
    return value["n"] if value else None


def test_ask_parsed_keeps_value_last_text_and_attempts_per_prompt():
    chat = Recording(lambda p, call: '{"n": 1}' if p == "a" or call == 2 else "later")
    answers = ask_parsed(chat, ["a", "b", "c"], GenerationParams(), 2, _number)
    assert [(a.value, a.text, a.attempts) for a in answers] == [
        (1, '{"n": 1}', 1),
        (1, '{"n": 1}', 2),
        (1, '{"n": 1}', 2),
    ]
    stubborn = ask_parsed(Recording(lambda p, call: "no"), ["a"], GenerationParams(), 2, _number)
    assert [(a.value, a.text, a.attempts) for a in stubborn] == [(None, "no", 3)]


def test_ask_parsed_lets_backend_errors_through():
    chat = Recording(lambda p, call: '{"n": 1}', raise_on={2})
    with pytest.raises(RuntimeError, match="backend down"):
        ask_parsed(chat, ["a"], GenerationParams(), 2, lambda text: None)
