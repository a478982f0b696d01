"""MAIC-UI's released diff applier, re-implemented from its published description, for
comparison only (the diff-robustness benchmark and the tests that show the difference).

As described: each hunk's context is matched first exactly after stripping attributes at
the hunk's stated line, then by searching a window of +-20 lines around the stated line,
then the whole file (first match); the matched lines are replaced by the hunk's new lines
as the diff writes them (context included). Its verification is disabled: every resulting
page is declared valid, so there is no structure check and no check that untouched lines
survive. A hunk it cannot place is skipped. Nothing in the studio uses this module;
`posttrain.maic.diffs.apply_diff` is the applier.
"""

from __future__ import annotations

import re

from posttrain.maic.diffs import ApplyResult, HunkReport, parse_diff

__all__ = ["WINDOW", "anchor_apply_diff"]

WINDOW = 20

_ATTRIBUTES = re.compile(r"<([A-Za-z][A-Za-z0-9-]*)\b[^<>]*?(/?)>")


def _strip_attributes(line: str) -> str:
    return _ATTRIBUTES.sub(r"<\1\2>", line).strip()


def anchor_apply_diff(text: str, diff_text: str) -> ApplyResult:
    """Apply as the anchor does. `ok` is True when every hunk was placed; the text is the
    patched page either way (the anchor writes it, declared valid)."""
    lines = text.split("\n")
    reports: list[HunkReport] = []
    offset = 0
    for index, hunk in enumerate(parse_diff(diff_text)):
        block = [_strip_attributes(line) for line in hunk.before]
        stripped = [_strip_attributes(line) for line in lines]
        n = len(block)

        def fits(p: int, block=block, stripped=stripped, n=n) -> bool:
            return 0 <= p <= len(stripped) - n and stripped[p : p + n] == block

        expected = (hunk.stated or 1) - 1 + offset
        stage, at = None, None
        if fits(expected):
            stage, at = "exact", expected
        else:
            for distance in range(1, WINDOW + 1):
                for p in (expected - distance, expected + distance):
                    if fits(p):
                        stage, at = "window", p
                        break
                if at is not None:
                    break
        if at is None:
            at = next((p for p in range(len(lines) - n + 1) if fits(p)), None)
            stage = "file" if at is not None else None
        if at is None:
            reports.append(HunkReport(index, None, None, "context not found; hunk skipped"))
            continue
        lines[at : at + n] = hunk.after
        offset = at - ((hunk.stated or 1) - 1) + len(hunk.after) - n
        reports.append(HunkReport(index, stage, at + 1, f"{stage} match at line {at + 1}"))
    ok = bool(reports) and all(r.stage is not None for r in reports)
    return ApplyResult("\n".join(lines), ok, reports)
