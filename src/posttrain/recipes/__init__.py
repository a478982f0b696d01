"""One module per system; a recipe wires stages together and owns no stage logic.

`RECIPES` is the table the CLI builds `posttrain <name> run [--config FILE] [--set KEY=VALUE]`
from. A new recipe is a module here (a config dataclass and a `base.Recipe` subclass), a
row in the table and its demo config, `configs/<name>/tiny.yaml`, whose settings are the
config's defaults. Rows name the classes by module and name, so `posttrain --help` lists
every recipe without importing one (each pulls in torch and its stages). `quickstart` is
not a row: it is the top-level `posttrain quickstart`, not a `run` sub-command.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RecipeFlag:
    """A list-valued option of a recipe's run command that sets one config key: its words,
    repeated or comma-separated, become the list (after the recipe's `flag_values`), set
    after the `--set` overrides."""

    flag: str
    """The option, e.g. `--bias`."""
    key: str
    """The config key it sets, e.g. `biases`."""
    help: str


@dataclass(frozen=True)
class RecipeEntry:
    """One recipe as the CLI offers it: `posttrain <name> run`."""

    name: str
    """The command group; also the folder of its demo config, `configs/<name>/tiny.yaml`."""
    module: str
    """The recipe's module, e.g. `posttrain.recipes.longtrace`."""
    config: str
    """The name of its config dataclass in `module`."""
    recipe: str
    """The name of its `posttrain.recipes.base.Recipe` subclass in `module`."""
    help: str
    """The command group's help: the system in one line."""
    run_help: str
    """The run command's help: what the recipe does, stage by stage."""
    flags: tuple[RecipeFlag, ...] = ()
    command: str = "run"
    """The sub-command that runs it: `demo` where `run` is the system's own tool on any model
    (`posttrain mmthe run` evaluates a model; `posttrain mmthe demo` is the recipe)."""

    def load(self) -> tuple[type, Any]:
        """The config dataclass and the recipe class (importing the recipe's module)."""
        module = importlib.import_module(self.module)
        return getattr(module, self.config), getattr(module, self.recipe)


RECIPES: tuple[RecipeEntry, ...] = (
    RecipeEntry(
        name="longtrace",
        module="posttrain.recipes.longtrace",
        config="LongTraceRunConfig",
        recipe="LongTraceRecipe",
        help="LongTraceRL: multi-hop questions over long, confusable contexts.",
        run_help="Build data, warm-start, train outcome-only and rubric RL, evaluate and report.",
    ),
    RecipeEntry(
        name="storyreward",
        module="posttrain.recipes.storyreward",
        config="StoryRewardRunConfig",
        recipe="StoryRewardRecipe",
        help="StoryReward: Bradley–Terry story reward models and best-of-n.",
        run_help="Build story pairs and a held-out benchmark, train a reward model, evaluate it "
        "against baselines, run best-of-n and report.",
    ),
    RecipeEntry(
        name="wildreward",
        module="posttrain.recipes.wildreward",
        config="WildRewardRunConfig",
        recipe="WildRewardRecipe",
        help="WildReward: reward models from in-the-wild user feedback.",
        run_help="Conversations -> feedback labels -> ordinal reward model and baselines -> "
        "user-count scaling -> online DPO, with a report.",
    ),
    RecipeEntry(
        name="indexcache",
        module="posttrain.recipes.indexcache",
        config="IndexCacheRunConfig",
        recipe="IndexCacheRecipe",
        help="IndexCache: cross-layer index sharing on DeepSeek Sparse Attention.",
        run_help="Train a tiny DSA model, measure cross-layer index overlap, search and distil "
        "IndexCache patterns, benchmark prefill and decode against dense attention and DSA, "
        "and report.",
    ),
    RecipeEntry(
        name="cherrl",
        module="posttrain.recipes.cherrl",
        config="CherrlRunConfig",
        recipe="CherrlRecipe",
        help="CHERRL: reward hacking under biased rubric judges; onset and detection.",
        run_help="Reproduce hacking under each biased judge and a control on the true rubric "
        "score, locate the onset, run the detector on the training log and report.",
        flags=(
            RecipeFlag(
                flag="--bias",
                key="biases",
                help="Injected bias (repeatable or comma-separated): lexical, self_praise, "
                "tone, format, verbose, hedging, authority, or all.",
            ),
        ),
    ),
    RecipeEntry(
        name="envrl",
        module="posttrain.recipes.envrl",
        config="EnvRLRunConfig",
        recipe="EnvRLRecipe",
        help="EnvRL: agentic RL with state-prediction and inverse-dynamics losses.",
        run_help="Generate household games and a store, warm-start a tiny agent on expert "
        "episodes, train GRPO / GiGPO with and without the auxiliary losses per environment "
        "and seed, evaluate in- and out-of-distribution success and report.",
    ),
    RecipeEntry(
        name="saerl",
        module="posttrain.recipes.saerl",
        config="SAERLRunConfig",
        recipe="SAERLRecipe",
        help="SAERL: RL data selection from the policy's own sparse-autoencoder features.",
        run_help="Generate math problems with known difficulty and defects, warm-start a tiny "
        "policy per seed, label a subset, train an SAE on its activations, select and order "
        "the RL data per variant, train GRPO on each and report.",
    ),
    RecipeEntry(
        name="mmthe",
        module="posttrain.recipes.mmthe",
        config="MMTheRunConfig",
        recipe="MMTheRecipe",
        help="MM-THEBench: hallucinations inside multimodal chains of thought, step by step.",
        run_help="Render scenes with verified reasoning, train a tiny VLM on them, evaluate it "
        "and the scripted scene reader, label every step with the rule verifier and the "
        "judges, and report.",
        command="demo",
    ),
)
"""Every recipe with a `posttrain <name> run` (or its `command`), in the order `--help` lists
them."""
