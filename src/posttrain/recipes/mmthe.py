"""MM-THEBench at tiny scale (`posttrain mmthe demo`): hallucinations inside multimodal chains
of thought, judged step by step.

Stages:
1. **data**: rendered scenes with their graphs and gold reasoning (`posttrain.data.scenes`):
   train, test (other scenes) and ood (bigger layouts, more objects).
2. **vlm**: a tiny LLaVA built here (`posttrain.models.tiny_vlm`), fine-tuned on the train
   split to answer with a chain in the gold steps' format (the SFT stage, TRL's vision
   collator). It hallucinates plenty: real model outputs to evaluate.
3. **evaluation** per model and split (`posttrain.eval.mmthe.pipeline`): the tiny VLM and the
   scripted scene reader (deterministic, with labelled injected errors of each category,
   self-reflection and format errors), each chain segmented, labelled by the rule verifier
   and by the LLM judges (default: `scripted:gold-overlap-judge`, a deterministic stand-in),
   with metrics at every level, plots and example items in each evaluation's report.
4. **results.json**: the headline rates, judge agreement with the verifier, the verifier
   against the reader's injected errors, and the paper's three findings as measured here.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from posttrain.data.scenes.splits import SceneConfig
from posttrain.eval.mmthe.pipeline import VERIFIER, MMTheConfig
from posttrain.recipes.base import Recipe


@dataclass
class VLMSettings:
    """`posttrain.models.tiny_vlm.build_tiny_vlm`'s shape."""

    image_size: int = 96
    vision_hidden_size: int = 128
    size: str = "micro"
    vocab_size: int = 512
    seed: int = 0


@dataclass
class SFTSettings:
    steps: int = 900
    batch_size: int = 16
    learning_rate: float = 2e-3
    lr_scheduler: str = "cosine"
    max_length: int = 256
    describe_rows: bool = True
    """Add one "Describe the image." row per training scene (`description_rows`): without
    them the tiny VLM answered as well with a blank image."""


@dataclass
class ReaderSettings:
    """`posttrain.eval.mmthe.scene_reader.ReaderOptions` of the scripted reader evaluated."""

    error_rates: dict[str, float] = field(
        default_factory=lambda: {"perception": 0.15, "knowledge": 0.2, "reasoning": 0.1}
    )
    reflection_rate: float = 0.3
    reflection_error_rate: float = 0.5
    invalid_format_rate: float = 0.3
    seed: int = 0


def _scenes() -> SceneConfig:
    return SceneConfig(train_scenes=600, test_scenes=60, ood_scenes=60, questions_per_scene=3)


@dataclass
class MMTheRunConfig:
    scenes: SceneConfig = field(default_factory=_scenes)
    vlm: VLMSettings = field(default_factory=VLMSettings)
    sft: SFTSettings = field(default_factory=SFTSettings)
    reader: ReaderSettings = field(default_factory=ReaderSettings)
    judges: list[str] = field(default_factory=lambda: ["scripted:gold-overlap-judge"])
    """LLM-judge specs (`openai:MODEL@URL` for a vision model on vLLM/SGLang/an API); with
    several, their majority vote is a label source too."""
    splits: list[str] = field(default_factory=lambda: ["test", "ood"])
    evaluation: MMTheConfig = field(default_factory=MMTheConfig)
    examples: int = 8
    run_name: str = "mmthe"
    runs_root: str = "runs"


MODELS = ("vlm", "vlm-blank", "reader")
"""The tiny VLM; the same VLM shown a white image instead of the scene (how much of its
accuracy the image gives); the scripted reader."""
LABELS = {
    "vlm": "tiny-vlm (SFT here)",
    "vlm-blank": "tiny-vlm (SFT here) shown a white image",
    "reader": "scripted:scene-reader (deterministic: reads the scene graph, injects labelled"
    " errors at the config's reader rates)",
}


class MMTheRecipe(Recipe):
    title = "MM-THEBench: hallucinations inside multimodal chains of thought"
    rerun_may_change: ClassVar[tuple[str, ...] | None] = ("judges", "splits", "examples")

    def check(self, config: MMTheRunConfig) -> None:
        from posttrain.eval.mmthe.scene_reader import ReaderOptions
        from posttrain.models.chat.spec import parse_chat_spec

        unknown = set(config.splits) - {"train", "test", "ood"}
        if not config.splits or unknown:
            raise ValueError(f"splits must be some of train, test, ood; got {config.splits}")
        for spec in config.judges:
            parse_chat_spec(spec)
        ReaderOptions(**asdict(config.reader))  # its own checks, before any work

    # ------------------------------------------------------------------ stages

    @property
    def data_dir(self) -> Path:
        return self.run.path / "data"

    def data(self) -> dict[str, list[dict[str, Any]]]:
        from posttrain.data.scenes.splits import write_scene_data
        from posttrain.data.scenes.user_data import load_items

        self.built_dir("data", "ood.jsonl", lambda s: write_scene_data(self.config.scenes, s))
        return {s: load_items(self.data_dir / f"{s}.jsonl") for s in ("train", "test", "ood")}

    def vlm(self, train: list[dict[str, Any]]) -> Path:
        from posttrain.data.scenes.sft import DESCRIBE, gold_completion, question_text
        from posttrain.models.tiny_vlm import build_tiny_vlm

        settings = self.config.vlm

        def corpus() -> list[str]:
            texts = [DESCRIBE]
            for item in train:
                texts += [question_text(item), gold_completion(item)[0]["content"]]
            return texts

        base = self.built_dir(
            "base-vlm",
            "config.json",
            lambda s: build_tiny_vlm(
                s,
                corpus(),
                image_size=settings.image_size,
                vision_hidden_size=settings.vision_hidden_size,
                size=settings.size,
                vocab_size=settings.vocab_size,
                seed=settings.seed,
            ),
        )
        return self.built_dir("vlm", "config.json", lambda s: self._fine_tune(base, train, s))

    def _fine_tune(self, base: Path, train: list[dict[str, Any]], out: Path) -> None:
        from posttrain.data.scenes.sft import description_rows, scene_sft_rows
        from posttrain.runs import Run
        from posttrain.sft.trainer import SFTStageConfig, fine_tune

        sft = self.config.sft
        settings = SFTStageConfig(
            model=str(base),
            steps=sft.steps,
            batch_size=sft.batch_size,
            learning_rate=sft.learning_rate,
            lr_scheduler=sft.lr_scheduler,
            warmup_steps=20,
            max_length=sft.max_length,
            seed=self.config.vlm.seed,
        )
        with Run(self.run.path / "sft") as log, tempfile.TemporaryDirectory() as trainer_dir:
            log.truncate_metrics_after(-1)
            rows = scene_sft_rows(train) + (description_rows(train) if sft.describe_rows else [])
            fine_tune(settings, rows, out, Path(trainer_dir), log, name="mmthe-vlm")

    def model(self, name: str, vlm_dir: Path) -> Any:
        if name.startswith("vlm"):
            from posttrain.models.chat.hf_vision import HFVisionChat

            return HFVisionChat(vlm_dir, name="tiny-vlm", device="cpu")
        from posttrain.eval.mmthe.scene_reader import ReaderOptions, scene_reader

        return scene_reader(**asdict(ReaderOptions(**asdict(self.config.reader))))

    def evaluate(self, name: str, model: Any, items: list[dict[str, Any]], split: str) -> dict:
        from posttrain.data.scenes.sft import blank_image_prompt
        from posttrain.eval.mmthe import gold_judge, scene_reader  # noqa: F401 - scripts
        from posttrain.eval.mmthe.commands import examples_html, plots
        from posttrain.eval.mmthe.pipeline import run_mmthe
        from posttrain.models.chat.spec import load_chat
        from posttrain.report import write_report

        out = self.run.path / f"eval-{name}-{split}"
        results_path = out / "results.json"
        if (
            results_path.exists()
            and json.loads(results_path.read_text())["judges"] == self.config.judges
        ):
            return json.loads(results_path.read_text())
        judges = [load_chat(spec) for spec in self.config.judges]
        chosen = [item for item in items if item["split"] == split]
        prompt = blank_image_prompt if name == "vlm-blank" else None
        results = run_mmthe(model, chosen, out, judges, self.config.evaluation, prompt)
        results["model"] = LABELS[name]
        results["judges"] = list(self.config.judges)
        if name == "reader":
            results["verifier_vs_injected"] = self.verifier_vs_injected(chosen, out)
        results_path.write_text(json.dumps(results, indent=2) + "\n")
        plots(results, out)
        write_report(
            out,
            title=f"MM-THEBench {split}: {results['model']}",
            extra_html=examples_html(chosen, out, self.config.examples, results["judge_logs"]),
        )
        return results

    def verifier_vs_injected(self, items: list[dict[str, Any]], out: Path) -> dict[str, Any]:
        """The rule verifier's labels on the reader's chains against the errors the reader
        injected (known exactly): per category, the steps found and missed."""
        from posttrain.data.io import read_jsonl
        from posttrain.data.scenes.sft import scene_prompt
        from posttrain.eval.mmthe.scene_reader import ReaderOptions, reader_chain
        from posttrain.models.chat.images import content_text

        options = ReaderOptions(**asdict(self.config.reader))
        answers = {r["id"]: r for r in read_jsonl(out / "answers.jsonl")}
        labels = {r["id"]: r["labels"] for r in read_jsonl(out / "verifier.jsonl")}
        counts: dict[str, dict[str, int]] = {}
        same_text = 0
        for item in items:
            # the reader sees the whole prompt text, so it is keyed (and seeded) by it
            asked = content_text(scene_prompt(item)[-1]["content"])
            text, injected = reader_chain(item, asked, options)
            same_text += text == answers[item["id"]]["output"]
            found = {
                x["index"]: x.get("category")
                for x in labels[item["id"]]
                if x["label"] == "hallucinated"
            }
            truth = {x.index: x.category for x in injected}
            for index in set(found) | set(truth):
                category = truth.get(index) or found[index]
                row = counts.setdefault(category, {"injected": 0, "found": 0, "false_alarms": 0})
                if index in truth:
                    row["injected"] += 1
                    row["found"] += found.get(index) == truth[index]
                else:
                    row["false_alarms"] += 1
        return {"items": len(items), "reader_output_reproduced": same_text, "by_category": counts}

    def image_effect(self, split: str) -> dict[str, Any]:
        """The VLM shown the scene minus the VLM shown a white image, paired over the items:
        answer accuracy, and the share of a chain's decided steps the verifier finds
        hallucinated (both against the real scene)."""
        from posttrain.data.io import read_jsonl
        from posttrain.eval.significance import paired_bootstrap

        sides = {}
        for name in ("vlm", "vlm-blank"):
            out = self.run.path / f"eval-{name}-{split}"
            answers = {
                r["id"]: float(r["answer_correct"]) for r in read_jsonl(out / "answers.jsonl")
            }
            steps = {}
            for record in read_jsonl(out / "verifier.jsonl"):
                decided = [x["label"] for x in record["labels"] if x["label"] != "unverifiable"]
                if decided:
                    steps[record["id"]] = decided.count("hallucinated") / len(decided)
            sides[name] = answers, steps
        (blank_answers, blank_steps), (answers, steps) = sides["vlm-blank"], sides["vlm"]
        both = sorted(set(steps) & set(blank_steps))
        seed = self.config.evaluation.seed
        return {
            "answer_accuracy": paired_bootstrap(
                {k: [v] for k, v in blank_answers.items()},
                {k: [v] for k, v in answers.items()},
                self.config.evaluation.resamples,
                seed,
            ),
            "step_hallucination": paired_bootstrap(
                {k: [blank_steps[k]] for k in both},
                {k: [steps[k]] for k in both},
                self.config.evaluation.resamples,
                seed,
            )
            if both
            else {"difference": None, "why": "no item has a decided step on both sides"},
        }

    def stages(self) -> dict[str, Any]:
        self.say("[bold]1/3 data[/]: rendered scenes with their graphs and gold reasoning")
        splits = self.data()
        self.say("    " + ", ".join(f"{s} {len(v)} items" for s, v in splits.items()))
        self.say("[bold]2/3 tiny VLM[/]: built here, SFT on the train split")
        vlm_dir = self.vlm(splits["train"])
        self.say("[bold]3/3 evaluation[/]: answers, steps, rule verifier and judges")
        evaluations = {}
        models: dict[str, Any] = {}
        for name in MODELS:
            kind = name.split("-")[0]  # vlm-blank asks the VLM itself
            if kind not in models:
                models[kind] = self.model(kind, vlm_dir)
            model = models[kind]
            for split in self.config.splits:
                self.say(f"    {name} on {split}")
                evaluations[f"{name}-{split}"] = self.evaluate(name, model, splits[split], split)
        results: dict[str, Any] = {key: headline(r) for key, r in evaluations.items()}
        results["image_effect"] = {split: self.image_effect(split) for split in self.config.splits}
        self.run.write_json("results.json", results)
        return {"evaluations": list(evaluations)}


def headline(results: dict[str, Any]) -> dict[str, Any]:
    """The numbers a reader looks at first, per label source, from one evaluation."""
    out: dict[str, Any] = {"model": results["model"], "items": results["items"]}
    for source, m in results["metrics"].items():
        out[source] = {
            "answer_accuracy": m["answer_accuracy"]["rate"],
            "cot_hallucination": m["cot_hallucination"]["rate"],
            "step_hallucination": m["step_hallucination"]["rate"],
            "by_category": {c: b["rate"] for c, b in m["by_category"].items()},
            "correct_answer_hallucinated_chain": m["correct_answer_hallucinated_chain"][
                "of_correct_answers"
            ]["rate"],
            "reflection_after_minus_before": m["reflection"]["after_minus_before_paired"],
            "perception_wrong_minus_correct": m["perception"]["wrong_minus_correct"],
            "format_invalid_spatial_minus_other": m["format_invalid_spatial_minus_other"],
        }
    for source, agreement in results["agreement_with_verifier"].items():
        out[source]["kappa_with_verifier"] = agreement["binary"]["kappa"]
    if "verifier_vs_injected" in results:
        out["verifier_vs_injected"] = results["verifier_vs_injected"]
    out["label_sources"] = [s for s in results["metrics"] if s != VERIFIER] + [VERIFIER]
    return out
