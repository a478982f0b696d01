"""Whether a page "parses": the structural check every writer of a MAIC page runs first.

Browsers never reject HTML: a missing `</div>` silently re-parents everything after it, a
stray `</section>` is dropped, an unclosed `<script>` swallows the rest of the page as code.
A page that renders "fine" can therefore be badly broken, and an edit that deletes one
closing tag corrupts the layout of the whole page without any error. So the diff applier,
the generator and the studio refuse to write a page whose `structure_problems` grew.

The check is strict on purpose and uses only the standard library's tokenizer
(`html.parser.HTMLParser`, which reports each tag's line) with an explicit open-element
stack, rather than html5lib or lxml: those *repair* the tree (the very thing that hides
corruption) and we want the repairs listed, with line numbers, not performed. The HTML
rules that make "unclosed" legal are honoured: void elements (`<br>`, `<input>`, ...),
elements whose end tag is optional and implied by a following sibling or the parent's end
(`<p>`, `<li>`, `<td>`, `<tr>`, `<option>`, ...), raw-text `<script>`/`<style>`, and
self-closing syntax inside SVG and MathML.
"""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser

__all__ = ["VOID_ELEMENTS", "structure_problems"]

VOID_ELEMENTS = frozenset(
    ("area", "base", "br", "col", "embed", "hr", "img", "input", "keygen", "link", "meta")
    + ("param", "source", "track", "wbr")
)
_BLOCKS_CLOSING_P = frozenset(
    ("address", "article", "aside", "blockquote", "details", "dialog", "div", "dl", "fieldset")
    + ("figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header")
    + ("hgroup", "hr", "main", "menu", "nav", "ol", "p", "pre", "section", "table", "ul")
)
# element with an optional end tag -> start tags that close it implicitly
_CLOSED_BY_START: dict[str, frozenset[str]] = {
    "p": _BLOCKS_CLOSING_P,
    "li": frozenset({"li"}),
    "dt": frozenset({"dt", "dd"}),
    "dd": frozenset({"dt", "dd"}),
    "option": frozenset({"option", "optgroup"}),
    "optgroup": frozenset({"optgroup"}),
    "tr": frozenset({"tr", "tbody", "thead", "tfoot"}),
    "td": frozenset({"td", "th", "tr", "tbody", "thead", "tfoot"}),
    "th": frozenset({"td", "th", "tr", "tbody", "thead", "tfoot"}),
    "thead": frozenset({"tbody", "tfoot"}),
    "tbody": frozenset({"tbody", "tfoot"}),
    "tfoot": frozenset({"tbody"}),
    "colgroup": frozenset({"thead", "tbody", "tfoot", "tr", "colgroup"}),
    "rt": frozenset({"rt", "rp"}),
    "rp": frozenset({"rt", "rp"}),
    "head": frozenset({"body"}),
}
OPTIONAL_END = frozenset(_CLOSED_BY_START)
_FOREIGN = frozenset({"svg", "math"})


@dataclass
class _Open:
    tag: str
    line: int


class _StructureParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[_Open] = []
        self.problems: list[str] = []
        self.seen: set[str] = set()

    # -- helpers
    def _line(self) -> int:
        return self.getpos()[0]

    def _in_foreign(self) -> bool:
        return any(item.tag in _FOREIGN for item in self.stack)

    # -- tokenizer callbacks
    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.seen.add(tag)
        if tag in VOID_ELEMENTS:
            return
        while self.stack and tag in _CLOSED_BY_START.get(self.stack[-1].tag, ()):
            self.stack.pop()
        self.stack.append(_Open(tag, self._line()))

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        self.seen.add(tag)
        if tag in VOID_ELEMENTS or self._in_foreign() or tag in _FOREIGN:
            return
        # `<div/>` opens a div in HTML: the slash is ignored, so this is an unclosed element
        self.problems.append(
            f"line {self._line()}: self-closing syntax on non-void <{tag}/> "
            "(browsers ignore the slash and leave it open)"
        )

    def handle_endtag(self, tag: str) -> None:
        line = self._line()
        if tag in VOID_ELEMENTS:
            if tag != "br":  # `</br>` is read as `<br>` by browsers; anything else is junk
                self.problems.append(f"line {line}: end tag </{tag}> for a void element")
            return
        depth = next(
            (i for i in range(len(self.stack) - 1, -1, -1) if self.stack[i].tag == tag), -1
        )
        if depth < 0:
            self.problems.append(f"line {line}: stray end tag </{tag}> with no open <{tag}>")
            return
        for item in self.stack[depth + 1 :]:
            if item.tag not in OPTIONAL_END:
                self.problems.append(
                    f"line {item.line}: <{item.tag}> is not closed before </{tag}> at line {line}"
                )
        del self.stack[depth:]

    def close(self) -> None:
        super().close()
        for item in self.stack:
            if item.tag in OPTIONAL_END:
                continue
            if item.tag in ("script", "style"):
                self.problems.append(
                    f"line {item.line}: <{item.tag}> is never closed "
                    "(the rest of the page is read as its content)"
                )
            else:
                self.problems.append(f"line {item.line}: <{item.tag}> is never closed")
        self.stack.clear()


def structure_problems(html: str) -> list[str]:
    """Human-readable structural problems of `html`, each naming its line; [] = it parses.

    Reported: unclosed elements (at their start line), mismatched and stray end tags,
    end tags of void elements, self-closing non-void HTML elements, an unclosed `<script>`,
    `<style>` or comment, and a page without `<html>` or `<body>`.
    """
    parser = _StructureParser()
    parser.feed(html)
    unclosed_comment = _unclosed_comment_line(html)
    parser.close()
    problems = parser.problems
    if unclosed_comment is not None:
        problems.append(f"line {unclosed_comment}: comment <!-- is never closed")
    for required in ("html", "body"):
        if required not in parser.seen:
            problems.append(f"line 1: the page has no <{required}> element")
    return problems


def _unclosed_comment_line(html: str) -> int | None:
    """The line of a `<!--` with no `-->` after it, outside script/style text (the tokenizer
    silently turns such a comment into text, so it is checked on the raw source)."""
    lower = html.lower()
    position = 0
    while True:
        start = lower.find("<!--", position)
        if start < 0:
            return None
        raw = _raw_text_span(lower, start)
        if raw is not None:  # inside a script/style: not a comment
            position = raw
            continue
        end = lower.find("-->", start + 4)
        if end < 0:
            return html.count("\n", 0, start) + 1
        position = end + 3


def _raw_text_span(lower: str, index: int) -> int | None:
    """If `index` lies inside a <script> or <style> body, the index after its end tag."""
    for tag in ("script", "style"):
        opening = lower.rfind(f"<{tag}", 0, index)
        if opening < 0:
            continue
        closing = lower.find(f"</{tag}", opening)
        if closing < 0 or closing > index:
            return len(lower) if closing < 0 else closing + len(tag) + 2
    return None
