"""The analysis of a teaching document: the rule-based analyser, validation, the model analyser."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from posttrain.errors import InputError
from posttrain.maic import analysis
from posttrain.maic.analysis import (
    Analysis,
    AnalysisFailed,
    Procedure,
    analyse_rules,
    analyse_with_model,
    analysis_prompt,
    flesch_kincaid_grade,
)
from posttrain.maic.documents import Document, Section, load_document
from posttrain.models.chat.base import ChatResult, Choice

DATA = Path(__file__).resolve().parents[1] / "data" / "maic"


def doc(*sections: Section, kind: str = "markdown") -> Document:
    return Document(path="lesson.md", kind=kind, title="Lesson", sections=list(sections))


# --------------------------------------------------------------------------- rule-based


def test_rules_on_a_physics_lesson():
    result = analyse_rules(load_document(DATA / "newtons_laws.md"))
    assert result.analyser == "rule-based"
    assert result.subject_area == "physics"
    assert result.target_grade_level == "grade 9"  # "A lesson for grade 9 physics."
    assert result.main_topics == [
        "Newton's Laws of Motion",
        "Force and mass",
        "Newton's second law",
        "Measuring acceleration",
    ]  # "Learning objectives" and "Prerequisites" are no topics
    assert result.definitions == {
        "force": "Force is a push or pull that can change the motion of an object.",
        "mass": "Mass — the amount of matter in an object, measured in kilograms.",
        "inertia": "Inertia refers to the tendency of an object to keep its state of motion.",
        "Newton's second law": "Newton's second law states that the acceleration of an object "
        "equals the net force divided by its mass.",
    }
    # Defined terms first, in order; then frequent terms ("net force" occurs 4 times).
    assert result.key_concepts[:4] == ["force", "mass", "inertia", "Newton's second law"]
    assert "net force" in result.key_concepts and "acceleration" in result.key_concepts
    assert "compute" not in result.key_concepts  # "Compute the ...": a verb
    assert result.procedural_concepts == [
        Procedure(
            "Measuring acceleration",
            [
                "Measure the mass of the cart with a balance.",
                "Attach a spring scale and pull the cart with a constant force.",
                "Record the time the cart takes to travel one metre.",
                "Compute the acceleration from the distance and the time.",
            ],
        )
    ]
    assert result.learning_objectives == [
        "State Newton's second law and use it to compute acceleration.",
        "Understand how net force, mass and acceleration are related.",
    ]
    assert result.prerequisite_knowledge == [
        "Before this lesson you should know how to compute speed from distance and time."
    ]
    assert result.difficulty_level == "beginner"
    assert analyse_rules(load_document(DATA / "newtons_laws.md")) == result  # deterministic


def test_rules_on_a_text_file_with_sequence_words():
    result = analyse_rules(load_document(DATA / "photosynthesis.txt"))
    assert result.subject_area == "biology"
    assert list(result.definitions) == ["photosynthesis", "chlorophyll"]
    assert result.procedural_concepts == [
        Procedure(
            "How plants make food",
            [
                "The leaf absorbs light with chlorophyll.",
                "Water is split into oxygen and hydrogen.",
                "Carbon dioxide enters the leaf through small pores.",
                "The plant cells combine hydrogen and carbon dioxide into glucose.",
            ],
        )
    ]
    # No objective sentences: "Explain" the top three concepts.
    assert result.learning_objectives == [
        "Explain photosynthesis",
        "Explain chlorophyll",
        "Explain carbon dioxide",
    ]
    assert result.prerequisite_knowledge == []
    # Beginner prose and no grade mentioned: the grade follows the difficulty.
    assert result.target_grade_level == "middle school (grades 6-8)"


def test_rules_on_a_pdf_with_numbered_steps(tmp_path):
    from test_maic_documents import write_lesson_pdf

    result = analyse_rules(load_document(write_lesson_pdf(tmp_path / "lesson.pdf")))
    assert result.procedural_concepts == [
        Procedure(
            "Newton's Second Law",
            [
                "Measure the mass of the cart.",
                "Pull the cart with a constant force.",
                "Compute the acceleration.",
            ],
        )
    ]
    assert result.key_concepts[0] == "force"
    assert result.subject_area == "physics"


def test_definition_patterns_and_what_is_no_definition():
    section = Section(
        "Kinematics",
        "Velocity: the rate of change of position with time.\n"
        "Note: units matter in every answer.\n"
        "It is a vector quantity. This is the key idea.\n"
        "A **vector** — a quantity with a magnitude and a direction.\n"
        "Speed is defined as distance travelled per unit time.\n"
        "Displacement means the change in position.",
    )
    result = analyse_rules(doc(section))
    assert list(result.definitions) == ["velocity", "vector", "speed", "displacement"]
    assert result.definitions["speed"] == "Speed is defined as distance travelled per unit time."


def test_numbered_lists_restart_and_bullets_under_a_procedure_heading():
    result = analyse_rules(
        doc(
            Section(
                "Titration",
                "To prepare the burette:\n1. Rinse it.\n2. Fill it with acid.\n"
                "Then the flask:\n1. Add the base.\n2. Add indicator.\n3) Swirl it.\n"
                "7. A lone item numbered 7 is no procedure.",
            ),
            Section("Steps for cleaning", "- Empty the burette.\n- Rinse with water."),
            Section("Numbers", "1. Only one item."),
        )
    )
    assert result.procedural_concepts == [
        Procedure("Titration: To prepare the burette", ["Rinse it.", "Fill it with acid."]),
        Procedure("Titration: Then the flask", ["Add the base.", "Add indicator.", "Swirl it."]),
        Procedure("Steps for cleaning", ["Empty the burette.", "Rinse with water."]),
    ]


def test_flesch_kincaid_and_difficulty():
    # 6 words, 6 one-syllable words: 0.39 * 6 + 11.8 * 1 - 15.59.
    assert flesch_kincaid_grade(["The cat sat on the mat."]) == pytest.approx(-1.45)
    assert flesch_kincaid_grade([]) == 0.0
    dense = (
        "Thermodynamic equilibrium characterises macroscopic configurations exhibiting "
        "statistically indistinguishable microscopic distributions, notwithstanding "
        "considerable fluctuations originating from irreversible dissipative interactions."
    )
    # 18 words, 74 syllables by vowel groups (a final silent e not counted):
    # 0.39 * 18 + 11.8 * 74 / 18 - 15.59 = 39.94.
    assert flesch_kincaid_grade([dense]) == pytest.approx(39.94, abs=0.01)
    result = analyse_rules(doc(Section("Equilibrium", dense)))
    assert (result.difficulty_level, result.target_grade_level) == ("advanced", "undergraduate")


def test_subject_by_keywords_and_general_otherwise():
    algorithms = Section(
        "Sorting", "An algorithm sorts an array. Merge sort is a recursive algorithm."
    )
    assert analyse_rules(doc(algorithms)).subject_area == "computer science"
    assert analyse_rules(doc(Section("Greetings", "Say hello politely."))).subject_area == "general"
    # One keyword is not enough to call the subject.
    assert analyse_rules(
        doc(Section("Tea", "Tea is a drink. The cell phone rang."))
    ).subject_area == ("general")


def test_main_topics_fall_back_to_concepts_without_headings():
    text = "Energy is the capacity to do work. Energy is conserved. Heat carries energy."
    result = analyse_rules(doc(Section(None, text), kind="text"))
    assert result.main_topics == result.key_concepts[:3] and result.main_topics[0] == "energy"


# --------------------------------------------------------------------------- validation


def valid_dict() -> dict:
    return {
        "main_topics": ["Forces"],
        "key_concepts": ["force", "mass"],
        "learning_objectives": ["Use F = ma"],
        "prerequisite_knowledge": ["speed"],
        "difficulty_level": " Beginner ",
        "target_grade_level": "grades 9-10",
        "subject_area": "Physics",
        "procedural_concepts": [{"name": "Measure a", "key_steps": ["weigh", "pull", "time"]}],
        "definitions": {"force": "A push or pull."},
    }


def test_from_dict_round_trip_and_normalising():
    built = Analysis.from_dict(valid_dict(), analyser="m")
    assert (built.difficulty_level, built.subject_area, built.analyser) == (
        "beginner",
        "physics",
        "m",
    )
    assert built.procedural_concepts == [Procedure("Measure a", ["weigh", "pull", "time"])]
    assert Analysis.from_dict(json.loads(json.dumps(built.to_dict()))) == built


@pytest.mark.parametrize(
    ("change", "key", "message"),
    [
        (lambda d: d.pop("key_concepts"), "key_concepts", "missing"),
        (lambda d: d.update(main_topics="Forces"), "main_topics", "list of strings"),
        (lambda d: d.update(difficulty_level="expert"), "difficulty_level", "one of"),
        (lambda d: d.update(subject_area=""), "subject_area", "non-empty string"),
        (
            lambda d: d["procedural_concepts"].append({"name": "x", "key_steps": "a, b"}),
            "procedural_concepts[1].key_steps",
            "list of strings",
        ),
        (
            lambda d: d["procedural_concepts"].append({"key_steps": []}),
            "procedural_concepts[1].name",
            "missing",
        ),
        (lambda d: d.update(definitions=["force"]), "definitions", "concept -> definition"),
        (lambda d: None, "analyser", "missing"),
    ],
)
def test_from_dict_errors_name_the_key(change, key, message):
    data = valid_dict()
    change(data)
    with pytest.raises(InputError, match=message) as caught:
        Analysis.from_dict(data, where="answer.json")
    assert (caught.value.path, caught.value.key) == ("answer.json", key)


def test_from_dict_rejects_a_non_object():
    with pytest.raises(InputError, match="expected a JSON object, got a list"):
        Analysis.from_dict([1, 2])


# --------------------------------------------------------------------------- model analyser


class ReplayChat:
    """A chat model answering from a list of replies, recording what it was asked."""

    def __init__(self, replies: list[str], name: str = "replay-model") -> None:
        self.name = name
        self.replies = list(replies)
        self.asked: list[tuple[str, float]] = []

    def chat(self, conversations, params=None):
        results = []
        for conversation in conversations:
            self.asked.append((conversation[-1]["content"], params.temperature))
            reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
            results.append(ChatResult(model=self.name, choices=[Choice(text=reply)]))
        return results


def test_model_analyser_re_asks_until_it_reads_valid_json():
    invalid = dict(valid_dict(), difficulty_level="hard")  # reads as JSON, fails validation
    fenced = "Here is the analysis:\n```json\n" + json.dumps(valid_dict(), indent=2) + "\n```"
    chat = ReplayChat(["I think this lesson is about forces!", json.dumps(invalid), fenced])
    lesson = load_document(DATA / "newtons_laws.md")
    result = analyse_with_model(lesson, chat)
    assert result.analyser == "replay-model"
    assert result.key_concepts == ["force", "mass"] and result.difficulty_level == "beginner"
    assert len(chat.asked) == 3
    prompt = chat.asked[0][0]
    assert "Force is a push or pull" in prompt and '"procedural_concepts"' in prompt
    assert [t for _, t in chat.asked] == [0.0, 0.7, 0.7]  # re-asks sample


def test_model_analyser_gives_up_naming_the_model_and_reply():
    chat = ReplayChat(["Sorry, I cannot help with that."], name="stubborn")
    with pytest.raises(AnalysisFailed) as caught:
        analyse_with_model(doc(Section("T", "Force is a push.")), chat, attempts=2)
    message = str(caught.value)
    assert "'stubborn'" in message and "2 attempt(s)" in message
    assert "no JSON object" in message and "Sorry, I cannot help" in message
    assert len(chat.asked) == 2


def test_model_analyser_failure_reports_the_validation_problem():
    chat = ReplayChat([json.dumps(dict(valid_dict(), key_concepts="force"))], name="m")
    with pytest.raises(AnalysisFailed, match=r"reply of m: key_concepts: expected a list"):
        analyse_with_model(doc(Section("T", "Force is a push.")), chat, attempts=1)
    assert len(chat.asked) == 1


def test_model_prompt_is_bounded(monkeypatch):
    monkeypatch.setattr(analysis, "MAX_PROMPT_CHARS", 100)
    long = doc(Section("T", "x" * 500))
    prompt = analysis_prompt(long)
    assert "x" * 98 in prompt and "x" * 101 not in prompt
    assert "[... cut: 402 more chars]" in prompt  # "T\n" + 500 x = 502 characters
