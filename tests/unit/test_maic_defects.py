"""Planting defects in pages (`posttrain.maic.defects`): each kind changes the page the way
it says, leaves the rest alone, and is reproducible from the random seed."""

from __future__ import annotations

import random

import pytest

from posttrain.maic.defects import VARIANTS, _page_text, inject
from posttrain.maic.verify import KINDS

PAGE = """<!DOCTYPE html>
<html lang="en">
<head><title>Density</title></head>
<body>
<h1>Density</h1>
<p>Density is mass divided by volume.</p>
<label for="mass">Mass (kg)</label>
<input id="mass" type="range" min="1" max="10" value="5">
<p>Result: <span id="density">5</span></p>
<img src="data:image/png;base64,iVBORw0KGgo=" alt="A cube of metal">
<select><option>Mass of iron</option></select>
<script>
const mass = document.getElementById('mass');
mass.addEventListener('input', () => {
  document.getElementById('density').textContent = 'density ' + mass.value;
});
</script>
</body>
</html>
"""
CONCEPTS = ["density", "volume"]


def plant(kind: str, variant: str, seed: int = 0) -> str:
    html, expected = inject(PAGE, kind, random.Random(seed), concepts=CONCEPTS, variant=variant)
    assert expected == kind
    return html


def added(html: str) -> str:
    """The text planted at the end of the body."""
    assert html.startswith(PAGE[: PAGE.index("</body>")])
    return html[PAGE.index("</body>") : html.rindex("</body>")]


def test_every_kind_has_variants():
    assert set(VARIANTS) == set(KINDS)


def test_console_error_variants():
    assert "console.error('could not initialise the" in added(
        plant("console_error", "console-error")
    )
    fetch = added(plant("console_error", "failing-fetch"))
    assert "fetch('https://api.example.org/" in fetch and ".catch(" in fetch
    image = added(plant("console_error", "outside-image"))
    assert '<img src="https://cdn.example.org/' in image and 'alt="A figure of the' in image


def test_uncaught_exception_variants():
    assert "var config; config." in added(plant("uncaught_exception", "undefined-property"))
    missing = added(plant("uncaught_exception", "missing-function"))
    assert "DOMContentLoaded" in missing and "Panel();" in missing
    assert "<script>throw new Error(" in added(plant("uncaught_exception", "throw-at-load"))


def test_missing_concept_removed_leaves_handles_alone():
    html = inject(
        PAGE, "missing_concept", random.Random(0), concepts=["density"], variant="removed"
    )[0]
    # the id 'density' is a handle the script needs; the shown string is text
    assert "getElementById('density')" in html and 'id="density"' in html
    assert "'this idea ' + mass.value" in html
    assert "<h1>this idea</h1>" in html and "<p>this idea is mass divided" in html
    assert "density" not in _page_text(html) and "volume" in _page_text(html)


def test_missing_concept_picks_a_concept_the_page_shows():
    html = inject(PAGE, "missing_concept", random.Random(1), concepts=["photosynthesis", "volume"])
    assert "volume" not in _page_text(html[0]) and "density" in _page_text(html[0])


def test_missing_concept_hidden_wraps_text_mentions():
    html = inject(PAGE, "missing_concept", random.Random(0), concepts=["volume"], variant="hidden")
    assert '<span style="display:none">volume</span>' in html[0]
    assert "volume" not in _page_text(html[0])
    # a mention inside <option> cannot hold a span: it is replaced instead
    html = inject(PAGE, "missing_concept", random.Random(0), concepts=["iron"], variant="hidden")
    assert "<option>Mass of this idea</option>" in html[0]


def test_missing_concept_reaches_data_attributes_and_entities():
    page = PAGE.replace(
        "<h1>Density</h1>",
        '<button type="button" data-src="L5-L5" data-definition="Density is mass per volume.">'
        "Density</button><p>Newton&#x27;s law</p>",
    )
    html = inject(
        page, "missing_concept", random.Random(0), concepts=["density"], variant="hidden"
    )[0]
    # a button's label is replaced, not hidden (a hidden label is an unnamed button)
    assert (
        '<button type="button" data-src="L5-L5" data-definition="this idea is mass per volume.">'
        in html
    )
    assert ">this idea</button>" in html and "density" not in _page_text(html)
    removed = inject(
        page, "missing_concept", random.Random(0), concepts=["Newton's law"], variant="removed"
    )
    assert "<p>this idea</p>" in removed[0]


def test_missing_concept_needs_a_concept_on_the_page():
    with pytest.raises(ValueError, match="none of the key concepts"):
        inject(PAGE, "missing_concept", random.Random(0), concepts=["photosynthesis"])
    with pytest.raises(ValueError, match="none of the key concepts"):
        inject(PAGE, "missing_concept", random.Random(0))


def test_dead_control_variants():
    button = added(plant("dead_control", "unwired-button"))
    assert button.startswith('<p><button type="button">') and "onclick" not in button
    stripped = added(plant("dead_control", "stripped-handlers"))
    assert "cloneNode(true)" in stripped and "el.replaceWith(copy)" in stripped
    assert "window.addEventListener('load'" in stripped


def test_overflow_variants_are_wider_than_a_phone():
    for variant in ("wide-block", "wide-table"):
        snippet = added(plant("overflow", variant))
        width = int(snippet.split("width:")[1].split("px")[0])
        assert 700 <= width < 1700
    assert 'style="white-space:nowrap"' in added(plant("overflow", "unwrapped-line"))


def test_accessibility_variants():
    detached = plant("accessibility", "detached-label")
    assert "<label>Mass (kg)</label>" in detached and detached.count("\n") == PAGE.count("\n")
    no_alt = plant("accessibility", "missing-alt")
    assert '<img src="data:image/png;base64,iVBORw0KGgo=">' in no_alt
    contrast = added(plant("accessibility", "low-contrast"))
    assert "background-color:#c8c8c8" in contrast
    assert any(f'style="color:{grey};' in contrast for grey in ("#b0b0b0", "#a8a8a8", "#b8b8b8"))


def test_detached_label_skips_inputs_named_otherwise():
    page = PAGE.replace('id="mass"', 'id="mass" placeholder="kg"')
    html = plant_on(page, "accessibility", "detached-label")
    assert '<label for="mass">' in html  # fell back to low contrast
    assert "background-color:#c8c8c8" in html


def plant_on(page: str, kind: str, variant: str) -> str:
    return inject(page, kind, random.Random(0), variant=variant)[0]


def test_same_seed_same_page_and_seeds_differ():
    for kind in KINDS:
        first = inject(PAGE, kind, random.Random(7), concepts=CONCEPTS)
        again = inject(PAGE, kind, random.Random(7), concepts=CONCEPTS)
        assert first == again
    widths = {plant("overflow", "wide-block", seed) for seed in range(6)}
    assert len(widths) > 1


def test_bad_requests():
    with pytest.raises(ValueError, match="unknown defect kind"):
        inject(PAGE, "typo", random.Random(0))
    with pytest.raises(ValueError, match="unknown overflow variant"):
        inject(PAGE, "overflow", random.Random(0), variant="wide-block-x")
    with pytest.raises(ValueError, match="no <body>"):
        inject("<p>no body</p>", "overflow", random.Random(0))
