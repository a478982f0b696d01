"""Applying model diffs to pages: each location stage, the guards, parsing, and the anchor."""

from __future__ import annotations

from posttrain.maic.anchor_apply import anchor_apply_diff
from posttrain.maic.diffs import _guard, apply_diff, parse_diff
from posttrain.maic.html_check import structure_problems


def _page(items: int = 30) -> str:
    body = "".join(
        f'  <p data-src="L{i + 3}-L{i + 3}" class="item">Item {i}</p>\n' for i in range(items)
    )
    return "<html>\n<body>\n" + body + "</body>\n</html>\n"


PAGE = _page()  # line n (3..32) holds "Item n-3"
WANTED = PAGE.replace(">Item 12<", ">Twelve<")

CLEAN = """--- a/page.html
+++ b/page.html
@@ -12,7 +12,7 @@
   <p data-src="L12-L12" class="item">Item 9</p>
   <p data-src="L13-L13" class="item">Item 10</p>
   <p data-src="L14-L14" class="item">Item 11</p>
-  <p data-src="L15-L15" class="item">Item 12</p>
+  <p data-src="L15-L15" class="item">Twelve</p>
   <p data-src="L16-L16" class="item">Item 13</p>
   <p data-src="L17-L17" class="item">Item 14</p>
   <p data-src="L18-L18" class="item">Item 15</p>
"""


BOX = '<html>\n<body>\n<div class="box">\n  <p>Text</p>\n</div>\n<p>After</p>\n</body>\n</html>\n'


def _stages(result) -> list:
    return [(h.stage, h.line) for h in result.hunks]


def test_a_clean_diff_applies_exactly_at_its_stated_line():
    result = apply_diff(PAGE, CLEAN)
    assert result.ok and result.text == WANTED
    assert _stages(result) == [("exact", 12)]


def test_shifted_line_numbers_find_the_exact_block_nearest_to_the_stated_line():
    result = apply_diff(PAGE, CLEAN.replace("@@ -12,7 +12,7 @@", "@@ -3,7 +3,7 @@"))
    assert result.ok and result.text == WANTED
    assert _stages(result) == [("exact", 12)]


def test_reindented_context_matches_loosely_and_added_lines_follow_the_page_indentation():
    diff = CLEAN.replace("\n   <p", "\n     <p").replace("\n-  <p", "\n-    <p")
    diff = diff.replace("\n+  <p", "\n+    <p")
    result = apply_diff(PAGE, diff)
    assert result.ok and result.text == WANTED  # the + line re-indented from 4 to 2 spaces
    assert _stages(result) == [("loose", 12)]


def test_drifted_data_src_values_match_loosely_and_the_pages_own_context_is_kept():
    diff = CLEAN.replace('data-src="L1', 'data-src="L2')  # every value stale
    result = apply_diff(PAGE, diff)
    assert result.ok and _stages(result) == [("loose", 12)]
    # the changed line carries the diff's stale value (the studio re-annotates every
    # version); every context line is the page's own
    assert result.text == WANTED.replace(
        '"L15-L15" class="item">Twelve', '"L25-L15" class="item">Twelve'
    )


def test_any_attribute_drift_in_context_still_matches_loosely():
    diff = CLEAN.replace(' class="item">Item 1', ' class="entry">Item 1')
    result = apply_diff(PAGE, diff)
    assert result.ok and _stages(result) == [("loose", 12)]
    assert result.text == WANTED  # the context lines are the page's, class="item"


def test_changed_context_text_near_the_stated_line_is_found_by_the_window():
    diff = CLEAN.replace(">Item 10<", ">Item ten<").replace(">Item 14<", ">Item fourteen<")
    result = apply_diff(PAGE, diff)
    assert result.ok and result.text == WANTED
    assert _stages(result) == [("window", 12)]


def test_far_off_line_numbers_and_changed_context_fall_to_the_fuzzy_stage():
    diff = CLEAN.replace("@@ -12,7 +12,7 @@", "@@ -40,7 +40,7 @@").replace(
        ">Item 10<", ">Item ten<"
    )
    page = PAGE + "".join(f"<!-- filler {i} -->\n" for i in range(40))
    result = apply_diff(page, diff)
    assert result.ok and result.text == page.replace(">Item 12<", ">Twelve<")
    assert [h.stage for h in result.hunks] == ["fuzzy"]


def test_two_equally_good_places_fail_the_hunk_instead_of_guessing():
    unit = "  <li>Done</li>\n  <li>Next</li>\n  <li>Other</li>\n  <li>More</li>\n"
    page = "<html>\n<body>\n" + unit * 2 + "</body>\n</html>\n"  # lines 3-4 = lines 7-8
    hunk = "   <li>Done</li>\n-  <li>Next</li>\n+  <li>Later</li>\n"
    for header in ("@@\n", "@@ -5,2 +5,2 @@\n"):  # no line number; line 5 is 2 from both
        result = apply_diff(page, header + hunk)
        assert not result.ok and result.text == page
        assert result.hunks[0].stage is None and "ambiguous" in result.hunks[0].message
    result = apply_diff(page, "@@ -6,2 +6,2 @@\n" + hunk)  # nearest to line 6: the second
    assert result.ok and result.text.split("\n")[7] == "  <li>Later</li>"
    assert result.text.count("Later") == 1


def test_a_truncated_hunk_that_lost_only_trailing_context_applies_and_is_reported():
    diff = "\n".join(CLEAN.split("\n")[:-3]) + "\n"  # the last two context lines cut
    result = apply_diff(PAGE, diff)
    assert result.ok and result.text == WANTED
    assert result.hunks[0].truncated and "truncated" in result.hunks[0].message


def test_a_hunk_truncated_inside_its_changes_is_refused():
    diff = "\n".join(CLEAN.split("\n")[:7]) + "\n"  # ends at the removed line: + line lost
    result = apply_diff(PAGE, diff)
    assert not result.ok and result.text == PAGE
    assert result.hunks[0].truncated and result.hunks[0].stage is None


def test_a_diff_deleting_a_closing_tag_is_refused_and_the_original_comes_back():
    page = BOX
    diff = '@@ -3,4 +3,3 @@\n <div class="box">\n   <p>Text</p>\n-</div>\n <p>After</p>\n'
    result = apply_diff(page, diff)
    assert not result.ok and result.text == page
    assert all(h.stage == "exact" for h in result.hunks)  # it located; the guard refused
    assert any("breaks the page's structure" in reason for reason in result.reasons)
    assert any("<div> is not closed" in reason for reason in result.reasons)


def test_the_untouched_lines_guard_refuses_a_result_that_lost_one():
    original = ["<html>", "<body>", "<p>a</p>", "<p>b</p>", "</body>", "</html>"]
    kept = "\n".join(original) + "\n"
    lost = ["<html>", "<body>", "<p>a</p>", "</body>", "</html>"]
    reasons = _guard(kept, "\n".join(lost) + "\n", original, lost, replaced=set())
    assert reasons == ["the edit loses an untouched line of the page: '<p>b</p>'"]
    assert _guard(kept, "\n".join(lost) + "\n", original, lost, replaced={3}) == []


def test_a_diff_without_headers_in_a_fence_with_prose_and_wrong_counts_applies():
    body = CLEAN.split("\n", 2)[2].replace("@@ -12,7 +12,7 @@", "@@ -12,9 +12,4 @@")
    reply = f"Here is the change:\n```diff\n{body}```\nThis renames item 12."
    result = apply_diff(PAGE, reply)
    assert result.ok and result.text == WANTED


def test_a_diff_for_another_file_name_with_copied_line_numbers_applies():
    lines = CLEAN.replace("a/page.html", "a/index.html").replace("b/page.html", "b/x.html")
    numbered = []
    number = 12
    for line in lines.split("\n"):
        if line[:1] in (" ", "-") and not line.startswith("---"):
            numbered.append(f"{line[0]}{number:>4} | {line[1:]}")
            number += 1
        else:
            numbered.append(line)
    result = apply_diff(PAGE, "\n".join(numbered))
    assert result.ok and result.text == WANTED


def test_several_hunks_apply_in_order_with_the_drift_of_the_earlier_ones():
    diff = (
        "@@ -4,3 +4,4 @@\n"
        '   <p data-src="L4-L4" class="item">Item 1</p>\n'
        '+  <p class="item">Item 1.5</p>\n'
        '   <p data-src="L5-L5" class="item">Item 2</p>\n'
        '   <p data-src="L6-L6" class="item">Item 3</p>\n'
        "@@ -20,3 +21,2 @@\n"
        '   <p data-src="L20-L20" class="item">Item 17</p>\n'
        '-  <p data-src="L21-L21" class="item">Item 18</p>\n'
        '   <p data-src="L22-L22" class="item">Item 19</p>\n'
    )
    shifted = diff.replace("@@ -20,3", "@@ -26,3")  # the second header 6 lines off
    for text in (diff, shifted):
        result = apply_diff(PAGE, text)
        lines = result.text.split("\n")
        assert result.ok and [h.stage for h in result.hunks] == ["exact", "exact"]
        assert lines[4] == '  <p class="item">Item 1.5</p>'
        assert "Item 18<" not in result.text and len(lines) == len(PAGE.split("\n"))


def test_a_reply_without_a_diff_fails_cleanly():
    result = apply_diff(PAGE, "I am not sure what to change.")
    assert not result.ok and result.text == PAGE and result.hunks == []


def test_parse_diff_reads_kinds_and_counts_from_the_body():
    hunks = parse_diff("```\n@@ -3,9 +3,9 @@\n a\n-b\n+c\n\n d\n```")
    assert len(hunks) == 1
    assert hunks[0].stated == 3 and hunks[0].truncated
    assert hunks[0].lines == [(" ", "a"), ("-", "b"), ("+", "c"), (" ", ""), (" ", "d")]


def test_the_anchor_reverts_stale_context_where_ours_keeps_the_pages_lines():
    # the model saw an older class on a context line; the page has moved on
    diff = CLEAN.replace('class="item">Item 11', 'class="old">Item 11')
    ours, anchor = apply_diff(PAGE, diff), anchor_apply_diff(PAGE, diff)
    assert ours.ok and ours.text == WANTED
    assert anchor.ok and anchor.text != WANTED  # declared valid, but the page changed back
    assert 'class="old">Item 11' in anchor.text


def test_the_anchor_writes_a_broken_page_where_ours_refuses():
    page = BOX
    unwrap = '@@ -2,5 +2,3 @@\n <body>\n-<div class="box">\n   <p>Text</p>\n-</div>\n'
    unwrap += " <p>After</p>\n"
    truncated = "\n".join(unwrap.split("\n")[:3]) + "\n"  # cut after the first removed line
    ours, anchor = apply_diff(page, truncated), anchor_apply_diff(page, truncated)
    assert not ours.ok and ours.text == page
    assert anchor.ok and structure_problems(anchor.text) == [
        "line 4: stray end tag </div> with no open <div>"
    ]
    assert apply_diff(page, unwrap).ok  # the whole diff is fine for both
