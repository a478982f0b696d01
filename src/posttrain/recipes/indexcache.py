"""IndexCache end to end: train a tiny DSA model, share its indexers, measure what it costs.

IndexCache (THUDM, 2026) keeps the lightning indexer of DeepSeek Sparse Attention in a few
Full (F) layers and lets the Shared (S) layers reuse the top-k indices of the nearest F layer
above them. `posttrain indexcache run` wires the stages on transformers' own DSA architectures
(`arch: glm_moe_dsa` builds a tiny GLM-5 model with `posttrain.models.tiny_dsa`,
`deepseek_v32` a tiny DeepSeek-V3.2; or `model:` a trained directory of either), through
`posttrain.attention.hf_dsa` and `posttrain.attention.hf_train`:

1. the DSA causal LM trained from scratch on Python standard-library sources mixed with
   long-range recall sequences (`posttrain.data.code_corpus`): dense LM pre-training, the
   dense indexer warm-up, DSA's sparse stage;
2. the cross-layer top-k overlap (Jaccard) of its indexers, as a matrix and heat map;
3. the training-free greedy search of the F layers by calibration LM loss; each pattern is
   written into the model's `indexer_types` and saved as a model directory
   (`patterns/<name>`) that `AutoModelForCausalLM` reloads and `posttrain serve` serves;
4. training-aware multi-layer distillation: for each IndexCache pattern, the kept indexers
   (and only they; the model is frozen) continue the dense warm-up against the averaged
   attention of the layers they serve (`distilled/<name>`);
5. held-out LM loss and recall of every variant, and prefill latency, decode throughput,
   indexer calls and FLOPs at each context length, sparse variants with the gathered kernel
   (`posttrain_sparse`; `posttrain.attention.speed`);
6. a report with the heat map, the loss-versus-kept-indexers curves and the speed table.

transformers' DeepSeek-V3.2 always runs every indexer, so on it only the overlap, the losses
and the speed of dense attention and DSA run.

Each stage writes its result into the run directory and is skipped when that result is
there, so an interrupted run resumes; speed rows are appended one at a time.
"""

from __future__ import annotations

import functools
import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from rich.table import Table
from transformers import PreTrainedModel

from posttrain import atomic
from posttrain.attention import hf_dsa, hf_train
from posttrain.attention.dsa import topk_indices
from posttrain.attention.indexcache import (
    FULL,
    greedy_layer_search,
    index_overlap_matrix,
    pattern_from_frequency,
    plot_overlap,
)
from posttrain.attention.speed import Variant, measure_variant
from posttrain.attention.train import DSATrainConfig
from posttrain.data.code_corpus import (
    CodeCorpusConfig,
    aligned_blocks,
    build_lm_corpus,
    token_blocks,
)
from posttrain.eval.core import ItemLog
from posttrain.models.tiny_dsa import DSA_ARCHES, build_tiny_dsa_model
from posttrain.recipes.base import Recipe
from posttrain.report import plot_curves
from posttrain.runs import Run

DENSE = "dense"
DSA = "dsa"


def _demo_training() -> DSATrainConfig:
    # configs/indexcache/tiny.yaml's training (its header says how long a run takes).
    return DSATrainConfig(
        pretrain_steps=400,
        warmup_steps=60,
        sparse_steps=30,
        block_size=256,
        batch_size=8,
        eval_every=100,
        eval_batch_size=8,
    )


@dataclass
class IndexCacheRunConfig:
    model: str | None = None
    """A trained transformers `glm_moe_dsa` / `deepseek_v32` model directory to start from
    (no training); None: train one."""
    arch: str = "glm_moe_dsa"
    """The model to train when `model` is None: a tiny transformers `glm_moe_dsa` (GLM-5) or
    `deepseek_v32` (DeepSeek-V3.2), of `tiny_dsa.DSA_SIZES[model_size]`."""
    model_size: str = "micro"
    vocab_size: int = 1024
    max_positions: int = 16384
    corpus: CodeCorpusConfig = field(default_factory=lambda: CodeCorpusConfig(seq_tokens=256))
    train: DSATrainConfig = field(default_factory=_demo_training)
    heldout_blocks: int = 16
    """Held-out blocks (of `train.block_size` tokens) for every variant's LM loss."""
    calibration_blocks: int = 8
    """Training blocks the greedy search scores patterns on (fixed, cached)."""
    keep: list[float] = field(default_factory=lambda: [0.5, 0.25])
    """Fractions of the indexers to keep; each gives a uniform and a greedy pattern."""
    distill_steps: int = 30
    """Indexer-only multi-layer distillation steps per pattern (0: skip distillation)."""
    lengths: list[int] = field(default_factory=lambda: [512, 1024, 2048, 4096])
    repeats: int = 3
    decode_tokens: int = 16
    threads: int = 2
    """torch threads for the timings (0: leave PyTorch's default)."""
    run_name: str = "indexcache"
    runs_root: str = "runs"


class IndexCacheRecipe(Recipe):
    title = "IndexCache on DeepSeek Sparse Attention"
    rerun_may_change = ("threads", "repeats", "decode_tokens")
    """Timing settings only decide which speed rows are measured again (see `speed`)."""
    config: IndexCacheRunConfig

    def check(self, config: IndexCacheRunConfig) -> None:
        if config.arch not in DSA_ARCHES:
            raise ValueError(f"arch: one of {list(DSA_ARCHES)}, got {config.arch!r}")
        if not config.keep or not all(0.0 < f < 1.0 for f in config.keep):
            raise ValueError(f"keep: fractions in (0, 1) expected, got {config.keep}")
        if not config.lengths or min(config.lengths) < 2:
            raise ValueError(f"lengths: context lengths >= 2 expected, got {config.lengths}")
        if max(config.lengths) > config.max_positions:
            raise ValueError(
                f"lengths: {max(config.lengths)} exceeds max_positions {config.max_positions}"
            )
        if config.repeats < 1 or config.decode_tokens < 1:
            raise ValueError("repeats and decode_tokens must be >= 1")

    # ------------------------------------------------------------------ stages

    @functools.cached_property
    def corpus(self) -> dict[str, Any]:
        """The training and held-out texts (built once: tokenizer, blocks and prompt use it)."""
        return build_lm_corpus(self.config.corpus)

    def data(self, tokenizer: Any) -> dict[str, Any]:
        cfg = self.config
        corpus = self.corpus
        block = cfg.train.block_size
        heldout = token_blocks(tokenizer, corpus["heldout"], block)[: cfg.heldout_blocks]
        code = token_blocks(tokenizer, corpus["train_code"], block)
        recall, skipped = aligned_blocks(
            tokenizer, corpus["recall_train"], block, code.reshape(-1).tolist()
        )
        order = torch.randperm(len(code) + len(recall), generator=torch.Generator().manual_seed(0))
        train = torch.cat([code, recall])[order]
        longest = max(cfg.lengths)
        prompt = token_blocks(tokenizer, corpus["heldout"] + corpus["train"], longest)[:1]
        return {
            "train": train,
            "heldout": heldout,
            "calibration": train[: cfg.calibration_blocks],
            "prompt": prompt,
            "recall": corpus["recall_heldout"],
            "recall_blocks": len(recall),
            "recall_skipped": skipped,
        }

    def model(self) -> tuple[Path, dict[str, Any]]:
        """The trained DSA model directory (given, cached, or trained now)."""
        cfg = self.config
        if cfg.model:
            return Path(cfg.model), {}
        out = self.run.path / "dsa-model"
        record = self.run.path / "training.json"
        if (out / "config.json").exists():
            return out, json.loads(record.read_text()) if record.exists() else {}
        base = build_tiny_dsa_model(
            self.run.path / "base-model",
            self.corpus["train"],
            arch=cfg.arch,
            size=cfg.model_size,
            vocab_size=cfg.vocab_size,
            seed=cfg.train.seed,
            max_positions=cfg.max_positions,
        )
        model, tokenizer = load(base)
        data = self.data(tokenizer)
        started = time.perf_counter()
        with Run(self.run.path / "training") as log:
            log.truncate_metrics_after(-1)  # a restarted training starts over
            history = hf_train.train_dsa(model, data["train"], cfg.train, log, data["heldout"])
        with atomic.staged_dir(out) as scratch:  # trusted once it exists
            model.save_pretrained(scratch)
            tokenizer.save_pretrained(scratch)
        trained = {
            "train_seconds": round(time.perf_counter() - started, 1),
            "recall_blocks": data["recall_blocks"],
            "recall_skipped": data["recall_skipped"],
        }
        for stage, records in history.items():
            held = [r[k] for r in records for k in r if k.endswith("heldout_loss")]
            if held:
                trained[f"{stage}_final_heldout_loss"] = held[-1]
        self.run.write_json("training.json", trained)
        return out, trained

    def overlap(self, model: PreTrainedModel, data: dict[str, Any]) -> dict[str, Any]:
        return self.cached_json("overlap.json", lambda: self._overlap(model, data))

    def _overlap(self, model: PreTrainedModel, data: dict[str, Any]) -> dict[str, Any]:
        """The indexers' top-k overlap between layers on held-out blocks, and its heat map."""
        n = model.config.num_hidden_layers
        ids = data["heldout"][: self.config.train.eval_batch_size]
        k = model.config.index_topk
        with hf_dsa.using_pattern(model, FULL * n):
            matrix = hf_train.overlap_matrix(model, ids)
        chance = _random_overlap(ids.shape, k, seed=self.config.train.seed)
        plot_overlap(
            matrix,
            self.run.path / "overlap.png",
            title=f"Top-{model.config.index_topk} index overlap between layers (held-out)",
        )
        adjacent = [float(matrix[i, i + 1]) for i in range(n - 1)]
        far = [float(matrix[i, j]) for i in range(n) for j in range(i + 2, n)]
        return {
            "matrix": matrix.round(4).tolist(),
            "adjacent_mean": sum(adjacent) / max(1, len(adjacent)),
            "non_adjacent_mean": sum(far) / len(far) if far else None,
            "random_selection_mean": chance,
            "queries_from": k,
        }

    def search(self, model: PreTrainedModel, data: dict[str, Any]) -> list[dict[str, Any]]:
        return self.cached_json("greedy.json", lambda: self._search(model, data))

    def _search(self, model: PreTrainedModel, data: dict[str, Any]) -> list[dict[str, Any]]:
        """The greedy layer search by calibration loss, each step's pattern's held-out loss."""
        n = model.config.num_hidden_layers
        batch = self.config.train.batch_size
        loss_fn = hf_train.calibration_loss_fn(model, data["calibration"], batch)
        # transformers' DeepSeek-V3.2 cannot share top-k: only the all-F pattern exists.
        target = 1 if _shares_topk(model) else n
        history = greedy_layer_search(n, loss_fn, target_full=target)
        held = [hf_train.heldout_loss(model, data["heldout"], p) for _, p, _ in history]
        return [
            {"kept": kept, "pattern": pattern, "calibration_loss": loss, "heldout_loss": h}
            for (kept, pattern, loss), h in zip(history, held, strict=True)
        ]

    def patterns(self, n_layers: int, greedy: list[dict[str, Any]]) -> dict[str, str]:
        """Named IndexCache patterns: uniform (every m-th layer, from 0) and greedy ones."""
        by_kept = {row["kept"]: row["pattern"] for row in greedy}
        named: dict[str, str] = {}
        if len(greedy) == 1:  # no layer could share (transformers' DeepSeek-V3.2)
            return named
        for fraction in self.config.keep:
            label = _fraction_label(fraction)
            kept = max(1, round(fraction * n_layers))
            named[f"uniform-{label}"] = pattern_from_frequency(
                n_layers, max(1, round(n_layers / kept)), offset=1
            )
            named[f"greedy-{label}"] = by_kept[kept]
        return named

    def distil(self, model_dir: Path, name: str, pattern: str, data: dict[str, Any]) -> Path:
        """The DSA model with its kept indexers distilled for ``pattern`` (model frozen)."""
        out = self.run.path / "distilled" / name
        if (out / "config.json").exists():
            return out
        model, tokenizer = load(model_dir)
        settings = replace(
            self.config.train,
            warmup_steps=self.config.distill_steps,
            index_pattern=pattern,
            distill=True,
        )
        # The warm-up applies the pattern: it stays in the modules and `indexer_types`.
        with Run(self.run.path / "distilled" / f"{name}-log") as log:
            log.truncate_metrics_after(-1)
            hf_train.indexer_warmup(model, data["train"], settings, log, data["heldout"])
        with atomic.staged_dir(out) as scratch:  # trusted once it exists
            model.save_pretrained(scratch)
            tokenizer.save_pretrained(scratch)
        return out

    def patterned(self, model_dir: Path, name: str, pattern: str) -> Path:
        """Training-free IndexCache: ``pattern`` written into the model's
        `indexer_types` (shared layers' indexers dropped), saved as a model directory."""

        def build(scratch: Path) -> None:
            model, tokenizer = load(model_dir)
            hf_dsa.apply_pattern(model, pattern).save_pretrained(scratch)
            tokenizer.save_pretrained(scratch)

        return self.built_dir(f"patterns/{name}", "config.json", build)

    def quality(
        self,
        model: PreTrainedModel,
        tokenizer: Any,
        patterns: dict[str, str],
        distilled: dict[str, Path],
        data: dict[str, Any],
    ) -> dict[str, dict[str, Any]]:
        return self.cached_json(
            "quality.json", lambda: self._quality(model, tokenizer, patterns, distilled, data)
        )

    def _quality(
        self,
        model: PreTrainedModel,
        tokenizer: Any,
        patterns: dict[str, str],
        distilled: dict[str, Path],
        data: dict[str, Any],
    ) -> dict[str, dict[str, Any]]:
        """Held-out LM loss and recall of dense attention, DSA and every pattern (training-free
        and distilled), with each loss against DSA's in percent."""
        n = model.config.num_hidden_layers
        held = data["heldout"]

        def measure(m: PreTrainedModel, sparse: bool, pattern: str) -> dict[str, float]:
            recall = hf_train.recall_accuracy(m, tokenizer, data["recall"], pattern, not sparse)
            loss = hf_train.heldout_loss(m, held, pattern, dense=not sparse)
            return {"heldout_loss": loss, **recall}

        rows: dict[str, dict[str, Any]] = {
            DENSE: {"pattern": FULL * n, "training_free": measure(model, False, FULL * n)},
            DSA: {"pattern": FULL * n, "training_free": measure(model, True, FULL * n)},
        }
        for name, pattern in patterns.items():
            rows[name] = {"pattern": pattern, "training_free": measure(model, True, pattern)}
            if name in distilled:
                tuned, _ = load(distilled[name])
                rows[name]["distilled"] = measure(tuned, True, pattern)
        reference = rows[DSA]["training_free"]["heldout_loss"]
        for row in rows.values():
            for kind in ("training_free", "distilled"):
                if kind in row:
                    loss = row[kind]["heldout_loss"]
                    row[kind]["loss_vs_dsa_percent"] = 100.0 * (loss - reference) / reference
        return rows

    def speed(
        self, model: PreTrainedModel, variants: list[Variant], data: dict[str, Any]
    ) -> list[dict]:
        """One row per (variant, length), appended as measured. A row already there is kept
        unless it was timed with other ``repeats`` or ``decode_tokens`` (or torn by a
        crash); then it is measured again and the new row wins."""
        cfg = self.config
        log = ItemLog(self.run.path / "speed.jsonl")
        threads = torch.get_num_threads()
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        try:
            for length in cfg.lengths:
                ids = data["prompt"][:, :length]
                for variant in variants:
                    key = f"{variant.name}@{length}"
                    timing = {"repeats": cfg.repeats, "decode_tokens": cfg.decode_tokens}
                    old = log.records.get(key, {})
                    if all(old.get(k) == v for k, v in timing.items()):
                        continue
                    self.say(f"    {variant.name} at {length} tokens")
                    row = measure_variant(model, ids, variant, cfg.repeats, cfg.decode_tokens)
                    log.append({"key": key, **row, **timing, "threads": torch.get_num_threads()})
        finally:
            torch.set_num_threads(threads)
        return list(log.records.values())

    # ------------------------------------------------------------------ whole run

    def stages(self) -> dict[str, Any]:
        cfg = self.config
        self.say("[bold]1/6 DSA model[/]: dense pre-training, indexer warm-up, sparse stage")
        model_dir, trained = self.model()
        model, tokenizer = load(model_dir)
        n = model.config.num_hidden_layers
        data = self.data(tokenizer)
        self.say(f"    {model_dir} ({n} layers, top-{model.config.index_topk})")
        self.say("[bold]2/6 cross-layer top-k overlap[/]")
        overlap = self.overlap(model, data)
        self.say(
            f"    adjacent layers {overlap['adjacent_mean']:.3f},"
            f" non-adjacent {overlap['non_adjacent_mean'] or float('nan'):.3f},"
            f" random selections {overlap['random_selection_mean']:.3f}"
        )
        self.say("[bold]3/6 greedy layer search[/] (calibration LM loss)")
        greedy = self.search(model, data)
        patterns = self.patterns(n, greedy)
        for name, pattern in patterns.items():
            self.say(f"    {name}: {pattern}")
        self.say(f"[bold]4/6 multi-layer distillation[/] ({cfg.distill_steps} steps per pattern)")
        # training-free patterns as model directories
        saved = {name: self.patterned(model_dir, name, p) for name, p in patterns.items()}
        distilled = {}
        if cfg.distill_steps > 0:
            by_pattern: dict[str, Path] = {}  # a greedy pattern may equal the uniform one
            for name, pattern in patterns.items():
                if pattern not in by_pattern:
                    by_pattern[pattern] = self.distil(model_dir, name, pattern, data)
                distilled[name] = by_pattern[pattern]
        self.say("[bold]5/6 held-out loss and speed[/]")
        quality = self.quality(model, tokenizer, patterns, distilled, data)
        variants = [Variant(DENSE, False, FULL * n), Variant(DSA, True, FULL * n)]
        variants += [Variant(name, True, pattern) for name, pattern in patterns.items()]
        speed = self.speed(model, variants, data)
        self.say("[bold]6/6 report[/]")
        results = summarise(quality, speed, cfg.lengths, cfg.keep)
        results["search"] = [
            {k: row[k] for k in ("kept", "pattern", "calibration_loss")} for row in greedy
        ]
        results["model_dirs"] = {
            **{f"{name} (training-free)": str(path) for name, path in saved.items()},
            **{f"{name} (distilled)": str(path) for name, path in distilled.items()},
        }
        self.figures(greedy, quality, speed, n)
        self.run.write_json("results.json", results)
        self.console.print(render_table(results))
        return {
            "model": str(model_dir),
            **trained,
            "overlap": {
                k: overlap[k]
                for k in ("adjacent_mean", "non_adjacent_mean", "random_selection_mean")
            },
            "patterns": patterns,
            "search": results["search"],
            "goal": results["goal"],
        }

    def figures(self, greedy: list[dict], quality: dict, speed: list[dict], n: int) -> None:
        loss_panels: dict[str, dict[str, tuple[list[float], list[float]]]] = {
            "greedy search: calibration LM loss": {
                "greedy": ([r["kept"] for r in greedy], [r["calibration_loss"] for r in greedy])
            },
            "held-out LM loss": {
                "greedy (training-free)": (
                    [r["kept"] for r in greedy],
                    [r["heldout_loss"] for r in greedy],
                )
            },
        }
        held = loss_panels["held-out LM loss"]
        for family in ("uniform", "greedy"):
            for kind in ("training_free", "distilled"):
                points = [
                    (row["pattern"].count(FULL), row[kind]["heldout_loss"])
                    for name, row in quality.items()
                    if name.startswith(family) and kind in row
                ]
                if points and not (family == "greedy" and kind == "training_free"):
                    label = f"{family} ({kind.replace('_', '-')})"
                    held[label] = ([p[0] for p in sorted(points)], [p[1] for p in sorted(points)])
        held["dense attention"] = ([n], [quality[DENSE]["training_free"]["heldout_loss"]])
        plot_curves(loss_panels, self.run.path / "loss_vs_kept_indexers.png", "kept indexers")
        speed_panels: dict[str, dict[str, tuple[list[float], list[float]]]] = {
            "prefill seconds": {},
            "decode tokens/s": {},
        }
        for row in speed:
            for panel, key in (
                ("prefill seconds", "prefill_seconds"),
                ("decode tokens/s", "decode_tokens_per_second"),
            ):
                xs, ys = speed_panels[panel].setdefault(row["name"], ([], []))
                xs.append(row["length"])
                ys.append(row[key])
        plot_curves(speed_panels, self.run.path / "speed.png", "context length (tokens)")


def _random_overlap(shape: tuple[int, ...], k: int, seed: int) -> float:
    """Mean Jaccard of two independent uniformly random top-k selections over the same causal
    keys (queries from k on): what the overlap heat map would show by chance."""
    g = torch.Generator().manual_seed(seed)
    b, length = shape
    mask = torch.ones(length, length, dtype=torch.bool).tril().logical_not()
    picks = []
    for _ in range(2):
        scores = torch.rand(b, length, length, generator=g).masked_fill(mask, float("-inf"))
        indices, valid = topk_indices(scores, k)
        picks.append((indices[:, k:], valid[:, k:]))
    matrix = index_overlap_matrix([p[0] for p in picks], [p[1] for p in picks])
    return float(matrix[0, 1])


def load(model_dir: str | Path) -> tuple[PreTrainedModel, Any]:
    """A transformers DSA model (`hf_dsa.is_dsa_model`, eval mode) and its tokenizer from a
    directory."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(model_dir)
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"no model config.json in {path}")
    model = AutoModelForCausalLM.from_pretrained(path)
    if not hf_dsa.is_dsa_model(model):
        raise ValueError(f"{path} holds a {type(model).__name__}, not a DSA model")
    return model.eval(), AutoTokenizer.from_pretrained(path)


def _shares_topk(model: torch.nn.Module) -> bool:
    return model.config.model_type in hf_dsa.SHARING_MODEL_TYPES


def summarise(
    quality: dict[str, dict[str, Any]],
    speed: list[dict[str, Any]],
    lengths: list[int],
    keep: list[float],
) -> dict[str, Any]:
    """The speed table (speed-ups against DSA at each length) joined with the losses, and
    the issue's goal: 1/4 of the indexers, >= 1.5x prefill over DSA at the longest length,
    held-out loss within 1% of DSA."""
    by_key = {(r["name"], r["length"]): r for r in speed}
    table = []
    for name, row in quality.items():
        entry: dict[str, Any] = {"variant": name, "pattern": row["pattern"]}
        entry["indexers"] = 0 if name == DENSE else row["pattern"].count(FULL)
        for kind in ("training_free", "distilled"):
            if kind in row:
                entry[f"loss_{kind}"] = round(row[kind]["heldout_loss"], 4)
                entry[f"loss_vs_dsa_%_{kind}"] = round(row[kind]["loss_vs_dsa_percent"], 2)
                entry[f"recall_token_acc_{kind}"] = round(row[kind]["recall_token_accuracy"], 4)
        for length in lengths:
            mine, base = by_key.get((name, length)), by_key.get((DSA, length))
            if mine is None or base is None:
                continue
            entry[f"prefill_s@{length}"] = round(mine["prefill_seconds"], 4)
            speedup = base["prefill_seconds"] / mine["prefill_seconds"]
            entry[f"prefill_x@{length}"] = round(speedup, 3)
            entry[f"decode_tok_s@{length}"] = round(mine["decode_tokens_per_second"], 2)
            entry[f"decode_x@{length}"] = round(
                mine["decode_tokens_per_second"] / base["decode_tokens_per_second"], 3
            )
            entry[f"indexer_gflops@{length}"] = round(mine["indexer_flops_prefill"] / 1e9, 3)
            entry[f"indexer_calls@{length}"] = mine["indexer_calls_per_prefill"]
        table.append(entry)
    longest = max(lengths)
    goal = {}
    quarter = _fraction_label(0.25) if 0.25 in keep else None
    for name in (f"uniform-{quarter}", f"greedy-{quarter}") if quarter else ():
        entry = next((e for e in table if e["variant"] == name), None)
        if entry is None or f"prefill_x@{longest}" not in entry:
            continue
        losses = {
            k: entry[f"loss_vs_dsa_%_{k}"]
            for k in ("training_free", "distilled")
            if f"loss_vs_dsa_%_{k}" in entry
        }
        best = min(losses.values())
        goal[name] = {
            "length": longest,
            "prefill_speedup": entry[f"prefill_x@{longest}"],
            "loss_vs_dsa_percent": losses,
            "met": entry[f"prefill_x@{longest}"] >= 1.5 and best <= 1.0,
        }
    return {"table": table, "goal": goal}


def _fraction_label(fraction: float) -> str:
    denominator = 1.0 / fraction
    if math.isclose(denominator, round(denominator)):
        return f"1/{round(denominator)}"
    return f"{fraction:g}"


def render_table(results: dict[str, Any]) -> Table:
    table = Table(title="IndexCache: held-out loss and speed against DSA (all indexers)")
    rows = results["table"]
    lengths = sorted(
        {int(k.split("@")[1]) for row in rows for k in row if k.startswith("prefill_x@")}
    )
    columns = ["variant", "pattern", "loss (free / distilled)", "Δ vs DSA %"]
    columns += [f"prefill x @{n}" for n in lengths] + [f"decode x @{n}" for n in lengths[-1:]]
    for column in columns:
        table.add_column(column, justify="left" if column in ("variant", "pattern") else "right")
    for row in rows:
        free, tuned = row.get("loss_training_free"), row.get("loss_distilled")
        delta_free = row.get("loss_vs_dsa_%_training_free")
        delta_tuned = row.get("loss_vs_dsa_%_distilled")
        cells = [
            row["variant"],
            row["pattern"],
            f"{free:.4f}" + (f" / {tuned:.4f}" if tuned is not None else ""),
            f"{delta_free:+.2f}" + (f" / {delta_tuned:+.2f}" if delta_tuned is not None else ""),
        ]
        cells += [f"{row.get(f'prefill_x@{n}', float('nan')):.2f}" for n in lengths]
        cells += [f"{row.get(f'decode_x@{n}', float('nan')):.2f}" for n in lengths[-1:]]
        table.add_row(*cells)
    return table
