"""The structural check that decides whether a MAIC page "parses"."""

from __future__ import annotations

from posttrain.maic.html_check import structure_problems

GOOD = """<!doctype html>
<html><head><title>Lab</title><meta charset="utf-8"><style>p > a { color: red; }</style></head>
<body>
<ul><li>one<li>two</ul>
<p>first<p>second
<div><br><input type="range" min="0" max="10"><img src="x.png" alt=""></div>
<table><tr><td>1<td>2<tr><td>3</table>
<select><option>a<option>b</select>
<svg viewBox="0 0 10 10"><circle cx="5" cy="5" r="4"/><path d="M0 0L10 10"/></svg>
<!-- a comment with <div> inside -->
<script>if (a < b && c > d) { el.innerHTML = '</div><p>'; }</script>
</body>
</html>
"""


def test_a_good_page_with_optional_end_tags_void_elements_svg_and_script_is_fine():
    assert structure_problems(GOOD) == []


def test_an_unclosed_element_is_reported_at_its_start_line():
    page = GOOD.replace("<div><br>", "<div><span><br>")
    assert structure_problems(page) == ["line 6: <span> is not closed before </div> at line 6"]


def test_a_deleted_closing_tag_is_reported():
    page = GOOD.replace("</div>\n", "\n")
    assert structure_problems(page) == ["line 6: <div> is not closed before </body> at line 12"]


def test_a_stray_end_tag_is_reported():
    page = GOOD.replace("</ul>", "</ul></section>")
    assert structure_problems(page) == ["line 4: stray end tag </section> with no open <section>"]


def test_mismatched_nesting_is_reported():
    page = GOOD.replace("<div><br>", "<div><b><i>x</b></i><br>")
    problems = structure_problems(page)
    assert problems == [
        "line 6: <i> is not closed before </b> at line 6",
        "line 6: stray end tag </i> with no open <i>",
    ]


def test_an_unclosed_script_swallows_the_rest_and_is_reported():
    page = GOOD.replace("}</script>", "}")
    problems = structure_problems(page)
    assert (
        "line 11: <script> is never closed (the rest of the page is read as its content)"
        in problems
    )


def test_an_unclosed_comment_is_reported():
    page = GOOD.replace("</script>\n", "</script>\n<!-- note\n")
    # what the tokenizer makes of the tail differs between Python versions; the comment's
    # own problem is what must be there
    assert "line 12: comment <!-- is never closed" in structure_problems(page)


def test_a_comment_opened_early_hides_tags_until_a_later_close():
    page = GOOD.replace("<ul>", "<ul><!-- note", 1)  # closed by the comment's --> on line 10
    assert structure_problems(page) == ["line 4: <ul> is not closed before </body> at line 12"]


def test_a_missing_html_and_body_are_reported():
    assert structure_problems("<p>just a fragment</p>") == [
        "line 1: the page has no <html> element",
        "line 1: the page has no <body> element",
    ]


def test_self_closing_non_void_html_and_void_end_tags_are_reported():
    page = GOOD.replace("<div><br>", "<div><div/><br></input>")
    assert structure_problems(page) == [
        "line 6: self-closing syntax on non-void <div/> (browsers ignore the slash and leave it "
        "open)",
        "line 6: end tag </input> for a void element",
    ]
