"""Applying an editing model's unified diff to a page without ever corrupting it.

A model's diff is rarely a clean `diff -u`: it comes in a code fence, without `---`/`+++`
headers, with hunk line counts that do not add up, with line numbers taken from an older
version of the page, with re-indented context, with `data-src` values that have since
moved, or cut off mid-hunk. GNU `patch` refuses most of that; a lenient applier that accepts
it blindly writes broken pages. `apply_diff` does both halves:

- Parsing: the reply is normalised (fence and prose removed, headers added, each hunk's
  counts recomputed from its body, a header without numbers accepted) and then parsed by
  `unidiff` (a maintained unified-diff parser) so line kinds and `\\ No newline` markers are
  read the standard way. A hunk whose body is shorter than its header said is *truncated*:
  applied if it ends in context (only trailing context was lost) and still locates, refused
  if it ends inside its changes (an added or removed line may be missing).
- Locating each hunk's "before" block (context + removed lines), in stages, first that
  works: **exact** at the stated line, else the exact match nearest to it; **loose**, lines
  compared with whitespace collapsed and `data-src` values dropped, then with every
  attribute value dropped; **window**, within +-20 lines of the stated line by per-line
  `difflib` similarity (some context lines changed; the removed lines must be the page's);
  **fuzzy**, over the whole file: the region holding most of the block's lines in order
  (lines may have been inserted since), where diff-match-patch's `patch_apply` merges the
  changes character by character, accepted only when the text it replaced and the text it
  wrote both match the hunk. Two equally good places fail the hunk instead of guessing, at
  every stage (repeated markup is the norm in teaching pages). In the first three stages the
  result keeps the page's *real* context lines and only removes/adds the hunk's changed
  lines; added lines are re-indented when the diff's indentation is consistently off.
  Hunks apply in order, each expected where the previous one's drift puts it.
- Guards, after all hunks: the page's `html_check.structure_problems` must not gain a new
  problem, and every original line outside the replaced blocks must still be there in
  order. Any failed hunk or guard returns the ORIGINAL text with ok=False: all or nothing,
  because half an edit (a button added without its script) is a broken page too.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import unidiff
from diff_match_patch import diff_match_patch

from posttrain.maic.html_check import structure_problems

__all__ = [
    "ApplyResult",
    "DiffHunk",
    "HunkReport",
    "apply_diff",
    "extract_diff",
    "parse_diff",
]

WINDOW = 20
"""Lines either side of the stated line searched by the window stage."""
WINDOW_MEAN = 0.8
"""Least mean line similarity (difflib ratio, loose form) for a window match."""
WINDOW_MARGIN = 0.02
"""The best window place must beat the next best by this much, else it is ambiguous."""
FUZZY_THRESHOLD = 0.35
"""diff-match-patch's Match_Threshold for the fuzzy stage (0 exact .. 1 anything)."""
FUZZY_AGREEMENT = 0.7
"""Least similarity of the text the fuzzy stage replaced (and wrote) to the hunk's."""


@dataclass
class HunkReport:
    """What happened to one hunk. `stage`: "exact" | "loose" | "window" | "fuzzy", None when
    it failed; `line`: 1-based line of the page (as it was when the hunk applied) where its
    block starts."""

    index: int
    stage: str | None
    line: int | None
    message: str
    truncated: bool = False


@dataclass
class ApplyResult:
    """`text` is the edited page when ok, the original page otherwise; `reasons` says why
    not (failed hunks, guards)."""

    text: str
    ok: bool
    hunks: list[HunkReport]
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "hunks": [asdict(h) for h in self.hunks],
            "reasons": list(self.reasons),
        }


@dataclass
class DiffHunk:
    """One hunk: `stated` is its 1-based source start line (None when the header had no
    numbers); `lines` are (kind, text) with kind " ", "-" or "+"."""

    stated: int | None
    lines: list[tuple[str, str]]
    truncated: bool = False
    ends_in_change: bool = False

    @property
    def before(self) -> list[str]:
        return [text for kind, text in self.lines if kind != "+"]

    @property
    def after(self) -> list[str]:
        return [text for kind, text in self.lines if kind != "-"]


# --------------------------------------------------------------------------- parsing

_FENCE = re.compile(r"```[A-Za-z0-9_+-]*[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)
_HEADER = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_BARE_HEADER = re.compile(r"^@@.*$")


def extract_diff(reply: str) -> str:
    """The diff part of a model's reply: the first code fence holding a hunk, else the
    reply from its first `---`/`@@` line on."""
    for block in _FENCE.findall(reply):
        if re.search(r"^@@", block, re.MULTILINE):
            return block
    match = re.search(r"^(?:--- |@@)", reply, re.MULTILINE)
    return reply[match.start() :] if match else ""


def parse_diff(reply: str) -> list[DiffHunk]:
    """The hunks of a model's diff (fenced or not, with or without file headers, with any
    file names, with wrong counts). Lines that cannot belong to a hunk end it."""
    raw: list[tuple[int | None, tuple[int, int] | None, list[tuple[str, str]]]] = []
    current: list[tuple[str, str]] | None = None
    lines = extract_diff(reply).replace("\r\n", "\n").split("\n")
    for number, line in enumerate(lines):
        header = _HEADER.match(line)
        if header or _BARE_HEADER.match(line):
            stated = int(header.group(1)) if header else None
            counts = None
            if header:
                counts = (int(header.group(2) or 1), int(header.group(4) or 1))
            current = []
            raw.append((stated, counts, current))
        elif current is None:
            continue
        elif _is_file_header(lines, number):
            current = None  # the next file's section: its hunks are for the page too
        elif line[:1] in (" ", "-", "+"):
            current.append((line[0], line[1:]))
        elif line == "":
            current.append((" ", ""))  # models drop the space of an empty context line
        elif line.startswith("\\"):
            continue
        else:
            current = None  # prose after the diff
    hunks = []
    for stated, counts, body in raw:
        while body and body[-1] == (" ", ""):
            body.pop()  # the blank line(s) after the diff are not context
        if not body:
            continue
        hunks.append(_read_with_unidiff(stated, counts, _without_copied_numbers(body)))
    return hunks


_COPIED_NUMBER = re.compile(r"^[> ]?\s*\d+ \| ")


def _without_copied_numbers(body: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Models copy the prompt's `  12 | ` line numbers into their diff; when every context
    and removed line of a hunk carries one, they are removed (from added lines too)."""
    old = [text for kind, text in body if kind != "+"]
    if old and all(_COPIED_NUMBER.match(text) for text in old):
        return [(kind, _COPIED_NUMBER.sub("", text, count=1)) for kind, text in body]
    return body


def _is_file_header(lines: list[str], number: int) -> bool:
    """A `--- name` line followed by `+++ name` (or that `+++` line) starts a file section."""
    line = lines[number]
    if line.startswith("--- ") and number + 1 < len(lines):
        return lines[number + 1].startswith("+++ ")
    return line.startswith("+++ ") and number > 0 and lines[number - 1].startswith("--- ")


def _read_with_unidiff(
    stated: int | None, counts: tuple[int, int] | None, body: list[tuple[str, str]]
) -> DiffHunk:
    """Re-emit the hunk with correct counts and let unidiff parse it."""
    source = sum(kind != "+" for kind, _ in body)
    target = sum(kind != "-" for kind, _ in body)
    start = stated if stated is not None else 1
    text = "--- a/page.html\n+++ b/page.html\n"
    text += f"@@ -{start},{source} +{start},{target} @@\n"
    text += "".join(f"{kind}{line}\n" for kind, line in body)
    parsed = unidiff.PatchSet(text)[0][0]
    lines = [(line.line_type, line.value.rstrip("\n")) for line in parsed]
    truncated = counts is not None and (counts[0] > source or counts[1] > target)
    return DiffHunk(
        stated=stated,
        lines=lines,
        truncated=truncated,
        ends_in_change=lines[-1][0] != " ",
    )


# --------------------------------------------------------------------------- line forms

_DATA_SRC = re.compile(r"""\sdata-src\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)""")
_ATTR_VALUE = re.compile(r"""(<[^<>]*?)=\s*("[^"]*"|'[^']*'|[^\s>"']+)""")


def _loose(line: str) -> str:
    """Whitespace collapsed, `data-src` dropped (it moves whenever lines above move)."""
    return " ".join(_DATA_SRC.sub("", line).split())


def _looser(line: str) -> str:
    """Also every attribute value inside a tag dropped (names kept)."""
    text = _loose(line)
    previous = None
    while previous != text:
        previous, text = text, _ATTR_VALUE.sub(r"\1", text)
    return text


def _ratio(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


# --------------------------------------------------------------------------- locating


class _Ambiguous(Exception):
    pass


def _nearest(positions: list[int], expected: int | None) -> int | None:
    """The position nearest to `expected` (the only one when expected is None); raises
    _Ambiguous on a tie."""
    if not positions:
        return None
    if expected is None:
        if len(positions) > 1:
            raise _Ambiguous(f"{len(positions)} places match and the hunk has no line number")
        return positions[0]
    ranked = sorted(positions, key=lambda p: abs(p - expected))
    if len(ranked) > 1 and abs(ranked[0] - expected) == abs(ranked[1] - expected):
        raise _Ambiguous(
            f"lines {ranked[0] + 1} and {ranked[1] + 1} match equally well "
            f"(stated line {expected + 1})"
        )
    return ranked[0]


def _matches(page: list[str], block: list[str], form) -> list[int]:
    wanted = [form(line) for line in block]
    forms = [form(line) for line in page]
    n = len(block)
    return [p for p in range(len(page) - n + 1) if forms[p : p + n] == wanted]


def _scores(
    page: list[str], block: list[str], removed: list[bool], positions: range
) -> list[tuple[float, int]]:
    """(mean line similarity, position), best first, for each position where the block
    could sit with its removed lines being the page's lines (in the loosest form) and at
    least half of its lines matching: similar-looking repeated markup (list items, cards)
    then never passes for the block, and a line is only ever deleted if it is the one the
    model deleted (a drifted removed line is the fuzzy stage's case)."""
    n = len(block)
    wanted = [_looser(line) for line in block]
    forms = [_looser(line) for line in page]
    scored = []
    for p in positions:
        ratios = [_ratio(wanted[i], forms[p + i]) for i in range(n)]
        gone = [r for r, is_removed in zip(ratios, removed, strict=True) if is_removed]
        if any(r < 1.0 for r in gone) or sum(r == 1.0 for r in ratios) * 2 < n:
            continue
        scored.append((sum(ratios) / n, p))
    return sorted(scored, reverse=True)


def _unique_best(scored: list[tuple[float, int]]) -> int | None:
    if not scored:
        return None
    if len(scored) > 1 and scored[0][0] - scored[1][0] < WINDOW_MARGIN:
        raise _Ambiguous(
            f"lines {scored[0][1] + 1} and {scored[1][1] + 1} are equally similar "
            f"({scored[0][0]:.2f} vs {scored[1][0]:.2f})"
        )
    return scored[0][1]


def _window(page: list[str], block: list[str], removed: list[bool], expected: int) -> int | None:
    n = len(block)
    positions = range(max(0, expected - WINDOW), min(len(page) - n, expected + WINDOW) + 1)
    scored = _scores(page, block, removed, positions)
    if not scored or scored[0][0] < WINDOW_MEAN:
        return None
    return _unique_best(scored)


# --------------------------------------------------------------------------- applying

_Line = tuple[str, int | None]  # text, index in the original page (None: written by a hunk)


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def _reindent(hunk: DiffHunk, page_block: list[str]) -> Callable[[str], str]:
    """A function fixing added lines' whitespace when the diff's context is consistently
    indented differently from the page (shifted, or scaled 2 -> 4 spaces), and dropping
    trailing whitespace the page's matched lines do not have."""
    pairs = [(d, p) for d, p in zip(hunk.before, page_block, strict=True) if d.strip()]
    shifts = {len(_indent(p)) - len(_indent(d)) for d, p in pairs}
    scales = {
        (len(_indent(p)) / len(_indent(d))) if _indent(d) else (0.0 if _indent(p) else None)
        for d, p in pairs
    }
    scales.discard(None)
    unit = next((_indent(p)[0] for _, p in pairs if _indent(p)), " ")
    strip_tail = any(d != d.rstrip() for d, _ in pairs) and all(p == p.rstrip() for _, p in pairs)

    def fix(line: str) -> str:
        if strip_tail:
            line = line.rstrip()
        if not line.strip():
            return line
        width = len(_indent(line))
        if len(shifts) == 1 and (shift := next(iter(shifts))) != 0:
            width = max(0, width + shift)
        elif len(scales) == 1 and (scale := next(iter(scales))) not in (0.0, 1.0):
            width = round(width * scale)
        else:
            return line
        return unit * width + line.lstrip(" \t")

    return fix


def _splice(lines: list[_Line], at: int, hunk: DiffHunk, replaced: set[int]) -> int:
    """Replace the block at `at` by the hunk's result, keeping the page's own context lines;
    returns how many lines the block now takes."""
    block = lines[at : at + len(hunk.before)]
    fix = _reindent(hunk, [text for text, _ in block])
    out: list[_Line] = []
    j = 0
    for kind, text in hunk.lines:
        if kind == " ":
            out.append(block[j])
            j += 1
        elif kind == "-":
            if block[j][1] is not None:
                replaced.add(block[j][1])
            j += 1
        else:
            out.append((fix(text), None))
    lines[at : at + len(block)] = out
    return len(out)


def _fuzzy(lines: list[_Line], hunk: DiffHunk, replaced: set[int]) -> tuple[int, int] | None:
    """The page region that holds most of the hunk's block lines in order (lines compared
    in their loosest form, other lines allowed in between; a second region as good raises
    _Ambiguous), then diff-match-patch merges the hunk's changes into the page's text there,
    character by character. Returns (first changed line, its new length) or None."""
    texts = [text for text, _ in lines]
    best = _best_region(texts, hunk.before)
    if best is None:
        return None
    page = "\n".join(texts) + "\n"
    dmp = diff_match_patch()
    dmp.Match_Threshold = FUZZY_THRESHOLD
    dmp.Match_Distance = 1000
    dmp.Patch_DeleteThreshold = FUZZY_THRESHOLD
    before, after = "\n".join(hunk.before) + "\n", "\n".join(hunk.after) + "\n"
    patches = dmp.patch_make(before, after)
    shift = len("\n".join(texts[:best])) + (1 if best else 0)
    for patch in patches:
        patch.start1 += shift
        patch.start2 += shift
    new_page, applied = dmp.patch_apply(patches, page)
    if not applied or not all(applied):
        return None
    new = new_page[:-1].split("\n") if new_page.endswith("\n") else new_page.split("\n")
    head = 0
    while head < min(len(texts), len(new)) and texts[head] == new[head]:
        head += 1
    tail = 0
    while (
        tail < min(len(texts), len(new)) - head
        and texts[len(texts) - 1 - tail] == new[len(new) - 1 - tail]
    ):
        tail += 1
    old_span, new_span = texts[head : len(texts) - tail], new[head : len(new) - tail]
    core_before, core_after = _core(hunk.before, hunk.after)
    lead = len(hunk.before) - len(core_before) - _common_tail(hunk.before, hunk.after)
    if abs(head - lead - best) > SLACK or len(old_span) > len(hunk.before) + 2:
        return None  # diff-match-patch changed text elsewhere than the block
    if _ratio("\n".join(old_span), "\n".join(core_before)) < FUZZY_AGREEMENT:
        return None
    if _ratio("\n".join(new_span), "\n".join(core_after)) < FUZZY_AGREEMENT:
        return None
    for _, origin in lines[head : len(texts) - tail]:
        if origin is not None:
            replaced.add(origin)
    lines[head : len(texts) - tail] = [(text, None) for text in new_span]
    return head, len(new_span)


SLACK = 3
"""Lines the fuzzy stage allows to have been inserted into a hunk's block since the diff."""


def _best_region(page: list[str], block: list[str]) -> int | None:
    """Where the block's lines best appear in order (at most SLACK extra lines between):
    the region start, None when under half the lines are found; _Ambiguous when another,
    non-overlapping region holds as many."""
    wanted = [_looser(line) for line in block]
    forms = [_looser(line) for line in page]
    n = len(block)
    found = []
    for p in range(0, max(1, len(page) - n + 1)):
        matcher = difflib.SequenceMatcher(None, wanted, forms[p : p + n + SLACK], autojunk=False)
        blocks = matcher.get_matching_blocks()
        matched = sum(size for _, _, size in blocks)
        first = next(((a, b) for a, b, size in blocks if size), None)
        if first is not None:  # where the block would start, from its first line found
            found.append((matched, max(0, p + first[1] - first[0])))
    if not found:
        return None
    top = max(matched for matched, _ in found)
    if top * 2 < n:
        return None
    starts = sorted({start for matched, start in found if matched == top})
    if starts[-1] - starts[0] > n:
        raise _Ambiguous(
            f"lines {starts[0] + 1} and {starts[-1] + 1} hold the hunk's lines equally well"
        )
    return starts[0]


def _common_tail(before: list[str], after: list[str]) -> int:
    tail = 0
    while tail < min(len(before), len(after)) and before[-1 - tail] == after[-1 - tail]:
        tail += 1
    return tail


def _core(before: list[str], after: list[str]) -> tuple[list[str], list[str]]:
    """The changed lines of a hunk: before/after without their common first/last lines."""
    head = 0
    while head < min(len(before), len(after)) and before[head] == after[head]:
        head += 1
    tail = 0
    while (
        tail < min(len(before), len(after)) - head
        and before[len(before) - 1 - tail] == after[len(after) - 1 - tail]
    ):
        tail += 1
    return before[head : len(before) - tail], after[head : len(after) - tail]


def _locate(page: list[str], hunk: DiffHunk, expected: int | None) -> tuple[str, int] | None:
    """(stage, position) of the hunk's before block by the exact, loose and window stages."""
    block = hunk.before
    if expected is not None and page[expected : expected + len(block)] == block:
        return "exact", expected
    for stage, form in (("exact", str), ("loose", _loose), ("loose", _looser)):
        found = _nearest(_matches(page, block, form), expected)
        if found is not None:
            return stage, found
    if expected is not None:
        removed = [kind == "-" for kind, _ in hunk.lines if kind != "+"]
        found = _window(page, block, removed, expected)
        if found is not None:
            return "window", found
    return None


def apply_diff(text: str, diff_text: str) -> ApplyResult:
    """Apply a model's unified diff to the page `text`; see the module docstring. Never
    returns a page with a new structure problem or with an untouched original line lost:
    on any failure the original `text` comes back with ok=False."""
    hunks = parse_diff(diff_text)
    if not hunks:
        return ApplyResult(text, False, [], ["no diff hunk found in the reply"])
    trailing_newline = text.endswith("\n")
    original = (text[:-1] if trailing_newline else text).split("\n")
    lines: list[_Line] = [(line, i) for i, line in enumerate(original)]
    replaced: set[int] = set()
    reports: list[HunkReport] = []
    drift = 0
    for index, hunk in enumerate(hunks):
        report = _apply_hunk(lines, hunk, index, drift, replaced)
        reports.append(report)
        if report.stage is None:
            continue
        drift = report.line - 1 - ((hunk.stated or report.line) - 1)
        drift += len(hunk.after) - len(hunk.before)
    failed = [r for r in reports if r.stage is None]
    if failed:
        reasons = [f"hunk {r.index + 1}: {r.message}" for r in failed]
        return ApplyResult(text, False, reports, reasons)
    new = "\n".join(t for t, _ in lines) + ("\n" if trailing_newline else "")
    reasons = _guard(text, new, original, [t for t, _ in lines], replaced)
    if reasons:
        return ApplyResult(text, False, reports, reasons)
    return ApplyResult(new, True, reports, [])


def _apply_hunk(
    lines: list[_Line], hunk: DiffHunk, index: int, drift: int, replaced: set[int]
) -> HunkReport:
    page = [t for t, _ in lines]
    expected = None
    if hunk.stated is not None:
        expected = min(max(0, hunk.stated - 1 + drift), len(page))
    note = ""
    if hunk.truncated:
        if hunk.ends_in_change:
            return HunkReport(
                index, None, None, "truncated inside its changes (lines may be missing)", True
            )
        note = " (truncated: shorter than its header; its trailing context was lost)"
    if not hunk.before:
        if expected is None:
            return HunkReport(index, None, None, "a pure insertion without a line number")
        lines[expected:expected] = [(t, None) for t in hunk.after]
        return HunkReport(index, "exact", expected + 1, "inserted" + note, hunk.truncated)
    try:
        found = _locate(page, hunk, expected)
    except _Ambiguous as why:
        return HunkReport(index, None, None, f"ambiguous: {why}", hunk.truncated)
    if found is not None:
        stage, at = found
        _splice(lines, at, hunk, replaced)
        where = "" if expected is None else f", expected at line {expected + 1}"
        return HunkReport(
            index, stage, at + 1, f"{stage} match at line {at + 1}{where}{note}", hunk.truncated
        )
    try:
        done = _fuzzy(lines, hunk, replaced)
    except _Ambiguous as why:
        return HunkReport(index, None, None, f"ambiguous: {why}", hunk.truncated)
    if done is not None:
        return HunkReport(
            index, "fuzzy", done[0] + 1, f"fuzzy match at line {done[0] + 1}{note}", hunk.truncated
        )
    return HunkReport(index, None, None, "its context was not found in the page", hunk.truncated)


def _strip_numbers(problem: str) -> str:
    return re.sub(r"\bline \d+", "line N", problem)


def _guard(
    old_text: str, new_text: str, original: list[str], new: list[str], replaced: set[int]
) -> list[str]:
    reasons = []
    before = Counter(_strip_numbers(p) for p in structure_problems(old_text))
    after = structure_problems(new_text)
    added = Counter(_strip_numbers(p) for p in after) - before
    if added:
        fresh = [p for p in after if _strip_numbers(p) in added]
        reasons.append("the edit breaks the page's structure: " + "; ".join(fresh[:5]))
    kept = [line for i, line in enumerate(original) if i not in replaced]
    position = 0
    for line in kept:
        while position < len(new) and new[position] != line:
            position += 1
        if position == len(new):
            reasons.append(f"the edit loses an untouched line of the page: {line.strip()[:80]!r}")
            break
        position += 1
    return reasons
