"""The `posttrain` command: one sub-command per tool and recipe. Nothing imports this module.

A command parses its arguments, loads its config, calls a stage (or a recipe) and prints.
Each recipe's `posttrain <name> run` is generated from the recipe table,
`posttrain.recipes.RECIPES`; a recipe's other sub-commands are written here. Heavy imports
(torch, transformers) happen inside each command, so `posttrain --help` answers at once.
"""

from __future__ import annotations

import os

from posttrain.cli.app import app

# Each module registers its commands on `app`; `--help` lists them in this order.
# isort: off
from posttrain.cli import tools  # noqa: F401, E402
from posttrain.cli import recipes  # noqa: F401, E402
from posttrain.cli import benchmarks  # noqa: F401, E402
from posttrain.cli import maic  # noqa: F401, E402
# isort: on

__all__ = ["app", "main"]


def main() -> None:
    """The `posttrain` command. Offline and without telemetry unless the caller's environment
    says otherwise; set here, before any Hugging Face library loads, not on `import
    posttrain`, so that library users keep their own settings."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    app()
