"""ScriptedChat: deterministic rule-driven answers and the named-script registry."""

from __future__ import annotations

import pytest

from posttrain.data.arithmetic import ArithmeticTask, make_splits
from posttrain.models.chat import (
    ChatModel,
    GenerationParams,
    ScriptedChat,
    ask,
    load_chat,
    scripted,
)
from posttrain.models.chat.scripted import make_script, register_script, script_names


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.fixture(autouse=True)
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scripts registered by a test vanish after it."""
    monkeypatch.setattr(scripted, "_SCRIPTS", dict(scripted._SCRIPTS))


def test_rules_in_order_templates_callables_and_default() -> None:
    bot = ScriptedChat(
        "greeter",
        [
            (r"my name is (\w+)", r"Hello, \1!"),
            (r"(?i)hello", lambda match, conv: f"{len(conv)} turns, said {match.group(0)}"),
            (r"name", "never reached for 'my name is'"),
        ],
        default="?",
    )
    assert isinstance(bot, ChatModel)
    assert ask(bot, "my name is Ada") == "Hello, Ada!"
    assert ask(bot, "well HELLO") == "1 turns, said HELLO"
    assert ask(bot, "nothing matches") == "?"
    callable_default = ScriptedChat("d", default=lambda conv: conv[-1]["content"].upper())
    assert ask(callable_default, "loud") == "LOUD"


def test_matches_the_last_user_message_only() -> None:
    echo = make_script("echo")
    conversation = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first\nline two"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "second\nmessage"},
        {"role": "assistant", "content": "partial"},
    ]
    assert echo.chat([conversation])[0].text == "second\nmessage"
    assert echo.chat([[{"role": "system", "content": "only"}]])[0].text == ""


def test_deterministic_and_named_in_every_output() -> None:
    conversations = [user("What is 2 + 3?"), user("hi"), user("What is 10 * 4?")]
    params = GenerationParams(temperature=1.0, seed=None)
    a = make_script("arithmetic").chat(conversations, params)
    b = make_script("arithmetic").chat(conversations, params)
    assert a == b
    assert [r.text for r in a] == ["5", "I don't know", "40"]
    assert {r.model for r in a} == {"scripted:arithmetic"}
    assert ScriptedChat("x").name == ScriptedChat("scripted:x").name == "scripted:x"


def test_arithmetic_answers_the_task_exactly() -> None:
    train, test = make_splits(ArithmeticTask(n_train=300, n_test=50))
    rows = train + test
    results = make_script("arithmetic").chat([row["prompt"] for row in rows])
    assert [r.text for r in results] == [row["answer"] for row in rows]


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("What is 7 - 12?", "-5"),
        ("what is -3 + 4", "1"),
        ("Please answer. What is 6 x 7? Reply with a number.", "42"),
        ("What is 123456789 * 1000?", "123456789000"),
        ("What is 1 + 2 + 3?", "I don't know"),
        ("What is 1.5 + 2?", "I don't know"),
        ("What is 2 + 2.5?", "I don't know"),
        ("What is the capital of France?", "I don't know"),
    ],
)
def test_arithmetic_edge_cases(question: str, answer: str) -> None:
    assert ask(make_script("arithmetic"), question) == answer


def test_n_choices_and_no_token_data() -> None:
    [result] = make_script("echo").chat([user("same")], GenerationParams(n=3))
    assert [c.text for c in result.choices] == ["same"] * 3
    assert all(c.token_ids is None and c.logprobs is None for c in result.choices)
    assert all(c.finish_reason == "stop" for c in result.choices)


def test_stop_strings_truncate() -> None:
    params = GenerationParams(stop=("\n", "END"))
    assert make_script("echo").chat([user("abcENDdef\nghi")], params)[0].text == "abc"


def test_registry_is_one_call() -> None:
    assert {"echo", "arithmetic"} <= set(script_names())
    register_script("shout", lambda: ScriptedChat("shout", [(r".+", lambda m, c: m[0].upper())]))
    model = load_chat("scripted:shout")
    assert isinstance(model, ScriptedChat)
    assert ask(model, "quiet") == "QUIET"
    assert model.chat([user("x")])[0].model == "scripted:shout"

    with pytest.raises(ValueError, match="already registered"):
        register_script("shout", lambda: ScriptedChat("shout"))
    register_script("shout", lambda: ScriptedChat("shout", default="replaced"), replace=True)
    assert ask(make_script("scripted:shout"), "x") == "replaced"


def test_factories_take_keyword_arguments() -> None:
    register_script("verdict", lambda verdict="A": ScriptedChat("verdict", default=verdict))
    assert ask(load_chat("scripted:verdict"), "which?") == "A"
    assert ask(load_chat("scripted:verdict", verdict="B"), "which?") == "B"


def test_unknown_script_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown script 'scripted:nope'.*arithmetic.*echo"):
        load_chat("scripted:nope")
    with pytest.raises(ValueError, match="non-empty"):
        register_script("", lambda: ScriptedChat("empty"))
