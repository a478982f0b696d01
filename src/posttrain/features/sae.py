"""Sparse autoencoders on pooled activations, through SAELens (SAERL, issue 24 §2).

SAERL encodes each sample's pooled activation with a sparse autoencoder and selects data in
the SAE's feature space. Everything SAE-specific here is SAELens's own (`pip install
posttrain[sae]`): the TopK and standard (ReLU + L1) SAE classes, their losses (TopK's auxiliary
dead-feature loss included), the `SAETrainer` loop with its optimiser, schedules and
activation-norm scaling, and the on-disk format (`cfg.json` + `sae_weights.safetensors`,
written by the inference SAE's `save_model`, read by `SAE.load_from_disk`). SAELens's
`SAETrainer` takes its data as any iterator of activation batches (`DataProvider`), so
training on an in-memory [n, d] matrix needs no language model and no dataset stream:
`train_sae` feeds it seeded random minibatches of the matrix.

One addition of ours: the decoder bias starts at the data mean (SAELens's LM runner starts it
at zero), so a tiny SAE spends its few steps on the variance rather than the offset of the
residual stream; every SAELens architecture has that bias.

The metrics are computed by us on the whole matrix, from `encode` and the SAE's decoder:
explained variance, MSE, mean L0, dead features (never active on the data) and dense
features (active on more than `dense_threshold` of the samples).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from posttrain.errors import InputError

ARCHITECTURES = ("topk", "standard")


@dataclass(frozen=True)
class SAESettings:
    """How to train: `architecture` "topk" (k active features per sample) or "standard"
    (ReLU with an L1 penalty of `l1_coefficient`); `d_sae` features; `steps` Adam steps of
    `batch_size` samples at `lr`; `normalize` scales inputs to a mean norm of sqrt(d_in)
    while training (SAELens's `expected_average_only_in`, folded into the weights at the
    end, so the saved SAE takes raw activations)."""

    architecture: str = "topk"
    d_sae: int = 1024
    k: int = 32
    l1_coefficient: float = 1.0
    steps: int = 2000
    lr: float = 3e-4
    batch_size: int = 256
    normalize: bool = True
    seed: int = 0
    device: str = "cpu"

    def check(self, d_in: int) -> None:
        if self.architecture not in ARCHITECTURES:
            raise InputError(
                f"unknown SAE architecture {self.architecture!r}; choose one of "
                f"{list(ARCHITECTURES)}",
                key="architecture",
            )
        for name in ("d_sae", "steps", "batch_size"):
            if getattr(self, name) < 1:
                raise InputError(f"must be at least 1, got {getattr(self, name)}", key=name)
        if self.architecture == "topk" and not 1 <= self.k <= self.d_sae:
            raise InputError(f"k must be in 1..d_sae ({self.d_sae}), got {self.k}", key="k")
        if self.lr <= 0 or self.l1_coefficient < 0:
            raise InputError("lr must be > 0 and l1_coefficient >= 0", key="lr")
        if d_in < 1:
            raise InputError("the activations have no columns", key="d_in")


@dataclass(frozen=True)
class SAEMetrics:
    """Reconstruction and sparsity of an SAE on a matrix of activations."""

    n: int
    d_in: int
    d_sae: int
    explained_variance: float
    mse: float
    mean_l0: float
    dead_features: int
    dense_features: int
    dense_threshold: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _as_matrix(activations: Any) -> np.ndarray:
    matrix = np.asarray(activations, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] == 0:
        raise InputError(f"activations must be a non-empty [n, d] matrix, got {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise InputError("activations contain NaN or infinity")
    return matrix


def _batches(data: torch.Tensor, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
    """SAELens's DataProvider over a matrix: endless seeded random minibatches."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        yield data[torch.randint(len(data), (batch_size,), generator=generator)]


def train_sae(activations: Any, settings: SAESettings | None = None, **options: Any):
    """An SAELens SAE (inference class: `TopKSAE` or `StandardSAE`) trained on the rows of
    `activations` ([n, d_in]) by SAELens's `SAETrainer`; `options` override `settings`."""
    from sae_lens import (
        LoggingConfig,
        SAETrainer,
        StandardTrainingSAE,
        StandardTrainingSAEConfig,
        TopKTrainingSAE,
        TopKTrainingSAEConfig,
    )
    from sae_lens.config import SAETrainerConfig

    settings = SAESettings(**{**asdict(settings or SAESettings()), **options})
    matrix = _as_matrix(activations)
    settings.check(matrix.shape[1])
    common = {
        "d_in": matrix.shape[1],
        "d_sae": settings.d_sae,
        "device": settings.device,
        # fit() scales the inputs when this is set (the factor is ours, below).
        "normalize_activations": "expected_average_only_in" if settings.normalize else "none",
    }
    if settings.architecture == "topk":
        config = TopKTrainingSAEConfig(k=settings.k, **common)
        sae_class = TopKTrainingSAE
    else:
        config = StandardTrainingSAEConfig(l1_coefficient=settings.l1_coefficient, **common)
        sae_class = StandardTrainingSAE
    data = torch.from_numpy(matrix).to(settings.device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        sae = sae_class(config)
    trainer_config = SAETrainerConfig(
        total_training_samples=settings.steps * settings.batch_size,
        train_batch_size_samples=settings.batch_size,
        lr=settings.lr,
        lr_end=settings.lr,  # a constant schedule
        device=settings.device,
        # "Dead" for SAELens's TopK auxiliary loss: silent for a quarter of the run.
        dead_feature_window=max(1, min(1000, settings.steps // 4)),
        feature_sampling_window=settings.steps,
        logger=LoggingConfig(log_to_wandb=False),
        n_batches_for_norm_estimate=100,
    )
    trainer = SAETrainer(
        trainer_config, sae, _batches(data, settings.batch_size, settings.seed + 1)
    )
    scale = 1.0
    if settings.normalize:
        # SAELens's own factor, sqrt(d_in) / mean norm, from the whole matrix rather than
        # sampled batches; `fit` keeps a factor already set and folds it in at the end.
        scale = matrix.shape[1] ** 0.5 / float(data.norm(dim=1).mean().clamp(min=1e-12))
        trainer.activation_scaler.scaling_factor = scale
    with torch.no_grad():
        sae.b_dec.copy_(data.mean(0) * scale)
    trained = trainer.fit()
    return _inference_copy(trained)


def _inference_copy(training_sae):
    """The inference SAE SAELens would save and load for a trained one, without the disk."""
    from sae_lens import SAE

    config = training_sae.cfg.get_inference_sae_cfg_dict()
    state = training_sae.state_dict()
    training_sae.process_state_dict_for_saving_inference(state)
    sae_class = SAE.get_sae_class_for_architecture(config["architecture"])
    sae = sae_class(
        SAE.get_sae_config_class_for_architecture(config["architecture"]).from_dict(config)
    )
    sae.process_state_dict_for_loading(state)
    sae.load_state_dict(state)
    return sae.eval()


# --------------------------------------------------------------------------- use


def check_width(sae: Any, width: int, path: str | Path | None = None) -> None:
    """An InputError naming both widths (and the SAE's directory) when they differ."""
    d_in = int(sae.cfg.d_in)
    if d_in != width:
        raise InputError(
            f"the SAE takes inputs of width d_in={d_in} but the activations have width {width}",
            path if path is not None else getattr(sae, "posttrain_path", None),
            key="d_in",
        )


@torch.no_grad()
def encode(sae: Any, activations: Any, batch_size: int = 4096) -> np.ndarray:
    """[n, d_sae] float32 feature activations of the rows of `activations`."""
    matrix = _as_matrix(activations)
    check_width(sae, matrix.shape[1])
    device = sae.W_dec.device
    parts = [
        sae.encode(torch.from_numpy(matrix[i : i + batch_size]).to(device)).float().cpu().numpy()
        for i in range(0, len(matrix), batch_size)
    ]
    return np.concatenate(parts)


@torch.no_grad()
def decode(sae: Any, features: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    device = sae.W_dec.device
    parts = [
        sae.decode(torch.from_numpy(features[i : i + batch_size]).to(device)).float().cpu().numpy()
        for i in range(0, len(features), batch_size)
    ]
    return np.concatenate(parts)


def sae_metrics(sae: Any, activations: Any, dense_threshold: float = 0.5) -> SAEMetrics:
    """Explained variance (1 - residual / total sum of squares about the data mean), MSE
    (per element), mean L0, dead features (active on no sample) and dense features (active on
    more than `dense_threshold` of the samples), all over `activations`."""
    if not 0 <= dense_threshold <= 1:
        raise InputError(f"must be in [0, 1], got {dense_threshold}", key="dense_threshold")
    matrix = _as_matrix(activations)
    features = encode(sae, matrix)
    residual = matrix.astype(np.float64) - decode(sae, features)
    centred = matrix - matrix.mean(0, dtype=np.float64)
    total = float((centred**2).sum())
    active = features != 0
    share = active.mean(0)
    return SAEMetrics(
        n=len(matrix),
        d_in=matrix.shape[1],
        d_sae=features.shape[1],
        explained_variance=1.0 - float((residual**2).sum()) / total if total > 0 else 0.0,
        mse=float((residual**2).mean()),
        mean_l0=float(active.sum(1).mean()),
        dead_features=int((share == 0).sum()),
        dense_features=int((share > dense_threshold).sum()),
        dense_threshold=dense_threshold,
    )


# --------------------------------------------------------------------------- disk


def save_sae(sae: Any, path: str | Path, metrics: SAEMetrics | None = None) -> Path:
    """Write `sae` in SAELens's format (its weights and config files) to the directory `path`,
    and our metrics beside them (`posttrain_metrics.json`, which SAELens ignores)."""
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    sae.save_model(out)
    if metrics is not None:
        (out / "posttrain_metrics.json").write_text(json.dumps(metrics.to_dict(), indent=1) + "\n")
    return out


def load_sae(path: str | Path, d_in: int | None = None, device: str = "cpu"):
    """An SAE saved in SAELens's format in the directory `path` (ours, or any SAELens SAE), by
    `SAE.load_from_disk`. With `d_in` (the activations' width) a mismatch is an InputError
    naming both widths and the path."""
    from sae_lens import SAE

    root = Path(path)
    if not root.is_dir():
        raise InputError("no such SAE directory", root, key="sae")
    try:
        sae = SAE.load_from_disk(str(root), device=device)
    except (FileNotFoundError, KeyError, json.JSONDecodeError) as err:
        raise InputError(f"not an SAELens SAE directory: {err}", root, key="sae") from None
    sae.posttrain_path = str(root)  # so a later width error can name the file
    if d_in is not None:
        check_width(sae, d_in, root)
    return sae.eval()
