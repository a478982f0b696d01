"""How well MAIC-UI's browser verifier finds defects: precision and recall per kind.

Corpus: five clean, self-contained interactive teaching pages written for this benchmark
(sliders driving a canvas, a step-through with Prev/Next, a quiz with feedback, a concept
list with a filter and definitions to open, a canvas animation with a Pause button), each
with its key concepts. Every page is checked clean, then with one defect of each kind
planted by `posttrain.maic.defects.inject` (every variant of the kind, `--seeds` random
draws of each, so the same seed gives the same corpus). Each page goes through
`posttrain.maic.verify.verify_page`, all with one shared browser.

Scoring, per kind k: a page where k was planted and a k finding was reported is a true
positive; a k finding on a page without k planted (the clean pages included) is a false
positive; a planted k with no k finding is a false negative. Precision = TP / (TP + FP),
recall = TP / (TP + FN), counted per page (several findings of one kind on a page count
once). Also: seconds per page (median and max) and whether the clean pages came back clean.

Writes benchmarks/results/maic_verify.json and prints a table.

    .venv/bin/python benchmarks/maic_verify.py [--seeds 1]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

from posttrain.atomic import write_text
from posttrain.maic.browser import chromium
from posttrain.maic.defects import VARIANTS, inject
from posttrain.maic.verify import KINDS, verify_page

RESULTS = Path(__file__).parent / "results" / "maic_verify.json"

_HEAD = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 860px; margin: 0 auto; padding: 1rem;
       color: #1d1d1d; background: #ffffff; line-height: 1.5; }}
canvas, svg {{ max-width: 100%; height: auto; border: 1px solid #8a8a8a; }}
button {{ background: #1f4f8f; color: #ffffff; border: 0; padding: .4rem .9rem;
          border-radius: 4px; margin: .2rem; }}
button:disabled {{ background: #6b6b6b; }}
.panel {{ border: 1px solid #c4c4c4; border-radius: 6px; padding: .8rem; margin: .8rem 0; }}
.hidden {{ display: none; }}
.ok {{ color: #145214; }} .bad {{ color: #8b1010; }}
</style>
</head>
"""

PENDULUM = (
    _HEAD.format(title="The simple pendulum")
    + """<body>
<h1>The simple pendulum</h1>
<p>A pendulum swings with a <strong>period</strong> that depends on its <strong>length</strong>
and on the <strong>gravitational acceleration</strong>, but not on its mass. For small angles,
T = 2&pi;&radic;(L/g).</p>
<div class="panel">
  <label for="length">Length L (m)</label>
  <input id="length" type="range" min="0.2" max="3" step="0.1" value="1">
  <output id="lengthOut">1.0</output><br>
  <label for="gravity">Gravitational acceleration g (m/s&sup2;)</label>
  <select id="gravity">
    <option value="9.81">Earth (9.81)</option>
    <option value="1.62">Moon (1.62)</option>
    <option value="3.71">Mars (3.71)</option>
  </select>
  <p>Period: <span id="period">2.01</span> s</p>
  <canvas id="swing" width="480" height="240"
          aria-label="The pendulum at its widest swing"></canvas>
  <br><button id="reset" type="button">Reset</button>
</div>
<script>
const length = document.getElementById('length');
const gravity = document.getElementById('gravity');
const ctx = document.getElementById('swing').getContext('2d');
function update() {
  const L = parseFloat(length.value), g = parseFloat(gravity.value);
  const T = 2 * Math.PI * Math.sqrt(L / g);
  document.getElementById('lengthOut').textContent = L.toFixed(1);
  document.getElementById('period').textContent = T.toFixed(2);
  ctx.clearRect(0, 0, 480, 240);
  const r = 60 * L, a = 0.5;
  ctx.beginPath(); ctx.moveTo(240, 10); ctx.lineTo(240 + r * Math.sin(a), 10 + r * Math.cos(a));
  ctx.stroke();
  ctx.beginPath(); ctx.arc(240 + r * Math.sin(a), 10 + r * Math.cos(a), 10, 0, 2 * Math.PI);
  ctx.fill();
}
length.addEventListener('input', update);
gravity.addEventListener('change', update);
document.getElementById('reset').addEventListener('click', () => {
  length.value = 1; gravity.value = '9.81'; update();
});
update();
</script>
</body>
</html>
"""
)

PHOTOSYNTHESIS = (
    _HEAD.format(title="Photosynthesis step by step")
    + """<body>
<h1>Photosynthesis step by step</h1>
<p>Plants turn light into chemical energy. Key ideas: <strong>chlorophyll</strong>,
<strong>light-dependent reactions</strong>, the <strong>Calvin cycle</strong> and
<strong>glucose</strong>.</p>
<div class="panel" id="steps">
  <p id="counter">Step 1 of 4</p>
  <section class="step"><h2>Light is absorbed</h2>
    <p>Chlorophyll in the chloroplasts absorbs red and blue light.</p></section>
  <section class="step hidden"><h2>Water is split</h2>
    <p>The light-dependent reactions split water, releasing oxygen and making ATP.</p></section>
  <section class="step hidden"><h2>Carbon is fixed</h2>
    <p>The Calvin cycle uses ATP to fix carbon dioxide into sugars.</p></section>
  <section class="step hidden"><h2>Sugar is stored</h2>
    <p>Glucose is built and stored as starch for later use.</p></section>
  <button id="prev" type="button" disabled>Previous</button>
  <button id="next" type="button">Next</button>
</div>
<details><summary>Where does the oxygen come from?</summary>
  <p>From the water molecules split in the second step, not from carbon dioxide.</p></details>
<script>
const steps = document.querySelectorAll('.step');
let current = 0;
function show(k) {
  current = Math.max(0, Math.min(steps.length - 1, k));
  steps.forEach((s, i) => s.classList.toggle('hidden', i !== current));
  document.getElementById('counter').textContent = `Step ${current + 1} of ${steps.length}`;
  document.getElementById('prev').disabled = current === 0;
  document.getElementById('next').disabled = current === steps.length - 1;
}
document.getElementById('prev').addEventListener('click', () => show(current - 1));
document.getElementById('next').addEventListener('click', () => show(current + 1));
show(0);
</script>
</body>
</html>
"""
)

FRACTIONS_QUIZ = (
    _HEAD.format(title="Quiz: equivalent fractions")
    + """<body>
<h1>Quiz: equivalent fractions</h1>
<p>Two fractions are <strong>equivalent fractions</strong> when they name the same amount.
Multiply or divide the <strong>numerator</strong> and the <strong>denominator</strong> by the
same number to find one.</p>
<form id="quiz" class="panel">
  <fieldset><legend>1. Which fraction equals 1/2?</legend>
    <label><input type="radio" name="q1" value="a"> 2/3</label>
    <label><input type="radio" name="q1" value="b"> 3/6</label>
    <label><input type="radio" name="q1" value="c"> 2/5</label>
  </fieldset>
  <fieldset><legend>2. Which fraction equals 4/8?</legend>
    <label><input type="radio" name="q2" value="a"> 1/2</label>
    <label><input type="radio" name="q2" value="b"> 4/6</label>
  </fieldset>
  <label for="q3">3. Fill in the numerator: ?/10 = 3/5</label>
  <input id="q3" type="number" min="0" max="20" value="0">
  <p><button type="submit">Check my answers</button></p>
  <p id="feedback" aria-live="polite">Answer the questions, then check.</p>
</form>
<script>
const answers = {q1: 'b', q2: 'a'};
document.getElementById('quiz').addEventListener('submit', event => {
  event.preventDefault();
  const form = event.target;
  let score = 0;
  for (const [name, right] of Object.entries(answers)) {
    if (form.elements[name].value === right) score += 1;
  }
  if (parseInt(document.getElementById('q3').value, 10) === 6) score += 1;
  const feedback = document.getElementById('feedback');
  const verdict = score === 3 ? ' Well done!' : ' Try again.';
  feedback.textContent = `You got ${score} of 3 right.` + verdict;
  feedback.className = score === 3 ? 'ok' : 'bad';
});
</script>
</body>
</html>
"""
)

CELL_SVG = (
    "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='160' height='100'%3E"
    "%3Cellipse cx='80' cy='50' rx='75' ry='45' fill='%23cde'/%3E"
    "%3Ccircle cx='80' cy='50' r='16' fill='%23468'/%3E%3C/svg%3E"
)
CELL_GLOSSARY = (
    _HEAD.format(title="Parts of the cell")
    + """<body>
<h1>Parts of the cell</h1>
<p>Every cell has parts with jobs. This page covers the <strong>nucleus</strong>, the
<strong>mitochondria</strong>, the <strong>cell membrane</strong> and the
<strong>ribosome</strong>.</p>
<div class="panel">
  <label for="filter">Filter the list</label>
  <input id="filter" type="text" placeholder="type a word">
  <label for="order">Order</label>
  <select id="order"><option value="az">A to Z</option><option value="za">Z to A</option></select>
  <ul id="terms"></ul>
  <p id="shown"></p>
</div>
<figure>
  <img src="{CELL_SVG}"
       alt="A cell drawn as an oval with its nucleus in the middle" width="160" height="100">
  <figcaption>A cell and its nucleus.</figcaption>
</figure>
<script>
const terms = {
  'nucleus': 'Holds the DNA and controls the cell.',
  'mitochondria': 'Release energy from food by respiration.',
  'cell membrane': 'Controls what enters and leaves the cell.',
  'ribosome': 'Builds proteins from amino acids.',
};
function render() {
  const needle = document.getElementById('filter').value.trim().toLowerCase();
  const matches = n => n.includes(needle) || terms[n].toLowerCase().includes(needle);
  let names = Object.keys(terms).filter(matches);
  names.sort();
  if (document.getElementById('order').value === 'za') names.reverse();
  const list = document.getElementById('terms');
  list.innerHTML = '';
  for (const name of names) {
    const item = document.createElement('li');
    const toggle = document.createElement('button');
    toggle.type = 'button';
    toggle.textContent = name;
    const definition = document.createElement('span');
    definition.className = 'hidden';
    definition.textContent = ' - ' + terms[name];
    toggle.addEventListener('click', () => definition.classList.toggle('hidden'));
    item.append(toggle, definition);
    list.append(item);
  }
  document.getElementById('shown').textContent = `${names.length} of 4 terms shown`;
}
document.getElementById('filter').addEventListener('input', render);
document.getElementById('order').addEventListener('change', render);
render();
</script>
</body>
</html>
""".replace("{CELL_SVG}", CELL_SVG)
)

WAVES = (
    _HEAD.format(title="Waves on a string")
    + """<body>
<h1>Waves on a string</h1>
<p>A travelling wave carries energy along the string. Its <strong>wavelength</strong> is the
distance between two crests and its <strong>amplitude</strong> is the height of a crest.</p>
<div class="panel">
  <label for="wavelength">Wavelength (cm)</label>
  <input id="wavelength" type="range" min="20" max="200" step="10" value="80">
  <output id="wavelengthOut">80 cm</output><br>
  <label for="amplitude">Amplitude (cm)</label>
  <input id="amplitude" type="range" min="5" max="60" step="5" value="30">
  <output id="amplitudeOut">30 cm</output><br>
  <canvas id="wave" width="480" height="160" aria-label="The moving wave"></canvas><br>
  <button id="pause" type="button">Pause</button>
</div>
<script>
const wavelength = document.getElementById('wavelength');
const amplitude = document.getElementById('amplitude');
const pause = document.getElementById('pause');
const ctx = document.getElementById('wave').getContext('2d');
let phase = 0, running = true;
function frame() {
  const k = 2 * Math.PI / parseFloat(wavelength.value), A = parseFloat(amplitude.value);
  ctx.clearRect(0, 0, 480, 160);
  ctx.beginPath();
  for (let x = 0; x <= 480; x += 4) ctx.lineTo(x, 80 - A * Math.sin(k * x - phase));
  ctx.stroke();
  if (running) { phase += 0.1; requestAnimationFrame(frame); }
}
function labels() {
  document.getElementById('wavelengthOut').textContent = wavelength.value + ' cm';
  document.getElementById('amplitudeOut').textContent = amplitude.value + ' cm';
}
wavelength.addEventListener('input', labels);
amplitude.addEventListener('input', labels);
pause.addEventListener('click', () => {
  running = !running;
  pause.textContent = running ? 'Pause' : 'Play';
  if (running) requestAnimationFrame(frame);
});
labels();
requestAnimationFrame(frame);
</script>
</body>
</html>
"""
)

PAGES: dict[str, tuple[str, list[str]]] = {
    "pendulum_sliders": (PENDULUM, ["period", "length", "gravitational acceleration"]),
    "photosynthesis_steps": (
        PHOTOSYNTHESIS,
        ["chlorophyll", "light-dependent reactions", "Calvin cycle", "glucose"],
    ),
    "fractions_quiz": (FRACTIONS_QUIZ, ["equivalent fractions", "numerator", "denominator"]),
    "cell_glossary": (CELL_GLOSSARY, ["nucleus", "mitochondria", "cell membrane", "ribosome"]),
    "waves_animation": (WAVES, ["wavelength", "amplitude"]),
}


LESSONS = {
    "cells.md": """# Cell biology

## The nucleus
The nucleus is the control centre of the cell. It holds DNA.

## Mitochondria
Mitochondria release energy by respiration.

## Osmosis
Osmosis is the movement of water across a partially permeable membrane.

Steps of an osmosis experiment:
1. Cut potato cylinders.
2. Weigh them.
3. Place them in salt solutions.
4. Reweigh after 24 hours.
""",
    "quadratics.md": """# Quadratic equations

A quadratic equation has the form ax^2 + bx + c = 0. The discriminant b^2 - 4ac tells how
many real roots there are.

## Factorising
Factorising writes the quadratic as a product of two brackets.

## The quadratic formula
The quadratic formula is x = (-b +- sqrt(b^2 - 4ac)) / 2a.
""",
    "decay.md": """# Radioactive decay

Radioactive decay is random. The half-life is the time taken for half of the nuclei to
decay. Activity is measured in becquerels.

## Alpha, beta and gamma
Alpha particles are helium nuclei. Beta particles are electrons. Gamma rays are
electromagnetic waves.
""",
}


def generated_pages() -> dict[str, tuple[str, list[str]]]:
    """Pages from the studio's own offline generator (templated, rule-based analysis) for
    the shipped sample lesson and three short lessons, with the analysis's key concepts."""
    from posttrain.maic.analysis import analyse_rules
    from posttrain.maic.documents import load_document
    from posttrain.maic.generate import generate_page

    folder = Path(tempfile.mkdtemp(prefix="maic-verify-"))
    paths = [Path(__file__).parents[1] / "src/posttrain/maic/samples/newtons_laws.md"]
    for name, text in LESSONS.items():
        paths.append(folder / name)
        paths[-1].write_text(text)
    pages = {}
    for path in paths:
        document = load_document(path)
        analysis = analyse_rules(document)
        page = generate_page(document, analysis)
        pages[f"generated_{path.stem}"] = (page.html, list(analysis.key_concepts))
    return pages


def corpus(pages: dict[str, tuple[str, list[str]]], seeds: int) -> list[dict]:
    """Clean pages, then every page x kind x variant x seed with one defect planted."""
    cases = [
        {"page": name, "planted": None, "variant": None, "seed": None, "html": html}
        for name, (html, _) in pages.items()
    ]
    for name, (html, concepts) in pages.items():
        for kind in KINDS:
            for variant in VARIANTS[kind]:
                for seed in range(seeds):
                    rng = random.Random(f"{name}/{kind}/{variant}/{seed}")
                    planted, expected = inject(html, kind, rng, concepts=concepts, variant=variant)
                    cases.append(
                        {
                            "page": name,
                            "planted": expected,
                            "variant": variant,
                            "seed": seed,
                            "html": planted,
                        }
                    )
    return cases


def score(results: list[dict]) -> dict[str, dict]:
    table = {}
    for kind in KINDS:
        tp = sum(1 for r in results if r["planted"] == kind and r["counts"][kind])
        fp = sum(1 for r in results if r["planted"] != kind and r["counts"][kind])
        fn = sum(1 for r in results if r["planted"] == kind and not r["counts"][kind])
        table[kind] = {
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "precision": tp / (tp + fp) if tp + fp else None,
            "recall": tp / (tp + fn) if tp + fn else None,
        }
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1, help="random draws per variant")
    parser.add_argument(
        "--no-generated",
        action="store_true",
        help="only the hand-written pages, not the offline generator's",
    )
    args = parser.parse_args()
    pages = dict(PAGES) if args.no_generated else {**PAGES, **generated_pages()}
    cases = corpus(pages, args.seeds)
    results = []
    with chromium() as browser:
        for case in cases:
            start = time.perf_counter()
            findings = verify_page(case["html"], pages[case["page"]][1], browser=browser)
            seconds = time.perf_counter() - start
            results.append(
                {
                    **{k: v for k, v in case.items() if k != "html"},
                    "seconds": round(seconds, 3),
                    "counts": findings.by_kind(),
                    "findings": [f"{i.kind}: {i.message}" for i in findings.items],
                }
            )
    table = score(results)
    times = [r["seconds"] for r in results]
    clean = [r for r in results if r["planted"] is None]
    report = {
        "machine": platform.platform(),
        "seeds": args.seeds,
        "corpus_pages": sorted(pages),
        "pages": len(results),
        "clean_pages_clean": sum(1 for r in clean if not any(r["counts"].values())),
        "clean_pages": len(clean),
        "seconds_per_page": {
            "median": statistics.median(times),
            "max": max(times),
            "total": round(sum(times), 1),
        },
        "per_kind": table,
        "misses": [
            {k: r[k] for k in ("page", "planted", "variant", "seed", "findings")}
            for r in results
            if (r["planted"] and not r["counts"][r["planted"]])
            or any(n and k != r["planted"] for k, n in r["counts"].items())
        ],
        "results": results,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    write_text(RESULTS, json.dumps(report, indent=2) + "\n")
    print(f"{'kind':<20} {'TP':>4} {'FP':>4} {'FN':>4} {'precision':>10} {'recall':>8}")
    for kind, row in table.items():
        p, r = (f"{row[m]:.3f}" if row[m] is not None else "-" for m in ("precision", "recall"))
        print(f"{kind:<20} {row['tp']:>4} {row['fp']:>4} {row['fn']:>4} {p:>10} {r:>8}")
    print(
        f"{len(results)} pages, clean pages clean: {report['clean_pages_clean']}/{len(clean)}, "
        f"seconds per page: median {report['seconds_per_page']['median']:.2f}, "
        f"max {report['seconds_per_page']['max']:.2f}"
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
