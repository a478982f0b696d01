"""Click-to-locate in a real browser: Debian's chromium driven by Playwright (`executable_path`,
no browser download). A page with repeated identical markup, classed elements and a duplicated
id is annotated; clicks on the 2nd and 3rd copies must report THEIR source lines and selectors
matching exactly the clicked element, where MAIC-UI's released approach (`anchor_locate`,
`anchor_selector`) picks the first copy's line and builds selectors matching 0 or several."""

from __future__ import annotations

import html as html_lib

import pytest
from browser_gate import CHROMIUM, require_browser  # beside this file

from posttrain.maic.analysis import Analysis, Procedure
from posttrain.maic.documents import Document, Section
from posttrain.maic.locate import LOCATE_SCRIPT, anchor_locate, anchor_selector
from posttrain.maic.page import annotate, parse_src
from posttrain.maic.templates import templated_page

require_browser("the click-to-locate browser test")
from playwright import sync_api  # noqa: E402

FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# Line numbers (hand-counted) are what the assertions below check against.
PAGE = """<!doctype html>
<html lang="en">
<head><title>repeated markup</title></head>
<body>
<h1>Steps</h1>
<ul class="steps">
<li class="step item">Step</li>
<li class="step item">Step</li>
<li class="step item">Step</li>
</ul>
<div class="card">Card</div>
<div class="card">
  <button type="button" class="card">Go</button>
</div>
<section id="dup"><p class="note warn">Note</p></section>
<section id="dup"><p class="note warn">Note</p></section>
<p id="solo">Solo <b>bold</b></p>
<button type="button" id="own" onclick="document.getElementById('solo').textContent='ran'">
Own handler
</button>
</body>
</html>"""

PICKS = """
window.__picks = [];
window.__maicPicked = function (info) { window.__picks.push(info); };
"""


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser):
    page = browser.new_page(viewport={"width": 800, "height": 700})
    page.set_content(annotate(PAGE))
    page.add_script_tag(content=LOCATE_SCRIPT)
    page.evaluate(PICKS)
    yield page
    page.close()


def click(page, css: str, index: int) -> dict:
    page.locator(css).nth(index).click()
    picks = page.evaluate("window.__picks")
    assert picks, f"no pick reported for {css}[{index}]"
    return picks[-1]


def is_exactly(page, selector: str, css: str, index: int) -> bool:
    return page.evaluate(
        """([selector, css, index]) => {
            const found = document.querySelectorAll(selector);
            return found.length === 1 && found[0] === document.querySelectorAll(css)[index];
        }""",
        [selector, css, index],
    )


def test_repeated_and_classed_elements_locate_their_own_lines(page):
    annotated = annotate(PAGE)
    for css, index, line in [
        ("li", 1, 8),
        ("li", 2, 9),
        ("div.card", 1, 12),
        ("button.card", 0, 13),
        ("p.note", 1, 16),
        ("#solo b", 0, 17),
    ]:
        picked = click(page, css, index)
        start, end = parse_src(picked["data_src"])
        assert start == line, (css, index, picked)
        assert is_exactly(page, picked["selector"], css, index), (css, index, picked)
        assert "." not in picked["selector"]  # class names never used
    assert (start, end) == (17, 17)
    assert picked["tag"] == "b" and picked["text"] == "bold"
    assert picked["selector"] == "#solo > b:nth-of-type(1)"  # nearest unique id, not the dup
    assert (parse_src(click(page, "div.card", 1)["data_src"])) == (12, 14)  # a multi-line one

    # the anchor's way: first matching line, fragile class selectors
    second = click(page, "li", 1)
    assert anchor_locate(annotated, second["outer_html_head"]) == 7  # the FIRST li, not line 8
    third = click(page, "li", 2)
    assert anchor_locate(annotated, third["outer_html_head"]) == 7  # not line 9
    count = "selector => document.querySelectorAll(selector).length"
    assert page.evaluate(count, anchor_selector("li", "step item")) == 0
    assert page.evaluate(count, anchor_selector("div", "card")) == 2
    assert page.evaluate(count, anchor_selector("p", "note warn")) == 0


def test_pick_mode_swallows_clicks_until_turned_off(page):
    picked = click(page, "#own", 0)
    assert picked["selector"] == "#own" and parse_src(picked["data_src"]) == (18, 20)
    assert page.locator("#solo").inner_text() == "Solo bold"  # the page's handler never ran
    page.evaluate("window.postMessage({type: 'maic-pick-mode', on: false}, '*')")
    page.wait_for_function("!window.__maicLocate.isPicking()")
    page.evaluate("window.__picks = []")
    page.locator("#own").click()
    assert page.locator("#solo").inner_text() == "ran"
    assert page.evaluate("window.__picks.length") == 0


def test_pick_is_posted_to_the_parent_of_an_iframe_preview(browser):
    # the studio's route: the page in an iframe, the pick arriving as a postMessage
    framed = annotate(PAGE).replace("</body>", f"<script>{LOCATE_SCRIPT}</script></body>")
    host = browser.new_page()
    try:
        host.set_content(
            "<script>window.__msgs = [];"
            "window.addEventListener('message', e => window.__msgs.push(e.data));</script>"
            f'<iframe title="preview" srcdoc="{html_lib.escape(framed)}"></iframe>'
        )
        host.frame_locator("iframe").locator("li").nth(2).click()
        host.wait_for_function("window.__msgs.length > 0")
        message = host.evaluate("window.__msgs[0]")
    finally:
        host.close()
    assert message["type"] == "maic-pick"
    assert parse_src(message["data_src"]) == (9, 9)
    assert message["selector"] == "body > ul:nth-of-type(1) > li:nth-of-type(3)"


# --- the offline templated page: it works in the browser, and picks on it land right -------

DOCUMENT = Document(
    "forces.md",
    "markdown",
    "Forces & Motion",
    [Section("Forces", "A force is a push or a pull. A pendulum swings back and forth.")],
)
ANALYSIS = Analysis(
    main_topics=["Forces", "Measuring forces"],
    key_concepts=["force", "mass", "acceleration", "a very long concept name that wraps around"],
    learning_objectives=["Explain what a force is", "Measure a force"],
    prerequisite_knowledge=[],
    difficulty_level="beginner",
    target_grade_level="grades 6-8",
    subject_area="physics",
    procedural_concepts=[Procedure("Measuring", ["Zero the meter", "Hang it", "Read it"])],
    definitions={"force": "A force is a push or a pull.", "mass": "Mass is matter."},
    analyser="rule-based",
)


def _errors(page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


@pytest.mark.parametrize("subject", ["physics", "mathematics", "biology", "chemistry", "history"])
def test_templated_page_works_at_phone_width(browser, subject):
    analysis = Analysis(**{**ANALYSIS.__dict__, "subject_area": subject})
    page = browser.new_page(viewport={"width": 375, "height": 700})
    try:
        errors = _errors(page)
        page.set_content(templated_page(DOCUMENT, analysis))
        overflow = "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        assert page.evaluate(overflow) == 0
        slider = page.locator("#simulation input[type=range]").first
        before = page.inner_text("#sim-readout")
        assert before and before != "Move a slider."  # drawn on load
        slider.fill(slider.get_attribute("max"))
        assert page.inner_text("#sim-readout") != before
        out = page.locator("#simulation output").first.inner_text()
        assert out.startswith(slider.get_attribute("max"))
        assert errors == []
    finally:
        page.close()


def test_templated_page_controls_and_picks(browser):
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    try:
        errors = _errors(page)
        source = templated_page(DOCUMENT, ANALYSIS)
        page.set_content(source)
        assert "pendulum" in page.inner_text("#simulation-title").lower()  # it swings
        page.click("#procedure-1 .next")
        assert page.inner_text("#procedure-1 .step-counter") == "Step 2 of 3"
        assert page.locator("#procedure-1 .step:visible").inner_text() == "Hang it"
        page.click(".node[data-concept='mass']")
        assert page.inner_text("#concept-detail") == "mass: Mass is matter."
        page.click("#question-1 [data-correct=true]")
        assert page.inner_text("#question-1 .feedback").startswith("Correct!")
        assert page.inner_text("#quiz-score") == "Score: 1 of 1 answered correctly"

        page.add_script_tag(content=LOCATE_SCRIPT)
        page.evaluate(PICKS)
        lines = source.split("\n")
        options = page.locator("#question-2 .option")
        for index in range(options.count()):
            picked = click(page, "#question-2 .option", index)
            start, end = parse_src(picked["data_src"])
            assert start == end and picked["text"] in lines[start - 1]
            assert is_exactly(page, picked["selector"], "#question-2 .option", index)
        assert errors == []
    finally:
        page.close()
