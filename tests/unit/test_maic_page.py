"""data-src annotation (posttrain.maic.page) and the Python side of click-to-locate
(posttrain.maic.locate): exact, hand-written expected pages and line numbers."""

from __future__ import annotations

import re

import pytest

from posttrain.maic.locate import anchor_locate, anchor_selector, numbered_context
from posttrain.maic.page import (
    annotate,
    elements,
    line_range_of,
    page_text_lines,
    parse_src,
    strip_src,
)

PAGE = """<!doctype html>
<html lang="en">
<head>
<title>t</title>
<meta charset="utf-8" data-src="L9-L9">
</head>
<body>
<ul class="steps">
  <li class="step item">Step</li>
  <li class="step item">Step</li>
</ul>
<p>Hello <b>world</b></p>
</body>
</html>"""

ANNOTATED = """<!doctype html>
<html lang="en">
<head>
<title>t</title>
<meta charset="utf-8">
</head>
<body>
<ul data-src="L8-L11" class="steps">
  <li data-src="L9-L9" class="step item">Step</li>
  <li data-src="L10-L10" class="step item">Step</li>
</ul>
<p data-src="L12-L12">Hello <b data-src="L12-L12">world</b></p>
</body>
</html>"""


def test_annotate_marks_body_elements_with_their_line_ranges():
    assert annotate(PAGE) == ANNOTATED  # head's stale data-src removed, body's written


def test_annotate_is_idempotent_and_never_changes_line_count():
    once = annotate(PAGE)
    assert annotate(once) == once
    assert len(page_text_lines(once)) == len(page_text_lines(PAGE)) == 14


def test_stale_values_are_replaced_after_an_edit_moves_lines():
    edited = ANNOTATED.replace("<body>\n", "<body>\n<h1>New</h1>\n")
    again = annotate(edited)
    assert '<h1 data-src="L8-L8">New</h1>' in again
    assert '<ul data-src="L9-L12" class="steps">' in again
    assert '<li data-src="L11-L11" class="step item">' in again
    assert again.count("data-src=") == 6  # one per body element, no leftovers


def test_multi_line_start_tag_gets_the_attribute_on_its_first_line():
    page = '<body>\n<div\n  class="a b"\n  data-src="L1-L1"\n  id="x">\ntext\n</div>\n</body>'
    expected = '<body>\n<div data-src="L2-L7"\n  class="a b"\n\n  id="x">\ntext\n</div>\n</body>'
    assert annotate(page) == expected
    assert annotate(expected) == expected


def test_implicitly_closed_elements_end_with_their_own_content():
    page = "<body>\n<ul>\n<li>one\n<li>two\ncontinued\n</ul>\n<p>a\n<p>b\n<div>x</div>\n</body>"
    marked = annotate(page)
    assert '<li data-src="L3-L3">one' in marked
    assert '<li data-src="L4-L5">two' in marked
    assert '<ul data-src="L2-L6">' in marked
    assert '<p data-src="L7-L7">a' in marked  # closed by <p>, not by the line after
    assert '<p data-src="L8-L8">b' in marked  # closed by <div>
    assert '<div data-src="L9-L9">x' in marked


def test_void_self_closed_and_svg_elements():
    page = (
        '<body>\n<img src="a.png" alt="a"><br/>\n'
        '<svg viewBox="0 0 4 4">\n<circle r="1"/>\n</svg>\n</body>'
    )
    marked = annotate(page)
    assert '<img data-src="L2-L2" src="a.png" alt="a"><br data-src="L2-L2"/>' in marked
    assert '<svg data-src="L3-L5" viewBox="0 0 4 4">' in marked
    assert '<circle data-src="L4-L4" r="1"/>' in marked


def test_script_and_style_contents_and_attribute_values_are_untouched():
    script = "<script>\nif (a < b) { el.innerHTML = '<div data-src=\"L1-L1\">'; }\n</script>"
    page = f'<body>\n<p title="data-src=L7-L7">x</p>\n{script}\n<style>p > b {{}}</style>\n</body>'
    marked = annotate(page)
    assert '<p data-src="L2-L2" title="data-src=L7-L7">x</p>' in marked
    assert '<script data-src="L3-L5">\nif (a < b) { el.innerHTML = \'<div data-src="L1-L1">\'' in (
        marked
    )
    assert '<style data-src="L6-L6">p > b {}</style>' in marked


def test_a_fragment_without_body_is_all_annotated():
    fragment = '<section id="simulation">\n<input type="range" id="s">\n</section>'
    assert annotate(fragment) == (
        '<section data-src="L1-L3" id="simulation">\n'
        '<input data-src="L2-L2" type="range" id="s">\n</section>'
    )


def test_every_annotated_element_names_its_start_and_end_lines():
    page = annotate(
        "<!doctype html>\n<html>\n<body>\n<main>\n<section>\n<h2>A</h2>\n<ol>\n<li>x</li>\n"
        "<li>y</li>\n</ol>\n</section>\n</main>\n</body>\n</html>"
    )
    lines = page_text_lines(page)
    checked = 0
    for element in elements(page):
        if not element.annotated:
            continue
        assert f'<{element.tag} data-src="{element.src}"' in lines[element.start - 1]
        assert f"</{element.tag}>" in lines[element.end - 1]
        checked += 1
    assert checked == 6


def test_strip_src_removes_every_value():
    assert strip_src(ANNOTATED) == PAGE.replace(' data-src="L9-L9"', "")
    assert "data-src" not in strip_src(annotate(PAGE))


def test_parse_src():
    assert parse_src("L12-L15") == (12, 15)
    assert parse_src(" L3 - L3 ") == (3, 3)
    for bad in ("12-15", "L5-L4", "L0-L2", "", "Lx-L2"):
        with pytest.raises(ValueError):
            parse_src(bad)


def test_line_range_of():
    assert line_range_of(ANNOTATED, 9, 10).count("<li") == 2
    with pytest.raises(ValueError):
        line_range_of(ANNOTATED, 14, 15)


def test_numbered_context_marks_the_picked_lines():
    page = "\n".join(f"line {n}" for n in range(1, 21))
    assert numbered_context(page, 10, 11, around=2) == (
        "   8 | line 8\n"
        "   9 | line 9\n"
        "> 10 | line 10\n"
        "> 11 | line 11\n"
        "  12 | line 12\n"
        "  13 | line 13"
    )
    assert numbered_context(page, 1, 1, around=1) == ">  1 | line 1\n   2 | line 2"
    with pytest.raises(ValueError):
        numbered_context(page, 20, 21)


def test_anchor_approach_picks_the_first_copy_and_builds_fragile_selectors():
    marked = annotate(PAGE)
    second_li = '<li data-src="L10-L10" class="step item">'
    assert anchor_locate(marked, second_li + "Step</li>") == 9  # the first li, not line 10
    assert anchor_locate(marked, "<li class='other'>") == 0
    assert anchor_selector("li", "step item") == "li.step item"  # a descendant selector
    assert anchor_selector("div", None) == "div"
    # our range comes from the element itself
    assert re.search(r'data-src="(L\d+-L\d+)"', second_li).group(1) == "L10-L10"
