"""`posttrain maic build`: the embedded default lesson end to end (labelled offline), a
rebuild served from the generator's cache, and bad documents named in one line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from typer.testing import CliRunner

from posttrain.cli.app import app
from posttrain.maic.page import parse_src
from posttrain.maic.templates import TEMPLATED_GENERATOR


def test_build_the_sample_lesson_then_from_cache(tmp_path):
    out = tmp_path / "out"
    first = CliRunner().invoke(app, ["maic", "build", "--out", str(out), "--no-verify"])
    assert first.exit_code == 0, first.output
    assert first.output.startswith("[offline] analysis: rule-based; page: templated")
    summary = json.loads((out / "build.json").read_text())
    assert summary["title"] == "Newton's Laws of Motion" and summary["cached"] is False
    analysis = json.loads((out / "analysis.json").read_text())
    assert analysis["subject_area"] == "physics" and analysis["analyser"] == "rule-based"
    html = (out / "page.html").read_text()
    assert TEMPLATED_GENERATOR in html and "templated page (offline default)" in html
    assert "**" not in html and "<strong data-src" in html  # the lesson's Markdown, as read
    lines = html.splitlines()
    start, end = parse_src(
        lines[next(i for i, t in enumerate(lines) if "<h1" in t)]
        .split('data-src="')[1]
        .split('"')[0]
    )
    assert "<h1" in lines[start - 1] and "</h1>" in lines[end - 1]
    again = CliRunner().invoke(app, ["maic", "build", "--out", str(out), "--no-verify"])
    assert again.exit_code == 0 and json.loads((out / "build.json").read_text())["cached"]


def test_bad_documents_are_named(tmp_path):
    missing = CliRunner().invoke(app, ["maic", "build", str(tmp_path / "nope.pdf"), "--out", "o"])
    assert missing.exit_code == 2 and "nope.pdf" in missing.output
    (tmp_path / "notes.xyz").write_text("hello")
    odd = CliRunner().invoke(app, ["maic", "build", str(tmp_path / "notes.xyz"), "--out", "o"])
    assert odd.exit_code == 2 and "notes.xyz" in odd.output and ".pptx" in odd.output


def test_a_model_behind_an_openai_compatible_server(tmp_path):
    """The real client against a real server process: an echo model answers every prompt with
    the prompt, so the analysis falls back to the rules and the page to the emergency one,
    each labelled, after the bounded number of requests."""
    import httpx

    from posttrain.models.server_process import ServerProcess

    echo = Path(__file__).with_name("flaky_server.py")
    server = ServerProcess([sys.executable, str(echo)], ready_path="/health").start()
    try:
        spec = f"openai:echo@{server.base_url}"
        out = tmp_path / "out"
        args = ["maic", "build", "--model", spec, "--out", str(out), "--no-verify"]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        assert f"[fallback: {spec} gave no usable answer]" in result.output
        summary = json.loads((out / "build.json").read_text())
        assert summary["analyser"] == "rule-based (fallback: openai:echo gave no valid analysis)"
        assert summary["source"] == "emergency" and summary["attempts"] == 3
        stats = httpx.get(server.url + "/stats", timeout=5).json()
        assert stats["chat_requests"] == 6  # 3 analysis asks + 3 page asks, re-asks seeded
        assert stats["seeds"] == {"none": 2, "1": 2, "2": 2}
    finally:
        server.stop()
