"""MAIC-UI's pipeline without the studio: document -> analysis -> page -> verified page.

`posttrain maic build DOC --out DIR` runs `build`, and the studio runs the same steps one
request at a time. Each step's output is written as it is made (`analysis.json`, then
`page.html` with `findings.json`, then `build.json`, the summary naming who made what:
the rule-based analyser or a model, the templated generator or a model), and a second
build of the same document reuses the generator's cache under `DIR/cache`, so a crash
loses at most the step in progress.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from posttrain.atomic import write_text
from posttrain.maic.analysis import (
    RULE_BASED,
    Analysis,
    AnalysisFailed,
    analyse_rules,
    analyse_with_model,
)
from posttrain.maic.documents import Document, load_document
from posttrain.maic.generate import GeneratedPage, generate_page
from posttrain.models.chat.base import ChatModel

logger = logging.getLogger(__name__)

SAMPLE_LESSON = Path(__file__).parent / "samples" / "newtons_laws.md"
"""The embedded default document (a short physics lesson written for posttrain)."""


def analyse(document: Document, chat: ChatModel | None = None) -> Analysis:
    """The model's analysis when `chat` is given, else the rule-based one (labelled). A model
    that gives no valid analysis within its attempts does not stop a build or an upload: the
    rule-based analysis stands in, labelled as a fallback naming the model."""
    if chat is None:
        return analyse_rules(document)
    try:
        return analyse_with_model(document, chat)
    except AnalysisFailed as error:
        logger.warning("%s; using the rule-based analysis", error)
        fallback = analyse_rules(document)
        fallback.analyser = f"{RULE_BASED} (fallback: {chat.name} gave no valid analysis)"
        return fallback


@contextmanager
def page_verifier(key_concepts: list[str]) -> Iterator[Callable[[str], Any]]:
    """A verify function for `generate_page` over one headless chromium for its lifetime."""
    from posttrain.maic.browser import chromium
    from posttrain.maic.verify import verify_page

    with chromium() as browser:
        yield lambda html: verify_page(html, key_concepts, browser=browser)


def generate_verified(
    document: Document,
    analysis: Analysis,
    *,
    mode: str = "fast",
    chat: ChatModel | None = None,
    verify: bool = True,
    max_attempts: int = 3,
    cache_dir: str | Path | None = None,
) -> GeneratedPage:
    """`generate_page` with the browser verifier in the loop (unless `verify` is False)."""
    if not verify:
        return generate_page(
            document, analysis, mode=mode, chat=chat, max_attempts=max_attempts, cache_dir=cache_dir
        )
    with page_verifier(analysis.key_concepts) as check:
        return generate_page(
            document,
            analysis,
            mode=mode,
            chat=chat,
            verify=check,
            max_attempts=max_attempts,
            cache_dir=cache_dir,
        )


def build(
    document_path: str | Path,
    out_dir: str | Path,
    *,
    mode: str = "fast",
    chat: ChatModel | None = None,
    verify: bool = True,
    max_attempts: int = 3,
) -> dict:
    """Run the pipeline into `out_dir`; returns the summary written to build.json."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    document = load_document(document_path)
    analysis = analyse(document, chat)
    write_text(out / "analysis.json", json.dumps(analysis.to_dict(), indent=1) + "\n")
    analysed = time.perf_counter()
    page = generate_verified(
        document,
        analysis,
        mode=mode,
        chat=chat,
        verify=verify,
        max_attempts=max_attempts,
        cache_dir=out / "cache",
    )
    write_text(out / "page.html", page.html)
    if page.findings is not None:
        write_text(out / "findings.json", json.dumps(page.findings, indent=1) + "\n")
    summary = {
        "document": str(document_path),
        "kind": document.kind,
        "title": document.title,
        "sections": len(document.sections),
        "analyser": analysis.analyser,
        "mode": page.mode,
        "source": page.source,
        "cached": page.cached,
        "attempts": len(page.attempts),
        "verified": page.findings is not None,
        "findings": None if page.findings is None else page.findings.get("counts"),
        "seconds": {
            "analysis": round(analysed - began, 3),
            "generation": round(time.perf_counter() - analysed, 3),
        },
        "files": sorted(p.name for p in out.iterdir() if p.is_file()),
    }
    summary["files"] = sorted({*summary["files"], "build.json"})
    write_text(out / "build.json", json.dumps(summary, indent=1) + "\n")
    return summary
