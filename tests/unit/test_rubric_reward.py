"""LongTraceRL rubric rewards: text helpers, rubric and outcome scores, group-max normalisation,
the four combination modes, the LLM judge, TRL-signature calls and the verl adapter."""

from __future__ import annotations

import json
import pickle
import re

import pytest

from posttrain.models.chat import ScriptedChat
from posttrain.models.chat.base import ChatResult, Choice
from posttrain.models.chat.scripted import make_script, register_script
from posttrain.rewards import get_reward, to_verl_compute_score
from posttrain.rewards.rubric import (
    JudgeOutcome,
    entity_hit,
    group_max_normalise,
    longtrace_rubric_recall,
    make_longtrace_reward,
    normalise_text,
    outcome_exact,
    outcome_with_rubric,
    parse_verdict,
    prompt_groups,
    rubric_score,
    visible_answer,
    well_formed,
)

APPROX = pytest.approx

# --- text helpers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello, World!  foo_bar-42", "hello world foo_bar 42"),
        ("**Marie   Curie**\n(1867–1934).", "marie curie 1867 1934"),
        ("北京大学（Peking University）", "北 京 大 学 peking university"),
        ("東京タワー", "東 京 タ ワ ー"),
        ("Ｐａｒｉｓ Café Straße", "paris cafe strasse"),
        ("ｶﾞ", "ガ"),  # half-width kana with its voicing mark folds to one character
        ("한국", "한 국"),
        ("Москва", ""),  # scripts other than Latin and CJK drop out
        ("", ""),
    ],
)
def test_normalise_text(text: str, expected: str) -> None:
    assert normalise_text(text) == expected


def test_visible_answer_is_the_text_after_the_last_think_close() -> None:
    assert visible_answer("<think>a</think> b") == " b"
    assert visible_answer("x</think>y</think>z") == "z"
    assert visible_answer("plain answer") == "plain answer"


@pytest.mark.parametrize(
    ("text", "ok", "ok_strict"),
    [
        ("<think>r</think>Paris", True, True),
        ("r</think>Paris", True, True),  # template opened <think> in the prompt
        ("Paris", True, False),
        ("<think>r</think>  \n", False, False),  # empty visible answer
        ("a</think>b</think>c", False, False),  # two </think>
        ("<think>cut off mid-reasoning, Paris", False, False),  # never closed
        ("", False, False),
    ],
)
def test_well_formed(text: str, ok: bool, ok_strict: bool) -> None:
    assert well_formed(text) is ok
    assert well_formed(text, require_think=True) is ok_strict


@pytest.mark.parametrize(
    ("entity", "text", "hit"),
    [
        ("ana", "Banana split", False),  # whole tokens only
        ("Ana", "I met Ana Lopez.", True),
        ("Ana Lopez", "ana-lopez", True),
        ("Lopez Ana", "Ana Lopez", False),
        ("Paris", "<think>Paris</think>London", False),  # reasoning is not the answer
        ("北京", "答案：北京大学", True),  # CJK matches per character
        ("", "anything", False),
        ("!!", "!!", False),  # normalises to ""
    ],
)
def test_entity_hit(entity: str, text: str, hit: bool) -> None:
    assert entity_hit(entity, text) is hit


RUBRIC = ["Marie Curie", "Warsaw", "Sorbonne", "Pierre Curie"]


def test_rubric_score_counts_entities_in_the_chosen_part_of_the_response() -> None:
    text = "<think>She taught at the Sorbonne.</think>Marie Curie was born in Warsaw."
    assert rubric_score(RUBRIC, text) == 0.5  # Marie Curie, Warsaw
    assert rubric_score(RUBRIC, text, scope="reasoning") == 0.25  # Sorbonne
    assert rubric_score(RUBRIC, text, scope="all") == 0.75
    assert rubric_score([], text) == 0.0
    assert rubric_score(["Warsaw", "Warsaw"], "Warsaw") == 1.0
    with pytest.raises(ValueError, match="scope"):
        rubric_score(RUBRIC, text, scope="everything")  # type: ignore[arg-type]


# --- groups -------------------------------------------------------------------------------------


def test_group_max_normalise_divides_by_the_group_max_and_keeps_zero_groups() -> None:
    scores = [0.5, 0.25, 0.0, 0.0, 0.0, 0.0, 0.2, 0.8]
    assert group_max_normalise(scores[:6], 3) == [1.0, 0.5, 0.0, 0.0, 0.0, 0.0]
    assert group_max_normalise(scores, 2) == APPROX([1.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.25, 1.0])
    assert group_max_normalise(scores, 8) == APPROX([0.625, 0.3125, 0, 0, 0, 0, 0.25, 1.0])
    assert group_max_normalise([], 4) == []
    for bad in (0, 3):
        with pytest.raises(ValueError, match="divisor"):
            group_max_normalise(scores, bad)


def test_prompt_groups_are_runs_of_identical_prompts() -> None:
    assert prompt_groups(["a", "a", "b", "b", "b"], 5) == [2, 3]
    assert prompt_groups(["a", "a", "b", "a"], 4) == [2, 1, 1]
    chat = [{"role": "user", "content": "q"}]
    assert prompt_groups([chat, list(chat), [{"role": "user", "content": "r"}]], 3) == [2, 1]
    # No repeat, no prompts, or misaligned prompts: the whole batch is one group.
    assert prompt_groups(["a", "b", "c"], 3) == [3]
    assert prompt_groups(None, 4) == [4]
    assert prompt_groups(["a"], 2) == [2]
    assert prompt_groups([], 0) == []


# --- outcome ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "answer", "aliases", "expected"),
    [
        ("<think>maybe London</think>Paris.", "Paris", (), 1.0),
        ("It is Paris, I think.", "Paris", (), 0.0),  # containment is not enough
        ("Step 1: Curie.\nStep 2: France.\n\n**Final answer:** Paris", "Paris", (), 1.0),
        ("The answer is NYC", "New York City", ("NYC",), 1.0),
        ("So the answer is $\\boxed{Paris}$.", "Paris", (), 1.0),
        ("Paris or London", "Paris", (), 0.0),
        ("答案是北京", "北京", (), 1.0),
        ("<think>Paris</think>London", "Paris", (), 0.0),
        ("Answer Me", "Answer Me", (), 1.0),  # an answer that starts with "answer"
        ("anything", "", (), 0.0),
        ("1867", 1867, (), 1.0),  # non-string answers
    ],
)
def test_outcome_exact(text: str, answer: object, aliases: tuple, expected: float) -> None:
    assert outcome_exact(text, answer, aliases) == expected


# --- combination --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "wrong", "right"),
    [
        # o = 0 / o = 1, with r = 0.5 and r~ = 0.8 (η = 0.3)
        ("positive_only", 0.0, 0.7 + 0.3 * 0.8),
        ("mixed", 0.3 * 0.5, 0.7 + 0.3 * 0.5),
        ("negative_only", 0.3 * 0.5, 1.0),
        ("outcome_only", 0.0, 1.0),
    ],
)
def test_outcome_with_rubric_modes(mode: str, wrong: float, right: float) -> None:
    assert outcome_with_rubric(mode, 0.0, 0.5, 0.8) == APPROX(wrong)
    assert outcome_with_rubric(mode, 1.0, 0.5, 0.8) == APPROX(right)


def test_outcome_with_rubric_eta_and_validation() -> None:
    assert outcome_with_rubric("positive_only", 1.0, 0.5, 0.5, eta=0.5) == APPROX(0.75)
    assert outcome_with_rubric("mixed", 0.0, 1.0, 1.0, eta=0.0) == 0.0
    with pytest.raises(ValueError, match="mode"):
        outcome_with_rubric("rubric_only", 1.0, 0.5, 0.5)
    with pytest.raises(ValueError, match="eta"):
        outcome_with_rubric("mixed", 1.0, 0.5, 0.5, eta=1.5)


# --- TRL-signature rewards ----------------------------------------------------------------------


def info(answer_aliases: list[str], rubrics: list[str], question: str) -> dict:
    return {
        "extra_reward_info": {
            "question": question,
            "rubrics": rubrics,
            "aliases": answer_aliases,
            "hops": len(rubrics),
            "distractor_setting": "tiered",
        }
    }


Q1 = info([], RUBRIC, "Where did the discoverer of polonium die?")
Q2 = info(["東京"], ["Japan", "Honshu"], "What is the capital of the country ...?")
BATCH = {
    "prompts": ["q1"] * 3 + ["q2"] * 3,
    "completions": [
        "<think>hmm</think>Marie Curie studied at the Sorbonne.\nFinal answer: Paris",  # o1 r.5
        "<think>hmm</think>Warsaw.\nParis",  # o=1, r=0.25
        "<think>hmm</think>Marie Curie, Warsaw, Sorbonne, Pierre Curie.\nLondon",  # o=0, r=1
        "<think>a</think>東京",  # o=1 by alias, r=0
        "<think>a</think>b</think>Japan, Honshu: Tokyo",  # ill-formed
        "<think>a</think>Kyoto",  # o=0, r=0
    ],
    "label": ["Paris"] * 3 + ["Tokyo"] * 3,
    "metadata": [Q1] * 3 + [Q2] * 3,
}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # group 1: r = [.5, .25, 1] so r~ = r; group 2: r = 0 everywhere, r~ stays 0
        ("longtrace_rubric", [0.85, 0.775, 0.0, 0.7, 0.0, 0.0]),
        ("longtrace_rubric_mixed", [0.85, 0.775, 0.3, 0.7, 0.0, 0.0]),
        ("longtrace_rubric_negative", [1.0, 1.0, 0.3, 1.0, 0.0, 0.0]),
        ("longtrace_outcome", [1.0, 1.0, 0.0, 1.0, 0.0, 0.0]),
    ],
)
def test_registered_rewards_on_longtrace_rows(name: str, expected: list[float]) -> None:
    fn = get_reward(name)
    assert fn.__name__ == name
    assert fn(**BATCH, trainer_state=None) == APPROX(expected)


def test_group_max_uses_groups_inferred_from_prompts_or_given() -> None:
    completions = [
        "Marie Curie, Warsaw.\nParis",  # o=1, r=0.5
        "Warsaw\nParis",  # o=1, r=0.25
        "Marie Curie, Warsaw, Sorbonne, Pierre Curie\nParis",  # o=1, r=1
        "London",  # o=0, r=0
    ]
    columns = {"answer": ["Paris"] * 4, "rubrics": [RUBRIC] * 4}
    fn = make_longtrace_reward()
    two_groups = fn(prompts=["a", "a", "b", "b"], completions=completions, **columns)
    assert two_groups == APPROX([1.0, 0.85, 1.0, 0.0])
    one_group = fn(prompts=["a"] * 4, completions=completions, **columns)
    assert one_group == APPROX([0.85, 0.775, 1.0, 0.0])
    no_repeats = fn(prompts=["a", "b", "c", "d"], completions=completions, **columns)
    assert no_repeats == one_group  # nothing to infer from: the whole batch
    explicit = make_longtrace_reward(group_size=2)
    assert explicit(prompts=["a"] * 4, completions=completions, **columns) == two_groups
    with pytest.raises(ValueError, match="groups of 3"):
        make_longtrace_reward(group_size=3)(prompts=["a"] * 4, completions=completions, **columns)


def test_columns_plain_json_aliases_and_missing_answers() -> None:
    fn = make_longtrace_reward("mixed", eta=0.5)
    completions = ["Warsaw\nParis", [{"role": "assistant", "content": "Ville Lumière"}], "x"]
    # metadata stored as JSON text; aliases inside it.
    meta = json.dumps(info(["Ville Lumiere"], ["Warsaw", "Curie"], "q"))
    out = fn(
        prompts=["p"] * 3,
        completions=completions,
        label=["Paris", "Paris", None],
        metadata=[meta] * 3,
    )
    assert out == [APPROX(0.5 + 0.25), 0.5, None]  # a row without an answer is not scored
    # Plain columns; an answer list is the answer then its aliases.
    plain = fn(
        prompts=["p"] * 2,
        completions=["NYC", "Brooklyn\nNew York"],
        answer=[["New York", "NYC"]] * 2,
        rubrics=[["Brooklyn"]] * 2,
    )
    assert plain == [0.5, 1.0]
    with pytest.raises(ValueError, match="'label'"):
        fn(prompts=["p"], completions=["x"], rubrics=[["a"]])
    with pytest.raises(ValueError, match="2 values for 1"):
        fn(prompts=["p"], completions=["x"], answer=["a", "b"])


def test_rows_can_choose_the_rubric_scope() -> None:
    text = "<think>Sorbonne and Warsaw</think>Marie Curie\nParis"
    flags = [
        {},  # default: the visible answer
        {"rubric_use_reasoning_content": True, "rubric_use_content": False},
        {"rubric_use_reasoning_content": True, "rubric_use_content": True},
    ]
    metadata = [{"extra_reward_info": {"rubrics": RUBRIC, **f}} for f in flags]
    assert longtrace_rubric_recall(
        prompts=["p"] * 3, completions=[text] * 3, metadata=metadata
    ) == [
        0.25,
        0.5,
        0.75,
    ]
    fixed = make_longtrace_reward("mixed", scope="all")
    meta = [{"extra_reward_info": {"rubrics": RUBRIC}}]
    assert fixed(prompts=["p"], completions=[text], label=["Paris"], metadata=meta) == [
        APPROX(0.7 + 0.3 * 0.75)
    ]


def test_rubric_recall_scores_every_response_and_skips_rows_without_rubric() -> None:
    out = longtrace_rubric_recall(
        prompts=["p"] * 3,
        completions=["a</think>b</think>Japan", "<think>Japan</think>", "x"],
        metadata=[Q2, Q2, {"extra_reward_info": {"rubrics": []}}],
    )
    assert out == [0.5, 0.0, None]  # the ill-formed first response still counts for recall
    assert get_reward("longtrace_rubric_recall") is longtrace_rubric_recall


def test_logs_batch_metrics_through_trl_log_metric() -> None:
    logged: dict[str, float] = {}
    get_reward("longtrace_rubric")(**BATCH, log_metric=logged.__setitem__)
    assert logged == APPROX(
        {
            "longtrace_rubric/outcome": 3 / 5,
            "longtrace_rubric/rubric": (0.5 + 0.25 + 1.0) / 5,
            "longtrace_rubric/ill_formed": 1 / 6,
        }
    )


def test_configured_rewards_pickle_and_validate() -> None:
    fn = pickle.loads(pickle.dumps(make_longtrace_reward("negative_only", 0.2, group_size=3)))
    assert (fn.mode, fn.eta, fn.group_size, fn.__name__) == (
        "negative_only",
        0.2,
        3,
        "longtrace_rubric_negative",
    )
    assert make_longtrace_reward(name="mine").__name__ == "mine"
    for kwargs in ({"mode": "x"}, {"eta": -0.1}, {"group_size": 0}, {"scope": "x"}):
        with pytest.raises(ValueError):
            make_longtrace_reward(**kwargs)


# --- judge --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ("extracted_final_answer: Paris\ncorrect: yes", True),
        ("**Correct**: No", False),
        ("extracted_final_answer: x\nreasoning: differs\n\n- **correct:** `yes`", True),
        ("correct: no\n...on reflection...\ncorrect: yes", True),  # the last verdict wins
        ("is_correct = no", False),
        ("Yes, it matches.", True),
        ("**No.**", False),
        ("<think>correct: no</think>correct: yes", True),
        ("incorrect: yes", None),
        ("The answer is correct", None),
        ("", None),
    ],
)
def test_parse_verdict(reply: str, verdict: bool | None) -> None:
    assert parse_verdict(reply) is verdict


def _grader(match: re.Match[str], conversation: object) -> str:
    """A fake judge: correct when the reference answer appears in the response."""
    reference, response = normalise_text(match["ref"]), normalise_text(match["resp"])
    ok = f" {reference} " in f" {response} "
    return f"extracted_final_answer: {match['resp']}\n\n**Correct:** {'Yes' if ok else 'No'}"


_JUDGE_RULE = r"(?s)Reference answer: (?P<ref>[^\n]*).*<<<\n(?P<resp>.*)\n>>>"
register_script(
    "longtrace-judge-test", lambda: ScriptedChat("longtrace-judge", [(_JUDGE_RULE, _grader)])
)


class Flaky:
    """Answers each conversation with the next scripted reply; counts chat calls."""

    name = "flaky"

    def __init__(self, *replies: str, fail: bool = False) -> None:
        self.replies = list(replies)
        self.calls = 0
        self.fail = fail

    def chat(self, conversations, params=None):
        self.calls += 1
        if self.fail:
            raise RuntimeError("judge endpoint down")
        out = []
        for _ in conversations:
            text = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
            out.append(ChatResult(model=self.name, choices=[Choice(text=text)]))
        return out


def test_judge_with_a_registered_script() -> None:
    judge = JudgeOutcome(make_script("longtrace-judge-test"))
    text = "<think>polonium...</think>She died near Passy; the city is Paris!"
    assert outcome_exact(text, "Paris") == 0.0  # the rule cannot read it
    assert judge(text, "Where?", "Paris") == 1.0
    assert judge("<think>x</think>London", "Where?", "Paris", ["City of Light"]) == 0.0
    assert judge("<think>only thinking</think>", "Where?", "Paris") == 0.0  # not asked
    assert (judge.requests, judge.fallbacks) == (2, 0)
    prompt = JudgeOutcome.prompt("<think>x</think>Paris", "Where?", "Paris", ["Paris", "PAR"])
    assert "Other accepted forms of the reference answer: PAR" in prompt
    assert "<think>" not in prompt


def test_judge_retries_garbage_then_falls_back_to_exact_match() -> None:
    flaky = Flaky("I am not sure what you mean.", "Correct: YES")
    judge = JudgeOutcome(flaky, retries=2)
    assert judge("hmm, Paris-ish", "q", "London") == 1.0  # second reply counts
    assert (flaky.calls, judge.requests, judge.fallbacks) == (2, 2, 0)

    garbage = Flaky("maybe?")
    judge = JudgeOutcome(garbage, retries=2)
    assert judge("Paris", "q", "Paris") == 1.0  # exact match after 1 + 2 unreadable replies
    assert judge("Paris", "q", "London") == 0.0
    assert (garbage.calls, judge.fallbacks) == (6, 2)

    down = JudgeOutcome(Flaky("correct: yes", fail=True), retries=1)
    assert down("Paris", "q", "Paris") == 1.0
    assert down.fallbacks == 1
    with pytest.raises(ValueError):
        JudgeOutcome(garbage, retries=-1)


def test_reward_with_judge_batches_and_skips_ill_formed() -> None:
    script = make_script("longtrace-judge-test")
    calls: list[int] = []

    class Counting:
        name = "counting"

        def chat(self, conversations, params=None):
            calls.append(len(conversations))
            return script.chat(conversations, params)

    model = Counting()
    fn = make_longtrace_reward("positive_only", judge=model)
    assert isinstance(fn.judge, JudgeOutcome)
    completions = [
        "<think>a</think>It must be Paris, home of the Sorbonne.",  # judge: yes; r = 1/4
        "<think>a</think>b</think>Paris",  # ill-formed: not asked
        "<think>a</think>Lyon",  # judge: no
    ]
    out = fn(prompts=["q"] * 3, completions=completions, label=["Paris"] * 3, metadata=[Q1] * 3)
    assert out == APPROX([1.0, 0.0, 0.0])
    assert calls == [2]  # one chat call for the two well-formed responses


# --- verl ---------------------------------------------------------------------------------------


def test_verl_adapter_scores_one_response_at_a_time() -> None:
    text = "<think>hmm</think>Marie Curie studied at the Sorbonne.\nFinal answer: Paris"
    extra = {"index": 7, "prompt": "q1", "metadata": Q1}
    positive = to_verl_compute_score(get_reward("longtrace_rubric"))
    # One response is its own group: r = 0.5 gives r~ = 1.
    assert positive("longtrace", text, "Paris", extra) == APPROX(1.0)
    assert positive("longtrace", text, "London", extra) == 0.0
    assert positive("longtrace", "a</think>b</think>Paris", "Paris", extra) == 0.0
    mixed = to_verl_compute_score(get_reward("longtrace_rubric_mixed"))
    assert mixed("longtrace", text, "Paris", extra) == APPROX(0.85)
    flat = {"rubrics": RUBRIC, "aliases": ["Paree"], "question": "q"}
    assert mixed(data_source="x", solution_str="Paree", ground_truth="Paris", extra_info=flat) == (
        APPROX(0.7)
    )
    nested = {"extra_reward_info": Q1["extra_reward_info"]}
    assert mixed("x", text, "Paris", nested) == APPROX(0.85)
    recall = to_verl_compute_score(longtrace_rubric_recall)
    assert recall("x", text, "Paris", flat) == 0.5
    assert recall("x", text, "Paris", {}) == 0.0  # no rubric: None, which verl scores 0
