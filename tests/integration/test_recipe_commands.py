"""The recipe table (`posttrain.recipes.RECIPES`) is what the CLI offers: one
`posttrain <name> run` per row, with the row's help, config class and flags, and one demo
config per row, `configs/<name>/tiny.yaml`, that states the config's defaults. In-process and
without running a recipe: `posttrain.cli.recipes._run_recipe` is replaced by a recorder
where a test follows what a command hands on."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from posttrain import cli
from posttrain.cli import recipes as recipe_commands
from posttrain.config import load_config, to_dict
from posttrain.recipes import RECIPES
from posttrain.recipes.base import Recipe

CONFIGS = Path(__file__).parents[2] / "configs"
IDS = [entry.name for entry in RECIPES]


@pytest.mark.parametrize("entry", RECIPES, ids=IDS)
def test_each_row_names_a_recipe_and_a_demo_config_of_its_defaults(entry):
    config_cls, recipe_cls = entry.load()
    assert issubclass(recipe_cls, Recipe) and recipe_cls.title
    assert {"run_name", "runs_root"} <= {f.name for f in dataclasses.fields(config_cls)}
    assert config_cls().run_name == entry.name
    demo = CONFIGS / entry.name / "tiny.yaml"
    assert to_dict(load_config(config_cls, demo)) == to_dict(config_cls())


@pytest.mark.parametrize("entry", RECIPES, ids=IDS)
def test_each_row_is_a_run_command_with_its_help_and_flags(entry):
    group = get_command(cli.app).commands[entry.name]
    assert group.help == entry.help
    run = group.commands[entry.command]
    assert run.help == entry.run_help
    options = {option for param in run.params for option in param.opts}
    assert options == {"--config", "--set", *(flag.flag for flag in entry.flags)}
    config_help = next(p.help for p in run.params if "--config" in p.opts)
    assert entry.config in config_help


@pytest.fixture
def handed(monkeypatch):
    """What each command hands `_run_recipe`: (recipe name, config file, overrides)."""
    seen = []
    monkeypatch.setattr(
        recipe_commands,
        "_run_recipe",
        lambda entry, config, overrides: seen.append((entry.name, config, overrides)),
    )
    return seen


def invoke(*args: str) -> None:
    result = CliRunner().invoke(cli.app, list(args))
    assert result.exit_code == 0, result.output


def test_run_hands_on_the_config_the_overrides_and_then_the_flags(handed):
    invoke("storyreward", "run", "--config", "my.yaml", "--set", "best_of_n=[1]")
    invoke("cherrl", "run", "--bias", "lexical, tone", "--set", "alpha=1", "--bias", "verbose")
    invoke("cherrl", "run", "--set", "alpha=1")
    assert handed == [
        ("storyreward", Path("my.yaml"), ["best_of_n=[1]"]),
        ("cherrl", None, ["alpha=1", "biases=[lexical,tone,verbose]"]),  # the flag wins
        ("cherrl", None, ["alpha=1"]),
    ]


def test_a_recipe_may_expand_a_flag_word(handed):
    from posttrain.data.health_chat import BIASES

    invoke("cherrl", "run", "--bias", "all")
    assert handed == [("cherrl", None, [f"biases=[{','.join(BIASES)}]"])]


def test_demo_is_the_longtrace_recipe(handed, tmp_path):
    config = tmp_path / "demo.yaml"
    invoke("demo", str(config), "--set", "seeds=[0,1]")
    assert handed == [("longtrace", config, ["seeds=[0,1]"])]
