"""MAIC-UI's page verifier in a real browser: Debian's chromium driven by Playwright
(`executable_path`, no browser download), one browser for the module. A clean interactive
page passes; the same page with one planted defect of each kind is caught with that kind
and no other; the findings' prompt names every problem."""

from __future__ import annotations

import random

import pytest
from browser_gate import require_browser  # beside this file

from posttrain.maic.browser import chromium
from posttrain.maic.defects import inject
from posttrain.maic.verify import KINDS, Finding, Findings, verify_page

require_browser("the verifier's browser test")

# A slider driving a canvas and a readout, a two-step explanation behind Next (the word
# "torque" only shows on step 2), a radio question read by its Check button, a details box.
PAGE = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Levers</title>
<style>body { max-width: 700px; margin: auto; color: #111; background: #fff; }
canvas { max-width: 100%; } .hidden { display: none; }</style></head>
<body>
<h1>Levers</h1>
<p>A lever balances when the moments on each side are equal about the fulcrum.</p>
<label for="arm">Arm length (m)</label>
<input id="arm" type="range" min="1" max="5" value="2">
<output id="moment">Moment: 20 N m</output>
<canvas id="beam" width="300" height="80"></canvas>
<div><p id="s1">Step 1: find the fulcrum.</p>
<p id="s2" class="hidden">Step 2: torque is force times distance.</p>
<button id="next" type="button">Next</button></div>
<fieldset><legend>Which side goes down?</legend>
<label><input type="radio" name="q" value="long"> The longer arm</label>
<label><input type="radio" name="q" value="short"> The shorter arm</label></fieldset>
<button id="check" type="button">Check</button>
<p id="verdict"></p>
<details><summary>Why?</summary><p>A longer arm gives a larger moment.</p></details>
<script>
const arm = document.getElementById('arm');
const ctx = document.getElementById('beam').getContext('2d');
function draw() {
  document.getElementById('moment').textContent = 'Moment: ' + arm.value * 10 + ' N m';
  ctx.clearRect(0, 0, 300, 80);
  ctx.fillRect(10, 40, 50 * arm.value, 6);
}
arm.addEventListener('input', draw);
document.getElementById('next').addEventListener('click', () => {
  document.getElementById('s1').classList.add('hidden');
  document.getElementById('s2').classList.remove('hidden');
});
document.getElementById('check').addEventListener('click', () => {
  const picked = document.querySelector('input[name=q]:checked');
  document.getElementById('verdict').textContent =
    picked && picked.value === 'long' ? 'Right!' : 'Not quite.';
});
draw();
</script>
</body>
</html>
"""
CONCEPTS = ["lever", "fulcrum", "torque", "moment"]
PLANTED = {
    "console_error": "failing-fetch",
    "uncaught_exception": "undefined-property",
    "missing_concept": "hidden",
    "dead_control": "stripped-handlers",
    "overflow": "wide-block",
    "accessibility": "detached-label",
}


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def planted(browser) -> dict[str, Findings]:
    found = {}
    for kind, variant in PLANTED.items():
        html, expected = inject(PAGE, kind, random.Random(1), concepts=CONCEPTS, variant=variant)
        assert expected == kind
        found[kind] = verify_page(html, CONCEPTS, browser=browser)
    return found


def test_clean_page_passes(browser):
    # one concept the page never shows: the only finding on the otherwise clean page
    findings = verify_page(PAGE, [*CONCEPTS, "centre of mass"], browser=browser)
    assert [(f.kind, f.detail.get("concept")) for f in findings.items] == [
        ("missing_concept", "centre of mass")
    ], findings.to_prompt()
    assert findings.stats["controls"] == 5  # slider, Next, radio group, Check, summary
    assert findings.stats["controls_exercised"] == 5
    assert findings.stats["volatile"] == []


@pytest.mark.parametrize("kind", KINDS)
def test_planted_defect_is_caught_with_its_kind(planted, kind):
    counts = planted[kind].by_kind()
    assert counts[kind] >= 1, planted[kind].to_prompt()
    assert {k for k, n in counts.items() if n} == {kind}, planted[kind].to_prompt()


def test_findings_name_the_culprit(planted):
    blocked = planted["console_error"].items[0]
    assert blocked.detail["url"].startswith("https://api.example.org/")
    messages = [f.message for f in planted["console_error"].items]
    assert any("could not load" in m for m in messages)  # the page's own console.error
    assert "TypeError" in planted["uncaught_exception"].items[0].message
    assert planted["missing_concept"].items[0].detail["concept"] in CONCEPTS
    dead = planted["dead_control"].items
    # seed 1 strips the Check button; the radio group it read is then unused too
    assert [(f.detail["kind"], f.detail["selector"]) for f in dead] == [
        ("radio", "body > fieldset > label:nth-of-type(1) > input"),
        ("click", "#check"),
    ]
    overflow = planted["overflow"].items
    assert [f.detail["width"] for f in overflow][0] == 375
    assert overflow[0].detail["tag"] == "div" and overflow[0].detail["element_width"] >= 700
    label = planted["accessibility"].items[0]
    assert label.detail["rule"] == "label" and label.detail["targets"] == ["#arm"]


def test_prompt_mentions_every_finding(planted):
    every = Findings([item for found in planted.values() for item in found.items])
    prompt = every.to_prompt()
    for kind in KINDS:
        assert f"- {kind.replace('_', ' ')}: " in prompt
    for item in every.items:
        assert item.message in prompt
    assert every.by_kind() == {k: len(planted[k].items) for k in KINDS}
    again = Findings.from_dict(every.to_dict())
    assert again.items == every.items and not again.ok


def test_unhandled_submit_and_a_hung_handler(browser, monkeypatch):
    monkeypatch.setattr("posttrain.maic.verify.CALL_TIMEOUT_MS", 800)
    page = PAGE.replace(
        '<p id="verdict"></p>',
        '<p id="verdict"></p><form><button type="submit">Send</button></form>'
        '<button id="spin" type="button" onclick="while (true) {}">Spin</button>',
    )
    findings = verify_page(page, CONCEPTS, browser=browser)
    # the form's submit did not replace the page (Spin was still there to be used), and the
    # check stopped at Spin instead of waiting for it forever
    assert [(f.kind, f.detail["phase"]) for f in findings.items] == [
        ("uncaught_exception", 'using the button "Spin" (#spin)')
    ]
    assert "stopped responding" in findings.items[0].message


def test_findings_basics():
    assert Findings().ok and Findings().to_prompt() == "The page passed every browser check."
    with pytest.raises(ValueError, match="unknown finding kind"):
        Finding("typo", "x")
    many = Findings([Finding("overflow", f"too wide {i}") for i in range(30)])
    assert many.to_prompt(limit=25).endswith("- ... and 5 more of the same kinds")


def test_missing_browser_is_a_clear_error(tmp_path):
    missing = tmp_path / "no-chromium"
    with pytest.raises(RuntimeError, match="apt-get install"), chromium(executable=missing):
        pass
