"""Page generation (posttrain.maic.generate) and the offline template library
(posttrain.maic.templates), with a tiny fake ChatModel and a fake verifier."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

from posttrain.errors import InputError
from posttrain.maic.analysis import Analysis, Procedure
from posttrain.maic.documents import Document, Section
from posttrain.maic.generate import (
    extract_fragment,
    extract_page,
    generate_page,
    page_problems,
)
from posttrain.maic.html_check import structure_problems
from posttrain.maic.page import annotate, elements, strip_src
from posttrain.maic.templates import (
    emergency_page,
    quiz_questions,
    simulation_for,
    templated_page,
)
from posttrain.models.chat.base import ChatResult, Choice

DOCUMENT = Document(
    path="forces.md",
    kind="markdown",
    title="Forces & Motion",
    sections=[
        Section("Forces", "A force is a push or a pull. Newton's second law: F = m a."),
        Section("Measuring", "1. Zero the meter. 2. Hang the mass. 3. Read the scale."),
    ],
)
ANALYSIS = Analysis(
    main_topics=["Forces", "Measuring forces"],
    key_concepts=["force", "mass", "acceleration", "newton"],
    learning_objectives=["Explain what a force is", "Measure a force with a newton meter"],
    prerequisite_knowledge=["units"],
    difficulty_level="beginner",
    target_grade_level="grades 6-8",
    subject_area="physics",
    procedural_concepts=[
        Procedure("Measuring a force", ["Zero the meter", "Hang the mass", "Read the scale"])
    ],
    definitions={"force": "A force is a push or a pull.", "mass": "Mass is the amount of matter."},
    analyser="rule-based",
)

VALID = """Here it is.
```html
<!doctype html>
<html lang="en">
<head><title>Forces</title></head>
<body>
<h1>Forces &amp; Motion</h1>
<p>force, mass, acceleration, newton</p>
</body>
</html>
```"""
BROKEN = '```html\n<!doctype html>\n<html lang="en">\n<body>\n<div><p>force\n</body>\n</html>\n```'
SECTION = (
    '```html\n<section id="simulation">\n<h2>Push</h2>\n<label for="f">Force</label>\n'
    '<input type="range" id="f">\n<canvas width="10" height="10"></canvas>\n</section>\n```'
)


class FakeChat:
    """A ChatModel answering from a list (the last answer repeats) or a function of the
    prompt; it records prompts and sampling settings."""

    def __init__(self, answers, name: str = "fake-model") -> None:
        self.name = name
        self.answers = answers
        self.prompts: list[str] = []
        self.params: list = []

    def chat(self, conversations, params=None):
        results = []
        for conversation in conversations:
            prompt = conversation[-1]["content"]
            self.prompts.append(prompt)
            self.params.append(params)
            if callable(self.answers):
                text = self.answers(prompt)
            else:
                text = self.answers[min(len(self.prompts), len(self.answers)) - 1]
            results.append(ChatResult(model=self.name, choices=[Choice(text=text)]))
        return results


class FakeFindings:
    def __init__(self, items: list[str]) -> None:
        self.items = items
        self.ok = not items

    def to_prompt(self) -> str:
        return "\n".join(f"- {item}" for item in self.items)


class FakeVerify:
    """Findings per page: the listed problems whose marker text is absent from the page."""

    def __init__(self, required: dict[str, str]) -> None:
        self.required = required
        self.pages: list[str] = []

    def __call__(self, html: str) -> FakeFindings:
        self.pages.append(html)
        return FakeFindings([msg for marker, msg in self.required.items() if marker not in html])


class _Text(HTMLParser):
    """Visible text: everything outside <script>, <style> and <head>."""

    def __init__(self) -> None:
        super().__init__()
        self.skip, self.parts = 0, []

    def handle_starttag(self, tag, attrs):
        self.skip += tag in ("script", "style", "head")

    def handle_endtag(self, tag):
        self.skip -= tag in ("script", "style", "head")

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


# --------------------------------------------------------------------------- templates


def test_templated_page_is_valid_labelled_annotated_and_shows_every_concept():
    page = templated_page(DOCUMENT, ANALYSIS)
    assert structure_problems(page) == [] and page_problems(page) == []
    assert annotate(page) == page  # already annotated, so line numbers are current
    assert '<meta name="generator" content="posttrain-maic templated">' in page
    assert '<html lang="en">' in page and page.count("<h1") == 1
    text = visible_text(page)
    assert "templated page (offline default)" in text
    assert "Forces & Motion" in text
    for concept in ANALYSIS.key_concepts:
        assert concept in text, concept
    assert re.search(r"https?://", page) is None  # self-contained
    body = [e for e in elements(page) if e.annotated]
    assert body and all(f'data-src="{e.src}"' in e.start_tag for e in body)


def test_templated_simulation_has_labelled_sliders_outputs_canvas_and_readout():
    page = templated_page(DOCUMENT, ANALYSIS)
    sliders = re.findall(r'<input [^>]*type="range" id="(sim-[a-z0-9]+)"', page)
    assert sliders == ["sim-speed", "sim-angle"]  # physics, nothing oscillating: projectile
    for ident in sliders:
        assert re.search(rf'<label [^>]*for="{ident}"', page)
        assert re.search(rf'<output [^>]*id="{ident}-out" for="{ident}"', page)
    assert '<canvas data-src="' in page and 'role="img"' in page
    assert 'id="sim-readout"' in page
    assert "window.maicSimulation = function" in page  # the projectile's code is inlined


def test_step_through_concept_map_and_quiz_are_filled_from_the_analysis():
    page = templated_page(DOCUMENT, ANALYSIS)
    assert "Step 1 of 3</p>" in page
    assert re.findall(r'<li [^>]*class="step"[^>]*>([^<]*)</li>', page) == [
        "Zero the meter",
        "Hang the mass",
        "Read the scale",
    ]
    assert page.count('class="prev" disabled') == 1 and 'class="next">' in page
    assert page.count('<g data-src="') == 5  # the hub and one node per key concept
    assert 'data-concept="force" data-definition="A force is a push or a pull."' in page
    assert page.count('class="question"') == 3  # two definitions, one procedure
    assert page.count('data-correct="true"') == 3


def test_quiz_questions_are_hand_checkable():
    questions = quiz_questions(ANALYSIS)
    first = questions[0]
    assert first.prompt == "Which concept does this describe? “A ____ is a push or a pull.”"
    assert sorted(first.options) == [
        ("acceleration", False),
        ("force", True),
        ("mass", False),
        ("newton", False),
    ]
    last = questions[2]
    assert last.prompt == "In “Measuring a force”, which step comes right after “Zero the meter”?"
    assert sorted(last.options) == [("Hang the mass", True), ("Read the scale", False)]
    bare = Analysis(**{**ANALYSIS.__dict__, "definitions": {}, "procedural_concepts": []})
    (only,) = quiz_questions(bare)  # nothing to ask about: the subject area
    assert ("physics", True) in only.options and len(only.options) == 4


@pytest.mark.parametrize(
    ("subject", "extra", "kind", "sliders"),
    [
        ("physics", "", "projectile", ["speed", "angle"]),
        ("physics", "A pendulum swings.", "pendulum", ["length", "gravity"]),
        ("mathematics", "", "quadratic", ["a", "b", "c"]),
        ("biology", "", "growth", ["rate", "capacity"]),
        ("chemistry", "", "decay", ["rate", "initial"]),
        ("history", "", "proportion", ["part1", "part2"]),
    ],
)
def test_simulation_is_chosen_by_subject(subject, extra, kind, sliders):
    document = Document("d.md", "markdown", "D", [Section("S", "Some text. " + extra)])
    analysis = Analysis(**{**ANALYSIS.__dict__, "subject_area": subject})
    simulation = simulation_for(document, analysis)
    assert simulation.kind == kind
    assert [s.name for s in simulation.sliders] == sliders
    page = templated_page(document, analysis)
    assert structure_problems(page) == []
    for name in sliders:
        assert f'id="sim-{name}" name="{name}"' in page
    if kind == "proportion":  # one slider per main topic
        assert "Weight of “Forces”" in page and "Weight of “Measuring forces”" in page


def test_emergency_page_is_plain_valid_and_labelled():
    page = emergency_page(DOCUMENT, ANALYSIS)
    assert structure_problems(page) == []
    assert '<meta name="generator" content="posttrain-maic emergency">' in page
    text = visible_text(page)
    assert "emergency page" in text
    assert "<li><strong>force</strong>: A force is a push or a pull.</li>" in strip_src(page)
    assert "Measure a force with a newton meter" in text


# --------------------------------------------------------------------------- generate_page


def test_offline_generation_is_templated_in_both_modes(tmp_path):
    fast = generate_page(DOCUMENT, ANALYSIS)
    heavy = generate_page(DOCUMENT, ANALYSIS, mode="heavy")
    assert (fast.source, fast.mode, heavy.source, heavy.mode) == (
        "templated",
        "fast",
        "templated",
        "heavy",
    )
    assert fast.html == heavy.html == templated_page(DOCUMENT, ANALYSIS)
    assert fast.findings is None and fast.cached is False and fast.model is None
    verify = FakeVerify({"never-present-marker": "a finding"})
    checked = generate_page(DOCUMENT, ANALYSIS, verify=verify)
    assert checked.findings == {"ok": False, "items": ["a finding"]}
    assert [a["step"] for a in checked.attempts] == ["templated", "verify"]
    with pytest.raises(InputError, match="mode"):
        generate_page(DOCUMENT, ANALYSIS, mode="slow")


def test_fast_mode_reasks_a_broken_page_then_keeps_the_valid_one():
    chat = FakeChat([BROKEN, VALID])
    result = generate_page(DOCUMENT, ANALYSIS, chat=chat)
    assert result.source == "fake-model" and result.model == "fake-model"
    assert len(chat.prompts) == 2
    assert "Your previous answer could not be used" in chat.prompts[1]
    assert "- line 4: <div> is not closed before </body> at line 5" in chat.prompts[1]
    assert chat.params[0].temperature == 0.2 and chat.params[1].temperature >= 0.7
    assert [(a["step"], a["ok"]) for a in result.attempts] == [("page", False), ("page", True)]
    assert '<h1 data-src="L5-L5">Forces &amp; Motion</h1>' in result.html
    assert structure_problems(result.html) == []
    assert '"key_concepts"' in chat.prompts[0] and "A force is a push" in chat.prompts[0]


def test_a_model_that_never_answers_valid_html_gets_the_emergency_page(tmp_path):
    chat = FakeChat([BROKEN, "I cannot do that.", "```html\n<p>no page</p>\n```"])
    result = generate_page(DOCUMENT, ANALYSIS, chat=chat, max_attempts=3, cache_dir=tmp_path)
    assert result.source == "emergency" and result.model == "fake-model"
    assert result.html == emergency_page(DOCUMENT, ANALYSIS)
    assert len(chat.prompts) == 3
    assert [a["ok"] for a in result.attempts] == [False, False, False]
    assert list(tmp_path.iterdir()) == []  # an outage is not cached


def test_cache_hit_skips_the_model(tmp_path):
    chat = FakeChat([VALID])
    first = generate_page(DOCUMENT, ANALYSIS, chat=chat, cache_dir=tmp_path)
    second = generate_page(DOCUMENT, ANALYSIS, chat=chat, cache_dir=tmp_path)
    assert len(chat.prompts) == 1
    assert (first.cached, second.cached) == (False, True)
    assert second.html == first.html and second.source == "fake-model"
    (stored,) = tmp_path.iterdir()
    assert json.loads(stored.read_text())["html"] == first.html
    other_mode = generate_page(DOCUMENT, ANALYSIS, mode="heavy", chat=chat, cache_dir=tmp_path)
    assert other_mode.cached is False and len(chat.prompts) > 1
    offline = generate_page(DOCUMENT, ANALYSIS, cache_dir=tmp_path)  # another "model"
    assert offline.cached is False and offline.source == "templated"
    stored.write_text("{not json")  # a damaged entry is regenerated, not trusted
    again = generate_page(DOCUMENT, ANALYSIS, chat=chat, cache_dir=tmp_path)
    assert again.cached is False and json.loads(stored.read_text())["html"] == first.html


def test_verify_findings_go_back_to_the_model_and_the_fixed_page_is_kept():
    fixed = VALID.replace("<p>force", '<button type="button">go</button>\n<p>force')
    chat = FakeChat([VALID, fixed])
    verify = FakeVerify({"<button": "dead_control: the page has no control"})
    result = generate_page(DOCUMENT, ANALYSIS, chat=chat, verify=verify)
    assert len(chat.prompts) == 2
    assert "- dead_control: the page has no control" in chat.prompts[1]
    assert "<h1>Forces &amp; Motion</h1>" in chat.prompts[1]  # the page, without data-src
    assert "<button" in result.html and result.findings == {
        "ok": True,
        "items": [],
    }
    steps = [(a["step"], a["ok"]) for a in result.attempts]
    assert steps == [("page", True), ("verify", False), ("fix", True), ("verify", True)]


def test_the_page_with_fewest_findings_is_kept_when_fixes_run_out():
    worse = VALID.replace("force, mass", "mass")
    chat = FakeChat([VALID, worse, BROKEN])
    verify = FakeVerify({"<button": "dead_control: no control", "force,": "missing_concept: force"})
    result = generate_page(DOCUMENT, ANALYSIS, chat=chat, verify=verify, max_attempts=3)
    assert len(chat.prompts) == 3  # the page, then two fix rounds
    assert len(verify.pages) == 2  # the broken fix was never verified
    assert "force, mass" in result.html  # the first page: one finding, not two
    assert result.findings == {"ok": False, "items": ["dead_control: no control"]}


def test_heavy_mode_runs_simulation_layout_and_polish():
    polished = VALID.replace("<head>", "<head>\n<style>body { margin: 0 }</style>")

    def answer(prompt: str) -> str:
        if "ONE self-contained interactive simulation" in prompt:
            return SECTION
        if prompt.startswith("Polish"):
            return polished
        section = SECTION.removeprefix("```html\n").removesuffix("\n```")
        return VALID.replace("</body>", section + "\n</body>")

    chat = FakeChat(answer)
    result = generate_page(DOCUMENT, ANALYSIS, mode="heavy", chat=chat)
    assert [a["step"] for a in result.attempts] == ["simulation", "layout", "polish"]
    assert "simulation of “force”" in chat.prompts[0]
    assert '<input type="range" id="f">' in chat.prompts[1]  # the section, verbatim
    assert chat.prompts[2].startswith("Polish") and 'id="simulation"' in chat.prompts[2]
    assert "<style>body { margin: 0 }</style>" in result.html
    assert result.source == "fake-model" and result.mode == "heavy"


def test_heavy_mode_without_a_usable_simulation_still_lays_out_a_page():
    def answer(prompt: str) -> str:
        if "ONE self-contained interactive simulation" in prompt or "could not be used" in prompt:
            return "```html\n<section><p>no controls</p></section>\n```"
        return VALID

    chat = FakeChat(answer)
    result = generate_page(DOCUMENT, ANALYSIS, mode="heavy", chat=chat, max_attempts=2)
    steps = [(a["step"], a["ok"]) for a in result.attempts]
    assert steps == [
        ("simulation", False),
        ("simulation", False),
        ("layout", True),
        ("polish", True),
    ]
    assert "no interactive control" in result.attempts[0]["problems"][0]
    assert "Include an interactive simulation" in chat.prompts[2]


def test_reply_extraction_and_network_resources():
    assert extract_page("no page here") is None
    bare = 'Sure: <!DOCTYPE html>\n<html lang="en"><body><p>x</p></body></html> done'
    assert extract_page(bare) == '<!DOCTYPE html>\n<html lang="en"><body><p>x</p></body></html>\n'
    cut_off = "```html\n<!doctype html>\n<html>\n<body>\n"  # the reply ran out of tokens
    assert extract_page(cut_off) == "<!doctype html>\n<html>\n<body>\n"
    assert extract_fragment("text <section id=s><input></section> more") == (
        "<section id=s><input></section>"
    )
    remote = VALID.replace("<head>", '<head>\n<script src="https://cdn.example/x.js"></script>')
    page = extract_page(remote)
    assert page_problems(page) == ["line 4: <script> loads a network resource"]
    assert page_problems(extract_page(VALID)) == []


def test_templates_cope_with_an_empty_analysis_and_markup_in_names():
    empty = Analysis([], [], [], [], "beginner", "", "general", [], {}, "rule-based")
    document = Document("x.txt", "text", "", [Section(None, "")])
    for page in (templated_page(document, empty), emergency_page(document, empty)):
        assert structure_problems(page) == [] and page_problems(page) == []
        assert visible_text(page).count("Lesson") >= 1  # a title even without one
    odd = 'a "quoted" <b>bold</b> & co'
    analysis = Analysis(**{**ANALYSIS.__dict__, "key_concepts": [odd, "mass"]})
    analysis.definitions = {odd: f"{odd} is odd."}
    page = templated_page(DOCUMENT, analysis)
    assert structure_problems(page) == []
    assert odd in visible_text(page)
    assert "<b>bold</b>" not in page  # escaped, never markup
