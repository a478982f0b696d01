"""Loading pushed weights into a served model (`POST /v1/weights`).

The trainer saves a checkpoint (or a state dict) under the server's `--weights-root` and
tells the server where it is; the server checks every tensor against the live model (names,
shapes, dtypes, finite values) before it changes anything, then copies them in place, so
generation continues with the same module, tokenizer and KV-cache set-up.

Paths outside the weights root are refused before anything is read, with one answer
whether or not they exist: the endpoint is no way to probe the server's disk.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from posttrain.models.server.errors import APIError

LOAD_FORMATS = ("auto", "safetensors", "pt")


def resolve_weights_path(path: str, root: Path | None, param: str = "path") -> Path:
    """`path` (absolute, or relative to `root`) with links resolved; it must lie in `root`."""
    if root is None:
        raise APIError(
            "This server takes no weight pushes: start it with --weights-root DIR to accept "
            "checkpoints from under DIR.",
            status=403,
            param=param,
            code="weight_push_disabled",
            type_="permission_error",
        )
    if "\x00" in path:  # no file name holds one; os.path would raise
        raise APIError(f"{path!r} holds a NUL character", param=param)
    real_root = Path(os.path.realpath(root))
    candidate = Path(path)
    real = Path(os.path.realpath(candidate if candidate.is_absolute() else real_root / candidate))
    if not real.is_relative_to(real_root):
        raise APIError(
            f"{path!r} is not under this server's weights root (--weights-root); only "
            "checkpoints saved there can be pushed.",
            status=403,
            param=param,
            code="path_not_allowed",
            type_="permission_error",
        )
    return real


def read_state_dict(
    path: str | Path,
    load_format: str | None = None,
    shown: str | None = None,
    param: str = "path",
) -> dict[str, torch.Tensor]:
    """Tensors from a checkpoint directory or a single state-dict file (already resolved
    by `resolve_weights_path`); `shown` is the path as the client gave it.

    `load_format` (SGLang's and vLLM's name) narrows what is accepted: "safetensors" files
    only, or "pt" (`.pt` / `.bin` state dicts) only; None or "auto" takes either.
    """
    path = Path(path)
    shown = shown or str(path)
    fmt = load_format or "auto"
    if fmt not in LOAD_FORMATS:
        raise APIError(
            f"load_format {load_format!r} is not supported; use one of {', '.join(LOAD_FORMATS)}",
            param="load_format",
        )
    if fmt == "pt" and (path.is_dir() or path.suffix not in (".pt", ".bin")):
        raise APIError(f"load_format 'pt' needs a .pt or .bin file, got {shown}", param=param)
    if fmt == "safetensors" and not (path.is_dir() or path.suffix == ".safetensors"):
        raise APIError(
            f"load_format 'safetensors' needs a directory or a .safetensors file, got {shown}",
            param=param,
        )
    if path.is_dir():
        files = sorted(path.glob("*.safetensors"))
        if not files:
            raise APIError(f"{shown} holds no *.safetensors weights", param=param)
        return {k: v for file in files for k, v in _read(file, shown, param).items()}
    if path.suffix in (".safetensors", ".pt", ".bin") and path.is_file():
        return _read(path, shown, param)
    raise APIError(f"no checkpoint directory or .safetensors/.pt file at {shown}", param=param)


def _read(file: Path, shown: str, param: str) -> dict[str, torch.Tensor]:
    """One weights file; a file that is not one (corrupt, or pickled objects that
    `weights_only` refuses) is the client's error, not the server's."""
    where = shown if Path(shown).name == file.name else f"{shown}: {file.name}"
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(file))
        else:
            state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # safetensors, pickle and torch raise many kinds
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise APIError(
            f"{where} could not be read as weights ({type(exc).__name__}"
            + (f": {reason})" if reason else ")"),
            param=param,
        ) from exc
    if not isinstance(state, dict):
        raise APIError(f"{where} does not hold a state dict", param=param)
    return state


def check_state(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every tensor of `state`, checked against `model` and converted to its dtype (on the
    CPU): every served tensor must be covered, with the same shape, a compatible dtype and,
    once converted, finite values. Raises APIError naming the first problem.

    Tied weights (an lm_head that shares the embedding) may be missing from the file, as
    `save_pretrained` leaves them out.
    """
    own = model.state_dict()
    odd = next((k for k in state if not isinstance(k, str)), None)
    if odd is not None:
        raise APIError(f"the pushed state dict has a non-string key {odd!r}", param="path")
    unknown = sorted(set(state) - set(own))
    if unknown:
        raise APIError(f"weights for unknown tensors, e.g. {unknown[0]!r}", param="path")
    tied = {"lm_head.weight"} if getattr(model.config, "tie_word_embeddings", False) else set()
    missing = sorted(set(own) - set(state) - tied)
    if missing:
        raise APIError(f"the pushed weights lack {missing[0]!r}", param="path")
    staged = {}
    for name, tensor in state.items():
        target = own[name]
        if not isinstance(tensor, torch.Tensor) or tensor.layout != torch.strided:
            raise APIError(
                f"{name!r} is not a dense tensor ({type(tensor).__name__})", param="path"
            )
        if target.shape != tensor.shape:
            raise APIError(
                f"{name!r} has shape {tuple(tensor.shape)}, the served model {tuple(target.shape)}",
                param="path",
            )
        floating = target.dtype.is_floating_point
        if (floating and not tensor.dtype.is_floating_point) or (
            not floating and tensor.dtype != target.dtype
        ):
            raise APIError(
                f"{name!r} is {tensor.dtype}, which cannot stand for the served {target.dtype}",
                param="path",
            )
        converted = tensor.detach().to(device="cpu", dtype=target.dtype)
        if floating and not bool(torch.isfinite(converted).all()):
            raise APIError(
                f"{name!r} holds NaN or infinite values (as {target.dtype}); the served "
                "weights are unchanged",
                param="path",
                code="non_finite_weights",
            )
        staged[name] = converted
    return staged


@torch.no_grad()
def commit_state(model: torch.nn.Module, staged: dict[str, torch.Tensor]) -> int:
    """Copy tensors from `check_state` into `model` in place; returns how many."""
    own = model.state_dict()
    for name, tensor in staged.items():
        own[name].copy_(tensor)
    return len(staged)


def load_into(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> int:
    """`check_state`, then `commit_state` (the RL engines' in-process weight loads)."""
    return commit_state(model, check_state(model, state))
