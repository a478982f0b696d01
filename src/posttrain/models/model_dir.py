"""Checking a model directory before `from_pretrained` sees it.

Given a path that does not exist, transformers tries it as a Hugging Face Hub repo id and
fails several calls deep ("Repo id must use alphanumeric chars", or a connection error when
offline). `require_model_dir` names the problem first: no such directory, or a directory
without a model in it (`posttrain.specs.describe_model_dir` reads what a directory holds).
A Hub name (`org/name`) still passes when it can load: online, or offline when it is in the
local Hub cache.
"""

from __future__ import annotations

import re
from pathlib import Path

from posttrain.errors import InputError
from posttrain.specs import ADAPTER_FILE, CONFIG_FILE, ModelKind, describe_model_dir

_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def require_model_dir(model: str | Path, key: str | None = None) -> str:
    """`model` if `from_pretrained` can load it; otherwise an InputError naming it (`key`:
    the config key or option it came from)."""
    path = Path(model).expanduser()
    if path.is_dir():
        try:
            held = describe_model_dir(path)
        except ValueError as err:  # a config.json that is not JSON: the message names it
            raise InputError(str(err), key=key) from None
        if held.kind is ModelKind.NO_MODEL:
            raise InputError(
                f"not a model directory: it has no {CONFIG_FILE} or {ADAPTER_FILE}", path, key=key
            )
        return str(model)
    if path.exists():
        raise InputError("is a file; expected a model directory", path, key=key)
    if not _HUB_NAME.match(str(model)):
        # With a key ("model: no such directory") the key says what the directory is.
        raise InputError("no such directory" if key else "no such model directory", path, key=key)
    from huggingface_hub import constants, try_to_load_from_cache

    if not constants.HF_HUB_OFFLINE:
        return str(model)  # a Hub name: the Hub answers, and its error names the repo
    if isinstance(try_to_load_from_cache(str(model), CONFIG_FILE), str):
        return str(model)
    raise InputError(
        "no such model directory, nor a Hugging Face Hub model in the local cache "
        "(offline: HF_HUB_OFFLINE is set)",
        path,
        key=key,
    )
