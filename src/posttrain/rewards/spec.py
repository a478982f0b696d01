"""`get_reward`: a reward SPEC, as a config's `rewards:` writes it, to the reward function.

A reward spec takes three of `posttrain.specs`' forms (docs/specs.md has them all):

  NAME                          a registered reward (`reward_names()`: the built-ins and
                                whatever `register_reward` added)
  reward-model:DIR[?OPTIONS]    a reward-model directory, loaded as what it holds
  reward-model:http(s)://HOST:PORT
                                a `posttrain serve-rm` server (`load_reward_model`)
  package.module:function       any importable callable; `package.module.function` and
                                `package.module:obj.method` work too

The built-in rewards are registered on the first lookup (`get_reward`, `reward_names`), not
when `posttrain.rewards` is imported: some bring heavy modules with them (WildReward's judge
reads the conversation generator's oracle), which a program that only wants `exact_match`
should not load.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from posttrain.rewards.registry import RewardFunc, registered
from posttrain.specs import REWARD_MODEL_PREFIX, Spec, SpecKind, parse_spec, resolve_import_path

if TYPE_CHECKING:
    from posttrain.rewards.reward_model import Scorer

REWARD_KINDS = (SpecKind.NAME, SpecKind.REWARD_MODEL, SpecKind.IMPORT_PATH)


@functools.cache  # once: the modules register their rewards when first imported
def _load_builtins() -> None:
    # Each of these modules registers its rewards by name (`register_reward`) on import.
    from posttrain.rewards import (  # noqa: F401
        builtin,
        ifeval,
        instructions,
        keyword_judge,
        rubric,
        wild_quality,
    )


def reward_names() -> list[str]:
    """The registered reward names, built-ins included, sorted."""
    _load_builtins()
    return sorted(registered())


def get_reward(spec: str) -> RewardFunc:
    """The reward function a spec names: a registered name, a reward model
    (`reward-model:DIR_OR_URL`), or an import path `pkg.module:function` / `pkg.module.function`
    (the colon form also reaches attributes of module objects, `pkg.module:Class.method`).

    What comes back is the plain callable (a reward model's is built once per spec)."""
    _load_builtins()
    table = registered()
    parsed = parse_spec(spec, REWARD_KINDS, what="reward", names=table)
    if parsed.kind is SpecKind.NAME:
        return table[parsed.name]
    if parsed.kind is SpecKind.REWARD_MODEL:
        return _reward_model_reward(spec)
    return resolve_import_path(parsed, what="reward")


@functools.cache  # one loaded model per spec, however many configs name it
def _reward_model_reward(spec: str) -> RewardFunc:
    from posttrain.rewards.reward_model import reward_model_reward

    parsed = parse_spec(spec, (SpecKind.REWARD_MODEL,), what="reward")
    return reward_model_reward(load_reward_model(parsed), name="reward_model")


def load_reward_model(spec: Spec) -> Scorer:
    """The reward model a parsed spec names (`reward-model:DIR|URL`, or a bare DIR or URL
    where a scorer is parsed), as a `Scorer`:

    - a URL: the `posttrain serve-rm` server there (`HTTPRewardModel`);
    - a directory, loaded as what it holds (`load_reward_model_dir`): WildReward's ordinal
      model (scoring the expected label) when it holds ordinal.json, else a Bradley–Terry
      model. `?OPTIONS` set how it loads (`reward_model.MODEL_OPTIONS`).
    """
    if spec.url:
        from posttrain.rewards.reward_model_server import HTTPRewardModel

        return HTTPRewardModel(spec.url)
    if spec.path is None:
        raise ValueError(f"{spec.text!r} names no reward-model directory or URL")
    from posttrain.rewards.reward_model import parse_model_options
    from posttrain.rewards.reward_model_dir import load_reward_model_dir

    options = parse_model_options(spec.query, spec.text.removeprefix(REWARD_MODEL_PREFIX))
    return load_reward_model_dir(spec.path, **options)
