"""Planting one known defect in a working page, to measure the verifier on pages whose
faults are known (precision and recall per kind, `benchmarks/maic_verify.py`).

Each kind of `maic.verify` finding has a few variants, picked by the caller's
`random.Random`, so a corpus is reproducible from its seed:

- console_error: a script calling console.error; a fetch of an outside URL whose failure is
  logged; an image loaded from an outside URL (pages must be self-contained).
- uncaught_exception: a load handler reading a property of undefined; a DOMContentLoaded
  handler calling a function that does not exist; a script that throws while the page loads.
- missing_concept: one key concept's mentions removed (text, script strings, data-*
  attributes that scripts reveal), or hidden (wrapped in display:none where it is prose;
  replaced where it is a control's label). Element ids the script looks up are kept.
- dead_control: an unwired button, or a visible control with an id (button, slider,
  [onclick]; not a form's submit button) whose handlers are stripped once the page has
  loaded (replaced by a clone without listeners; an unwired button if there is none).
- overflow: a fixed-width block, table or unwrapped line wider than a phone.
- accessibility: a label detached from its input, an image without alt text, or text in
  colours too close to read.

The edits are textual (no HTML library: a page is a string and each edit inserts or
rewrites a small, known piece) and aim to cause exactly one kind of finding, so a finding
of another kind on the result counts against the verifier's precision.
"""

from __future__ import annotations

import html as html_lib
import random
import re
from collections.abc import Sequence

from posttrain.maic.verify import KINDS, normalise_text

VARIANTS: dict[str, tuple[str, ...]] = {
    "console_error": ("console-error", "failing-fetch", "outside-image"),
    "uncaught_exception": ("undefined-property", "missing-function", "throw-at-load"),
    "missing_concept": ("removed", "hidden"),
    "dead_control": ("unwired-button", "stripped-handlers"),
    "overflow": ("wide-block", "wide-table", "unwrapped-line"),
    "accessibility": ("detached-label", "missing-alt", "low-contrast"),
}

_BUTTON_LABELS = ("Show more", "Next example", "Try it", "Reveal answer", "Run simulation")
_FILLER = (
    "notice how each quantity changes as the model evolves over time and compare "
    "the values you observe with the predictions made in the lesson above"
)
_WORDS = tuple(_FILLER.split())


def inject(
    html: str,
    kind: str,
    rng: random.Random,
    *,
    concepts: Sequence[str] = (),
    variant: str | None = None,
) -> tuple[str, str]:
    """`html` with one defect of `kind` planted, and the kind the verifier should report.

    `variant`: one of VARIANTS[kind] (default: chosen by `rng`). missing_concept needs the
    page's key `concepts` (one that the page shows is chosen). Raises ValueError for an
    unknown kind or variant, a page without <body>...</body>, or no concept to remove."""
    if kind not in VARIANTS:
        raise ValueError(f"unknown defect kind {kind!r}; expected one of {KINDS}")
    variant = variant or rng.choice(VARIANTS[kind])
    if variant not in VARIANTS[kind]:
        raise ValueError(f"unknown {kind} variant {variant!r}; expected one of {VARIANTS[kind]}")
    _body_end(html)
    if kind == "missing_concept":
        return _missing_concept(html, concepts, rng, hide=variant == "hidden"), kind
    planted = {
        "console_error": _console_error,
        "uncaught_exception": _uncaught_exception,
        "dead_control": _dead_control,
        "overflow": _overflow,
        "accessibility": _accessibility,
    }[kind](html, variant, rng)
    return planted, kind


def _body_end(html: str) -> int:
    ends = [m.start() for m in re.finditer(r"</body\s*>", html, re.I)]
    if not ends or not re.search(r"<body\b", html, re.I):
        raise ValueError("the page has no <body>...</body> to plant a defect in")
    return ends[-1]


def _append_to_body(html: str, snippet: str) -> str:
    """`snippet` as the body's last child, on its own line."""
    at = _body_end(html)
    return html[:at] + snippet + "\n" + html[at:]


def _sentence(rng: random.Random, words: int = 12) -> str:
    start = rng.randrange(len(_WORDS) - words)
    text = " ".join(_WORDS[start : start + words])
    return text[0].upper() + text[1:] + "."


def _console_error(html: str, variant: str, rng: random.Random) -> str:
    # The addresses below are on example.org (reserved for examples, RFC 2606) and are never
    # fetched: the verifier blocks every request that is not data:/about:/blob: and reports it.
    name = rng.choice(("lesson", "exercises", "figures", "settings"))
    if variant == "console-error":
        script = f"<script>console.error('could not initialise the {name} panel');</script>"
    elif variant == "failing-fetch":
        script = (
            f"<script>fetch('https://api.example.org/{name}/data.json')"
            ".then(function (r) { return r.json(); })"
            f".catch(function (err) {{ console.error('could not load {name} data', "
            "String(err)); });</script>"
        )
    else:
        script = (
            f'<p><img src="https://cdn.example.org/{name}/figure-{rng.randrange(100)}.png" '
            f'alt="A figure of the {name}" width="160" height="90"></p>'
        )
    return _append_to_body(html, script)


def _uncaught_exception(html: str, variant: str, rng: random.Random) -> str:
    name = rng.choice(("steps", "points", "options", "frames"))
    if variant == "undefined-property":
        script = (
            "<script>window.addEventListener('load', function () { var config; "
            f"config.{name}.forEach(function () {{}}); }});</script>"
        )
    elif variant == "missing-function":
        script = (
            "<script>document.addEventListener('DOMContentLoaded', function () { "
            f"setUp{name.title()}Panel(); }});</script>"
        )
    else:
        script = f"<script>throw new Error('the {name} table is empty');</script>"
    return _append_to_body(html, script)


def _dead_control(html: str, variant: str, rng: random.Random) -> str:
    if variant == "unwired-button":
        label = rng.choice(_BUTTON_LABELS)
        return _append_to_body(html, f'<p><button type="button">{label}</button></p>')
    # After the page's own load handlers (registered earlier) have wired it, swap one
    # visible control for a copy: cloneNode copies no listeners, and inline on* attributes
    # are removed. Only controls with an id (static ones: a list the page re-renders would
    # bring its handlers back) that act by themselves (not a form's submit button, which the
    # form's handler serves); a page without one gets an unwired button instead.
    pick = rng.randrange(1000)
    label = rng.choice(_BUTTON_LABELS)
    script = (
        "<script>window.addEventListener('load', function () {"
        " var all = Array.prototype.filter.call(document.querySelectorAll("
        "'button[id], input[type=range][id], [onclick][id]'), function (el) {"
        " return el.getClientRects().length > 0 && !el.disabled"
        " && !(el.localName === 'button' && el.form && el.type === 'submit'); });"
        " if (!all.length) { var spare = document.createElement('button');"
        f" spare.type = 'button'; spare.textContent = '{label}';"
        " document.body.appendChild(spare); return; }"
        f" var el = all[{pick} % all.length], copy = el.cloneNode(true);"
        " Array.prototype.slice.call(copy.attributes).forEach(function (a) {"
        " if (/^on/i.test(a.name)) copy.removeAttribute(a.name); });"
        " el.replaceWith(copy); });</script>"
    )
    return _append_to_body(html, script)


def _overflow(html: str, variant: str, rng: random.Random) -> str:
    width = rng.randrange(700, 1700, 10)
    if variant == "wide-block":
        snippet = (
            f'<div style="width:{width}px;padding:8px;border:1px solid #555">{_sentence(rng)}</div>'
        )
    elif variant == "wide-table":
        cells = "".join(f"<td>{word}</td>" for word in _sentence(rng, 6).split())
        snippet = f'<table style="width:{width}px;border:1px solid #555"><tr>{cells}</tr></table>'
    else:
        words = " ".join(_sentence(rng, 14) for _ in range(3))
        snippet = f'<p style="white-space:nowrap">{words}</p>'
    return _append_to_body(html, snippet)


def _accessibility(html: str, variant: str, rng: random.Random) -> str:
    if variant == "detached-label":
        labels = _detachable_labels(html)
        if labels:
            start, end = rng.choice(labels)
            return html[:start] + html[end:]
        variant = "low-contrast"  # nothing labelled by `for=` to detach
    if variant == "missing-alt":
        images = [m for m in re.finditer(r"<img\b[^>]*>", html, re.I)]
        with_alt = [m for m in images if re.search(r"\salt\s*=", m.group(0), re.I)]
        if with_alt:
            tag = rng.choice(with_alt)
            bare = re.sub(r"""\salt\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)""", "", tag.group(0))
            return html[: tag.start()] + bare + html[tag.end() :]
        svg = (
            "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='120' "
            "height='60'%3E%3Crect width='120' height='60' fill='%234a7'/%3E%3C/svg%3E"
        )
        return _append_to_body(html, f'<p><img src="{svg}" width="120" height="60"></p>')
    # low contrast: grey on grey, a contrast ratio near 1.3 (WCAG asks 4.5)
    grey = rng.choice(("#b0b0b0", "#a8a8a8", "#b8b8b8"))
    snippet = f'<p style="color:{grey};background-color:#c8c8c8">{_sentence(rng)}</p>'
    return _append_to_body(html, snippet)


def _detachable_labels(html: str) -> list[tuple[int, int]]:
    """Spans of ` for="id"` attributes of labels whose input has no other accessible name."""
    spans = []
    for label in re.finditer(r"<label\b[^>]*>", html, re.I):
        attr = re.search(r"""\sfor\s*=\s*["']?([^"'\s>]+)["']?""", label.group(0), re.I)
        if not attr:
            continue
        target = re.search(
            r"<(input|select|textarea)\b[^>]*\sid\s*=\s*[\"']?"
            + re.escape(attr.group(1))
            + r"[\"'\s>][^>]*>",
            html,
            re.I,
        )
        named = r"aria-label|\stitle\s*=|\splaceholder\s*=\s*[\"']?[^\"'\s>]"
        if target is None or re.search(named, target.group(0), re.I):
            continue
        spans.append((label.start() + attr.start(), label.start() + attr.end()))
    return spans


_SEGMENTS = re.compile(
    r"<!--.*?-->|<(script|style|title|textarea)\b[^>]*>.*?</\1\s*>|<[^>]*>", re.I | re.S
)
_STRINGS = re.compile(r"""'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"|`(?:\\.|[^`\\])*`""")


_DATA_ATTRIBUTE = re.compile(r"""(\sdata-(?!src\b)[\w-]+\s*=\s*)("[^"]*"|'[^']*')""", re.I)
_PROSE = re.compile(
    r"<(p|li|span|strong|em|b|i|h[1-6]|td|th|div|dd|dt|figcaption|blockquote)\b", re.I
)


def _concept_pattern(concept: str) -> re.Pattern[str]:
    """The concept in markup: any run of whitespace between words, any case, and the
    entity spellings of an apostrophe or ampersand."""
    spelled = {"'": "(?:'|&#x27;|&#39;|&apos;|\u2019)", "&": "(?:&|&amp;)"}
    words = ["".join(spelled.get(c, re.escape(c)) for c in w) for w in concept.split()]
    return re.compile(r"\s+".join(words), re.I)


def _missing_concept(html: str, concepts: Sequence[str], rng: random.Random, *, hide: bool) -> str:
    candidates = [c for c in concepts if c.strip() and normalise_text(c) in _page_text(html)]
    if not candidates:
        raise ValueError("none of the key concepts appears in the page's text to remove")
    order = list(candidates)
    rng.shuffle(order)
    for concept in order:
        changed = _rewrite_mentions(html, _concept_pattern(concept), hide=hide)
        if normalise_text(concept) not in _page_text(changed):
            return changed
    raise ValueError(f"cannot remove the concepts {candidates} (split across elements?)")


def _rewrite_mentions(html: str, pattern: re.Pattern[str], *, hide: bool) -> str:
    """Mentions in text nodes hidden (or replaced), and replaced in script strings, data-*
    attributes (which scripts show: a definition revealed on click), <title> and <textarea>.
    Text is hidden only inside prose elements: a hidden button label would make the page
    fail another check (a button without a name), so there it is replaced too."""
    out, at, last_tag = [], 0, ""
    names = _markup_names(html)

    def text_part(text: str) -> str:
        if hide and _PROSE.match(last_tag):
            return pattern.sub(lambda m: f'<span style="display:none">{m.group(0)}</span>', text)
        return pattern.sub("this idea", text)

    for segment in _SEGMENTS.finditer(html):
        out.append(text_part(html[at : segment.start()]))
        piece = segment.group(0)
        raw = (segment.group(1) or "").lower()
        if raw == "script":
            piece = _STRINGS.sub(
                lambda m: (
                    m.group(0)
                    if m.group(0)[1:-1] in names
                    else pattern.sub("this idea", m.group(0))
                ),
                piece,
            )
        elif raw in ("title", "textarea"):
            piece = pattern.sub("this idea", piece)
        elif not piece.startswith("<!--"):
            piece = _DATA_ATTRIBUTE.sub(
                lambda m: m.group(1) + pattern.sub("this idea", m.group(2)), piece
            )
            if not piece.startswith("</"):
                last_tag = piece
        out.append(piece)
        at = segment.end()
    out.append(text_part(html[at:]))
    return "".join(out)


def _page_text(html: str) -> str:
    """A rough, normalised version of what the page can show: its text nodes (hidden spans
    left out), its script strings and data-* attributes (which scripts may put on the
    page)."""
    parts, names = [], _markup_names(html)
    shown = re.sub(r'<span style="display:none">.*?</span>', " ", html, flags=re.S)
    at = 0
    for segment in _SEGMENTS.finditer(shown):
        parts.append(shown[at : segment.start()])
        raw = (segment.group(1) or "").lower()
        if raw == "script":
            strings = (s[1:-1] for s in _STRINGS.findall(segment.group(0)))
            parts += [s for s in strings if s not in names]
        elif raw in ("title", "textarea"):
            parts.append(re.sub(r"<[^>]*>", " ", segment.group(0)))
        else:
            parts += [value[1:-1] for _, value in _DATA_ATTRIBUTE.findall(segment.group(0))]
        parts.append(" ")
        at = segment.end()
    parts.append(shown[at:])
    return normalise_text(html_lib.unescape(" ".join(parts)))


def _markup_names(html: str) -> set[str]:
    """Values of id, name, for and class attributes: a script string equal to one is a
    handle on an element (getElementById('period')), not text shown to the reader."""
    found = re.findall(r"""\s(?:id|name|for|class)\s*=\s*["']?([^"'>]+)""", html, re.I)
    return {word for value in found for word in [value, *value.split()]}
