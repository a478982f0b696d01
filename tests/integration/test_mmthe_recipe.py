"""`posttrain mmthe demo` end to end at the smallest size (a few scenes, a nano VLM, a few SFT
steps), in-process; and `posttrain mmthe run` through the CLI on the demo's data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from posttrain import cli
from posttrain.config import load_config
from posttrain.data.io import read_jsonl
from posttrain.recipes.mmthe import MMTheRecipe, MMTheRunConfig

SMALL = [
    "scenes.train_scenes=6",
    "scenes.test_scenes=2",
    "scenes.ood_scenes=2",
    "scenes.image_size=64",
    "vlm.size=nano",
    "vlm.image_size=32",
    "sft.steps=3",
    "sft.batch_size=4",
    "evaluation.max_tokens=24",
    "evaluation.resamples=50",
    "reader.error_rates={perception: 0.5, knowledge: 0.5, reasoning: 0.5}",
    "reader.reflection_rate=0.5",
    "reader.invalid_format_rate=0.5",
    "examples=2",
]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("mmthe")
    config = load_config(MMTheRunConfig, None, [*SMALL, f"runs_root={root / 'runs'}"])
    summary = MMTheRecipe(config)()
    return summary, root / "runs" / "mmthe"


def test_every_model_and_split_is_evaluated_with_its_report(finished):
    summary, run = finished
    assert summary["evaluations"] == [
        f"{model}-{split}" for model in ("vlm", "vlm-blank", "reader") for split in ("test", "ood")
    ]
    results = json.loads((run / "results.json").read_text())
    for key in summary["evaluations"]:
        out = run / f"eval-{key}"
        assert len(read_jsonl(out / "answers.jsonl")) == results[key]["items"] == 6
        assert {"rule-verifier", "judge-0:scripted:gold-overlap-judge"} <= set(results[key])
        html = (out / "report.html").read_text()
        assert html.count("<img src='data:image/png;base64,") >= 2 + 4  # examples + plots
    assert results["vlm-test"]["model"] == "tiny-vlm (SFT here)"
    assert "white image" in results["vlm-blank-test"]["model"]
    shown = read_jsonl(run / "eval-vlm-blank-test" / "answers.jsonl")
    assert shown and all(r["model"] == "tiny-vlm" for r in shown)
    effect = results["image_effect"]["test"]["answer_accuracy"]
    correct = {
        name: sum(r["answer_correct"] for r in read_jsonl(run / f"eval-{name}-test/answers.jsonl"))
        for name in ("vlm", "vlm-blank")
    }
    assert effect["difference"] == pytest.approx((correct["vlm"] - correct["vlm-blank"]) / 6)
    assert "scripted" in results["reader-test"]["model"]
    assert (run / "vlm" / "config.json").exists() and read_jsonl(run / "sft" / "metrics.jsonl")


def test_the_verifier_finds_every_error_the_reader_injected(finished):
    _, run = finished
    results = json.loads((run / "results.json").read_text())
    for split in ("test", "ood"):
        check = results[f"reader-{split}"]["verifier_vs_injected"]
        assert check["reader_output_reproduced"] == check["items"] == 6
        counts = check["by_category"]
        assert sum(c["injected"] for c in counts.values()) > 0
        for category, row in counts.items():
            assert row["found"] == row["injected"], category
            assert row["false_alarms"] == 0, category


def test_a_rerun_reuses_every_stage(finished):
    _, run = finished
    stamp = {p: p.stat().st_mtime_ns for p in run.glob("eval-*/answers.jsonl")}
    config = load_config(MMTheRunConfig, None, [*SMALL, f"runs_root={run.parent}"])
    MMTheRecipe(config)()
    assert {p: p.stat().st_mtime_ns for p in stamp} == stamp


def test_the_run_command_evaluates_any_model_on_a_data_dir(finished, tmp_path):
    _, run = finished
    out = tmp_path / "out"
    args = ["mmthe", "run", "--model", "scripted:scene-reader", "--data", str(run / "data")]
    args += ["--judge", "scripted:gold-overlap-judge", "--out", str(out), "--examples", "1"]
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert results["items"] == 30 and results["by_split"] == {"ood": 6, "test": 6, "train": 18}
    verifier = results["metrics"]["rule-verifier"]
    assert verifier["answer_accuracy"]["rate"] == 1.0  # no errors injected through the spec
    assert verifier["step_hallucination"]["count"] == 0
    # Another judge in the same place starts its own log: the reader writes no JSON labels.
    args[args.index("scripted:gold-overlap-judge")] = "scripted:scene-reader"
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    again = json.loads((out / "results.json").read_text())
    failures = again["judge_failures"]["judge-0:scripted:scene-reader"]
    assert len(failures) == 30 and all("scripted:scene-reader" in f for f in failures)
    assert len(list(out.glob("judge-0-*.jsonl"))) == 2


def test_the_run_command_names_a_bad_item(tmp_path):
    data = tmp_path / "items.jsonl"
    (tmp_path / "broken.png").write_bytes(b"not a png")
    data.write_text(json.dumps({"image": "broken.png", "question": "Q?", "answer": "1"}) + "\n")
    args = ["mmthe", "run", "--model", "scripted:scene-reader", "--data", str(data)]
    result = CliRunner().invoke(cli.app, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert f"{data}:1:" in result.output and "no readable image" in result.output
    assert not Path(tmp_path / "out" / "answers.jsonl").exists()


def test_the_blank_control_shows_a_white_image_of_the_scenes_size(finished):
    from posttrain.data.scenes.sft import blank_image_prompt, scene_prompt
    from posttrain.data.scenes.user_data import load_items
    from posttrain.models.chat.images import content_image_urls, content_text, load_image

    _, run = finished
    item = load_items(run / "data" / "test.jsonl")[0]
    blank, real = blank_image_prompt(item)[0]["content"], scene_prompt(item)[0]["content"]
    image, scene = (load_image(content_image_urls(c)[0]) for c in (blank, real))
    assert image.size == scene.size and image.getextrema() == ((255, 255),) * 3
    assert scene.getextrema() != image.getextrema()
    assert content_text(blank) == content_text(real)
