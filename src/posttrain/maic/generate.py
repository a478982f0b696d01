"""Generating a document's interactive page: templated offline, fast or heavy with a chat model.

`generate_page` is the one entry point (issue 27 §2):

- no chat model: the offline template library (`posttrain.maic.templates`), labelled
  `source="templated"` (both modes; the mode asked for is recorded);
- `mode="fast"`: one prompt (the analysis as JSON, an excerpt of the document, the page's
  requirements) asking for a complete page in a ```html fence;
- `mode="heavy"`: three steps, each its own prompt: (1) one self-contained interactive
  simulation section aligned with the main concept, (2) the full page laid out around it,
  (3) a visual polish of that page. A step that never succeeds is skipped where the page can
  do without it (simulation: step 2 is asked to include its own; polish: the laid-out page is
  kept).

Every reply is cut out of its fence (or its `<html>...</html>`), annotated with `data-src`
(`posttrain.maic.page`) and checked with `structure_problems` (`posttrain.maic.html_check`)
plus a ban on resources loaded from the network; a reply that fails is re-asked with its
problems listed, at `retry_params` so a sampling model can answer differently. With a
`verify` callable (the browser verifier), a page's findings go back to the model with
`findings.to_prompt()`; the attempts on the final page are bounded by `max_attempts` and the
page with the fewest findings is kept, its findings recorded. When no attempt yields a usable
page, `templates.emergency_page` is the last resort (`source="emergency"`, never cached).

Results are cached in `cache_dir/<sha256>.json`, keyed by the document's content hash, the
analysis, the mode, the model's name and `PAGE_FORMAT`, so a second call is free
(`cached=True`) and any change to what a page is built from misses the cache. The verifier is
not part of the key: a hit comes back as it was kept, with the findings recorded then.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from posttrain.atomic import write_text
from posttrain.errors import InputError
from posttrain.maic.analysis import Analysis
from posttrain.maic.documents import Document
from posttrain.maic.html_check import structure_problems
from posttrain.maic.page import annotate, strip_src
from posttrain.maic.templates import emergency_page, templated_page
from posttrain.models.chat.base import ChatModel, GenerationParams
from posttrain.models.chat.replies import retry_params

__all__ = [
    "MODES",
    "PAGE_FORMAT",
    "GeneratedPage",
    "cache_key",
    "extract_fragment",
    "extract_page",
    "fast_prompt",
    "generate_page",
    "layout_prompt",
    "page_problems",
    "polish_prompt",
    "simulation_prompt",
]

logger = logging.getLogger(__name__)

MODES = ("fast", "heavy")
PAGE_FORMAT = 2
"""Part of the cache key: bump it when the templates or the prompts change what a page is."""
EXCERPT_CHARS = 6000
PARAMS = GenerationParams(max_tokens=8192, temperature=0.2)

TEMPLATED = "templated"
EMERGENCY = "emergency"


class FindingsLike(Protocol):
    """What `generate_page` needs of a verifier's answer (`posttrain.maic.verify.Findings`)."""

    ok: bool
    items: list

    def to_prompt(self) -> str: ...


Verify = Callable[[str], FindingsLike]


@dataclass
class GeneratedPage:
    html: str
    mode: str
    """"fast" | "heavy": the mode asked for."""
    source: str
    """"templated" (offline), the chat model's name, or "emergency" (every attempt failed)."""
    attempts: list[dict] = field(default_factory=list)
    """Per model call (or the template): step, attempt, ok, problems, findings, seconds."""
    findings: dict | None = None
    """The kept page's findings (`to_dict()`), None when no verifier ran."""
    cached: bool = False
    model: str | None = None
    """The chat model asked, None offline (`source` says who made the page actually kept)."""

    def to_dict(self) -> dict:
        data = asdict(self)
        del data["cached"]
        return data

    @classmethod
    def from_dict(cls, data: Any, *, cached: bool = False) -> GeneratedPage:
        if not isinstance(data, dict) or not isinstance(data.get("html"), str):
            raise ValueError("not a generated page record")
        return cls(
            html=data["html"],
            mode=str(data["mode"]),
            source=str(data["source"]),
            attempts=list(data.get("attempts") or []),
            findings=data.get("findings"),
            cached=cached,
            model=data.get("model"),
        )


# --------------------------------------------------------------------------- replies


_FENCE = re.compile(r"```[ \t]*([a-zA-Z0-9_-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_WHOLE_PAGE = re.compile(r"(?:<!doctype html[^>]*>\s*)?<html\b.*</html\s*>", re.I | re.DOTALL)
_SECTION = re.compile(r"<section\b.*</section\s*>", re.I | re.DOTALL)
_REMOTE = re.compile(
    r"<(script|link|img|iframe|source|video|audio)\b[^>]*\b(src|href)\s*=\s*[\"']?(https?:)?//",
    re.I,
)


def _fenced(reply: str) -> list[str]:
    """Code-fence bodies, ```html ones first (an unclosed last fence counts: cut-off reply)."""
    blocks = [(lang.lower(), body) for lang, body in _FENCE.findall(reply)]
    return [b for lang, b in blocks if lang == "html"] + [b for lang, b in blocks if lang != "html"]


def extract_page(reply: str) -> str | None:
    """The full page in a model's reply: a fenced block holding `<html`, else the
    `<!doctype>`/`<html>` ... `</html>` span of the reply; None when there is neither."""
    for block in _fenced(reply):
        if re.search(r"<html\b", block, re.I):
            return block.strip() + "\n"
    match = _WHOLE_PAGE.search(reply)
    return match.group(0).strip() + "\n" if match else None


def extract_fragment(reply: str) -> str | None:
    """The simulation section in a reply: the first fenced block holding a tag, else the
    outermost `<section>` ... `</section>` span; None when there is neither."""
    for block in _fenced(reply):
        if "<" in block:
            return block.strip()
    match = _SECTION.search(reply)
    return match.group(0).strip() if match else None


def page_problems(html: str) -> list[str]:
    """Why a page cannot be kept: its structure problems, and any resource it would load
    from the network (pages must work offline)."""
    problems = list(structure_problems(html))
    for match in _REMOTE.finditer(html):
        line = html.count("\n", 0, match.start()) + 1
        problems.append(f"line {line}: <{match.group(1)}> loads a network resource")
    return problems


def _fragment_problems(fragment: str) -> list[str]:
    wrapped = f'<!doctype html>\n<html lang="en">\n<body>\n{fragment}\n</body>\n</html>\n'
    problems = page_problems(wrapped)
    if not re.search(r"<(input|button|select|canvas|svg)\b", fragment, re.I):
        problems.append("the section has no interactive control (input, button, canvas or svg)")
    return problems


# --------------------------------------------------------------------------- prompts


REQUIREMENTS = """Requirements for the page:
- one self-contained HTML file: inline <style> and <script> only, no external scripts,
  stylesheets, fonts or images (it must work offline), no CDN;
- <html lang="...">, a <title>, exactly one <h1> with the lesson's title;
- every key concept appears in visible text;
- every form control has a <label> (or an aria-label), every image alt text, every button
  a visible name and a working click handler; colours with a contrast ratio of at least 4.5:1;
- responsive: no horizontal scrolling at 375, 768 or 1280 pixels wide (max-width: 100%,
  flex-wrap, canvas scaled by CSS);
- no JavaScript errors;
- one element per line where sensible (the page is edited later with line-based diffs)."""


def _excerpt(document: Document) -> str:
    text = document.text
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "\n[...]"


def _lesson(document: Document, analysis: Analysis) -> str:
    return (
        f"Lesson title: {document.title}\n\n"
        f"Analysis of the teaching document (JSON):\n{json.dumps(analysis.to_dict(), indent=2)}"
        f"\n\nDocument excerpt:\n<<<\n{_excerpt(document)}\n>>>"
    )


def fast_prompt(document: Document, analysis: Analysis) -> str:
    """The fast mode's one prompt: the whole interactive page at once."""
    return (
        "You are an expert instructional designer and front-end developer. Build one "
        "interactive HTML teaching page for the lesson below: an explanation of the key "
        "concepts, an interactive simulation or visualisation of the main concept with "
        "controls that change it, a step-by-step walk through any procedure, and a short quiz "
        "with feedback.\n\n"
        f"{_lesson(document, analysis)}\n\n{REQUIREMENTS}\n\n"
        "Answer with the complete page in one ```html code block."
    )


def simulation_prompt(document: Document, analysis: Analysis) -> str:
    """Heavy step 1: one simulation section aligned with the lesson's main concept."""
    focus = (analysis.key_concepts or analysis.main_topics or [document.title])[0]
    return (
        "You are an expert in interactive science and maths simulations for teaching. Write "
        f"ONE self-contained interactive simulation of “{focus}” for the lesson below, faithful "
        "to the document's content (its quantities, its examples): a <section "
        'id="simulation"> holding a heading, labelled controls (sliders with <output> '
        "readouts, buttons) and a <canvas> or <svg> that the controls redraw, with a visible "
        "readout of the result, and its own <style> and <script> inside the section.\n\n"
        f"{_lesson(document, analysis)}\n\n"
        "No external resources. Answer with the section only, in one ```html code block."
    )


def layout_prompt(document: Document, analysis: Analysis, simulation: str | None) -> str:
    """Heavy step 2: the full page around the simulation (or with its own, when step 1
    gave none)."""
    if simulation:
        middle = (
            "Place this simulation section in the page exactly as it is (do not change it):\n"
            f"```html\n{simulation}\n```"
        )
    else:
        middle = "Include an interactive simulation of the main concept with labelled controls."
    return (
        "You are an expert instructional designer and front-end developer. Lay out a complete "
        "interactive HTML teaching page for the lesson below: a header, an overview with the "
        "learning objectives, the key concepts explained, the simulation, a step-by-step walk "
        "through any procedure, and a short quiz with feedback.\n\n"
        f"{_lesson(document, analysis)}\n\n{middle}\n\n{REQUIREMENTS}\n\n"
        "Answer with the complete page in one ```html code block."
    )


def polish_prompt(html: str) -> str:
    """Heavy step 3: visual polish without losing content."""
    return (
        "Polish the visual design of this teaching page: typography, spacing, colour (contrast "
        "at least 4.5:1), consistent buttons and cards, a layout that works at 375, 768 and "
        "1280 pixels wide. Keep every piece of text, every control and every script working; "
        "do not remove content. Keep one element per line.\n\n"
        f"```html\n{strip_src(html)}```\n\n{REQUIREMENTS}\n\n"
        "Answer with the complete polished page in one ```html code block."
    )


def _fix_structure_prompt(task: str, problems: list[str]) -> str:
    listed = "\n".join(f"- {p}" for p in problems[:20])
    return (
        f"{task}\n\nYour previous answer could not be used:\n{listed}\n"
        "Answer again, with the complete, well-formed result in one ```html code block "
        "(every element closed, every <script> and <style> closed)."
    )


def _fix_findings_prompt(html: str, findings: FindingsLike) -> str:
    return (
        "A headless browser checked this teaching page and found problems:\n"
        f"{findings.to_prompt()}\n\n"
        f"The page:\n```html\n{strip_src(html)}```\n\n"
        "Fix every problem without removing content. "
        f"{REQUIREMENTS}\n\nAnswer with the complete fixed page in one ```html code block."
    )


# --------------------------------------------------------------------------- generation


def cache_key(document: Document, analysis: Analysis, mode: str, source: str) -> str:
    """sha256 hex of what a page is built from (see the module docstring)."""
    payload = {
        "document": document.content_hash,
        "analysis": analysis.to_dict(),
        "mode": mode,
        "model": source,
        "format": PAGE_FORMAT,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _findings_dict(findings: FindingsLike) -> dict:
    to_dict = getattr(findings, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    return {"ok": bool(findings.ok), "items": [str(item) for item in findings.items]}


def _by_kind(findings: FindingsLike) -> dict:
    by_kind = getattr(findings, "by_kind", None)
    if callable(by_kind):
        return by_kind()
    return {"total": len(findings.items)}


class _Run:
    """One generation's model calls, attempt log and best page so far."""

    def __init__(self, chat: ChatModel, verify: Verify | None, max_attempts: int) -> None:
        self.chat, self.verify, self.max_attempts = chat, verify, max_attempts
        self.attempts: list[dict] = []

    def ask(self, prompt: str, attempt: int) -> str:
        params = PARAMS if attempt == 1 else retry_params(PARAMS, attempt - 1)
        results = self.chat.chat([[{"role": "user", "content": prompt}]], params)
        return results[0].text if results and results[0].choices else ""

    def log(self, step: str, attempt: int, started: float, problems: list[str], **extra) -> None:
        self.attempts.append(
            {
                "step": step,
                "attempt": attempt,
                "ok": not problems,
                "problems": problems[:20],
                "seconds": round(time.monotonic() - started, 3),
                **extra,
            }
        )

    def step(
        self,
        name: str,
        prompt: str,
        extract: Callable[[str], str | None],
        check: Callable[[str], list[str]],
    ) -> str | None:
        """Ask until a reply passes `check`, at most `max_attempts` times; None if never."""
        current = prompt
        for attempt in range(1, self.max_attempts + 1):
            started = time.monotonic()
            reply = self.ask(current, attempt)
            candidate = extract(reply)
            if candidate is None:
                problems = ["no ```html code block (or <html>...</html>) in the answer"]
            else:
                candidate = annotate(candidate) if name != "simulation" else candidate
                problems = check(candidate)
            self.log(name, attempt, started, problems)
            if not problems:
                return candidate
            current = _fix_structure_prompt(prompt, problems)
        return None

    def improve(self, page: str) -> tuple[str, dict | None]:
        """Verify `page`; while the best page so far has findings, send them back
        (`findings.to_prompt()`) with that page and verify the answer: at most `max_attempts`
        verification rounds, each after the first costing one model call (an unusable answer
        spends its round). The page with the fewest findings wins, the earlier on a tie."""
        if self.verify is None:
            return page, None
        best_page, best = page, self._verify(page, 1)
        for round_number in range(2, self.max_attempts + 1):
            if best.ok:
                break
            started = time.monotonic()
            reply = self.ask(_fix_findings_prompt(best_page, best), round_number)
            candidate = extract_page(reply)
            if candidate is None:
                problems = ["no ```html code block (or <html>...</html>) in the answer"]
            else:
                candidate = annotate(candidate)
                problems = page_problems(candidate)
            self.log("fix", round_number, started, problems)
            if problems or candidate is None:
                continue
            findings = self._verify(candidate, round_number)
            if len(findings.items) < len(best.items):
                best_page, best = candidate, findings
        return best_page, _findings_dict(best)

    def _verify(self, page: str, attempt: int) -> FindingsLike:
        assert self.verify is not None
        return _verify_logged(self.verify, page, attempt, self.attempts)


def _verify_logged(verify: Verify, html: str, attempt: int, attempts: list[dict]) -> FindingsLike:
    started = time.monotonic()
    findings = verify(html)
    attempts.append(
        {
            "step": "verify",
            "attempt": attempt,
            "ok": bool(findings.ok),
            "problems": [],
            "findings": _by_kind(findings),
            "seconds": round(time.monotonic() - started, 3),
        }
    )
    return findings


def _fast(run: _Run, document: Document, analysis: Analysis) -> str | None:
    return run.step("page", fast_prompt(document, analysis), extract_page, page_problems)


def _heavy(run: _Run, document: Document, analysis: Analysis) -> str | None:
    simulation = run.step(
        "simulation",
        simulation_prompt(document, analysis),
        extract_fragment,
        _fragment_problems,
    )
    page = run.step(
        "layout", layout_prompt(document, analysis, simulation), extract_page, page_problems
    )
    if page is None:
        return None
    polished = run.step("polish", polish_prompt(page), extract_page, page_problems)
    return polished or page


def _offline(document: Document, analysis: Analysis, verify: Verify | None) -> tuple:
    started = time.monotonic()
    html = templated_page(document, analysis)
    problems = page_problems(html)
    attempts = [
        {
            "step": "templated",
            "attempt": 1,
            "ok": not problems,
            "problems": problems,
            "seconds": round(time.monotonic() - started, 3),
        }
    ]
    source = TEMPLATED
    if problems:  # a template bug: never hand out a broken page
        html, source = emergency_page(document, analysis), EMERGENCY
    findings = None
    if verify is not None:
        findings = _findings_dict(_verify_logged(verify, html, 1, attempts))
    return html, source, attempts, findings


def _read_cache(path: Path) -> GeneratedPage | None:
    try:
        return GeneratedPage.from_dict(json.loads(path.read_text("utf-8")), cached=True)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("ignoring unreadable page cache %s (%s); regenerating", path, exc)
        return None


def generate_page(
    document: Document,
    analysis: Analysis,
    *,
    mode: str = "fast",
    chat: ChatModel | None = None,
    verify: Verify | None = None,
    max_attempts: int = 3,
    cache_dir: str | Path | None = None,
) -> GeneratedPage:
    """The interactive page for `document` (see the module docstring). The page is always
    annotated with `data-src` and has no structure problems."""
    if mode not in MODES:
        raise InputError(f"must be one of {', '.join(MODES)}, got {mode!r}", key="mode")
    if max_attempts < 1:
        raise InputError(f"must be >= 1, got {max_attempts}", key="max_attempts")
    model = chat.name if chat is not None else None
    path = None
    if cache_dir is not None:
        key = cache_key(document, analysis, mode, model or TEMPLATED)
        path = Path(cache_dir) / f"{key}.json"
        hit = _read_cache(path)
        if hit is not None:
            return hit
    if chat is None:
        html, source, attempts, findings = _offline(document, analysis, verify)
    else:
        run = _Run(chat, verify, max_attempts)
        html = (_fast if mode == "fast" else _heavy)(run, document, analysis)
        source = model
        findings = None
        if html is not None:
            html, findings = run.improve(html)
        else:
            html, source = emergency_page(document, analysis), EMERGENCY
            if verify is not None:
                findings = _findings_dict(_verify_logged(verify, html, 1, run.attempts))
        attempts = run.attempts
    result = GeneratedPage(html, mode, source, attempts, findings, cached=False, model=model)
    if path is not None and source != EMERGENCY:  # a model outage must not stick
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps(result.to_dict(), indent=1))
    return result
