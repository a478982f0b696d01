"""The pipeline's analysis step with a model: its answer when it gives one, the rule-based
analysis (labelled as a fallback naming the model) when it never does; then a build with a
model that never writes a page ends on the emergency page, labelled."""

from __future__ import annotations

import json

from posttrain.maic.documents import load_document
from posttrain.maic.pipeline import SAMPLE_LESSON, analyse, build
from posttrain.models.chat.base import ChatResult, Choice


class Replies:
    """A chat model that answers every prompt with `text`."""

    def __init__(self, name: str, text: str) -> None:
        self.name, self.text, self.calls = name, text, 0

    def chat(self, conversations, params=None):
        self.calls += len(conversations)
        return [
            ChatResult(model=self.name, choices=[Choice(text=self.text)]) for _ in conversations
        ]


ANALYSIS = {
    "main_topics": ["Forces"],
    "key_concepts": ["force", "mass"],
    "learning_objectives": ["Use F = ma"],
    "prerequisite_knowledge": ["speed"],
    "difficulty_level": "beginner",
    "target_grade_level": "grade 9",
    "subject_area": "physics",
    "procedural_concepts": [{"name": "Measuring", "key_steps": ["weigh", "pull"]}],
    "definitions": {"force": "a push or pull"},
}


def test_a_model_analysis_or_the_labelled_fallback():
    document = load_document(SAMPLE_LESSON)
    good = Replies("remote-model", "```json\n" + json.dumps(ANALYSIS) + "\n```")
    assert analyse(document, good).analyser == "remote-model"
    junk = Replies("junk-model", "I cannot help with that.")
    fallback = analyse(document, junk)
    assert fallback.analyser == "rule-based (fallback: junk-model gave no valid analysis)"
    assert junk.calls == 3 and "force" in fallback.key_concepts


def test_a_model_that_never_writes_a_page_ends_on_the_emergency_page(tmp_path):
    summary = build(SAMPLE_LESSON, tmp_path, chat=Replies("junk-model", "no page"), verify=False)
    assert summary["source"] == "emergency" and summary["attempts"] == 3
    assert summary["analyser"].startswith("rule-based (fallback: junk-model")
    assert "posttrain-maic emergency" in (tmp_path / "page.html").read_text()
