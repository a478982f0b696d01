"""MAIC-UI's commands: `posttrain maic build DOC --out DIR` (the pipeline without the UI) and
`posttrain studio --port N` (the courseware studio)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import typer

from posttrain.cli.app import app, fail
from posttrain.errors import InputError

maic = typer.Typer(
    help="MAIC-UI: teaching documents to interactive, browser-verified courseware.",
    no_args_is_help=True,
)
app.add_typer(maic, name="maic")

MODEL_HELP = (
    "Chat model spec for the analysis and the page (default: none, the rule-based analyser "
    "and the templated pages, labelled as such)."
)


def _chat(spec: str | None):
    if spec is None:
        return None
    import posttrain.maic.editor  # noqa: F401  (registers scripted:maic-editor)
    from posttrain.models.chat.spec import load_chat

    return load_chat(spec)


@maic.command("build")
def maic_build(
    document: Path | None = typer.Argument(
        None, help="A PDF, PPTX, Markdown or text file (default: the shipped sample lesson)."
    ),
    out: Path = typer.Option(..., "--out", help="Folder for analysis.json, page.html, ..."),
    mode: str = typer.Option("fast", "--mode", help="fast (one prompt) or heavy."),
    model: str | None = typer.Option(None, "--model", help=MODEL_HELP),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Check in chromium."),
    max_attempts: int = typer.Option(3, "--max-attempts", help="Generation attempts."),
) -> None:
    """Analyse a document, generate its interactive page and check it in a real browser."""
    from posttrain.maic.pipeline import SAMPLE_LESSON, build

    document = document or SAMPLE_LESSON
    try:
        summary = build(
            document, out, mode=mode, chat=_chat(model), verify=verify, max_attempts=max_attempts
        )
    except (ValueError, OSError, RuntimeError) as err:
        raise fail("error", err) from None
    stand_ins = summary["analyser"].startswith("rule-based") or summary["source"] in (
        "templated",
        "emergency",
    )
    if stand_ins:  # say who made what: never pass a rule or a template off as a model's work
        kind = "[offline]" if model is None else f"[fallback: {model} gave no usable answer]"
        typer.echo(f"{kind} analysis: {summary['analyser']}; page: {summary['source']}")
    typer.echo(json.dumps(summary, indent=2))


@app.command("studio")
def studio(
    port: int = typer.Option(0, "--port", help="Port (0: a free one)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Bind address (loopback by default)."),
    root: Path = typer.Option(
        Path("maic-studio"), "--root", help="Folder of the studio's projects (SQLite, uploads)."
    ),
    model: str | None = typer.Option(None, "--model", help=MODEL_HELP),
    editor: str = typer.Option(
        "scripted:maic-editor", "--editor", help="Chat model spec of the editing model."
    ),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Check pages in chromium."),
) -> None:
    """Serve the courseware studio (upload, analysis, generate, preview, click-to-edit,
    versions) until Ctrl-C; prints the page's URL with its fresh token."""
    from posttrain.maic.studio import Studio, serve
    from posttrain.models.server_process import free_port

    if root.exists() and not root.is_dir():
        raise fail("error", InputError(f"{root}: not a folder"))
    port = port or free_port(host)
    token = secrets.token_urlsafe(32)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    workshop = Studio(root, model=_chat(model), editor=_chat(editor), verify=verify)
    typer.echo(f"MAIC studio ({root}): http://{shown}:{port}/?token={token}")
    serve(workshop, token, host, port)
