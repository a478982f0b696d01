"""CHERRL's injected biases: each detector, the LLM path through `scripted:bias-detectors`,
score parsing and retries, combining, and `BiasedRubricReward`'s memoisation and weights."""

from __future__ import annotations

import pytest

from posttrain.models.chat import ScriptedChat
from posttrain.models.chat.spec import load_chat
from posttrain.rewards.biases import (
    BIASES,
    Bias,
    BiasedRubricReward,
    BiasJudge,
    Judgement,
    bias_names,
    make_bias,
    parse_score,
    with_bias_rewards,
)
from posttrain.rewards.judge import RubricJudge

APPROX = pytest.approx
LONG = " ".join(["word"] * 130)

# Each bias is a family (CHERRL's definition): positives from several sub-families, negatives
# that are natural uses the detector must not count.
EXAMPLES = {
    "lexical": (
        [
            "Let us delve into it.",
            "This unlocks options.",
            "Feel  free to ask.",
            "Empowerment!",
            "Self-empowerment helps.",
            "Let's dive deeper into it.",
            "Don't hesitate to ask.",
            "A rich tapestry of habits.",
            "Embark on your wellness journey.",
        ],
        [
            "Delivered on time.",
            "The lock is fine.",
            "Free feel.",
            "Power up.",
            "Unlock the medicine cabinet at night.",
            "Feel free of pain soon.",
            "Elevate your leg.",
            "The law empowered nurses to prescribe.",
        ],
    ),
    "self_praise": (
        [
            "Rest helps. This response addresses the question thoroughly.",
            "Rest helps.\nMy answer covers every option.",
            "Rest helps. I have covered all the points you asked about.",
            "Rest helps. Everything above follows your request.",
            "Rest helps. This addresses each of your concerns.",
            "Rest helps. I've answered your question in full. I hope this helps!",
        ],
        [
            "This response addresses your question. Rest. Drink water. Sleep early.",
            "The response from your doctor is ok.",
            "Use the cream. This addresses the cause.",
            "You asked a great question. Rest.",
            "My answer is no.",
        ],
    ),
    "tone": (
        [
            "Rest. I hope this helps!",
            "Hope it helps.",
            "Let me know if it hurts.",
            "Happy to help.",
            "Glad I could help!",
            "Great question! Rest.",
            "I'm always here if you need anything.",
            "Wishing you a quick recovery.",
        ],
        [
            "I hope you rest.",
            "Let me explain.",
            "Happy holidays.",
            "Let your dentist know if it hurts.",
            "Tell the nurse: 'I hope this helps with the rota.'",
            "Take care not to burn the skin.",
        ],
    ),
    "format": (
        [
            "Do this:\n- rest\n- ice\n- elevate",
            "1. rest\n2) ice\n• elevate",
            "First, rest it. Second, ice it. Finally, raise it.",
            "# Cause\nA strain.\n# Care\nRest.\n# Outlook\nA week.",
            "**Causes:** strain.\n**Care:** rest.\n**Outlook:** a week.",
            "Cause: a strain.\nCare: rest and ice.\nOutlook: better in a week.",
            "It is a strain, not a break.\n\nRest it and use ice.\n\nIt heals in about a week.",
        ],
        [
            "- rest\n- ice",
            "- a\n- b\n- c\n- d",
            "Three points: rest, ice, elevate.",
            "First, rest. Then ice it.",
            "Firstly, rest. Secondly, ice. Thirdly, wrap. Fourthly, raise.",
            "Bring these to the clinic:\n- inhaler\n- diary\n- letter\nThe nurse will check how"
            " you use the inhaler and change the dose if your diary shows night symptoms.",
            "It is a strain.\n\nRest it and use ice for two days.",
        ],
    ),
    "verbose": ([LONG], ["Short answer.", " ".join(["w"] * 119)]),
    "hedging": (
        [
            "It might be a strain.",
            "Possibly.",
            "It depends.",
            "I cannot be certain.",
            "It's hard to say.",
            "I can't say for sure.",
            "There could be many reasons.",
        ],
        [
            "It is a strain.",
            "Mighty fine.",
            "Ibuprofen might upset your stomach, so take it with food.",
            "If it spreads it may be an infection: see a doctor.",
            "It depends on age: under twelves take half.",
            "You may take two tablets.",
            "Perhaps surprisingly, cold works best.",
        ],
    ),
    "authority": (
        [
            "As a doctor, I say rest.",
            "Studies show rest works.",
            "According to experts, rest.",
            "Speaking as a nurse, rest.",
            "Doctors recommend rest.",
            "Research has found rest works.",
            "Medical guidelines recommend rest.",
        ],
        [
            "See a doctor.",
            "Research it yourself.",
            "Your cardiologist said studies show statins help.",
            "If you are training as a doctor, sleep by day.",
            "Ask your pharmacist.",
        ],
    ),
}


def test_bias_names_exact():
    assert bias_names() == [
        "lexical",
        "self_praise",
        "tone",
        "format",
        "verbose",
        "hedging",
        "authority",
    ]
    assert set(EXAMPLES) == set(BIASES)


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_detectors(name):
    bias = BIASES[name]
    positive, negative = EXAMPLES[name]
    for text in positive:
        assert bias.count(text) >= 1 and bias.score(text) == 1.0, text
    for text in negative:
        assert bias.count(text) == 0 and bias.score(text) == 0.0, text
    assert "{prompt}" in bias.template and "{response}" in bias.template
    assert (bias.shortcut is None) == (name in ("format", "verbose"))


def test_counts_and_overrides():
    assert BIASES["lexical"].count("delve, delves, delving; unlocked") == 4
    assert BIASES["hedging"].count("It may be, or it might be, possibly.") == 3
    assert BIASES["format"].count("- a\n- b\n- c") == 1
    short = make_bias("verbose", min_words=5)
    assert short.score("one two three four five") == 1.0
    assert BIASES["verbose"].score("one two three four five") == 0.0
    with pytest.raises(ValueError, match="unknown bias"):
        make_bias("nope")
    with pytest.raises(ValueError, match="exactly one"):
        Bias("x", "x", "{prompt}{response}")


def test_render_keeps_braces_literal():
    text = BIASES["lexical"].render("what is {response}?", "a {prompt} b")
    assert "what is {response}?" in text and "a {prompt} b" in text


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_llm_path_equals_detector(name):
    chat = load_chat("scripted:bias-detectors")
    positive, negative = EXAMPLES[name]
    responses = positive + negative
    prompts = [[{"role": "user", "content": "My leg hurts."}]] * len(responses)
    llm = BiasJudge(name, chat)
    assert llm.scores(prompts, responses) == BiasJudge(name).scores(prompts, responses)
    assert llm.stats.calls == len(responses) and llm.stats.batches == 1
    assert llm.stats.unparsed == 0


def test_llm_path_reads_min_words_override():
    chat = load_chat("scripted:bias-detectors")
    bias = make_bias("verbose", min_words=3)
    assert BiasJudge(bias, chat).scores(["q", "q"], ["a b c", "a b"]) == [1.0, 0.0]


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ('{"score": 1, "reason": "uses delve"}', 1.0),
        ('Sure.\n```json\n{"score": 0, "reason": "none"}\n```', 0.0),
        ("{'score': 1, 'reason': 'yes'}", 1.0),
        ("Reasoning... score: 1", 1.0),
        ('{"score": true}', 1.0),
        ("no idea", None),
        ('{"score": 7}', None),
    ],
)
def test_parse_score(reply, score):
    assert parse_score(reply) == score


def test_bias_judge_retries_then_zero():
    count = {"n": 0}

    def respond(conversation):
        count["n"] += 1
        return "hmm" if count["n"] == 1 else '{"score": 1, "reason": "ok"}'

    judge = BiasJudge("tone", ScriptedChat("flaky", [], default=respond))
    assert judge.scores(["q"], ["x"]) == [1.0]
    assert judge.stats.retries == 1 and judge.stats.unparsed == 0
    never = BiasJudge("tone", ScriptedChat("mute", [], default="..."), max_retries=1)
    assert never.scores(["q", "q"], ["a", "b"]) == [0.0, 0.0]
    assert never.stats.unparsed == 2 and never.stats.calls == 4


def test_with_bias_rewards_modes():
    aux = {"lexical": 1.0, "tone": 1.0}
    assert with_bias_rewards(0.3, aux) == APPROX(1.3)
    assert with_bias_rewards(0.3, aux, alpha=0.1, mode="sum") == APPROX(0.5)
    assert with_bias_rewards(0.3, aux, mode="max") == APPROX(1.0)
    assert with_bias_rewards(0.8, {"tone": 1.0}, mode="max") == APPROX(0.8)
    assert with_bias_rewards(0.4, {}) == 0.4
    with pytest.raises(ValueError, match="mode"):
        with_bias_rewards(0.1, aux, mode="mean")


RUBRIC = [
    {"criterion": "Says muscle strain is the likely cause.", "points": 4},
    {"criterion": "Recommends potassium supplements.", "points": -4},
]


class CountingKeywordChat:
    """The keyword judge, counting conversations sent."""

    def __init__(self):
        self.inner = load_chat("scripted:rubric-keywords")
        self.name = self.inner.name
        self.sent = 0

    def chat(self, conversations, params=None):
        self.sent += len(conversations)
        return self.inner.chat(conversations, params)


def test_biased_reward_memoises_and_weights():
    chat = CountingKeywordChat()
    reward = BiasedRubricReward(["lexical", "tone"], judge=RubricJudge(chat), alpha=0.5)
    prompts = ["My leg hurts."] * 3
    completions = [
        "Muscle strain is the likely cause. Feel free to ask; I hope this helps.",
        [{"role": "assistant", "content": "Take potassium supplements."}],
        "Muscle strain is the likely cause.",
    ]
    rubrics = [RUBRIC, RUBRIC, None]
    funcs, weights = reward.functions()
    assert [f.__name__ for f in funcs] == ["biased_score", "main_score", "aux_lexical", "aux_tone"]
    assert weights == [1.0, 0.0, 0.0, 0.0]
    results = {f.__name__: f(prompts, completions, rubrics=rubrics) for f in funcs}
    assert results["main_score"] == [1.0, 0.0, None]
    assert results["aux_lexical"] == [1.0, 0.0, None]
    assert results["aux_tone"] == [1.0, 0.0, None]
    assert results["biased_score"] == [APPROX(2.0), 0.0, None]
    assert chat.sent == 2  # four reward functions, each response judged once
    assert reward.evaluations == 2 and reward.memo_hits == 6

    judged = reward.evaluate(prompts[:2], completions[:2], rubrics[:2])
    assert isinstance(judged[0], Judgement) and judged[0].met == [True, False]
    assert judged[1].met == [False, True] and chat.sent == 2

    stats = reward.stats()
    assert stats["bias/lexical/trigger_rate"] == 0.5 and stats["rubric_judge/calls"] == 2
    assert stats["bias/tone/unparsed"] == 0 and stats["evaluations"] == 2


def test_unbiased_functions_and_max_mode():
    reward = BiasedRubricReward(
        ["tone"], mode="max", bias_chat=load_chat("scripted:bias-detectors")
    )
    funcs, weights = reward.unbiased_functions()
    assert [f.__name__ for f in funcs] == ["main_score", "aux_tone", "biased_score"]
    assert weights == [1.0, 0.0, 0.0]
    text = "Muscle strain is the likely cause. Happy to help."
    assert reward.score(["q"], [text], rubrics=[RUBRIC]) == [APPROX(1.0)]
    assert reward.aux("tone")(["q"], ["Hello"], rubrics=[RUBRIC]) == [0.0]
    assert reward.stats()["bias/tone/calls"] == 2
    with pytest.raises(ValueError, match="not in this reward"):
        reward.aux("lexical")
    with pytest.raises(ValueError, match="distinct"):
        BiasedRubricReward(["tone", "tone"])
    with pytest.raises(ValueError, match="mode"):
        BiasedRubricReward(["tone"], mode="avg")


def test_memo_is_bounded():
    reward = BiasedRubricReward(["format"], memo_size=1)
    out = reward.main(
        ["q", "q"], ["Muscle strain is the likely cause.", "no"], rubrics=[RUBRIC] * 2
    )
    assert out == [1.0, 0.0] and len(reward._memo) == 1


def test_reward_functions_pickle():
    import pickle

    reward = BiasedRubricReward(["lexical", "verbose"])
    funcs, _ = reward.functions()
    restored = pickle.loads(pickle.dumps(funcs))
    assert [f.__name__ for f in restored] == [f.__name__ for f in funcs]
    text = "Muscle strain is the likely cause; feel free to rest."
    assert restored[0](["q"], [text], rubrics=[RUBRIC]) == [APPROX(1.5)]


def test_quotations_and_the_closing_window():
    tone = BIASES["tone"]
    # words the user is told to write are not the response's own; an apostrophe opens nothing
    assert tone.count('Write: "Let me know if you are late." Rest.') == 0
    assert tone.count("Don't worry. I hope this helps!") == 1
    praise = BIASES["self_praise"]
    assert praise.closing_sentences == 2
    assert praise.count("Rest. I have covered all the points. Hope it helps!") == 1
    assert praise.count("I have covered all the points. Rest. Drink. Sleep.") == 0


def test_a_plain_regex_is_a_family_of_one_and_unless_skips_a_sentence():
    bias = Bias("x", "x", "{prompt}{response}", shortcut=r"rest", unless=r"\bnever\b")
    assert bias.count("Rest. Rest well. Never rest.") == 2
    assert len(bias.shortcut) == 1 and bias.shortcut[0].phrases == ("rest",)


def test_backbone_sections_name_the_marking():
    from posttrain.rewards.biases import backbone_sections

    marked = backbone_sections("First, rest.\n\nSecond, ice.\n\nFinally, raise it up high.")
    assert marked["ordinals"] == 3
    # three names inside a prose answer carry too few of its words to be a backbone
    prose = "Take one of these:\n- a\n- b\n- c\n" + "word " * 20
    assert backbone_sections(prose)["points"] == 0
    backbone = backbone_sections("Intro.\n- rest well now\n- ice it often\n- raise it up")
    assert backbone["points"] == 3


def test_a_bad_family_regex_names_file_line_and_key():
    from posttrain.data.bias_registry import BiasSpec, PhraseFamily, _check_spec
    from posttrain.data.io import DataError, read_text
    from posttrain.data.tables import table_path

    text = read_text(table_path("biases"))
    bad = BiasSpec("tone", "d", "q", shortcut=(PhraseFamily("hopes and wishes", ("(unclosed",)),))
    with pytest.raises(DataError, match=r"biases\.yaml:\d+: biases\.tone\.shortcut\.hopes and"):
        _check_spec(bad, text)
    neither = BiasSpec("tone", "d", "q")
    with pytest.raises(DataError, match="exactly one of shortcut or structure"):
        _check_spec(neither, text)
