"""Diff robustness: our applier against MAIC-UI's described algorithm and GNU patch.

Corpus: four interactive teaching pages (a pendulum lab with a slider, a canvas and a
script; a titration procedure as a step list; a quiz with repeated option buttons; a
cell-organelle card grid with a table), annotated with `data-src` as the studio does. On
each, the scripted editor (`scripted:maic-editor`) makes real edits of every kind it knows
(text, colour, size, add, remove, slider range) through the real edit prompt; its diff is
the clean diff and the page `edit_lines` produces is the ground truth. Each diff is then
perturbed the ways models' diffs go wrong:

- clean: as produced;
- line_offset: every hunk header's line numbers off by k (+-3 .. +-15);
- drift: an earlier, unrelated edit (a paragraph added near the top, page re-annotated) was
  applied first, so lines moved and every `data-src` below changed; the diff is stale;
- whitespace: indentation doubled and trailing spaces added on every diff line;
- attributes: `data-src` values changed on every diff line and one other attribute value
  changed on the context lines (a stale or hallucinated context);
- truncated: the last hunk's final two (context) lines cut off, header unchanged;
- truncated_change: the last hunk cut inside its changes (no applier can be correct: the
  right answer is to refuse);
- fenced_no_headers: the reply as chat models write it, prose and a ```diff fence around
  hunks without `---`/`+++` headers;
- combined: line offset + whitespace + drift.

Appliers: ours (`posttrain.maic.diffs.apply_diff`), the anchor's described algorithm
(`posttrain.maic.anchor_apply`), GNU `patch --fuzz=3` and `patch` with its defaults (fuzz
2). Per applier and perturbation: applied (claims success), correct_exact (page equal to
the truth, both re-annotated since `data-src` is recomputed on every version),
correct_ws (equal after whitespace is collapsed), corrupted (claims success but the page is
wrong), and of those broken_structure / lost_lines. Also the cost of a diff edit against
a full regeneration for the same change (tokens estimated as characters/4; the scripted
editor's latency is measured but only a real model's latency is meaningful).

Writes benchmarks/results/diff_apply.json and prints a table.

    .venv/bin/python benchmarks/diff_apply.py
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from posttrain.maic.anchor_apply import anchor_apply_diff
from posttrain.maic.diffs import apply_diff
from posttrain.maic.editor import EditError, edit_lines, edit_page, regenerate_page
from posttrain.maic.html_check import structure_problems
from posttrain.maic.page import annotate, parse_src
from posttrain.models.chat import load_chat

RESULTS = Path(__file__).parent / "results" / "diff_apply.json"
OFFSETS = [3, -4, 7, -9, 15, -12]


def _pages() -> dict[str, str]:
    """Four realistic generated-style pages (before H3's generator: written here)."""
    pendulum = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>The simple pendulum</title>
  <style>
    body { font-family: system-ui, sans-serif; margin: 2rem; }
    .panel { border: 1px solid #ccc; border-radius: 8px; padding: 1rem; }
    canvas { background: #f8f9fa; }
  </style>
</head>
<body>
  <h1 class="title">The simple pendulum</h1>
  <p class="lead">The period of a pendulum depends on its length, not on its mass.</p>
  <section class="panel" id="lab">
    <h2>Try it</h2>
    <label for="length">Length (cm)</label>
    <input id="length" type="range" min="10" max="200" value="100">
    <output id="length-value">100</output>
    <label for="gravity">Gravity (m/s²)</label>
    <input id="gravity" type="range" min="1" max="25" value="10">
    <output id="gravity-value">10</output>
    <canvas id="scene" width="480" height="320"></canvas>
    <p class="readout">Period: <span id="period">2.01</span> s</p>
    <button id="start" type="button">
      Start
    </button>
  </section>
  <section class="panel">
    <h2>Key idea</h2>
    <p>T = 2π √(L / g): a pendulum four times as long swings half as often.</p>
  </section>
  <script>
    const length = document.getElementById('length');
    const gravity = document.getElementById('gravity');
    function period() {
      return 2 * Math.PI * Math.sqrt(length.value / 100 / gravity.value);
    }
    function update() {
      document.getElementById('length-value').textContent = length.value;
      document.getElementById('gravity-value').textContent = gravity.value;
      document.getElementById('period').textContent = period().toFixed(2);
    }
    length.addEventListener('input', update);
    gravity.addEventListener('input', update);
    update();
  </script>
</body>
</html>
"""
    titration = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Acid-base titration</title>
  <style>
    .step { padding: 0.5rem; border-left: 4px solid #4dabf7; margin: 0.5rem 0; }
    .step.done { border-color: #51cf66; }
  </style>
</head>
<body>
  <h1>Acid-base titration</h1>
  <p class="lead">Find the concentration of an acid by adding a base of known concentration.</p>
  <ol class="steps">
    <li class="step">
      <span class="step-title">Rinse the burette</span>
      <button class="mark" type="button">Done</button>
    </li>
    <li class="step">
      <span class="step-title">Fill the burette with NaOH</span>
      <button class="mark" type="button">Done</button>
    </li>
    <li class="step">
      <span class="step-title">Add indicator to the flask</span>
      <button class="mark" type="button">Done</button>
    </li>
    <li class="step">
      <span class="step-title">Titrate until the colour changes</span>
      <button class="mark" type="button">Done</button>
    </li>
    <li class="step">
      <span class="step-title">Record the volume used</span>
      <button class="mark" type="button">Done</button>
    </li>
  </ol>
  <p class="hint">Swirl the flask after every addition.</p>
  <script>
    document.querySelectorAll('.mark').forEach((button) => {
      button.addEventListener('click', () => {
        button.closest('.step').classList.toggle('done');
      });
    });
  </script>
</body>
</html>
"""
    quiz = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Photosynthesis quiz</title>
  <style>
    .option { display: block; margin: 0.25rem 0; }
    .right { background: #d3f9d8; }
    .wrong { background: #ffe3e3; }
  </style>
</head>
<body>
  <h1>Photosynthesis: check yourself</h1>
  <div class="question" data-answer="b">
    <p class="prompt">Which gas do plants take in for photosynthesis?</p>
    <button class="option" type="button" data-choice="a">Oxygen</button>
    <button class="option" type="button" data-choice="b">Carbon dioxide</button>
    <button class="option" type="button" data-choice="c">Nitrogen</button>
    <p class="feedback"></p>
  </div>
  <div class="question" data-answer="a">
    <p class="prompt">Where in the cell does photosynthesis happen?</p>
    <button class="option" type="button" data-choice="a">Chloroplast</button>
    <button class="option" type="button" data-choice="b">Mitochondrion</button>
    <button class="option" type="button" data-choice="c">Nucleus</button>
    <p class="feedback"></p>
  </div>
  <div class="question" data-answer="c">
    <p class="prompt">What does photosynthesis produce besides oxygen?</p>
    <button class="option" type="button" data-choice="a">Protein</button>
    <button class="option" type="button" data-choice="b">Water</button>
    <button class="option" type="button" data-choice="c">Glucose</button>
    <p class="feedback"></p>
  </div>
  <script>
    document.querySelectorAll('.question').forEach((question) => {
      question.querySelectorAll('.option').forEach((option) => {
        option.addEventListener('click', () => {
          const right = option.dataset.choice === question.dataset.answer;
          option.classList.add(right ? 'right' : 'wrong');
          question.querySelector('.feedback').textContent = right ? 'Correct!' : 'Try again.';
        });
      });
    });
  </script>
</body>
</html>
"""
    cells = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Inside a cell</title>
  <style>
    .grid { display: grid; grid-template-columns: repeat(3, 1fr); gap: 1rem; }
    .card { border: 1px solid #dee2e6; border-radius: 6px; padding: 0.75rem; }
    .card.open .more { display: block; }
    .more { display: none; }
  </style>
</head>
<body>
  <h1>Inside a cell</h1>
  <div class="grid">
    <div class="card">
      <h3>Nucleus</h3>
      <p class="more">Holds the DNA and controls the cell.</p>
    </div>
    <div class="card">
      <h3>Mitochondrion</h3>
      <p class="more">Releases energy by respiration.</p>
    </div>
    <div class="card">
      <h3>Ribosome</h3>
      <p class="more">Builds proteins.</p>
    </div>
  </div>
  <table class="compare">
    <tr><th>Organelle</th><th>Plant cell</th><th>Animal cell</th></tr>
    <tr><td>Cell wall</td><td>yes</td><td>no</td></tr>
    <tr><td>Chloroplast</td><td>yes</td><td>no</td></tr>
    <tr><td>Nucleus</td><td>yes</td><td>yes</td></tr>
  </table>
  <script>
    document.querySelectorAll('.card').forEach((card) => {
      card.addEventListener('click', () => card.classList.toggle('open'));
    });
  </script>
</body>
</html>
"""
    return {
        name: annotate(text)
        for name, text in (
            ("pendulum", pendulum),
            ("titration", titration),
            ("quiz", quiz),
            ("cells", cells),
        )
    }


# (page, a unique substring of the picked element's line, the element's tag, instruction)
EDITS = [
    ("pendulum", "The period of a", "p", "change the text to 'Longer pendulums swing slower.'"),
    ("pendulum", 'id="length"', "input", "set the range of the slider to 20-150"),
    ("pendulum", 'id="start"', "button", "change the text to 'Release'"),
    ("pendulum", "Key idea", "h2", "make it red"),
    ("pendulum", 'class="readout"', "p", "add a paragraph 'Try doubling the length.'"),
    ("pendulum", 'id="gravity-value"', "output", "remove this element"),
    ("pendulum", 'id="start"', "button", "remove this element"),
    ("titration", "Add indicator", "span", "change the text to 'Add three drops of indicator'"),
    ("titration", "Record the volume", "span", "make it bigger"),
    ("titration", 'class="hint"', "p", "change the colour to #c92a2a"),
    ("titration", "Fill the burette", "span", "add a button 'Show a video'"),
    ("titration", "Titrate until", "span", "change the text to 'Titrate drop by drop'"),
    ("titration", "Rinse the burette", "li", "remove this element"),
    ("quiz", "Mitochondrion", "button", "change the text to 'Ribosome'"),
    ("quiz", "Nitrogen", "button", "remove this element"),
    ("quiz", "Glucose", "button", "make it green"),
    ("quiz", "What does photosynthesis", "p", "make it smaller"),
    ("cells", "Ribosome", "h3", "change the text to 'Ribosomes'"),
    ("cells", "Releases energy", "p", "change the text to 'Releases energy from glucose.'"),
    ("cells", "Chloroplast", "tr", "remove this element"),
    ("cells", "Inside a cell</h1>", "h1", "add a paragraph 'Click a card to learn more.'"),
]  # fmt: skip


def _pick(page: str, needle: str, tag: str) -> tuple[dict, int, int]:
    """The picked element: the last <tag> starting before `needle` (on its line or above)."""
    lines = page.split("\n")
    plain = [re.sub(r'\sdata-src="[^"]*"', "", line) for line in lines]
    number = next(i for i, line in enumerate(plain, 1) if needle in line)
    limit = lines[number - 1].find(needle) if needle in lines[number - 1] else None
    while True:
        line = lines[number - 1][:limit]
        starts = [m.start() for m in re.finditer(rf"<{tag}\b", line)]
        if starts:
            break
        number, limit = number - 1, None
    value = re.match(rf'<{tag}\s+data-src="L(\d+)-L(\d+)"', lines[number - 1][starts[-1] :])
    start, end = int(value.group(1)), int(value.group(2))
    return {"data_src": f"L{start}-L{end}", "tag": tag, "selector": "?", "text": ""}, start, end


def _edited(page: str, start: int, end: int, instruction: str) -> str:
    trailing = page.endswith("\n")
    lines = (page[:-1] if trailing else page).split("\n")
    return "\n".join(edit_lines(lines, start, end, instruction)) + ("\n" if trailing else "")


# --------------------------------------------------------------------------- perturbations

_HUNK = re.compile(r"^@@ -(\d+)(,\d+)? \+(\d+)(,\d+)? @@", re.M)


def _offset(diff: str, k: int) -> str:
    def move(m: re.Match) -> str:
        a, b = max(1, int(m.group(1)) + k), max(1, int(m.group(3)) + k)
        return f"@@ -{a}{m.group(2) or ''} +{b}{m.group(4) or ''} @@"

    return _HUNK.sub(move, diff)


def _body_lines(diff: str):
    for line in diff.split("\n"):
        kind = line[:1]
        is_body = kind in " -+" and not line.startswith(("--- ", "+++ ")) and line != ""
        yield line, is_body


def _whitespace(diff: str) -> str:
    out = []
    for line, body in _body_lines(diff):
        if body:
            text = line[1:]
            indent = len(text) - len(text.lstrip(" "))
            text = " " * (2 * indent) + text.lstrip(" ")
            if line[0] == " " and text.strip():
                text += "  "
            line = line[0] + text
        out.append(line)
    return "\n".join(out)


def _attributes(diff: str) -> str:
    out = []
    changed = False
    for line, body in _body_lines(diff):
        if body:
            line = re.sub(
                r'data-src="L(\d+)-L(\d+)"',
                lambda m: f'data-src="L{int(m.group(1)) + 2}-L{int(m.group(2)) + 2}"',
                line,
            )
            if line[0] == " " and not changed:
                new = re.sub(r'(class|id|type)="([^"]*)"', r'\1="\2-old"', line, count=1)
                changed = new != line
                line = new
        out.append(line)
    return "\n".join(out)


def _truncate(diff: str, *, into_change: bool) -> str | None:
    lines = diff.rstrip("\n").split("\n")
    last_header = max(i for i, line in enumerate(lines) if line.startswith("@@"))
    if not into_change:
        if len(lines) - last_header - 1 <= 3:
            return None
        return "\n".join(lines[:-2]) + "\n"
    changes = [i for i in range(last_header + 1, len(lines)) if lines[i][:1] in "+-"]
    if len(changes) < 2:
        # cut right after the one change: the hunk then ends in it, the context after lost
        return "\n".join(lines[: changes[0] + 1]) + "\n"
    return "\n".join(lines[: changes[len(changes) // 2]]) + "\n"


def _fenced(diff: str) -> str:
    """The reply as chat models write it: prose, a fence, no file headers."""
    body = "".join(line for line in diff.splitlines(True) if not line.startswith(("---", "+++")))
    return f"Here is the change:\n```diff\n{body}```\nIt only touches the picked element.\n"


def _drifted(page: str) -> tuple[str, int]:
    """The page after an unrelated edit near the top: a paragraph after the body's first
    element (the title); returns it and the line the paragraph went after."""
    lines = page.split("\n")
    first = next(m for line in lines if (m := re.search(r'data-src="L(\d+)-L(\d+)"', line)))
    start, end = int(first.group(1)), int(first.group(2))
    drifted = annotate(_edited(page, start, end, "add a paragraph 'Read this first.'"))
    return drifted, end


_AUTO_INSTRUCTIONS = [
    "change the text to 'A clearer sentence.'",
    "make it red",
    "make it bigger",
    "add a paragraph 'Try it yourself.'",
    "remove this element",
    "set the range of the slider to 0-50",
]


def _generated_edits(per_page: int) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """Pages from H3's generator (templated, offline) for the shipped test documents, and
    edits spread over their elements: (page, data-src, instruction) for every edit the
    scripted editor can make there. Empty when the generator or the documents are absent."""
    try:
        from posttrain.maic.analysis import analyse_rules
        from posttrain.maic.documents import load_document
        from posttrain.maic.generate import generate_page
    except ImportError:
        return {}, []
    root = Path(__file__).resolve().parent.parent / "tests" / "data" / "maic"
    pages, edits = {}, []
    for path in sorted(root.glob("*.md")) + sorted(root.glob("*.txt")):
        document = load_document(path)
        html = generate_page(document, analyse_rules(document)).html
        name = f"generated:{path.name}"
        pages[name] = html
        lines = html[:-1].split("\n") if html.endswith("\n") else html.split("\n")
        targets = [
            (m.group(1), int(m.group(2)), int(m.group(3)))
            for line in lines
            for m in re.finditer(r'<(\w+) data-src="L(\d+)-L(\d+)"', line)
            if m.group(1) not in ("script", "style")
        ]
        step = max(1, len(targets) // per_page)
        for index, (_tag, start, end) in enumerate(targets[::step][:per_page]):
            for turn in range(len(_AUTO_INSTRUCTIONS)):
                instruction = _AUTO_INSTRUCTIONS[(index + turn) % len(_AUTO_INSTRUCTIONS)]
                try:
                    edit_lines(lines, start, end, instruction)
                except EditError:
                    continue
                edits.append((name, f"L{start}-L{end}", instruction))
                break
    return pages, edits


# --------------------------------------------------------------------------- appliers


def _patch(page: str, diff: str, fuzz: int | None) -> tuple[bool, str]:
    with tempfile.TemporaryDirectory(prefix="diff-apply-") as scratch:
        base = Path(scratch)
        (base / "page.html").write_text(page)
        (base / "edit.diff").write_text(diff if diff.endswith("\n") else diff + "\n")
        command = ["patch", "--batch", "--silent", "--no-backup-if-mismatch"]
        command += ["-o", str(base / "out.html"), "-r", str(base / "rejects")]
        if fuzz is not None:
            command.append(f"--fuzz={fuzz}")
        command += [str(base / "page.html"), str(base / "edit.diff")]
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
        out = base / "out.html"
        text = out.read_text() if out.exists() else page
        return done.returncode == 0, text


def _appliers(have_patch: bool):
    appliers = {
        "ours": lambda page, diff: _ours(page, diff),
        "anchor": lambda page, diff: _anchor(page, diff),
    }
    if have_patch:
        appliers["patch --fuzz=3"] = lambda page, diff: _patch(page, diff, 3)
        appliers["patch (default fuzz 2)"] = lambda page, diff: _patch(page, diff, None)
    return appliers


def _ours(page: str, diff: str) -> tuple[bool, str]:
    result = apply_diff(page, diff)
    return result.ok, result.text


def _anchor(page: str, diff: str) -> tuple[bool, str]:
    result = anchor_apply_diff(page, diff)
    return result.ok, result.text


@functools.lru_cache(maxsize=4096)  # appliers often produce the same page; annotate is slow
def _canon(page: str) -> str:
    try:
        return annotate(page)
    except Exception:  # a page too broken to annotate compares as it is
        return page


def _lost_lines(old: str, new: str, truth: str) -> bool:
    """Whether a line kept in the truth (present in old and truth) is missing in new."""
    strip = re.compile(r'\sdata-src="[^"]*"')
    new_lines = Counter(strip.sub("", line) for line in new.split("\n"))
    truth_lines = Counter(strip.sub("", line) for line in truth.split("\n"))
    old_lines = Counter(strip.sub("", line) for line in old.split("\n"))
    kept = truth_lines & old_lines
    return bool(kept - new_lines)


# --------------------------------------------------------------------------- the run


def _cases(chat, generated_per_page: int) -> tuple[list[dict], list[dict]]:
    pages = _pages()
    planned = []
    for name, needle, tag, instruction in EDITS:
        picked, start, end = _pick(pages[name], needle, tag)
        planned.append(("handwritten", name, picked, start, end, instruction))
    more_pages, more_edits = _generated_edits(generated_per_page)
    pages.update(more_pages)
    for name, data_src, instruction in more_edits:
        start, end = parse_src(data_src)
        picked = {"data_src": data_src, "tag": "?", "selector": "?", "text": ""}
        planned.append(("generated", name, picked, start, end, instruction))
    cases: list[dict] = []
    costs: list[dict] = []
    for index, (corpus, name, picked, start, end, instruction) in enumerate(planned):
        page = pages[name]
        edit = edit_page(page, picked, instruction, chat)
        clean = edit.diff
        truth = _edited(page, start, end, instruction)
        if not clean or not edit.applied.ok or edit.applied.text != truth:
            raise SystemExit(f"the scripted edit {name}/{instruction!r} does not reproduce")
        regen = regenerate_page(page, picked, instruction, chat)
        costs.append(
            {
                "corpus": corpus,
                "page": name,
                "page_lines": page.count("\n") + 1,
                "instruction": instruction,
                "diff_tokens_in": edit.tokens_in,
                "diff_tokens_out": edit.tokens_out,
                "diff_seconds": edit.seconds,
                "regen_tokens_in": regen.tokens_in,
                "regen_tokens_out": regen.tokens_out,
                "regen_seconds": regen.seconds,
                "regen_correct": _canon(regen.html) == _canon(truth),
                "estimated": edit.tokens_estimated or regen.tokens_estimated,
            }
        )
        k = OFFSETS[index % len(OFFSETS)]
        drifted, drift_end = _drifted(page)
        drift_truth = _edited(
            drifted, start + (start > drift_end), end + (end > drift_end), instruction
        )
        made = {"corpus": corpus, "page": name, "edit": instruction}
        add = lambda kind, base, diff, want, made=made: cases.append(  # noqa: E731
            {**made, "kind": kind, "base": base, "diff": diff, "truth": want}
        )
        add("clean", page, clean, truth)
        add("line_offset", page, _offset(clean, k), truth)
        add("drift", drifted, clean, drift_truth)
        add("whitespace", page, _whitespace(clean), truth)
        add("attributes", page, _attributes(clean), truth)
        truncated = _truncate(clean, into_change=False)
        if truncated is not None:
            add("truncated", page, truncated, truth)
        add("truncated_change", page, _truncate(clean, into_change=True), None)
        add("fenced_no_headers", page, _fenced(clean), truth)
        add("combined", drifted, _whitespace(_offset(clean, k)), drift_truth)
    return cases, costs


def _score(cases: list[dict], appliers: dict) -> tuple[dict, dict]:
    """Per applier: per perturbation, and per corpus (handwritten / generated) totals."""
    table: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    by_corpus: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    for case in cases:
        base, truth = case["base"], case["truth"]
        for name, apply in appliers.items():
            claimed, text = apply(base, case["diff"])
            row: Counter = Counter(cases=1, applied=int(claimed), refused=int(not claimed))
            exact = truth is not None and _canon(text) == _canon(truth)
            loose = truth is not None and " ".join(_canon(text).split()) == " ".join(
                _canon(truth).split()
            )
            row["correct_exact"] += claimed and exact
            row["correct_ws"] += claimed and loose
            if claimed and not loose:
                row["corrupted"] += 1
                broken = len(structure_problems(text)) > len(structure_problems(base))
                row["broken_structure"] += broken
                row["lost_lines"] += truth is not None and _lost_lines(base, text, truth)
            table[name][case["kind"]].update(row)
            by_corpus[name][case["corpus"]].update(row)
    as_dicts = lambda t: {n: {k: dict(r) for k, r in rows.items()} for n, rows in t.items()}  # noqa: E731
    return as_dicts(table), as_dicts(by_corpus)


def _totals(per_kind: dict) -> dict:
    total: Counter = Counter()
    for row in per_kind.values():
        total.update(row)
    return dict(total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--generated-per-page",
        type=int,
        default=12,
        help="edits on each generated page (0: the handwritten pages only)",
    )
    args = parser.parse_args()
    began = time.perf_counter()
    chat = load_chat("scripted:maic-editor")
    cases, costs = _cases(chat, args.generated_per_page)
    have_patch = shutil.which("patch") is not None
    scores, by_corpus = _score(cases, _appliers(have_patch))
    totals = {name: _totals(kinds) for name, kinds in scores.items()}
    kinds = list(dict.fromkeys(case["kind"] for case in cases))
    report = {
        "machine": platform.platform(),
        "editor": chat.name,
        "pages": len({(c["corpus"], c["page"]) for c in cases}),
        "edits": len(costs),
        "edits_by_corpus": dict(Counter(c["corpus"] for c in costs)),
        "cases": len(cases),
        "correct_means": "equal to the ground truth after both are re-annotated (data-src)",
        "truncated_change": "no applier can be correct; the right answer is to refuse",
        "appliers": scores,
        "totals": totals,
        "totals_by_corpus": by_corpus,
        "cost": {
            corpus: _cost_summary([c for c in costs if c["corpus"] == corpus])
            for corpus in dict.fromkeys(c["corpus"] for c in costs)
        },
        "cost_per_edit": costs,
        "seconds": time.perf_counter() - began,
    }
    if not have_patch:
        report["note"] = "GNU patch not found: its rows are missing"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    _print(scores, totals, by_corpus, kinds, report)
    print(f"wrote {args.out}")


def _cost_summary(costs: list[dict]) -> dict:
    def median(key: str) -> float:
        return statistics.median(c[key] for c in costs)

    diff_total = median("diff_tokens_in") + median("diff_tokens_out")
    regen_total = median("regen_tokens_in") + median("regen_tokens_out")
    return {
        "edits": len(costs),
        "median_page_lines": median("page_lines"),
        "tokens_estimated": any(c["estimated"] for c in costs),
        "median_diff_tokens_in": median("diff_tokens_in"),
        "median_diff_tokens_out": median("diff_tokens_out"),
        "median_regen_tokens_in": median("regen_tokens_in"),
        "median_regen_tokens_out": median("regen_tokens_out"),
        "regen_over_diff_tokens": regen_total / diff_total,
        "regen_over_diff_output_tokens": median("regen_tokens_out") / median("diff_tokens_out"),
        "median_diff_seconds_scripted": median("diff_seconds"),
        "median_regen_seconds_scripted": median("regen_seconds"),
        "latency_note": "scripted editor: latency is rule execution, not generation; with a "
        "real model the latency ratio follows the output-token ratio",
        "regen_correct": sum(c["regen_correct"] for c in costs),
    }


def _print(scores: dict, totals: dict, by_corpus: dict, kinds: list[str], report: dict) -> None:
    print(
        f"{report['cases']} cases ({report['edits']} edits {report['edits_by_corpus']} on "
        f"{report['pages']} pages)"
    )
    header = f"{'applier':24} {'perturbation':17} {'cases':>5} {'applied':>7} {'exact':>5} "
    header += f"{'ws':>4} {'corrupt':>7}"
    print(header)
    for name, per_kind in scores.items():
        rows = [(kind, per_kind.get(kind, {})) for kind in kinds]
        rows += [(f"[{corpus}]", row) for corpus, row in by_corpus[name].items()]
        rows.append(("TOTAL", totals[name]))
        for kind, row in rows:
            print(
                f"{name:24} {kind:17} {row.get('cases', 0):5d} {row.get('applied', 0):7d} "
                f"{row.get('correct_exact', 0):5d} {row.get('correct_ws', 0):4d} "
                f"{row.get('corrupted', 0):7d}"
            )
    for corpus, cost in report["cost"].items():
        print(
            f"{corpus} pages (median {cost['median_page_lines']:.0f} lines): diff edit median "
            f"{cost['median_diff_tokens_in']:.0f} in + {cost['median_diff_tokens_out']:.0f} out "
            f"tokens; full regeneration {cost['median_regen_tokens_in']:.0f} in + "
            f"{cost['median_regen_tokens_out']:.0f} out ({cost['regen_over_diff_tokens']:.1f}x "
            f"tokens, {cost['regen_over_diff_output_tokens']:.1f}x output tokens; chars/4)"
        )


if __name__ == "__main__":
    main()
