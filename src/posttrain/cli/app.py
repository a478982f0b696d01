"""The `posttrain` application object and what its commands share: loading a command's
config, printing a bad input as one line (exit 2), a console sized for logs."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from typer.core import TyperGroup

from posttrain.errors import InputError


class _Commands(TyperGroup):
    """Runs the chosen command; a bad input it meets anywhere (an InputError from a loader:
    config, data file, model directory, run name) is one line and exit 2, not a traceback."""

    def invoke(self, ctx):  # noqa: ANN001, ANN201 - click's signature
        try:
            return super().invoke(ctx)
        except InputError as err:
            raise fail("error", err) from None


app = typer.Typer(
    cls=_Commands,
    help="posttrain: post-training systems end to end, from a 2-core CPU to a cluster.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

SET_HELP = "Override a config key, e.g. --set steps=500 (repeatable)."


def fail(kind: str, err: Exception) -> typer.Exit:
    """Print a bad-input error on one line, in red on stderr; the exit (status 2) for the
    caller to raise."""
    typer.secho(f"{kind}: {' '.join(str(err).split())}", fg="red", err=True)
    return typer.Exit(2)


def load_settings(cls: type, config: Path | None, overrides: list[str] | None):  # noqa: ANN202
    """The command's config from --config and --set; a run name that would leave the runs
    directory is refused here, before any work starts."""
    from posttrain.config import load_config
    from posttrain.runs import check_run_name

    settings = load_config(cls, config, overrides or [])
    if isinstance(getattr(settings, "run_name", None), str):
        check_run_name(settings.run_name)
    return settings


CONFIG_HELP = "YAML config (default: embedded default)."
ALIAS_HELP = "Same as --config (the older positional form)."


def config_file(option: Path | None, positional: Path | None) -> Path | None:
    """`--config FILE`, or the positional CONFIG kept for older scripts; both must agree."""
    if option is not None and positional is not None and option.resolve() != positional.resolve():
        raise InputError(f"two configs given: --config {option} and {positional}; give one")
    return option if option is not None else positional


def console():  # noqa: ANN202
    from rich.console import Console

    # Captured output (CI logs, a pipe) gets tables wide enough not to wrap.
    return Console() if sys.stdout.isatty() else Console(width=120)
