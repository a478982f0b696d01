"""Source-line addresses for every element of a page: the `data-src="L<start>-L<end>"` attribute.

A click in the preview must lead back to the exact lines of the page's HTML source that made
the clicked element, because edits are unified diffs over those lines. MAIC-UI's released code
finds the element again by searching the source for the first line that looks like its start
tag, which picks the wrong element whenever markup repeats (three identical list items, cards,
buttons). Here every element inside <body> carries its own line range instead, computed from
the parser's positions, so the browser reads the answer off the element itself.

Design:

- `html.parser.HTMLParser` (standard library) gives the line and column of each start tag
  (`getpos()`) and the raw start-tag text; end tags are matched with a stack that knows HTML's
  void elements and its optional end tags (`<li>`, `<p>`, `<td>` ...), so an implicitly closed
  element ends on the last line of its own content, not where the next one starts.
- The attribute is written right after the tag name, on the first line of the start tag, and
  an old `data-src` is removed in place (any newline inside it is kept), so annotating never
  adds or removes a line: line numbers stay valid, and `annotate(annotate(x)) == annotate(x)`.
  It is run on every version of a page, since an edit moves the lines below it.
- <head> and the html/head/body elements themselves are not annotated; <script>/<style>
  bodies are raw text to the parser and are never touched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

__all__ = [
    "ATTRIBUTE",
    "Element",
    "annotate",
    "elements",
    "line_range_of",
    "page_text_lines",
    "parse_src",
    "strip_src",
]

ATTRIBUTE = "data-src"

VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "keygen", "link", "meta"}
    | {"param", "source", "track", "wbr"}
)
"""Elements with no end tag and no content (HTML's void elements)."""

_HEAD_ONLY = frozenset({"head", "title", "meta", "link", "base"})
_NOT_ANNOTATED = frozenset(("html", "head", "body"))

# Which open element a new start tag implicitly closes (HTML's optional end tags, the common
# cases): an open <p> ends at a block-level start tag, an <li> at the next <li>, and so on.
_P_CLOSERS = frozenset(
    {"address", "article", "aside", "blockquote", "details", "dialog", "div", "dl", "fieldset"}
    | {"figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header"}
    | {"hgroup", "hr", "main", "menu", "nav", "ol", "p", "pre", "section", "table", "ul"}
)
_CLOSED_BY: dict[str, frozenset[str]] = {
    "p": _P_CLOSERS,
    "li": frozenset(("li",)),
    "dt": frozenset(("dt", "dd")),
    "dd": frozenset(("dt", "dd")),
    "option": frozenset(("option", "optgroup")),
    "optgroup": frozenset(("optgroup",)),
    "tr": frozenset(("tr", "tbody", "tfoot", "thead")),
    "td": frozenset(("td", "th", "tr", "tbody", "tfoot", "thead")),
    "th": frozenset(("td", "th", "tr", "tbody", "tfoot", "thead")),
    "thead": frozenset(("tbody", "tfoot")),
    "tbody": frozenset(("tbody", "tfoot")),
    "rt": frozenset(("rt", "rp")),
    "rp": frozenset(("rt", "rp")),
}

_SRC_VALUE = re.compile(r"^\s*L(\d+)\s*-\s*L(\d+)\s*$")
# One attribute inside a start tag: name, then an optional `= value` (quoted or bare).
_ATTR = re.compile(
    r"""(?P<name>[^\s/>"'=][^\s/>"'=]*)(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>"'`=<]+))?"""
)
_TAG_NAME = re.compile(r"<[a-zA-Z][^\s/>]*")


@dataclass
class Element:
    """One element of the page as the parser saw it (lines are 1-based)."""

    tag: str
    start: int
    """Line of the start tag's `<`."""
    end: int
    """Line of the end tag (the start tag's last line for void and self-closed elements)."""
    offset: int
    """Index of the start tag's `<` in the page text."""
    start_tag: str
    """The start tag exactly as written."""
    annotated: bool
    """Whether this element gets a `data-src` (inside <body>, not head material)."""

    @property
    def src(self) -> str:
        return f"L{self.start}-L{self.end}"


def parse_src(value: str) -> tuple[int, int]:
    """`"L12-L15"` -> `(12, 15)`. ValueError for anything else (or a range that runs
    backwards, or a line number below 1)."""
    match = _SRC_VALUE.match(value or "")
    if not match:
        raise ValueError(f"not a data-src line range (expected L<start>-L<end>): {value!r}")
    start, end = int(match.group(1)), int(match.group(2))
    if start < 1 or end < start:
        raise ValueError(f"bad data-src line range {value!r}: need 1 <= start <= end")
    return start, end


def page_text_lines(html: str) -> list[str]:
    """The page's source lines as `data-src` numbers them: line N is `lines[N - 1]`. Lines
    are split on "\\n" only, as the parser counts them."""
    return html.split("\n")


def line_range_of(html: str, start: int, end: int) -> str:
    """The source text of lines `start`..`end` (1-based, inclusive)."""
    lines = page_text_lines(html)
    if not 1 <= start <= end <= len(lines):
        raise ValueError(f"lines {start}-{end} are outside the page's {len(lines)} lines")
    return "\n".join(lines[start - 1 : end])


class _Collector(HTMLParser):
    """Records every element with its start offset, start tag and end line."""

    def __init__(self, line_starts: list[int]) -> None:
        super().__init__(convert_charrefs=False)  # raw text, so newline counts are exact
        self.line_starts = line_starts
        self.found: list[Element] = []
        self.stack: list[Element] = []
        self.head_depth = 0
        self.last_line = 1
        """Last line holding content so far: where an implicitly closed element ends."""

    def _offset(self) -> int:
        line, column = self.getpos()
        return self.line_starts[line - 1] + column

    def _element(self, tag: str) -> Element:
        text = self.get_starttag_text() or f"<{tag}>"
        line = self.getpos()[0]
        in_head = bool(self.head_depth) or tag in _HEAD_ONLY
        return Element(tag, line, line + text.count("\n"), self._offset(), text, not in_head)

    def _close(self, element: Element, line: int) -> None:
        element.end = max(line, element.start)
        if element.tag == "head":
            self.head_depth = max(0, self.head_depth - 1)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "body":  # a <head> left open ends where <body> begins
            for open_element in self.stack:
                if open_element.tag == "head":
                    self.stack.remove(open_element)
                    self._close(open_element, self.last_line)
                    break
            self.head_depth = 0
        while self.stack and tag in _CLOSED_BY.get(self.stack[-1].tag, ()):
            self._close(self.stack.pop(), self.last_line)
        element = self._element(tag)
        self.found.append(element)
        self.last_line = element.end
        if tag in VOID:
            return
        self.stack.append(element)
        if tag == "head":
            self.head_depth += 1

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        element = self._element(tag)
        self.found.append(element)
        self.last_line = element.end

    def handle_endtag(self, tag: str) -> None:
        line = self.getpos()[0]
        for depth in range(len(self.stack) - 1, -1, -1):
            if self.stack[depth].tag == tag:
                while len(self.stack) > depth + 1:  # children left open end with their content
                    self._close(self.stack.pop(), self.last_line)
                self._close(self.stack.pop(), line)
                self.last_line = line
                return
        # a stray end tag closes nothing

    def _content(self, text: str) -> None:
        if text.strip():
            self.last_line = self.getpos()[0] + text.rstrip().count("\n")

    def handle_data(self, data: str) -> None:
        self._content(data)

    def handle_comment(self, data: str) -> None:
        self._content("<!--" + data)

    def handle_entityref(self, name: str) -> None:
        self._content("&")

    def handle_charref(self, name: str) -> None:
        self._content("&")

    def finish(self) -> None:
        self.close()
        while self.stack:  # never closed: ends with its last content
            self._close(self.stack.pop(), self.last_line)


def elements(html: str) -> list[Element]:
    """Every element of the page in source order, with its line range and whether it is one
    `annotate` marks. A page without a <body> tag (a fragment) counts as all body."""
    starts = [0]
    for index, char in enumerate(html):
        if char == "\n":
            starts.append(index + 1)
    collector = _Collector(starts)
    collector.feed(html)
    collector.finish()
    found = collector.found
    if any(element.tag == "body" for element in found):
        # only what lies inside <body>: between its start tag and the end of its range
        body = next(element for element in found if element.tag == "body")
        for element in found:
            element.annotated = element.annotated and element.offset > body.offset
    for element in found:
        if element.tag in _NOT_ANNOTATED:
            element.annotated = False
    return found


def _without_src(start_tag: str) -> str:
    """The start tag with every `data-src` attribute removed in place (a newline inside a
    removed span is kept, so the tag spans as many lines as before)."""
    name = _TAG_NAME.match(start_tag)
    if not name:
        return start_tag
    pieces: list[str] = [start_tag[: name.end()]]
    position = name.end()
    for match in _ATTR.finditer(start_tag, name.end()):
        if match.group("name").lower() != ATTRIBUTE:
            continue
        before = start_tag[position : match.start()]
        gap = len(before) - len(before.rstrip(" \t"))  # the spaces that introduced it
        pieces.append(before[: len(before) - gap])
        pieces.append("\n" * start_tag.count("\n", match.start() - gap, match.end()))
        position = match.end()
    pieces.append(start_tag[position:])
    return "".join(pieces)


def _with_src(start_tag: str, value: str) -> str:
    clean = _without_src(start_tag)
    name = _TAG_NAME.match(clean)
    if not name:
        return clean
    return f'{clean[: name.end()]} {ATTRIBUTE}="{value}"{clean[name.end() :]}'


def _rewrite(html: str, change) -> str:
    out: list[str] = []
    position = 0
    for element in elements(html):
        end = element.offset + len(element.start_tag)
        if html[element.offset : end] != element.start_tag:
            continue  # the parser normalised this tag's text: leave it as written
        new = change(element)
        if new is None or new == element.start_tag:
            continue
        out.append(html[position : element.offset])
        out.append(new)
        position = end
    out.append(html[position:])
    return "".join(out)


def annotate(html: str) -> str:
    """The page with `data-src="L<start>-L<end>"` (re)computed on every element inside <body>.
    Only start tags change, in place: no line is added or removed, and running it again gives
    the same text."""
    return _rewrite(
        html,
        lambda element: (
            _with_src(element.start_tag, element.src)
            if element.annotated
            else _without_src(element.start_tag)
        ),
    )


def strip_src(html: str) -> str:
    """The page without any `data-src` attribute (what a user downloads)."""
    return _rewrite(html, lambda element: _without_src(element.start_tag))
