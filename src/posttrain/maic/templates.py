"""The offline page library: an interactive courseware page built from a document's analysis.

Without a chat model MAIC still has to produce a page worth verifying and editing, so this
module fills a fixed set of interactive pieces from the `Analysis` (labelled "templated" in a
`<meta name="generator">` and a visible footer, never passed off as a model's work):

- a parameter-slider simulation on a <canvas>, chosen by subject area: physics gets a
  projectile (launch speed, angle) or, when the document is about oscillation, a pendulum
  (length, gravity); mathematics a quadratic's graph (coefficients a, b, c); biology logistic
  growth (rate, capacity); chemistry first-order decay (rate constant, initial concentration);
  anything else a proportion chart of its main topics. Every slider has a <label> and an
  <output>; moving it redraws the canvas and rewrites a visible readout;
- a step-through (Previous / Next) for each procedural concept;
- a concept map: an SVG hub (the main topic) with a node per key concept; clicking a node, or
  the concept's button in the list above it, shows its definition (the map is an image to
  assistive technology and the keyboard: the buttons are the accessible way to the same);
- a quiz with feedback, its questions made from the definitions and the procedures' steps.

Every key concept appears in visible HTML text (the verifier checks it). The page is
self-contained (inline CSS and JS from the `templates/` asset files: no network, no CDN),
responsive (nothing wider than the viewport at 375 px: flex-wrap, `max-width: 100%`, canvas and
SVG scaled by CSS) and accessible (lang, one <h1>, landmarks, labels, accessible names, colour
contrast >= 4.5:1). Its source is written one element per line because edits are line diffs.
`emergency_page` is the last resort when every generation attempt failed: plain and valid.
"""

from __future__ import annotations

import hashlib
import html
import math
import re
from dataclasses import dataclass
from importlib import resources

from posttrain.maic.analysis import Analysis
from posttrain.maic.documents import Document
from posttrain.maic.page import annotate

__all__ = [
    "EMERGENCY_GENERATOR",
    "SIMULATIONS",
    "TEMPLATED_GENERATOR",
    "Question",
    "Simulation",
    "Slider",
    "emergency_page",
    "quiz_questions",
    "simulation_for",
    "templated_page",
]

TEMPLATED_GENERATOR = "posttrain-maic templated"
EMERGENCY_GENERATOR = "posttrain-maic emergency"
MAX_SUMMARY_SECTIONS = 4
MAX_SUMMARY_CHARS = 480
MAX_QUESTIONS = 5
MAX_MAP_NODES = 12
_OSCILLATION = re.compile(r"\b(pendulum|oscillat\w*|harmonic|swing\w*)\b", re.IGNORECASE)
_SUBJECTS = ("physics", "chemistry", "biology", "mathematics", "computer science", "history")


@dataclass(frozen=True)
class Slider:
    name: str
    """The parameter's name in the simulation's JS (`p.<name>`)."""
    label: str
    minimum: float
    maximum: float
    step: float
    value: float
    unit: str = ""


@dataclass(frozen=True)
class Simulation:
    kind: str
    """Also the asset's name: `templates/sim_<kind>.js`."""
    title: str
    intro: str
    canvas_label: str
    sliders: tuple[Slider, ...]


SIMULATIONS: dict[str, Simulation] = {
    "projectile": Simulation(
        "projectile",
        "Projectile motion",
        "Change the launch speed and angle and watch the path, range and height change.",
        "Graph of a projectile's height against distance for the chosen speed and angle",
        (
            Slider("speed", "Launch speed", 5, 40, 1, 20, "m/s"),
            Slider("angle", "Launch angle", 10, 80, 1, 45, "degrees"),
        ),
    ),
    "pendulum": Simulation(
        "pendulum",
        "A swinging pendulum",
        "Change the length and the gravity and watch the period of the swing change.",
        "Graph of a pendulum's angle over ten seconds for the chosen length and gravity",
        (
            Slider("length", "Pendulum length", 0.2, 3, 0.1, 1, "m"),
            Slider("gravity", "Gravitational acceleration", 1, 25, 0.1, 9.8, "m/s²"),
        ),
    ),
    "quadratic": Simulation(
        "quadratic",
        "Graph of y = a x² + b x + c",
        "Change the coefficients and watch the parabola, its vertex and its roots move.",
        "Graph of the quadratic function for the chosen coefficients",
        (
            Slider("a", "Coefficient a", -3, 3, 0.1, 1, ""),
            Slider("b", "Coefficient b", -5, 5, 0.5, 0, ""),
            Slider("c", "Coefficient c", -5, 5, 0.5, -2, ""),
        ),
    ),
    "growth": Simulation(
        "growth",
        "Population growth",
        "Change the growth rate and the carrying capacity and watch the population curve.",
        "Graph of a population growing towards its carrying capacity over thirty days",
        (
            Slider("rate", "Growth rate", 0.1, 1.5, 0.05, 0.4, "per day"),
            Slider("capacity", "Carrying capacity", 100, 1000, 50, 800, "individuals"),
        ),
    ),
    "decay": Simulation(
        "decay",
        "A first-order reaction",
        "Change the rate constant and the starting concentration and watch the reactant decay.",
        "Graph of a reactant's concentration falling over twenty seconds",
        (
            Slider("rate", "Rate constant k", 0.05, 1, 0.05, 0.3, "per s"),
            Slider("initial", "Initial concentration", 0.2, 2, 0.1, 1.5, "mol/L"),
        ),
    ),
    "proportion": Simulation(
        "proportion",
        "How the topics share your study time",
        "Give each topic a weight and see what share of the whole it takes.",
        "Bar chart of each topic's share of the total weight",
        (),  # one slider per main topic, made in `simulation_for`
    ),
}


def _asset(name: str) -> str:
    return resources.files("posttrain.maic").joinpath("templates", name).read_text("utf-8")


def _e(text: object) -> str:
    return html.escape(" ".join(str(text).split()), quote=True)


def _number(value: float) -> str:
    return f"{value:g}"


def _topics(document: Document, analysis: Analysis) -> list[str]:
    return analysis.main_topics or analysis.key_concepts[:3] or [document.title]


def simulation_for(document: Document, analysis: Analysis) -> Simulation:
    """The simulation a page on this document gets (see the module docstring)."""
    subject = analysis.subject_area.lower()
    if subject == "physics":
        oscillating = _OSCILLATION.search(document.text + " " + " ".join(analysis.key_concepts))
        return SIMULATIONS["pendulum" if oscillating else "projectile"]
    kind = {"mathematics": "quadratic", "biology": "growth", "chemistry": "decay"}.get(subject)
    if kind:
        return SIMULATIONS[kind]
    parts = _topics(document, analysis)[:3]
    if len(parts) < 2:  # one topic has no proportions: compare it with the rest of the lesson
        parts = [parts[0], "practice", "review"]
    base = SIMULATIONS["proportion"]
    sliders = tuple(
        Slider(f"part{i + 1}", f"Weight of “{part}”", 0, 10, 1, (5, 3, 2)[i], "")
        for i, part in enumerate(parts)
    )
    return Simulation(base.kind, base.title, base.intro, base.canvas_label, sliders)


@dataclass(frozen=True)
class Question:
    prompt: str
    options: tuple[tuple[str, bool], ...]
    """(text, correct) in display order."""
    explanation: str


def _shuffled(key: str, options: list[tuple[str, bool]]) -> tuple[tuple[str, bool], ...]:
    # a fixed order per question (the same page every time), not always correct-first
    return tuple(sorted(options, key=lambda o: hashlib.sha256((key + o[0]).encode()).hexdigest()))


def _distractors(correct: str, pool: list[str], count: int = 3) -> list[str]:
    seen = {correct.casefold()}
    picked = []
    for item in pool:
        if item.casefold() not in seen:
            seen.add(item.casefold())
            picked.append(item)
    return picked[:count]


def quiz_questions(analysis: Analysis) -> list[Question]:
    """Questions from the definitions (which concept is described, the term blanked out) and
    from each procedure of three or more steps (which step follows the first); when these
    give fewer than two, one on the lesson's subject area."""
    questions: list[Question] = []
    concepts = list(analysis.key_concepts) + [t for t in analysis.definitions]
    for concept, definition in analysis.definitions.items():
        others = _distractors(concept, concepts)
        if not others:
            continue
        blanked = re.sub(re.escape(concept), "____", definition, flags=re.IGNORECASE)
        prompt = f"Which concept does this describe? “{blanked}”"
        options = [(concept, True)] + [(o, False) for o in others]
        questions.append(Question(prompt, _shuffled(prompt, options), f"{concept}: {definition}"))
    for procedure in analysis.procedural_concepts:
        steps = procedure.key_steps
        if len(steps) < 3:
            continue
        prompt = f"In “{procedure.name}”, which step comes right after “{steps[0]}”?"
        options = [(steps[1], True)] + [(s, False) for s in _distractors(steps[1], steps[2:])]
        order = " → ".join(steps[:3]) + (" → …" if len(steps) > 3 else "")
        questions.append(Question(prompt, _shuffled(prompt, options), f"The order is {order}."))
    if len(questions) < 2:
        subject = analysis.subject_area or "general"
        others = _distractors(subject, [s for s in _SUBJECTS if s != subject])
        prompt = "Which subject area is this lesson part of?"
        options = [(subject, True)] + [(o, False) for o in others]
        explanation = f"This lesson belongs to {subject}."
        questions.append(Question(prompt, _shuffled(prompt, options), explanation))
    return questions[:MAX_QUESTIONS]


def _definition(analysis: Analysis, concept: str, hub: str) -> str:
    for term, definition in analysis.definitions.items():
        if term.casefold() == concept.casefold():
            return definition
    return f"a key concept of {hub} (the document gives no one-sentence definition)."


def _short(text: str, limit: int = 15) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


class _Lines:
    """The page source, one element per line, indented two spaces per level."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0

    def add(self, line: str) -> None:
        self.lines.append("  " * self.depth + line)

    def open(self, line: str) -> None:
        self.add(line)
        self.depth += 1

    def close(self, line: str) -> None:
        self.depth -= 1
        self.add(line)

    def raw(self, text: str) -> None:
        """Asset text (CSS, JS) as it is, unindented."""
        self.lines.extend(text.rstrip("\n").split("\n"))

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _head(out: _Lines, title: str, generator: str, css: str) -> None:
    out.add("<!doctype html>")
    out.add('<html lang="en">')
    out.add("<head>")
    out.add('<meta charset="utf-8">')
    out.add('<meta name="viewport" content="width=device-width, initial-scale=1">')
    out.add(f'<meta name="generator" content="{generator}">')
    out.add(f"<title>{_e(title)}</title>")
    out.add("<style>")
    out.raw(css)
    out.add("</style>")
    out.add("</head>")
    out.add("<body>")


def _list(out: _Lines, heading: str, items: list[str]) -> None:
    if not items:
        return
    out.add(f"<h3>{_e(heading)}</h3>")
    out.open("<ul>")
    for item in items:
        out.add(f"<li>{_e(item)}</li>")
    out.close("</ul>")


def _overview(out: _Lines, document: Document, analysis: Analysis) -> None:
    out.open('<section id="overview" aria-labelledby="overview-title">')
    out.add('<h2 id="overview-title">Overview</h2>')
    _list(out, "Main topics", analysis.main_topics)
    _list(out, "Learning objectives", analysis.learning_objectives)
    _list(out, "Before you start", analysis.prerequisite_knowledge)
    summaries = [s for s in document.sections if s.text.strip()][:MAX_SUMMARY_SECTIONS]
    if summaries:
        out.add("<h3>From the document</h3>")
    for section in summaries:
        text = " ".join(_plain(section.text).split())
        if len(text) > MAX_SUMMARY_CHARS:
            text = text[: MAX_SUMMARY_CHARS - 1].rsplit(" ", 1)[0] + " …"
        title = f"<strong>{_e(section.title)}.</strong> " if section.title else ""
        out.add(f"<p>{title}{_e(text)}</p>")
    out.close("</section>")


_MARKDOWN_MARKS = re.compile(r"(\*\*|__|`)(.+?)\1|^\s{0,3}(?:[-*+]|\d{1,2}[.)])\s+", re.M)


def _plain(text: str) -> str:
    """Text as read, not as written in Markdown: bold, code spans and list markers dropped
    (a Markdown lesson's sections keep their source text)."""
    return _MARKDOWN_MARKS.sub(lambda m: m.group(2) or "", text)


def _concepts(out: _Lines, document: Document, analysis: Analysis) -> None:
    hub = _topics(document, analysis)[0]
    concepts = analysis.key_concepts
    out.open('<section id="concepts" aria-labelledby="concepts-title">')
    out.add('<h2 id="concepts-title">Key concepts</h2>')
    if not concepts:
        out.add("<p>The document names no key concepts.</p>")
        out.close("</section>")
        return
    out.add("<p>Choose a concept, in the list or on the map, to see what it means.</p>")
    out.open('<ul class="concept-list">')
    for concept in concepts:
        definition = _e(_definition(analysis, concept, hub))
        out.add(
            f'<li><button type="button" data-concept="{_e(concept)}" '
            f'data-definition="{definition}">{_e(concept)}</button></li>'
        )
    out.close("</ul>")
    out.add('<p id="concept-detail" class="concept-detail" aria-live="polite"></p>')
    shown = concepts[:MAX_MAP_NODES]
    width, height, cx, cy = 600, 460, 300, 230
    out.open(
        f'<svg class="concept-map" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="Concept map of {_e(hub)}">'
    )
    spots = []
    for i, _ in enumerate(shown):
        angle = -math.pi / 2 + 2 * math.pi * i / len(shown)
        spots.append((round(cx + 226 * math.cos(angle)), round(cy + 194 * math.sin(angle))))
    for x, y in spots:
        out.add(f'<line class="edge" x1="{cx}" y1="{cy}" x2="{x}" y2="{y}"></line>')
    hub_text = (
        _e(_definition(analysis, hub, hub))
        if hub in analysis.definitions
        else _e(f"the main topic, connecting {', '.join(shown)}.")
    )
    out.open(f'<g class="node hub" data-concept="{_e(hub)}" data-definition="{hub_text}">')
    out.add(f'<ellipse cx="{cx}" cy="{cy}" rx="82" ry="34"></ellipse>')
    out.add(f'<text x="{cx}" y="{cy + 5}" text-anchor="middle">{_e(_short(hub, 20))}</text>')
    out.close("</g>")
    for concept, (x, y) in zip(shown, spots, strict=True):
        definition = _e(_definition(analysis, concept, hub))
        out.open(f'<g class="node" data-concept="{_e(concept)}" data-definition="{definition}">')
        out.add(f'<ellipse cx="{x}" cy="{y}" rx="62" ry="26"></ellipse>')
        out.add(f'<text x="{x}" y="{y + 5}" text-anchor="middle">{_e(_short(concept))}</text>')
        out.close("</g>")
    out.close("</svg>")
    out.close("</section>")


def _simulation(out: _Lines, simulation: Simulation, analysis: Analysis) -> None:
    focus = analysis.key_concepts[0] if analysis.key_concepts else simulation.title
    out.open('<section id="simulation" aria-labelledby="simulation-title">')
    out.add(f'<h2 id="simulation-title">Simulation: {_e(simulation.title)}</h2>')
    out.add(f"<p>{_e(simulation.intro)} It is a hands-on way into {_e(focus)}.</p>")
    out.open('<div class="controls">')
    for slider in simulation.sliders:
        ident = f"sim-{slider.name}"
        unit = f" ({slider.unit})" if slider.unit else ""
        value = _number(slider.value)
        shown = value + (f" {slider.unit}" if slider.unit else "")
        out.open('<div class="control">')
        out.add(f'<label for="{ident}">{_e(slider.label + unit)}</label>')
        out.add(
            f'<input type="range" id="{ident}" name="{slider.name}" '
            f'min="{_number(slider.minimum)}" max="{_number(slider.maximum)}" '
            f'step="{_number(slider.step)}" value="{value}" data-unit="{_e(slider.unit)}">'
        )
        out.add(f'<output id="{ident}-out" for="{ident}">{_e(shown)}</output>')
        out.close("</div>")
    out.close("</div>")
    labels = "|".join(s.label.removeprefix("Weight of ").strip("“”") for s in simulation.sliders)
    out.add(
        f'<canvas id="sim-canvas" width="640" height="360" role="img" '
        f'aria-label="{_e(simulation.canvas_label)}" data-labels="{_e(labels)}"></canvas>'
    )
    out.add('<p id="sim-readout" class="readout" aria-live="polite">Move a slider.</p>')
    out.close("</section>")


def _procedures(out: _Lines, analysis: Analysis) -> None:
    procedures = [(p.name, p.key_steps) for p in analysis.procedural_concepts if p.key_steps]
    if not procedures and len(analysis.learning_objectives) >= 2:
        procedures = [("Your path through this lesson", analysis.learning_objectives)]
    if not procedures:
        return
    out.open('<section id="procedures" aria-labelledby="procedures-title">')
    out.add('<h2 id="procedures-title">Step by step</h2>')
    for number, (name, steps) in enumerate(procedures, start=1):
        out.open(f'<div class="procedure" id="procedure-{number}">')
        out.add(f"<h3>{_e(name)}</h3>")
        out.add(f'<p class="step-counter" aria-live="polite">Step 1 of {len(steps)}</p>')
        out.open('<ol class="steps">')
        for index, step in enumerate(steps):
            hidden = " hidden" if index else ""
            out.add(f'<li class="step"{hidden}>{_e(step)}</li>')
        out.close("</ol>")
        out.open('<div class="step-nav">')
        out.add('<button type="button" class="prev" disabled>Previous step</button>')
        disabled = " disabled" if len(steps) == 1 else ""
        out.add(f'<button type="button" class="next"{disabled}>Next step</button>')
        out.close("</div>")
        out.close("</div>")
    out.close("</section>")


def _quiz(out: _Lines, analysis: Analysis) -> None:
    out.open('<section id="quiz" aria-labelledby="quiz-title">')
    out.add('<h2 id="quiz-title">Check your understanding</h2>')
    for number, question in enumerate(quiz_questions(analysis), start=1):
        out.open(
            f'<fieldset class="question" id="question-{number}" '
            f'data-explanation="{_e(question.explanation)}">'
        )
        out.add(f"<legend>{number}. {_e(question.prompt)}</legend>")
        out.open('<div class="options">')
        for text, correct in question.options:
            flag = "true" if correct else "false"
            out.add(
                f'<button type="button" class="option" aria-pressed="false" '
                f'data-correct="{flag}">{_e(text)}</button>'
            )
        out.close("</div>")
        out.add('<p class="feedback" aria-live="polite"></p>')
        out.close("</fieldset>")
    out.add('<p id="quiz-score" class="score" aria-live="polite">Score: nothing answered yet</p>')
    out.close("</section>")


def templated_page(document: Document, analysis: Analysis) -> str:
    """The offline interactive page for `document` (annotated with data-src)."""
    out = _Lines()
    title = document.title.strip() or (analysis.main_topics or ["Lesson"])[0]
    _head(out, title, TEMPLATED_GENERATOR, _asset("page.css"))
    out.open('<header class="page-header">')
    out.add(f"<h1>{_e(title)}</h1>")
    meta = [analysis.subject_area, analysis.difficulty_level, analysis.target_grade_level]
    out.add(f'<p class="meta">{_e(" · ".join(m for m in meta if m))}</p>')
    out.close("</header>")
    out.open("<main>")
    _overview(out, document, analysis)
    _concepts(out, document, analysis)
    simulation = simulation_for(document, analysis)
    _simulation(out, simulation, analysis)
    _procedures(out, analysis)
    _quiz(out, analysis)
    out.close("</main>")
    out.open("<footer>")
    out.add(
        f'<p class="templated-label">templated page (offline default): built from '
        f"“{_e(document.title)}” by posttrain-maic without a language model</p>"
    )
    out.close("</footer>")
    out.add("<script>")
    out.raw(_asset(f"sim_{simulation.kind}.js"))
    out.raw(_asset("page.js"))
    out.add("</script>")
    out.add("</body>")
    out.add("</html>")
    return annotate(out.text())


def emergency_page(document: Document, analysis: Analysis) -> str:
    """The last resort when no attempt produced a usable page: title, key concepts (with
    definitions where known) and objectives, plain and valid, labelled as an emergency page."""
    out = _Lines()
    title = document.title.strip() or "Lesson"
    css = (
        "body { margin: 0 auto; max-width: 860px; padding: 1rem; font-family: system-ui, "
        "sans-serif; line-height: 1.5; color: #1b1f24; background: #ffffff; "
        "overflow-wrap: anywhere; }\n.label { color: #4a5562; font-size: 0.85rem; }"
    )
    _head(out, title, EMERGENCY_GENERATOR, css)
    out.open("<main>")
    out.add(f"<h1>{_e(title)}</h1>")
    out.add("<h2>Key concepts</h2>")
    out.open("<ul>")
    for concept in analysis.key_concepts or [title]:
        definition = analysis.definitions.get(concept)
        suffix = f": {_e(definition)}" if definition else ""
        out.add(f"<li><strong>{_e(concept)}</strong>{suffix}</li>")
    out.close("</ul>")
    if analysis.learning_objectives:
        out.add("<h2>Learning objectives</h2>")
        out.open("<ul>")
        for objective in analysis.learning_objectives:
            out.add(f"<li>{_e(objective)}</li>")
        out.close("</ul>")
    out.close("</main>")
    out.open("<footer>")
    out.add(
        '<p class="label">emergency page: every generation attempt failed, so posttrain-maic '
        "wrote this plain summary instead</p>"
    )
    out.close("</footer>")
    out.add("</body>")
    out.add("</html>")
    return annotate(out.text())
