"""Starting an RL run from its config: the policy it trains and the trainer that trains it.

`posttrain rl` calls `prepare_policy`, then `make_trainer`. A given `model` must be a model
directory; `model: null` means the tiny warm-start policy, trained once and cached by content
hash; `async.eta` picks the asynchronous trainer. Each import happens where it is needed,
so a bad input is named before torch loads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from posttrain.rl.config import RLConfig
    from posttrain.rl.trainer import RLTrainer


def prepare_policy(config: RLConfig) -> None:
    """Check `config.model`, or set it to the warm-start policy's directory (`model: null`).

    With `model: null` the prompt files are read here, before the warm start trains, so that
    a bad one is named at once (the trainer reads them again). Under several processes, one
    trains the warm start and the others read it from the cache."""
    if config.model is not None:
        from posttrain.models.model_dir import require_model_dir

        require_model_dir(config.model, key="model")
        return
    from posttrain.data.prompts import load_prompt_rows
    from posttrain.rl.distributed import main_process_first
    from posttrain.sft.warm_start import warm_start

    for path in (config.data.train, config.data.test):
        if path is not None:
            load_prompt_rows(path, config.data.prompt_column)
    with main_process_first():
        config.model = str(warm_start(config.warm_start).model_dir)


def make_trainer(config: RLConfig) -> RLTrainer:
    """The synchronous trainer, or the asynchronous one (rollout on workers) when
    `async.eta` is set."""
    if config.async_.eta is not None:
        from posttrain.rl.asynchronous.trainer import AsyncRLTrainer

        return AsyncRLTrainer(config)
    from posttrain.rl.trainer import RLTrainer

    return RLTrainer(config)
