"""SAERL (Tsinghua, 2026): RL data engineering from the policy's own sparse-autoencoder
features, wired from posttrain's stages.

1. **data**: math problems whose topic, difficulty and defects are known exactly
   (`posttrain.data.math_problems`): clean rows for the warm start and its validation, the RL
   pool (low-quality rows injected at `data.defect_rate`) and a clean held-out test split
   sharing no problem with any of them.
2. **policy** per seed: a tiny Qwen2 and tokenizer (`posttrain.models.tiny`), warm-started
   (SFT) until its validation accuracy reaches `warm_start.stop_at_accuracy`: a policy with
   room to learn.
3. **labels** per seed: the policy's pass rate (`labels.samples` answers at temperature 1)
   on a seeded subset of `labels.budget` pool rows, the difficulty labels; the same rows'
   quality flags are the quality labels (a person labelling a small subset).
4. **features** per seed: the policy's pooled activations at `features.layer`
   (`posttrain.features.activations`), an SAE trained on them with SAELens
   (`posttrain.features.sae`), its codes; raw activations and TF-IDF as baselines.
5. **ground truth**: for each feature kind, the selection stage fitted on the true
   difficulty and quality of the same labelled subset, scored on the other rows: difficulty
   R^2 / Spearman, quality AUC, cluster purity against the topics.
6. **selection** per variant and seed (`posttrain.data.selection.select`): the ordered,
   filtered pool, written as the RL run's prompt file (`data.order: as_written`).
7. **RL** per variant and seed: GRPO from the seed's warm start (`posttrain.rl`), held-out
   accuracy every `rl.eval_every` steps.
8. **results**: final held-out accuracy (mean ± std over seeds), each variant against
   vanilla GRPO (Welch over seeds, paired bootstrap over questions), steps to the target
   accuracy (vanilla's final mean unless `target_accuracy` is set), the accuracy curves and
   the selection stage's cost against the RL time it saves.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from posttrain import atomic
from posttrain.data.io import read_jsonl, write_jsonl
from posttrain.data.math_problems import MathProblemConfig, make_math_splits, tokenizer_corpus
from posttrain.data.selection import SelectionSettings, ordered_rows, select
from posttrain.errors import InputError
from posttrain.eval.significance import compare_runs, describe
from posttrain.features.sae import SAESettings
from posttrain.recipes.base import Recipe
from posttrain.report import plot_curves
from posttrain.rl.config import DataConfig, OptimConfig, RLConfig, RolloutConfig
from posttrain.runs import read_metrics
from posttrain.sft.warm_start import WarmStartConfig


@dataclass(frozen=True)
class Variant:
    """How one RL run takes its prompts: vanilla shuffles the whole pool; the others read
    the selection stage's order, with components switched off for the ablations."""

    select: bool = True
    clusters: bool = True
    curriculum: bool = True
    quality: bool = True
    mixing: str = "moderate"
    transfer: bool = False
    """Select with another seed's policy (its activations and SAE): SAERL's transfer."""


VARIANTS: dict[str, Variant] = {
    "vanilla": Variant(select=False),
    "saerl": Variant(),
    "no_diversity": Variant(clusters=False),
    "no_curriculum": Variant(curriculum=False),
    "no_quality": Variant(quality=False),
    "mixing_none": Variant(mixing="none"),
    "mixing_heavy": Variant(mixing="heavy"),
    "transfer": Variant(transfer=True),
}
FEATURE_KINDS = ("sae", "raw", "tfidf")


@dataclass
class DataSplits:
    """How the generated problems are divided (all from one `make_math_splits` call)."""

    problems: MathProblemConfig = field(
        default_factory=lambda: MathProblemConfig(
            topics=("addition", "subtraction"),
            max_digits=2,
            n_train=9000,
            n_test=200,
            defect_rate=0.011,  # all in the RL pool: about 11% of it
        )
    )
    warm_start_rows: int = 8000
    """Clean training rows for the warm start (its SFT data); never RL prompts."""
    validation_rows: int = 100
    """Clean training rows the warm start's `stop_at_accuracy` watches."""


@dataclass
class FeatureSettings:
    layer: int | None = None
    """Decoder block whose output is pooled; None: the middle one (n_layers // 2)."""
    pooling: str = "mean"
    batch_size: int = 64


@dataclass
class LabelSettings:
    budget: int = 200
    """Pool rows whose difficulty (pass rate) and quality are labelled."""
    samples: int = 8
    """Answers per labelled row for its pass rate (temperature 1)."""
    seed: int = 0
    difficulty: str = "pass_rate"
    """The difficulty labels: `pass_rate` (the policy's measured success on the labelled
    rows, SAERL's own labels) or `column` (the rows' own `difficulty`, as DeepMath-103K
    ships one)."""


def _warm_start() -> WarmStartConfig:
    return WarmStartConfig(
        steps=1500,
        batch_size=64,  # at 32 and 2e-3 a micro policy stayed near 5% for 3,000 steps
        learning_rate=1e-3,
        max_length=96,
        stop_at_accuracy=0.4,
        eval_every=50,
        eval_start=200,
        eval_max_tokens=8,
    )


def _rl() -> RLConfig:
    return RLConfig(
        steps=56,  # one pass over the pool's 56 batches
        prompts_per_step=16,
        rollout=RolloutConfig(n=8, max_tokens=8),
        optim=OptimConfig(lr=1e-4),
        micro_batch_size=64,
        eval_every=8,
        save_every=0,
    )


def _sae() -> SAESettings:
    return SAESettings(architecture="topk", d_sae=512, k=16, steps=1500, batch_size=256)


def _selection() -> SelectionSettings:
    # The probe drops the lowest-scored tenth (the pool's defect rate) rather than rows below
    # probability 0.5: with a few defective rows among the labelled ones, the probe's
    # probabilities are not calibrated enough for a fixed threshold.
    return SelectionSettings(
        clusters=4, mixing="moderate", quality_threshold=None, quality_drop_share=0.1
    )


@dataclass
class SAERLRunConfig:
    data: DataSplits = field(default_factory=DataSplits)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    model_size: str = "micro"
    vocab_size: int = 256
    warm_start: WarmStartConfig = field(default_factory=_warm_start)
    """`base_model` may name a real checkpoint (then every seed starts from it)."""
    labels: LabelSettings = field(default_factory=LabelSettings)
    features: FeatureSettings = field(default_factory=FeatureSettings)
    sae: SAESettings = field(default_factory=_sae)
    selection: SelectionSettings = field(default_factory=_selection)
    """`batch_size` is set to `rl.prompts_per_step`; the label columns by the recipe."""
    rl: RLConfig = field(default_factory=_rl)
    """Shared GRPO settings; model, data, rewards, seed, run_name and runs_root per run."""
    target_accuracy: float | None = None
    """Held-out accuracy whose first step is reported per run; None: vanilla's final mean."""
    run_name: str = "saerl"
    runs_root: str = "runs"


class SAERLRecipe(Recipe):
    title = "SAERL: RL data selection from the policy's own SAE features"
    rerun_may_change = ("seeds", "variants", "target_accuracy")
    config: SAERLRunConfig

    def check(self, config: SAERLRunConfig) -> None:
        unknown = [v for v in config.variants if v not in VARIANTS]
        if unknown:
            raise InputError(f"unknown {unknown}; choose from {list(VARIANTS)}", key="variants")
        if not config.seeds:
            raise InputError("at least one seed", key="seeds")
        if "transfer" in config.variants and len(config.seeds) < 2:
            raise InputError("the transfer variant needs two or more seeds", key="variants")
        if config.labels.difficulty not in ("pass_rate", "column"):
            raise InputError(
                f"{config.labels.difficulty!r}: pass_rate or column", key="labels.difficulty"
            )
        if config.labels.budget < 10:
            raise InputError(f"{config.labels.budget}: at least 10 rows", key="labels.budget")
        split = config.data
        clean_needed = split.warm_start_rows + split.validation_rows
        if clean_needed >= split.problems.n_train:
            raise InputError(
                f"warm_start_rows + validation_rows = {clean_needed} leave no RL pool of the"
                f" {split.problems.n_train} training problems",
                key="data.warm_start_rows",
            )

    # ------------------------------------------------------------------ data

    def __init__(self, config: SAERLRunConfig, console: Console | None = None) -> None:
        super().__init__(config, console)
        self._rows: dict[str, list[dict[str, Any]]] = {}

    @property
    def data_dir(self) -> Path:
        return self.run.path / "data"

    def data(self) -> dict[str, Any]:
        """warm_start.jsonl, validation.jsonl, pool.jsonl, test.jsonl and the tokenizer
        corpus, written once. The warm-start and validation rows are clean training rows
        that no defect copies (a duplicate in the pool may copy one: that is its defect)."""

        def build(scratch: Path) -> None:
            split = self.config.data
            train, test = make_math_splits(split.problems)
            clean = [r for r in train if r["quality_ok"]]
            first = clean[: split.warm_start_rows + split.validation_rows]
            taken = {r["id"] for r in first}
            pool = [r for r in train if r["id"] not in taken]
            write_jsonl(scratch / "warm_start.jsonl", first[: split.warm_start_rows])
            write_jsonl(scratch / "validation.jsonl", first[split.warm_start_rows :])
            write_jsonl(scratch / "pool.jsonl", pool)
            write_jsonl(scratch / "test.jsonl", test)
            corpus = [{"text": t} for t in tokenizer_corpus(split.problems)]
            write_jsonl(scratch / "tokenizer_corpus.jsonl", corpus)
            stats = {
                "warm_start": split.warm_start_rows,
                "validation": len(first) - split.warm_start_rows,
                "pool": len(pool),
                "pool_defects": sum(not r["quality_ok"] for r in pool),
                "test": len(test),
            }
            write_jsonl(scratch / "stats.jsonl", [stats])

        self.built_dir("data", "stats.jsonl", build)
        return read_jsonl(self.data_dir / "stats.jsonl")[0]

    def rows(self, name: str) -> list[dict[str, Any]]:
        """The data file `name`, read once (data/ is written once, before any reader)."""
        if name not in self._rows:
            self._rows[name] = read_jsonl(self.data_dir / f"{name}.jsonl")
        return self._rows[name]

    # ------------------------------------------------------------------ policy

    def policy(self, seed: int) -> tuple[str, dict[str, Any]]:
        config = self.config
        base = config.warm_start.base_model or self.tiny_model(
            f"base-model-seed{seed}",
            lambda: [r["text"] for r in self.rows("tokenizer_corpus")],
            size=config.model_size,
            vocab_size=config.vocab_size,
            seed=seed,
        )
        settings = replace(
            config.warm_start,
            base_model=base,
            train_file=str(self.data_dir / "warm_start.jsonl"),
            validation_file=str(self.data_dir / "validation.jsonl"),
            test_file=str(self.data_dir / "test.jsonl"),
            seed=seed,
        )
        result = self.logged_warm_start(f"warm-start-seed{seed}", settings)
        return str(result.model_dir), {
            "test_accuracy": result.accuracy,
            "stopped_at_step": result.stopped_at_step,
            "train_seconds": result.train_seconds,
        }

    # ------------------------------------------------------------------ labels, features

    def label_subset(self) -> list[int]:
        """The labelled pool rows: one seeded subset, the same for every seed and policy."""
        pool = self.rows("pool")
        budget = min(self.config.labels.budget, len(pool))
        rng = np.random.default_rng(self.config.labels.seed)
        return sorted(int(i) for i in rng.choice(len(pool), budget, replace=False))

    def pass_rates(self, seed: int, model_dir: str) -> dict[str, float] | None:
        """The policy's pass rate on each labelled row (row id -> share of correct answers);
        None when the labels are the rows' difficulty column. A policy that passes every
        labelled row equally often gives no difficulty signal: an InputError."""
        if self.config.labels.difficulty == "column":
            return None
        rates = self._pass_rates(seed, model_dir)
        if len(set(rates.values())) == 1:
            share = next(iter(rates.values()))
            raise InputError(
                f"the seed-{seed} policy passes {share:.0%} of every one of the {len(rates)}"
                " labelled rows: no difficulty signal. Warm-start it further (warm_start.steps,"
                " warm_start.stop_at_accuracy) or label with the rows' difficulty column"
                " (labels.difficulty: column)",
                key="labels.difficulty",
            )
        return rates

    def _pass_rates(self, seed: int, model_dir: str) -> dict[str, float]:

        def compute() -> dict[str, float]:
            from posttrain.models.chat.base import GenerationParams
            from posttrain.models.chat.hf import HFChat
            from posttrain.rewards.builtin import exact_match

            pool = self.rows("pool")
            chosen = [pool[i] for i in self.label_subset()]
            samples = self.config.labels.samples
            chat = HFChat(model_dir, device="cpu")
            params = GenerationParams(
                n=samples, temperature=1.0, max_tokens=self.config.rl.rollout.max_tokens, seed=seed
            )
            results = chat.chat([r["prompt"] for r in chosen], params)
            rates = {}
            for row, result in zip(chosen, results, strict=True):
                texts = [c.text for c in result.choices]
                scores = exact_match(
                    [row["prompt"]] * samples, texts, answer=[row["answer"]] * samples
                )
                rates[row["id"]] = float(np.mean([s or 0.0 for s in scores]))
            return rates

        return self.cached_json(f"pass-rates-seed{seed}.json", compute)

    def features(self, seed: int, model_dir: str) -> dict[str, Any]:
        """Pooled activations, the SAE's codes and TF-IDF of the pool for one policy, saved as
        .npy in features-seedN/ with the SAE (SAELens's format) and its metrics."""
        from posttrain.features.activations import middle_layer, pooled_activations
        from posttrain.features.sae import encode, sae_metrics, save_sae, train_sae
        from posttrain.features.text_features import tfidf_features

        out = self.run.path / f"features-seed{seed}"
        names = {kind: out / f"{kind}.npy" for kind in FEATURE_KINDS}
        if all(p.exists() for p in names.values()):
            return {k: np.load(p) for k, p in names.items()} | {
                "cost": read_jsonl(out / "cost.jsonl")[0]
            }
        out.mkdir(parents=True, exist_ok=True)
        pool = self.rows("pool")
        layer = self.config.features.layer
        if layer is None:
            layer = middle_layer(model_dir)
        started = time.perf_counter()
        # No activation cache of its own: raw.npy below is the cache of this stage.
        raw = pooled_activations(
            model_dir, pool, layer, self.config.features.pooling, self.config.features.batch_size
        )
        activations_s = time.perf_counter() - started
        started = time.perf_counter()
        sae = train_sae(raw, replace(self.config.sae, seed=seed))
        codes = encode(sae, raw)
        sae_s = time.perf_counter() - started
        metrics = sae_metrics(sae, raw)
        save_sae(sae, out / "sae", metrics)
        tfidf = tfidf_features(pool)
        for kind, matrix in (("sae", codes), ("raw", raw), ("tfidf", tfidf)):
            np.save(names[kind], np.asarray(matrix, dtype=np.float32))
        cost = {
            "layer": layer,
            "activations_s": activations_s,
            "sae_train_s": sae_s,
            "sae": metrics.to_dict(),
        }
        write_jsonl(out / "cost.jsonl", [cost])
        return {"sae": codes, "raw": raw, "tfidf": tfidf, "cost": cost}

    # ------------------------------------------------------------------ selection

    def settings(self, variant: Variant, seed: int) -> SelectionSettings:
        return replace(
            self.config.selection,
            batch_size=self.config.rl.prompts_per_step,
            seed=seed,
            clusters=self.config.selection.clusters if variant.clusters else None,
            curriculum=variant.curriculum,
            quality_filter=variant.quality,
            mixing=variant.mixing,
            difficulty_column="label_difficulty",
            difficulty_higher_is_easier=self.config.labels.difficulty == "pass_rate",
            quality_column="label_quality_ok",
            quality_column_flags_low=False,
            label_budget=None,
            topic_column="topic",
        )

    def labelled_pool(self, rates: dict[str, float] | None) -> list[dict[str, Any]]:
        """The pool with `label_difficulty` (the pass rate, or the row's difficulty when
        `rates` is None) and `label_quality_ok` on the labelled rows only."""
        pool = self.rows("pool")
        chosen = set(self.label_subset())
        return [
            {
                **row,
                "label_difficulty": row["difficulty"] if rates is None else rates[row["id"]],
                "label_quality_ok": row["quality_ok"],
            }
            if i in chosen
            else row
            for i, row in enumerate(pool)
        ]

    def selected_file(
        self, name: str, seed: int, features: dict[str, Any], rates: dict[str, float]
    ) -> tuple[Path, dict[str, Any]]:
        """The prompt file of variant `name` for `seed`, selected with `features` (the
        policy's own, or another seed's for the transfer variant)."""
        path = self.run.path / "selection" / f"{name}-seed{seed}.jsonl"
        report_path = path.with_suffix(".report.jsonl")
        if path.exists() and report_path.exists():
            return path, read_jsonl(report_path)[0]
        rows = self.labelled_pool(rates)
        started = time.perf_counter()
        chosen = select(features["sae"], rows, self.settings(VARIANTS[name], seed))
        report = {**chosen.report, "select_s": time.perf_counter() - started}
        report.pop("settings", None)
        ordered = [
            {k: v for k, v in r.items() if not k.startswith("label_")}
            for r in ordered_rows(rows, chosen)
        ]
        path.parent.mkdir(parents=True, exist_ok=True)
        write_jsonl(path, ordered)
        write_jsonl(report_path, [report])
        return path, report

    def ground_truth(self, seed: int, features: dict[str, Any]) -> dict[str, Any]:
        """Each feature kind's selection fitted on the true difficulty and quality of the
        labelled subset, scored against the truth on every other pool row."""

        def compute() -> dict[str, Any]:
            from sklearn.metrics import r2_score, roc_auc_score

            from posttrain.data.correlation import spearman

            pool = self.rows("pool")
            chosen = set(self.label_subset())
            rows = [
                {**r, "true_difficulty": r["difficulty"], "true_ok": r["quality_ok"]}
                if i in chosen
                else r
                for i, r in enumerate(pool)
            ]
            rest = np.array([i for i in range(len(pool)) if i not in chosen])
            truth = np.array([r["difficulty"] for r in pool], dtype=float)[rest]
            ok = np.array([bool(r["quality_ok"]) for r in pool])[rest]
            settings = replace(
                self.config.selection,
                batch_size=self.config.rl.prompts_per_step,
                seed=seed,
                difficulty_column="true_difficulty",
                quality_column="true_ok",
                label_budget=None,
                curriculum=True,  # both fits are what this stage scores, whatever the config
                quality_filter=True,
            )
            out = {}
            for kind in FEATURE_KINDS:
                matrix = features[kind]
                result = select(matrix, rows, replace(settings, cluster_normalize=kind == "tfidf"))
                predicted = result.difficulty[rest]
                out[kind] = {
                    "difficulty_r2": float(r2_score(truth, predicted)),
                    "difficulty_spearman": spearman(list(truth), list(predicted)),
                    "quality_auc": float(roc_auc_score(ok, result.quality[rest]))
                    if len(set(ok)) == 2
                    else None,
                    "purity": result.report.get("purity"),
                    "adjusted_rand": result.report.get("adjusted_rand"),
                    "silhouette": result.report.get("silhouette"),
                    "dims": int(np.asarray(matrix).shape[1]),
                }
            return out

        return self.cached_json(f"ground-truth-seed{seed}.json", compute)

    # ------------------------------------------------------------------ RL

    def runs(self) -> list[tuple[str, int]]:
        return [(v, s) for v in self.config.variants for s in self.config.seeds]

    def train(self, name: str, seed: int, model_dir: str, prompts: Path, order: str) -> Path:
        settings = replace(
            self.config.rl,
            model=model_dir,
            data=DataConfig(
                train=str(prompts), test=str(self.data_dir / "test.jsonl"), order=order
            ),
            rewards=["exact_match"],
            eval_size=len(self.rows("test")),
            seed=seed,
        )
        return self.train_rl(f"rl-{name}-seed{seed}", settings)

    # ------------------------------------------------------------------ whole run

    def stages(self) -> dict[str, Any]:
        config = self.config
        self.say("[bold]1/6 data[/]: math problems with known difficulty and defects")
        stats = self.data()
        self.say(
            f"    warm start {stats['warm_start']}, pool {stats['pool']}"
            f" ({stats['pool_defects']} defective), held-out {stats['test']}"
        )
        self.say("[bold]2/6 warm start[/] per seed")
        policies, warm = {}, {}
        for seed in config.seeds:
            policies[seed], warm[seed] = self.policy(seed)
            self.say(f"    seed {seed}: held-out accuracy {warm[seed]['test_accuracy']:.1%}")
        self.say("[bold]3/6 labels and features[/]: pass rates, activations, SAE, TF-IDF")
        rates, feats, truth = {}, {}, {}
        for seed in config.seeds:
            rates[seed] = self.pass_rates(seed, policies[seed])
            feats[seed] = self.features(seed, policies[seed])
            truth[seed] = self.ground_truth(seed, feats[seed])
        self.say("[bold]4/6 selection[/] per variant and seed")
        files: dict[tuple[str, int], tuple[Path, dict[str, Any]]] = {}
        for name, seed in self.runs():
            variant = VARIANTS[name]
            if not variant.select:
                continue
            source = self.transfer_source(seed) if variant.transfer else seed
            files[(name, seed)] = self.selected_file(name, seed, feats[source], rates[source])
        self.say("[bold]5/6 RL[/] GRPO per variant and seed")
        for name, seed in self.runs():
            self.say(f"    {name} seed {seed}")
            if VARIANTS[name].select:
                self.train(name, seed, policies[seed], files[(name, seed)][0], "as_written")
            else:
                self.train(name, seed, policies[seed], self.data_dir / "pool.jsonl", "shuffle")
        self.say("[bold]6/6 results[/]")
        results = self.results(warm, feats, truth, files)
        self.run.write_json("results.json", results)
        curves = self.curves()
        self.console.print(self.table(results))
        return {"data": stats, "results": results, "curves": str(curves)}

    def transfer_source(self, seed: int) -> int:
        """The seed whose policy selects for `seed` in the transfer variant: the next one."""
        seeds = self.config.seeds
        return seeds[(seeds.index(seed) + 1) % len(seeds)]

    # ------------------------------------------------------------------ results

    def curve(self, name: str, seed: int) -> list[tuple[int, float]]:
        records = read_metrics(self.run.path / f"rl-{name}-seed{seed}")
        return [(int(r["step"]), float(r["eval_reward"])) for r in records if "eval_reward" in r]

    def final_scores(self, name: str, seed: int) -> dict[str, float]:
        """Per held-out question, the final policy's greedy score (cached in the run)."""
        run = self.run.path / f"rl-{name}-seed{seed}"

        def compute() -> dict[str, float]:
            from posttrain.eval.exact_match import exact_match_accuracy
            from posttrain.models.chat.base import GenerationParams
            from posttrain.models.chat.hf import HFChat

            test = self.rows("test")
            chat = HFChat(run / "checkpoints" / "final", device="cpu")
            params = GenerationParams(max_tokens=self.config.rl.rollout.max_tokens)
            _, records = exact_match_accuracy(chat, test, params)
            return {row["id"]: float(r["correct"]) for row, r in zip(test, records, strict=True)}

        return self.cached_json(f"rl-{name}-seed{seed}/final_scores.json", compute)

    def results(self, warm, feats, truth, files) -> dict[str, Any]:
        config = self.config
        final = {
            name: [statistics.fmean(self.final_scores(name, s).values()) for s in config.seeds]
            for name in config.variants
        }
        target = config.target_accuracy
        if target is None and "vanilla" in final:
            target = statistics.fmean(final["vanilla"])
        comparisons = {}
        if "vanilla" in config.variants:
            base = {s: self.final_scores("vanilla", s) for s in config.seeds}
            for name in config.variants:
                if name != "vanilla":
                    other = {s: self.final_scores(name, s) for s in config.seeds}
                    comparisons[name] = compare_runs(base, other)
        steps_to_target = {
            name: [reached(self.curve(name, s), target) for s in config.seeds]
            for name in config.variants
        }
        step_s = {
            name: statistics.fmean(
                r["time/step_s"]
                for s in config.seeds
                for r in read_metrics(self.run.path / f"rl-{name}-seed{s}")
                if "time/step_s" in r
            )
            for name in config.variants
        }
        selection_s = {
            seed: feats[seed]["cost"]["activations_s"] + feats[seed]["cost"]["sae_train_s"]
            for seed in config.seeds
        }
        return {
            "warm_start": {str(s): warm[s] for s in config.seeds},
            "final_accuracy": {name: spread(v) for name, v in final.items()},
            "target_accuracy": target,
            "steps_to_target": steps_to_target,
            "comparisons": comparisons,
            "ground_truth": {str(s): truth[s] for s in config.seeds},
            "sae": {str(s): feats[s]["cost"]["sae"] for s in config.seeds},
            "selection": {f"{n}-seed{s}": report for (n, s), (_, report) in files.items()},
            "cost": {
                "features_s_per_seed": spread(list(selection_s.values())),
                "select_s": spread([report["select_s"] for _, report in files.values()]),
                "rl_step_s": step_s,
            },
        }

    def curves(self) -> Path:
        panel: dict[str, tuple[list[float], list[float]]] = {}
        for name in self.config.variants:
            per_seed = [dict(self.curve(name, s)) for s in self.config.seeds]
            steps = sorted(set.intersection(*(set(c) for c in per_seed)))
            panel[name] = (
                [float(x) for x in steps],
                [statistics.fmean(c[x] for c in per_seed) for x in steps],
            )
        return plot_curves(
            {"held-out accuracy (mean over seeds)": panel}, self.run.path / "curves.png"
        )

    def table(self, results: dict[str, Any]) -> Table:
        table = Table(title="SAERL: final held-out accuracy")
        for column in ("variant", "accuracy", "vs vanilla (seeds)", "vs vanilla (questions)"):
            table.add_column(column)
        for name, entry in results["final_accuracy"].items():
            compared = results["comparisons"].get(name)
            table.add_row(
                name,
                f"{entry['mean']:.1%} ± {entry['std'] or 0:.1%}",
                describe(compared["welch"]) if compared else "",
                describe(compared["bootstrap"]) if compared else "",
            )
        return table


def spread(values: list[float]) -> dict[str, Any]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else None,
        "per_seed": values,
    }


def reached(curve: list[tuple[int, float]], target: float | None) -> int | None:
    """The first evaluated step whose held-out accuracy reaches `target` (None: never)."""
    if target is None:
        return None
    return next((step for step, value in curve if value >= target - 1e-9), None)


# ---------------------------------------------------------------------- `posttrain saerl select`


@dataclass
class SelectConfig:
    """`posttrain saerl select`: order and filter a user's RL prompts with a model's features."""

    columns: str | None = None
    """Column preset of the data file (`posttrain.data.math_rl_data.PRESETS`); None: detected."""
    limit: int | None = None
    """Read at most this many rows of the data file (None: all)."""
    features: FeatureSettings = field(default_factory=FeatureSettings)
    sae: SAESettings = field(default_factory=_sae)
    sae_dir: str | None = None
    """A trained SAE in SAELens's format to encode with, instead of training one."""
    selection: SelectionSettings = field(
        default_factory=lambda: SelectionSettings(label_budget=200)
    )
    """Difficulty labels: `difficulty_column` where rows have it (DeepMath's `difficulty`);
    quality labels: `quality_column` where rows have it. A component whose column no row has
    is switched off, and the report says so."""


def select_data(model: str, data: str, out: str, config: SelectConfig) -> dict[str, Any]:
    """Pooled activations of `model` on the prompts of `data`, an SAE trained on them (or
    `config.sae_dir`), and the selection stage on its codes; writes OUT/selected.jsonl (the
    rows in training order, for `data.order: as_written`), OUT/report.json and OUT/sae/."""
    import json

    from posttrain.data.math_rl_data import load_math_rl_rows
    from posttrain.features.activations import middle_layer, pooled_activations
    from posttrain.features.sae import encode, load_sae, sae_metrics, save_sae, train_sae

    rows = load_math_rl_rows(data, config.columns, limit=config.limit)
    target = Path(out)
    layer = config.features.layer if config.features.layer is not None else middle_layer(model)
    raw = pooled_activations(
        model,
        rows,
        layer,
        config.features.pooling,
        config.features.batch_size,
        cache_dir=target / "cache",
    )
    if config.sae_dir:
        sae = load_sae(config.sae_dir, d_in=raw.shape[1])
        metrics = sae_metrics(sae, raw)
    else:
        sae = train_sae(raw, config.sae)
        metrics = sae_metrics(sae, raw)
        save_sae(sae, target / "sae", metrics)
    settings = config.selection
    switched_off = []
    if settings.curriculum and all(r.get(settings.difficulty_column) is None for r in rows):
        settings = replace(settings, curriculum=False)
        switched_off.append(f"curriculum (no row has {settings.difficulty_column!r})")
    if settings.quality_filter and all(r.get(settings.quality_column) is None for r in rows):
        settings = replace(settings, quality_filter=False)
        switched_off.append(f"quality filter (no row has {settings.quality_column!r})")
    chosen = select(encode(sae, raw), rows, settings)
    write_jsonl(target / "selected.jsonl", ordered_rows(rows, chosen))
    report = {
        "model": model,
        "data": data,
        "layer": layer,
        "sae": metrics.to_dict(),
        "switched_off": switched_off,
        **chosen.report,
    }
    atomic.write_text(target / "report.json", json.dumps(report, indent=2, default=str))
    return report
