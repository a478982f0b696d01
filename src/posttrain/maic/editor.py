"""Click-and-ask refinement: the edit prompt, the diff edit, and the offline scripted editor.

The user picks an element in the preview (its `data-src` line range) and asks for a change.
The editing model is shown only the numbered source lines around the pick
(`posttrain.maic.locate.numbered_context`) and answers with a unified diff, which
`posttrain.maic.diffs.apply_diff` applies without ever corrupting the page. A diff edit
costs a few hundred tokens each way where regenerating the page costs the whole page each
way; `regenerate_page` is the comparison, used by `benchmarks/diff_apply.py`.

`scripted:maic-editor` is the offline editing model, labelled scripted by its name (every
EditResult records `model`). It reads the instruction and the picked lines from the prompt,
makes the edit with fixed rules (`edit_lines`: change the text, the colour, the size, add a
button or paragraph after the element, remove the element, set a slider's range) and
answers with `difflib.unified_diff` of the lines it was shown, renumbered to the page, so
its diffs are exactly what a correct model would send. Asked to regenerate, it returns the
whole edited page. Anything else gets a refusal without a diff (the edit then fails).
"""

from __future__ import annotations

import difflib
import html as html_lib
import math
import re
import time
from dataclasses import dataclass, field

from posttrain.errors import InputError
from posttrain.maic.diffs import ApplyResult, apply_diff, extract_diff
from posttrain.maic.locate import numbered_context
from posttrain.maic.page import annotate, page_text_lines, parse_src
from posttrain.models.chat.base import ChatModel, ChatResult, Conversation, GenerationParams
from posttrain.models.chat.scripted import ScriptedChat, last_user_message, register_script

__all__ = [
    "NAME",
    "EditError",
    "EditResult",
    "RegenerationResult",
    "edit_lines",
    "edit_page",
    "edit_prompt",
    "regenerate_page",
    "regenerate_prompt",
    "scripted_editor",
]

NAME = "scripted:maic-editor"
PAGE_FILE = "page.html"
AROUND = 8
"""Lines shown either side of the picked range in the edit prompt."""
EDIT_PARAMS = GenerationParams(max_tokens=2048, temperature=0.0)
REGENERATE_PARAMS = GenerationParams(max_tokens=16384, temperature=0.0)


class EditError(ValueError):
    """An instruction the rule-based editor cannot carry out on the picked lines."""


@dataclass
class EditResult:
    """One diff edit. `html` is the new page (annotated) when `applied.ok`, else the
    original page. Tokens are the backend's counts, or len(text)/4 when it reports none
    (`tokens_estimated`)."""

    html: str
    diff: str
    applied: ApplyResult
    tokens_in: int
    tokens_out: int
    seconds: float
    tokens_estimated: bool = False
    model: str = ""
    reply: str = field(default="", repr=False)

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "applied": self.applied.to_dict(),
            "diff": self.diff,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "tokens_estimated": self.tokens_estimated,
            "seconds": self.seconds,
        }


@dataclass
class RegenerationResult:
    """The same change made by asking for the whole page again (the cost comparison)."""

    html: str
    tokens_in: int
    tokens_out: int
    seconds: float
    tokens_estimated: bool = False
    model: str = ""


# --------------------------------------------------------------------------- prompts


def _picked_range(html: str, picked: dict) -> tuple[int, int]:
    value = picked.get("data_src")
    if not value:
        raise InputError("the picked element has no data-src line range", key="data_src")
    try:
        start, end = parse_src(str(value))
    except ValueError as error:
        raise InputError(str(error), key="data_src") from None
    count = len(page_text_lines(html))
    if end > count:
        raise InputError(f"picked lines L{start}-L{end} are past the page's {count} lines")
    return start, end


def _describe(picked: dict, start: int, end: int) -> str:
    text = " ".join(str(picked.get("text", "")).split())[:120]
    return (
        f"Picked element: <{picked.get('tag', '?')}> selector `{picked.get('selector', '?')}`\n"
        f"Picked lines: L{start}-L{end}\n"
        f"Picked text: {text!r}"
    )


def edit_prompt(html: str, picked: dict, instruction: str, *, around: int = AROUND) -> str:
    """The prompt asking for a unified diff: the pick, the instruction, and the numbered
    lines around the picked range (marked with `>`)."""
    start, end = _picked_range(html, picked)
    context = numbered_context(html, start, end, around=around)
    return (
        "You edit an interactive HTML teaching page. The user clicked an element in the "
        "preview and asked for a change.\n\n"
        f"{_describe(picked, start, end)}\n"
        f"Instruction: {' '.join(instruction.split())}\n\n"
        "Source lines of the page around the picked element (line number, then `|`, then "
        "the line; `>` marks the picked lines):\n"
        f"{context}\n\n"
        f"Answer with ONLY a unified diff against {PAGE_FILE} in a ```diff fence: "
        f"`--- a/{PAGE_FILE}`, `+++ b/{PAGE_FILE}`, hunk headers `@@ -start,count "
        "+start,count @@` using the line numbers shown, 3 unchanged lines of context around "
        "each change, lines copied exactly (without the numbers). Change only what the "
        "instruction asks; keep every tag balanced."
    )


def regenerate_prompt(html: str, picked: dict, instruction: str) -> str:
    """The full-regeneration alternative: the whole page in, the whole page back."""
    start, end = _picked_range(html, picked)
    context = numbered_context(html, start, end, around=len(page_text_lines(html)))
    return (
        "You edit an interactive HTML teaching page. The user clicked an element in the "
        "preview and asked for a change.\n\n"
        f"{_describe(picked, start, end)}\n"
        f"Instruction: {' '.join(instruction.split())}\n\n"
        "The whole page (line number, then `|`, then the line; `>` marks the picked lines):\n"
        f"{context}\n\n"
        "Return the complete updated page, without line numbers, in one ```html fence."
    )


# --------------------------------------------------------------------------- running


def _tokens(result: ChatResult, prompt: str) -> tuple[int, int, bool]:
    if result.usage is not None:
        return result.usage.prompt_tokens, result.usage.completion_tokens, False
    return math.ceil(len(prompt) / 4), math.ceil(len(result.text) / 4), True


def edit_page(
    html: str,
    picked: dict,
    instruction: str,
    chat: ChatModel,
    *,
    params: GenerationParams | None = None,
) -> EditResult:
    """Ask `chat` for a diff making the change, apply it with `apply_diff`. The result's
    page is re-annotated (`page.annotate`: the lines below an edit moved)."""
    prompt = edit_prompt(html, picked, instruction)
    began = time.perf_counter()
    result = chat.chat([[{"role": "user", "content": prompt}]], params or EDIT_PARAMS)[0]
    seconds = time.perf_counter() - began
    reply = result.text if result.choices else ""
    diff = extract_diff(reply)
    applied = apply_diff(html, reply)
    new_html = annotate(applied.text) if applied.ok else html
    tokens_in, tokens_out, estimated = _tokens(result, prompt)
    return EditResult(
        html=new_html,
        diff=diff,
        applied=applied,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        seconds=seconds,
        tokens_estimated=estimated,
        model=result.model,
        reply=reply,
    )


_HTML_FENCE = re.compile(r"```(?:html)?[ \t]*\n(.*?)\n?```", re.DOTALL)


def regenerate_page(
    html: str,
    picked: dict,
    instruction: str,
    chat: ChatModel,
    *,
    params: GenerationParams | None = None,
) -> RegenerationResult:
    """Make the same change by full regeneration (for the cost comparison)."""
    prompt = regenerate_prompt(html, picked, instruction)
    began = time.perf_counter()
    result = chat.chat([[{"role": "user", "content": prompt}]], params or REGENERATE_PARAMS)[0]
    seconds = time.perf_counter() - began
    reply = result.text if result.choices else ""
    fenced = _HTML_FENCE.search(reply)
    page = fenced.group(1) if fenced else reply
    tokens_in, tokens_out, estimated = _tokens(result, prompt)
    return RegenerationResult(page, tokens_in, tokens_out, seconds, estimated, result.model)


# --------------------------------------------------------------------------- the rule-based edit

_COLOURS = "red|blue|green|orange|purple|black|white|gray|grey|yellow|pink|teal|navy|brown"
_QUOTED = r"""['"“‘](?P<text>.*?)['"”’]"""
_KINDS: list[tuple[str, re.Pattern[str]]] = [
    (
        "text",
        re.compile(r"(?:change|set|replace)\s+(?:the\s+)?text\s+(?:to|with)\s+" + _QUOTED, re.I),
    ),
    (
        "colour",
        re.compile(
            r"(?:colou?r\s+to\s+|make\s+it\s+)"
            rf"(?P<colour>#[0-9a-f]{{3,8}}\b|(?:{_COLOURS})\b)",
            re.I,
        ),
    ),
    (
        "size",
        re.compile(
            r"make\s+it\s+(?P<size>bigger|larger|smaller)"
            r"|(?P<dir>increase|decrease)\s+(?:the\s+)?(?:font\s+)?size",
            re.I,
        ),
    ),
    (
        "add",
        re.compile(
            r"add\s+an?\s+(?P<what>button|paragraph|note|heading)\s+"
            r"(?:saying\s+|that\s+says\s+|with\s+(?:the\s+)?text\s+)?" + _QUOTED,
            re.I,
        ),
    ),
    ("remove", re.compile(r"\b(?:remove|delete)\s+(?:this|the|it)\b", re.I)),
    (
        "range",
        re.compile(
            r"(?:set|change)\s+the\s+range(?:\s+of\s+.*?)?\s+to\s+"
            r"(?P<low>-?\d+(?:\.\d+)?)\s*(?:-|–|to)\s*(?P<high>-?\d+(?:\.\d+)?)",
            re.I,
        ),
    ),
]
_ADDED_TAG = {"button": "button", "paragraph": "p", "note": "p", "heading": "h3"}


def _start_tag_span(line: str, start: int, end: int) -> tuple[int, int]:
    """(from, to) of the picked element's start tag on its first line: the tag carrying
    `data-src="L<start>-L<end>"`, else the first tag on the line."""
    marker = f'data-src="L{start}-L{end}"'
    at = line.find(marker)
    open_at = line.rfind("<", 0, at) if at >= 0 else line.find("<")
    close_at = line.find(">", max(at, open_at))
    if open_at < 0 or close_at < 0:
        raise EditError(f"no start tag found on line {start}")
    return open_at, close_at + 1


def _tag_name(tag: str) -> str:
    return re.match(r"<\s*([A-Za-z][A-Za-z0-9-]*)", tag).group(1).lower()


def _set_style(tag: str, prop: str, value) -> str:
    """The start tag with `prop: value` in its style (value may be a function of the old)."""
    style = re.search(r"""\sstyle\s*=\s*(["'])(.*?)\1""", tag, re.S)
    declarations = []
    old = None
    if style:
        for part in style.group(2).split(";"):
            if ":" in part:
                name, val = part.split(":", 1)
                if name.strip().lower() == prop:
                    old = val.strip()
                    continue
                declarations.append(f"{name.strip()}: {val.strip()}")
    new_value = value(old) if callable(value) else value
    declarations.append(f"{prop}: {new_value}")
    text = "; ".join(declarations)
    if style:
        return tag[: style.start()] + f' style="{text}"' + tag[style.end() :]
    closing = 2 if tag.endswith("/>") else 1
    return tag[:-closing].rstrip() + f' style="{text}"' + tag[-closing:]


def _scaled_size(factor: float):
    def scale(old: str | None) -> str:
        match = re.fullmatch(r"(\d+(?:\.\d+)?)(px|em|rem|%|pt)", old or "")
        if not match:
            return f"{factor:g}em"
        return f"{round(float(match.group(1)) * factor, 2):g}{match.group(2)}"

    return scale


def _set_attribute(tag: str, name: str, value: str) -> str:
    pattern = re.compile(rf"""(\s{name}\s*=\s*)("[^"]*"|'[^']*'|[^\s>]+)""", re.I)
    if pattern.search(tag):
        return pattern.sub(lambda m: f'{m.group(1)}"{value}"', tag, count=1)
    closing = 2 if tag.endswith("/>") else 1
    return tag[:-closing].rstrip() + f' {name}="{value}"' + tag[-closing:]


def _number(text: str) -> str:
    value = float(text)
    return f"{value:g}"


def edit_lines(lines: list[str], start: int, end: int, instruction: str) -> list[str]:
    """Carry out `instruction` on the element at lines `start`..`end` (1-based, of `lines`)
    and return the new lines. Raises EditError for an instruction it does not know or that
    does not fit the element."""
    if not 1 <= start <= end <= len(lines):
        raise EditError(f"lines {start}-{end} are outside the {len(lines)} lines given")
    kind, match = next(
        ((k, m) for k, pattern in _KINDS if (m := pattern.search(instruction.strip()))),
        (None, None),
    )
    if kind is None:
        raise EditError(f"unknown instruction {instruction!r}")
    new = list(lines)
    first = new[start - 1]
    tag_from, tag_to = _start_tag_span(first, start, end)
    tag = first[tag_from:tag_to]
    name = _tag_name(tag)

    def replace_tag(new_tag: str) -> None:
        new[start - 1] = first[:tag_from] + new_tag + first[tag_to:]

    if kind == "colour":
        replace_tag(_set_style(tag, "color", match.group("colour").lower()))
    elif kind == "size":
        bigger = (match.group("size") or "").lower() in ("bigger", "larger") or (
            (match.group("dir") or "").lower() == "increase"
        )
        replace_tag(_set_style(tag, "font-size", _scaled_size(1.25 if bigger else 0.8)))
    elif kind == "text":
        _replace_text(new, start, end, tag_to, name, html_lib.escape(match.group("text"), False))
    elif kind == "add":
        element = _ADDED_TAG[match.group("what").lower()]
        extra = ' type="button"' if element == "button" else ""
        indent = first[: len(first) - len(first.lstrip())]
        text = html_lib.escape(match.group("text"), False)
        new.insert(end, f"{indent}<{element}{extra}>{text}</{element}>")
    elif kind == "remove":
        _remove(new, start, end, tag_from, tag_to, name)
    elif kind == "range":
        _set_range(new, start, end, match.group("low"), match.group("high"))
    return new


def _replace_text(new: list[str], start: int, end: int, tag_to: int, name: str, text: str):
    if start == end:
        line = new[start - 1]
        closing = line.rfind(f"</{name}")
        if closing < tag_to or not re.sub(r"<[^>]*>", "", line[tag_to:closing]).strip():
            raise EditError(f"<{name}> on line {start} has no text to change")
        new[start - 1] = line[:tag_to] + text + line[closing:]
        return
    run = re.compile(r"(>|^)(\s*)([^<>]*?\S[^<>]*?)(\s*)(<|$)")
    for number in range(start, end + 1):
        line = new[number - 1]
        offset = tag_to if number == start else 0
        found = run.search(line, offset)
        if found:
            new[number - 1] = line[: found.start(3)] + text + line[found.end(3) :]
            return
    raise EditError(f"<{name}> at lines {start}-{end} has no text to change")


def _remove(new: list[str], start: int, end: int, tag_from: int, tag_to: int, name: str):
    first, last = new[start - 1], new[end - 1]
    closing = last.rfind(f"</{name}>")
    stop = closing + len(f"</{name}>") if closing >= 0 else None
    if start == end:
        stop = stop if stop is not None and stop > tag_to else tag_to  # a void element
        rest = first[:tag_from] + first[stop:]
        if rest.strip():
            new[start - 1] = first[:tag_from] + first[stop:]
        else:
            del new[start - 1]
        return
    if first[:tag_from].strip() or stop is None or last[stop:].strip():
        raise EditError(f"<{name}> at lines {start}-{end} shares its lines with other markup")
    del new[start - 1 : end]


def _set_range(new: list[str], start: int, end: int, low: str, high: str) -> None:
    if float(low) >= float(high):
        raise EditError(f"a range needs low < high, got {low}-{high}")
    for number in range(start, end + 1):
        line = new[number - 1]
        found = re.search(r"""<input\b[^>]*\btype\s*=\s*["']?range\b[^>]*>""", line, re.I)
        if not found:
            continue
        tag = _set_attribute(found.group(0), "min", _number(low))
        tag = _set_attribute(tag, "max", _number(high))
        value = re.search(r"""\svalue\s*=\s*["']?(-?\d+(?:\.\d+)?)""", tag)
        if value:
            clamped = min(max(float(value.group(1)), float(low)), float(high))
            tag = _set_attribute(tag, "value", _number(str(clamped)))
        new[number - 1] = line[: found.start()] + tag + line[found.end() :]
        return
    raise EditError(f"no range slider (<input type=range>) at lines {start}-{end}")


# --------------------------------------------------------------------------- the scripted model

_NUMBERED = re.compile(r"^([> ])\s*(\d+) \| (.*)$")
_PICKED = re.compile(r"^Picked lines: L(\d+)-L(\d+)$", re.M)
_INSTRUCTION = re.compile(r"^Instruction: (.*)$", re.M)


def _shown_lines(prompt: str) -> dict[int, str]:
    shown = {}
    for line in prompt.split("\n"):
        match = _NUMBERED.match(line)
        if match:
            shown[int(match.group(2))] = match.group(3)
    return shown


def _scripted_answer(conversation: Conversation) -> str:
    prompt = last_user_message(conversation)
    picked, instruction = _PICKED.search(prompt), _INSTRUCTION.search(prompt)
    shown = _shown_lines(prompt)
    if not picked or not instruction or not shown:
        return "[scripted maic-editor] I need a MAIC edit prompt (picked lines and instruction)."
    first = min(shown)
    old = [shown[n] for n in range(first, max(shown) + 1)]
    start, end = int(picked.group(1)) - first + 1, int(picked.group(2)) - first + 1
    try:
        new = edit_lines(old, start, end, instruction.group(1))
    except EditError as why:
        return f"[scripted maic-editor] I cannot make this edit: {why}."
    if "Return the complete updated page" in prompt:
        return "```html\n" + "\n".join(new) + "\n```"
    return "```diff\n" + _unified(old, new, first) + "```"


def _unified(old: list[str], new: list[str], first: int) -> str:
    """difflib's unified diff of the shown lines, hunk headers moved to page line numbers."""
    out = []
    for line in difflib.unified_diff(
        old, new, f"a/{PAGE_FILE}", f"b/{PAGE_FILE}", n=3, lineterm=""
    ):
        header = re.match(r"^@@ -(\d+)(,\d+)? \+(\d+)(,\d+)? @@$", line)
        if header:
            a, b = int(header.group(1)), int(header.group(3))
            a, b = a + first - 1, b + first - 1
            line = f"@@ -{a}{header.group(2) or ''} +{b}{header.group(4) or ''} @@"
        out.append(line + "\n")
    return "".join(out)


def scripted_editor() -> ScriptedChat:
    """The offline editing model `scripted:maic-editor` (see the module docstring)."""
    return ScriptedChat("maic-editor", default=_scripted_answer)


register_script("maic-editor", scripted_editor, replace=True)
