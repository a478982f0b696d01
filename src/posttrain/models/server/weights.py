"""Loading pushed weights into a served model (`POST /v1/weights`).

The trainer saves a checkpoint (or a state dict) and tells the server where it is; the
server copies the tensors into the live model in place, so generation continues with the
same module, tokenizer and KV-cache set-up, and reports the new `weight_version`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from posttrain.models.server.errors import APIError

LOAD_FORMATS = ("auto", "safetensors", "pt")


def read_state_dict(path: str | Path, load_format: str | None = None) -> dict[str, torch.Tensor]:
    """Tensors from a checkpoint directory or a single state-dict file.

    `load_format` (SGLang's and vLLM's name) narrows what is accepted: "safetensors" files
    only, or "pt" (`.pt` / `.bin` state dicts) only; None or "auto" takes either.
    """
    fmt = load_format or "auto"
    if fmt not in LOAD_FORMATS:
        raise APIError(
            f"load_format {load_format!r} is not supported; use one of {', '.join(LOAD_FORMATS)}",
            param="load_format",
        )
    path = Path(path)
    if fmt == "pt" and (path.is_dir() or path.suffix not in (".pt", ".bin")):
        raise APIError(f"load_format 'pt' needs a .pt or .bin file, got {path}", param="path")
    if fmt == "safetensors" and not (path.is_dir() or path.suffix == ".safetensors"):
        raise APIError(
            f"load_format 'safetensors' needs a directory or a .safetensors file, got {path}",
            param="path",
        )
    if path.is_dir():
        files = sorted(path.glob("*.safetensors"))
        if not files:
            raise APIError(f"{path} holds no *.safetensors weights", param="path")
        return {k: v for file in files for k, v in _load_safetensors(file).items()}
    if path.suffix == ".safetensors" and path.is_file():
        return _load_safetensors(path)
    if path.suffix in (".pt", ".bin") and path.is_file():
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict):
            raise APIError(f"{path} does not hold a state dict", param="path")
        return state
    raise APIError(
        f"no checkpoint directory or .safetensors/.pt file at {path}", param="path", status=400
    )


def _load_safetensors(file: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(file))


@torch.no_grad()
def load_into(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> int:
    """Copy `state` into `model`'s parameters; every served tensor must be covered.

    Tied weights (an lm_head that shares the embedding) may be missing from the file, as
    `save_pretrained` leaves them out. Returns the number of tensors copied.
    """
    own = model.state_dict()
    unknown = sorted(set(state) - set(own))
    if unknown:
        raise APIError(f"weights for unknown tensors, e.g. {unknown[0]!r}", param="path")
    tied = {"lm_head.weight"} if getattr(model.config, "tie_word_embeddings", False) else set()
    missing = sorted(set(own) - set(state) - tied)
    if missing:
        raise APIError(f"the pushed weights lack {missing[0]!r}", param="path")
    for name, tensor in state.items():
        if own[name].shape != tensor.shape:
            raise APIError(
                f"{name!r} has shape {tuple(tensor.shape)}, the served model "
                f"{tuple(own[name].shape)}",
                param="path",
            )
    for name, tensor in state.items():
        own[name].copy_(tensor.to(own[name].dtype))
    return len(state)
