"""Judge–human consistency, computed as RPC-Bench's `consistency/consistency.py` computes it.

Inputs: human pairwise preferences (JSON lines ``id, part_idx, file_a, file_b, better``,
``better`` naming a model or ``tie``) and, per judge, a folder of score files, one per
answering model, named ``<model>_score.json`` (the model is the file name up to its first
``_``), each line ``id, part_idx, predicted_answer, score``. ``score`` is one judge reply or a
list of them (RPC-Bench stores one per dimension); later replies override earlier ones.

Per item the judge's value is the F1 of its Correctness and Completeness ratings, 0 when the
answer is empty or either rating cannot be read. Per model, the mean over its items. Humans:
Bradley–Terry strengths fitted by `choix.ilsr_pairwise` (alpha 0.01) on the non-tie
preferences, models indexed in sorted name order. Then, over the models both sides have:
Pearson and Spearman correlation of judge means with human strengths, each rescaled to
(r + 1) / 2 (undefined when either side is constant or fewer than two models), and the ROC
AUC of per-item score differences (a − b) against "a was preferred", over non-tie pairs both
of whose items were scored. ``avg`` is the mean of whichever of the three are defined.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from posttrain.data.io import DataError, iter_jsonl
from posttrain.eval.rpc.data import item_key
from posttrain.eval.rpc.judge import parse_rating

METRICS = ("Pearson_BT", "Spearman_BT", "Pairwise_auc", "avg")
SCORE_SUFFIXES = (".json", ".jsonl")


def _json_lines(path: Path, fields: tuple[str, ...]) -> list[dict[str, Any]]:
    rows = []
    for number, row in iter_jsonl(path):
        missing = [f for f in fields if f not in row]
        if missing:
            raise DataError(f"{path}:{number}: missing field {missing[0]!r}")
        rows.append(row)
    return rows


def item_f1(row: dict[str, Any]) -> float:
    """The judge's F1 of correctness and completeness for one answered item (0–5)."""
    if row.get("predicted_answer", "") == "":
        return 0.0
    replies = row.get("score")
    correctness = completeness = None
    for reply in replies if isinstance(replies, list) else [replies]:
        value = parse_rating(reply, "Correctness")
        correctness = value if value is not None else correctness
        value = parse_rating(reply, "Completeness")
        completeness = value if value is not None else completeness
    if correctness is None or completeness is None or correctness + completeness <= 0:
        return 0.0
    return 2 * correctness * completeness / (correctness + completeness)


def load_judge_dir(path: str | Path) -> dict[str, dict[str, float]]:
    """``{answering model: {item key: F1}}`` from one judge's folder of score files."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"judge folder not found: {path}")
    files = sorted(p for p in path.iterdir() if p.suffix in SCORE_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"{path}: no <model>_score.json files")
    scores: dict[str, dict[str, float]] = {}
    for file in files:
        model = file.name.split("_")[0]
        rows = _json_lines(file, ("id", "part_idx"))
        scores.setdefault(model, {}).update(
            {item_key(r["id"], r["part_idx"]): item_f1(r) for r in rows}
        )
    return scores


def load_pairwise(path: str | Path) -> list[dict[str, Any]]:
    """Human preferences, each ``{a, b, better, key}``."""
    rows = _json_lines(Path(path), ("id", "part_idx", "file_a", "file_b", "better"))
    return [
        {
            "a": r["file_a"],
            "b": r["file_b"],
            "better": r["better"],
            "key": item_key(r["id"], r["part_idx"]),
        }
        for r in rows
    ]


def _is_tie(better: Any) -> bool:
    return str(better).lower() == "tie"


def bradley_terry(pairs: list[dict[str, Any]]) -> dict[str, float]:
    """Human BT strengths per model (zeros when no decisive preference exists)."""
    import choix

    models = sorted({p["a"] for p in pairs} | {p["b"] for p in pairs})
    index = {m: i for i, m in enumerate(models)}
    wins = [
        (index[p["better"]], index[p["b"] if p["better"] == p["a"] else p["a"]])
        for p in pairs
        if not _is_tie(p["better"]) and p["better"] in (p["a"], p["b"])
    ]
    if len(models) < 2 or not wins:
        return dict.fromkeys(models, 0.0)
    strengths = choix.ilsr_pairwise(len(models), wins, alpha=0.01)
    return {m: float(strengths[index[m]]) for m in models}


def _rescaled_correlation(kind: str, x: list[float], y: list[float]) -> float:
    from scipy.stats import pearsonr, spearmanr

    if len(x) < 2 or np.allclose(x, x[0]) or np.allclose(y, y[0]):
        return math.nan
    value = float((pearsonr if kind == "pearson" else spearmanr)(x, y)[0])
    return (value + 1) / 2 if math.isfinite(value) else math.nan


def pairwise_auc(pairs: list[dict[str, Any]], scores: dict[str, dict[str, float]]) -> float:
    """ROC AUC of item score differences against the human choice (NaN if one-sided)."""
    from sklearn.metrics import roc_auc_score

    truth, margin = [], []
    for p in pairs:
        a, b = scores.get(p["a"], {}), scores.get(p["b"], {})
        if _is_tie(p["better"]) or p["key"] not in a or p["key"] not in b:
            continue
        truth.append(1 if p["better"] == p["a"] else 0)
        margin.append(a[p["key"]] - b[p["key"]])
    if len(set(truth)) < 2:
        return math.nan
    return float(roc_auc_score(truth, margin))


def judge_consistency(
    pairs: list[dict[str, Any]], scores: dict[str, dict[str, float]]
) -> dict[str, float]:
    """The four metrics for one judge (NaN where undefined)."""
    human = bradley_terry(pairs)
    means = {m: float(np.mean(list(s.values()))) for m, s in scores.items() if s}
    common = [m for m in sorted(human) if m in means]
    judge_side, human_side = [means[m] for m in common], [human[m] for m in common]
    result = {
        "Pearson_BT": _rescaled_correlation("pearson", judge_side, human_side),
        "Spearman_BT": _rescaled_correlation("spearman", judge_side, human_side),
        "Pairwise_auc": pairwise_auc(pairs, scores),
    }
    defined = [v for v in result.values() if math.isfinite(v)]
    result["avg"] = float(np.mean(defined)) if defined else math.nan
    return result


def consistency_table(pairwise: str | Path, judge_dirs: list[str | Path]) -> dict[str, Any]:
    """``{"judges": {folder name: metrics}, "models": [...], "human_bt": {...}}``."""
    pairs = load_pairwise(pairwise)
    if not pairs:
        raise DataError(f"{pairwise}: no pairwise preferences")
    names = [Path(d).name for d in judge_dirs]
    if len(set(names)) != len(names):
        raise ValueError(f"judge folders must have distinct names, got {names}")
    judges = {
        name: judge_consistency(pairs, load_judge_dir(d))
        for name, d in zip(names, judge_dirs, strict=True)
    }
    return {"judges": judges, "human_bt": bradley_terry(pairs)}
