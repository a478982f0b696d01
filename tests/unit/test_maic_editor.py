"""The edit prompt, the diff edit through a ChatModel, and the scripted editor's diffs."""

from __future__ import annotations

import pytest

from posttrain.errors import InputError
from posttrain.maic.diffs import parse_diff
from posttrain.maic.editor import (
    EditError,
    edit_lines,
    edit_page,
    edit_prompt,
    regenerate_page,
)
from posttrain.maic.page import annotate
from posttrain.models.chat import load_chat
from posttrain.models.chat.base import ChatResult, Choice, Usage

PAGE = """<!doctype html>
<html>
<head><title>Pendulum</title></head>
<body>
  <h1 data-src="L5-L5">Simple pendulum</h1>
  <p data-src="L6-L6" class="lead">The period depends on length.</p>
  <label data-src="L7-L7">Length <input data-src="L7-L7" id="len" type="range" min="10" max="200" value="100"></label>
  <button data-src="L8-L10" id="go" type="button">
    Start
  </button>
  <ul data-src="L11-L14">
    <li data-src="L12-L12">Step one</li>
    <li data-src="L13-L13">Step two</li>
  </ul>
  <script data-src="L15-L17">
    document.getElementById('go').onclick = () => {};
  </script>
</body>
</html>
"""  # noqa: E501


def _picked(data_src: str) -> dict:
    return {"data_src": data_src, "tag": "p", "selector": "body > p", "text": "x"}


@pytest.fixture(scope="module")
def editor():
    return load_chat("scripted:maic-editor")


CASES = [
    (
        "L6-L6",
        "make it red",
        PAGE.replace('class="lead">', 'class="lead" style="color: red">'),
    ),
    (
        "L6-L6",
        "change the colour to #336699",
        PAGE.replace('class="lead">', 'class="lead" style="color: #336699">'),
    ),
    (
        "L5-L5",
        "make it bigger",
        PAGE.replace('"L5-L5">', '"L5-L5" style="font-size: 1.25em">'),
    ),
    (
        "L5-L5",
        "make it smaller",
        PAGE.replace('"L5-L5">', '"L5-L5" style="font-size: 0.8em">'),
    ),
    (
        "L5-L5",
        "change the text to 'Pendulum lab'",
        PAGE.replace(">Simple pendulum<", ">Pendulum lab<"),
    ),
    (
        "L8-L10",
        "change the text to 'Go & see'",
        PAGE.replace("    Start\n", "    Go &amp; see\n"),
    ),
    (
        "L6-L6",
        "add a button 'Check'",
        PAGE.replace("length.</p>\n", 'length.</p>\n  <button type="button">Check</button>\n'),
    ),
    (
        "L13-L13",
        'add a paragraph "Then release it."',
        PAGE.replace("Step two</li>\n", "Step two</li>\n    <p>Then release it.</p>\n"),
    ),
    (
        "L12-L12",
        "remove this element",
        PAGE.replace('    <li data-src="L12-L12">Step one</li>\n', ""),
    ),
    (
        "L8-L10",
        "delete this button",
        PAGE.replace(
            '  <button data-src="L8-L10" id="go" type="button">\n    Start\n  </button>\n', ""
        ),
    ),
    (
        "L7-L7",
        "set the range of the slider to 0-50",
        PAGE.replace('min="10" max="200" value="100"', 'min="0" max="50" value="50"'),
    ),
]


@pytest.mark.parametrize(("data_src", "instruction", "expected"), CASES)
def test_the_scripted_editor_makes_each_kind_of_edit_as_a_diff(
    editor, data_src, instruction, expected
):
    result = edit_page(PAGE, _picked(data_src), instruction, editor)
    assert result.applied.ok, result.applied.reasons
    assert result.applied.text == expected  # the exact page, before re-annotation
    assert result.model == "scripted:maic-editor"
    assert result.diff.startswith("--- a/page.html\n+++ b/page.html\n@@ -")
    assert [h.stage for h in result.applied.hunks] == ["exact"]


def test_the_result_is_re_annotated_after_lines_moved(editor):
    result = edit_page(PAGE, _picked("L12-L12"), "remove this element", editor)
    assert '<li data-src="L12-L12">Step two</li>' in result.html
    assert '<ul data-src="L11-L13">' in result.html


def test_the_prompt_shows_numbered_lines_around_the_pick_and_asks_for_a_diff():
    prompt = edit_prompt(PAGE, _picked("L13-L14"), "make it red")
    assert "Instruction: make it red" in prompt and "Picked lines: L13-L14" in prompt
    assert "> 13 |     <li" in prompt and "> 14 |   </ul>" in prompt
    assert "   5 |   <h1" in prompt and "  20 | " in prompt
    assert "   4 | <body>" not in prompt  # 8 lines either side only
    assert "unified diff" in prompt


def test_an_unknown_instruction_gets_no_diff_and_the_page_is_unchanged(editor):
    result = edit_page(PAGE, _picked("L6-L6"), "dance a little", editor)
    assert not result.applied.ok and result.html == PAGE and result.diff == ""
    assert "cannot make this edit" in result.reply


def test_a_pick_without_a_line_range_is_an_input_error():
    with pytest.raises(InputError, match="data_src"):
        edit_prompt(PAGE, {"tag": "p"}, "make it red")
    with pytest.raises(InputError, match="past the page"):
        edit_prompt(PAGE, _picked("L60-L61"), "make it red")


def test_edit_lines_refuses_what_does_not_fit():
    lines = PAGE.split("\n")
    with pytest.raises(EditError, match="no range slider"):
        edit_lines(lines, 6, 6, "set the range to 1-5")
    with pytest.raises(EditError, match="no text to change"):
        edit_lines(["<svg>", '  <ellipse rx="2"></ellipse>', "</svg>"], 2, 2, "set the text to 'x'")
    with pytest.raises(EditError, match="unknown instruction"):
        edit_lines(lines, 6, 6, "translate into French")


class _Fake:
    """A model that answers with a fixed diff and reports its token usage."""

    name = "fake"

    def __init__(self, reply: str) -> None:
        self.reply = reply

    def chat(self, conversations, params=None):
        return [
            ChatResult(model="fake", choices=[Choice(self.reply)], usage=Usage(1200, 80))
            for _ in conversations
        ]


def test_any_chat_model_works_and_its_reported_usage_is_used(editor):
    reply = edit_page(PAGE, _picked("L6-L6"), "make it red", editor).reply
    result = edit_page(PAGE, _picked("L6-L6"), "make it red", _Fake("Sure!\n" + reply))
    assert result.applied.ok and (result.tokens_in, result.tokens_out) == (1200, 80)
    assert not result.tokens_estimated and result.model == "fake"
    scripted = edit_page(PAGE, _picked("L6-L6"), "make it red", editor)
    assert scripted.tokens_estimated and scripted.tokens_out == -(-len(scripted.reply) // 4)


def test_full_regeneration_gives_the_same_page_at_a_higher_token_cost(editor):
    steps = "".join(f"    <li>Step {n}: observe the swing</li>\n" for n in range(3, 60))
    page = annotate(PAGE.replace("Step two</li>\n", "Step two</li>\n" + steps))
    diff = edit_page(page, _picked("L7-L7"), "set the range to 0-50", editor)
    regen = regenerate_page(page, _picked("L7-L7"), "set the range to 0-50", editor)
    assert diff.applied.ok and regen.html == diff.applied.text
    assert regen.tokens_out > 5 * diff.tokens_out and regen.tokens_in > 2 * diff.tokens_in


def test_the_scripted_diff_is_numbered_against_the_whole_page(editor):
    reply = edit_page(PAGE, _picked("L13-L13"), "make it red", editor).reply
    (hunk,) = parse_diff(reply)
    assert hunk.stated == 10  # three lines of context above line 13
    assert hunk.before[3] == '    <li data-src="L13-L13">Step two</li>'
