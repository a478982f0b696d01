"""EnvRL end to end: agents on household games and a store, RL with environment-dynamics losses.

EnvRL (Tsinghua, 2026) adds two auxiliary objectives on the rollout transitions to the RL
loss: state prediction (s_t, a_t -> s_t+1) and inverse dynamics (s_t, s_t+1 -> a_t),
weighted by a decaying lambda(t). `posttrain envrl run` wires the stages:

1. data: a pool of TextWorld household games (`posttrain.envs.household_games`, train and
   held-out games of disjoint vocabularies) and the WebShop-style store
   (`posttrain.envs.webshop`, train and held-out instructions); task rows and the expert
   episodes (walkthroughs, expert shopping sessions) of the train split;
2. a tiny policy per seed (`posttrain.models.tiny`), its tokenizer trained on the
   environments' texts, warm-started by behaviour cloning on the train split's expert
   episodes with the SFT stage (one prompt/completion row per expert action: the loss is
   on that action only), shared by both environments;
3. RL (`posttrain.rl`, multi-turn rollout through the `textworld` / `webshop` envs) per
   environment, variant and seed: GRPO, GRPO+SP+ID, SP-only, ID-only; GiGPO and
   GiGPO+SP+ID on `gigpo_env`; GRPO+SP+ID with linear and constant schedules on
   `schedule_env` (the cosine one is GRPO+SP+ID itself);
4. evaluation: greedy episodes on train-split (in-distribution) and held-out tasks for the
   warm start and every `eval_every`-step checkpoint, each outcome appended to
   `evaluation/episodes.jsonl` (a rerun plays only the missing ones);
5. results: final success per variant (mean ± std over seeds), steps for each EnvRL variant
   to reach its baseline's final success, paired comparisons (`posttrain.eval.significance`),
   the auxiliary losses' time per step, success curves and report.html.

Every stage resumes: game pools, stores and warm starts are cached by their settings, finished
RL runs are reused (unfinished ones continue from their last checkpoint), and finished episodes
are read back from the evaluation log.
"""

from __future__ import annotations

import inspect
import json
import statistics
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from posttrain.data.io import read_jsonl, write_jsonl
from posttrain.errors import InputError
from posttrain.eval.core import ItemLog, progress_enabled
from posttrain.eval.significance import compare_runs, describe
from posttrain.recipes.base import Recipe
from posttrain.report import plot_curves
from posttrain.rl.config import (
    AuxConfig,
    AuxTermConfig,
    DataConfig,
    OptimConfig,
    RLConfig,
    RolloutConfig,
)
from posttrain.runs import read_metrics
from posttrain.sft.warm_start import WarmStartConfig

SPLITS = ("train", "heldout")
ENVS = ("textworld", "webshop")
TASK_KEY = {"textworld": "game_id", "webshop": "instruction_id"}
"""The task row's id: what an evaluated episode is keyed and paired by."""
PROMPT_COLUMN = {"textworld": "game", "webshop": "instruction_id"}
"""The column the RL engine requires of a row (the environment reads the whole row)."""


@dataclass(frozen=True)
class Variant:
    """One RL variant: its advantage estimator, whether SP and ID are on, their schedule and
    where it runs (every environment, or only `gigpo_env` / `schedule_env`)."""

    advantage: str
    sp: bool
    id: bool
    schedule: str = "cosine"
    only_on: str | None = None
    baseline: str | None = None
    """The variant it is compared against (None: a baseline itself)."""


VARIANTS: dict[str, Variant] = {
    "grpo": Variant("grpo", False, False),
    "grpo_sp_id": Variant("grpo", True, True, baseline="grpo"),
    "sp_only": Variant("grpo", True, False, baseline="grpo"),
    "id_only": Variant("grpo", False, True, baseline="grpo"),
    "gigpo": Variant("gigpo", False, False, only_on="gigpo_env"),
    "gigpo_sp_id": Variant("gigpo", True, True, only_on="gigpo_env", baseline="gigpo"),
    "grpo_sp_id_linear": Variant(
        "grpo", True, True, "linear", only_on="schedule_env", baseline="grpo_sp_id"
    ),
    "grpo_sp_id_constant": Variant(
        "grpo", True, True, "constant", only_on="schedule_env", baseline="grpo_sp_id"
    ),
}
"""EnvRL's comparisons (issue 23 §4): the schedule ablations compare against the cosine run."""
REACH = {"grpo_sp_id": "grpo", "gigpo_sp_id": "gigpo"}
"""EnvRL variant -> the baseline whose final success it is timed to reach."""
WARM_START = "warm start"
"""The comparisons' baseline of a baseline variant (GRPO, GiGPO): the policy RL began from."""


@dataclass
class EnvSettings:
    """One environment: how its tasks are made, its episode options and how many tasks."""

    data: dict[str, Any] = field(default_factory=dict)
    """textworld: `PoolSettings` (seed, train_games, heldout_games, min_rooms, max_rooms,
    distractors, task_types); webshop: the store's options (n_products, seed,
    instructions_per_product, split_by, heldout_fraction, or WebShop's own files)."""
    env: dict[str, Any] = field(default_factory=dict)
    """The environment's own options: textworld max_steps, max_text_chars, omit_verbs;
    webshop max_steps, results_per_page. `max_steps` is also the rollout's `max_turns`."""
    train_tasks: int | None = None
    """Train-split tasks used for behaviour cloning and RL (None: all)."""
    eval_tasks: int | None = None
    """Tasks evaluated per split (None: all)."""


def _demo_textworld() -> EnvSettings:
    # Small pools of one- or two-room games and episodes of at most 8 actions (the expert
    # needs up to 7), so that an episode fits a 2,048-token context.
    return EnvSettings(
        data={"seed": 0, "train_games": 8, "heldout_games": 4, "min_rooms": 1, "max_rooms": 2},
        env={"max_steps": 8, "max_text_chars": 240},
    )


def _demo_webshop() -> EnvSettings:
    return EnvSettings(
        data={"n_products": 60, "seed": 0},
        env={"max_steps": 7, "results_per_page": 3},
        train_tasks=32,
        eval_tasks=12,
    )


def _demo_warm_start() -> WarmStartConfig:
    # About 18 epochs of the 176 expert actions, where the policy wins some training games and
    # purchases but not all (300 steps: none; 600: nearly all; docs/systems/envrl.md). No
    # accuracy stop (no validation rows: success is measured by playing, after the warm start).
    return WarmStartConfig(
        steps=400, batch_size=8, learning_rate=2e-3, max_length=1024, stop_at_accuracy=None
    )


def _demo_rl() -> RLConfig:
    return RLConfig(
        steps=12,
        prompts_per_step=4,
        rollout=RolloutConfig(n=4, max_tokens=24),
        optim=OptimConfig(lr=1e-4),
        aux=AuxConfig(max_state_tokens=192, max_transitions_per_step=32),
        micro_batch_size=16,
        env_threads=8,
    )


@dataclass
class EnvRLRunConfig:
    envs: list[str] = field(default_factory=lambda: list(ENVS))
    """The environments trained on: textworld and/or webshop (each set below)."""
    textworld: EnvSettings = field(default_factory=_demo_textworld)
    """TextWorld household games (`posttrain.envs.household_games`)."""
    webshop: EnvSettings = field(default_factory=_demo_webshop)
    """The WebShop-style store (`posttrain.envs.webshop`)."""
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    """RL variants (see `VARIANTS`); those marked for one environment run only there (and
    not at all when that environment is not in `envs`)."""
    gigpo_env: str = "textworld"
    """The environment GiGPO and GiGPO+SP+ID run on."""
    schedule_env: str = "textworld"
    """The environment of the schedule ablation (GRPO+SP+ID, linear and constant)."""
    aux_lambda0: float = 0.2
    """lambda0 of each auxiliary term that a variant turns on (EnvRL: 0.2 at 1.5B)."""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    eval_every: int = 4
    """RL steps between evaluated checkpoints (the curves); the final step is always one."""
    eval_batch: int = 8
    """Episodes played (batched) between appends to the evaluation log."""
    model_size: str = "micro"
    """Tiny policy built when `warm_start.base_model` is unset: nano, micro, mini or small."""
    vocab_size: int = 1024
    max_positions: int = 2048
    """The policy's context: a whole episode (observations and actions) must fit (checked
    before the warm start)."""
    warm_start: WarmStartConfig = field(default_factory=_demo_warm_start)
    """`train_file` is set by the recipe; `base_model` may name a real checkpoint."""
    rl: RLConfig = field(default_factory=_demo_rl)
    """Shared RL settings; `model`, `data`, `env`, `env_args`, `max_turns`, `rewards`,
    `loss.advantage`, `aux.sp`, `aux.id`, `aux.schedule`, `save_every`, `keep_checkpoints`,
    `seed`, `run_name` and `runs_root` are set per run."""
    run_name: str = "envrl"
    runs_root: str = "runs"


def env_option_names(env: str) -> tuple[set[str], set[str]]:
    """The keys `EnvSettings.data` and `.env` accept for `env`, read from the stages' own
    signatures so they never drift from them."""
    if env == "textworld":
        from posttrain.envs.household_env import HouseholdEnv
        from posttrain.envs.household_games import PoolSettings

        data = set(PoolSettings.__dataclass_fields__)
        options = set(inspect.signature(HouseholdEnv).parameters) - {"games_dir"}
    else:
        from posttrain.envs.webshop import WebShopEnv, load_store

        data = set(inspect.signature(load_store).parameters)
        options = set(inspect.signature(WebShopEnv).parameters) - {"store_options"}
    return data, options


class EnvRLRecipe(Recipe):
    title = "EnvRL: RL with state prediction and inverse dynamics"
    rerun_may_change = ("seeds", "variants")
    """More seeds or variants only add runs; finished ones are reused."""
    config: EnvRLRunConfig

    def __init__(self, config: EnvRLRunConfig, console: Console | None = None) -> None:
        super().__init__(config, console)
        self.data_dir = self.run.path / "data"

    def check(self, config: EnvRLRunConfig) -> None:
        if not config.envs:
            raise ValueError(f"envs: name at least one environment of {list(ENVS)}")
        for name in config.envs:
            if name not in ENVS:
                raise ValueError(f"envs: unknown environment {name!r}; known: {list(ENVS)}")
            settings = getattr(config, name)
            data, options = env_option_names(name)
            for part, known in (("data", data), ("env", options)):
                unknown = sorted(set(getattr(settings, part)) - known)
                if unknown:
                    raise ValueError(
                        f"{name}.{part}.{unknown[0]}: unknown option; known: {sorted(known)}"
                    )
            for key in ("train_tasks", "eval_tasks"):
                value = getattr(settings, key)
                if value is not None and value < 1:
                    raise ValueError(f"{name}.{key}: must be at least 1 or null")
            if name == "textworld":
                from posttrain.envs.household_games import PoolSettings

                try:
                    PoolSettings.from_dict(settings.data)
                except InputError as err:
                    raise ValueError(f"textworld.data: {err}") from None
        if not config.variants:
            raise ValueError(f"variants: name at least one of {list(VARIANTS)}")
        for variant in config.variants:
            if variant not in VARIANTS:
                raise ValueError(f"variants: unknown {variant!r}; known: {list(VARIANTS)}")
            place = VARIANTS[variant].only_on
            if place and getattr(config, place) not in ENVS:
                raise ValueError(
                    f"{place}: unknown environment {getattr(config, place)!r} (variant"
                    f" {variant} runs there); known: {list(ENVS)}"
                )
        if not config.seeds:
            raise ValueError("seeds: name at least one seed")
        for key in ("eval_every", "eval_batch"):
            if getattr(config, key) < 1:
                raise ValueError(f"{key}: must be at least 1")
        if not config.aux_lambda0 > 0:
            raise ValueError(f"aux_lambda0: must be positive, got {config.aux_lambda0}")

    # ------------------------------------------------------------------ data

    def data(self) -> dict[str, Any]:
        """Task rows per environment and split, the train split's expert episodes, the
        tokenizer corpus; written once into data/."""

        def build(scratch: Path) -> None:
            stats: dict[str, Any] = {}
            corpus: list[str] = []
            for env in self.config.envs:
                tasks, experts = _env_data(env, getattr(self.config, env))
                for split in SPLITS:
                    write_jsonl(scratch / env / f"{split}.jsonl", tasks[split])
                write_jsonl(
                    scratch / env / "expert.jsonl", [{"messages": m} for m in experts["train"]]
                )
                # The tokenizer sees held-out texts too (a pretrained LLM knows their words);
                # behaviour cloning never does.
                corpus += [m["content"] for chats in experts.values() for c in chats for m in c]
                stats[env] = {
                    "tasks": {s: len(tasks[s]) for s in SPLITS},
                    "expert_actions": {s: sum(len(c) // 2 for c in experts[s]) for s in SPLITS},
                }
            write_jsonl(scratch / "tokenizer_corpus.jsonl", [{"text": t} for t in corpus])
            (scratch / "stats.json").write_text(json.dumps(stats, indent=2))

        self.built_dir("data", "stats.json", build)
        return json.loads((self.data_dir / "stats.json").read_text())

    def tasks(self, env: str, split: str) -> list[dict[str, Any]]:
        return read_jsonl(self.data_dir / env / f"{split}.jsonl")

    def env_args(self, env: str) -> dict[str, Any]:
        settings: EnvSettings = getattr(self.config, env)
        return dict(settings.env) if env == "textworld" else {**settings.data, **settings.env}

    def max_turns(self, env: str) -> int:
        """The rollout's turn limit: the environment's own episode cap (its default when
        unset), so rollout never cuts an episode the environment would continue."""
        default = inspect.signature(_env_class(env)).parameters["max_steps"].default
        return int(getattr(self.config, env).env.get("max_steps", default))

    # ------------------------------------------------------------------ policy

    def base_model(self, seed: int) -> str:
        if self.config.warm_start.base_model:
            return self.config.warm_start.base_model
        return self.tiny_model(
            f"base-model-seed{seed}",
            lambda: [r["text"] for r in read_jsonl(self.data_dir / "tokenizer_corpus.jsonl")],
            size=self.config.model_size,
            vocab_size=self.config.vocab_size,
            seed=seed,
            max_positions=self.config.max_positions,
        )

    def warm_start_seeds(self) -> dict[str, int]:
        """One warm start per seed (weights and SFT order), or one of a given checkpoint."""
        if self.config.warm_start.base_model:
            return {"warm-start": self.config.warm_start.seed}
        return {f"warm-start-seed{seed}": seed for seed in self.config.seeds}

    def policy(self, name: str, seed: int) -> tuple[str, float]:
        """Behaviour cloning on every environment's expert episodes (train split)."""
        sft_file = self.data_dir / "bc_train.jsonl"
        base = self.base_model(seed)
        rows = [
            row
            for env in self.config.envs
            for chat in read_jsonl(self.data_dir / env / "expert.jsonl")
            for row in action_rows(chat["messages"])
        ]
        self.check_lengths(base, rows)
        if not sft_file.exists():
            write_jsonl(sft_file, rows)
        settings = replace(
            self.config.warm_start, base_model=base, train_file=str(sft_file), seed=seed
        )
        result = self.logged_warm_start(name, settings)
        return str(result.model_dir), result.train_seconds

    def check_lengths(self, model_dir: str, rows: list[dict[str, Any]]) -> None:
        """Refuse settings whose episodes do not fit: every behaviour-cloning row must fit
        `warm_start.max_length` (TRL would cut the action off its end), and the policy's
        context must hold an episode of `max_steps` turns (rollout cannot generate past it),
        bounded with the longest observation of the expert episodes at every turn and
        `rl.rollout.max_tokens` per reply."""
        from transformers import AutoConfig, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_dir)

        def tokens(messages: list[dict[str, str]]) -> int:
            text = tokenizer.apply_chat_template(messages, tokenize=False)
            return len(tokenizer.encode(text, add_special_tokens=False))

        longest = max(tokens(r["prompt"] + r["completion"]) for r in rows)
        limit = self.config.warm_start.max_length
        if limit is not None and longest > limit:
            raise InputError(
                f"the longest expert row is {longest} tokens; raise it, or shorten episodes"
                " (textworld.env / webshop.env: max_steps, max_text_chars)",
                key="warm_start.max_length",
            )
        context = int(AutoConfig.from_pretrained(model_dir).max_position_embeddings)
        reply = self.config.rl.rollout.max_tokens + tokens([{"role": "assistant", "content": ""}])
        for env in self.config.envs:
            chats = [r["messages"] for r in read_jsonl(self.data_dir / env / "expert.jsonl")]
            observation = max(tokens([m]) for c in chats for m in c if m["role"] == "user")
            need = self.max_turns(env) * (observation + reply)
            if need > context:
                raise InputError(
                    f"{env}: an episode of {self.max_turns(env)} turns may take {need} tokens"
                    f" (observations up to {observation}, replies up to {reply}); the policy's"
                    f" context is {context}: raise it or lower {env}.env.max_steps",
                    key="max_positions",
                )

    # ------------------------------------------------------------------ RL

    def runs(self) -> list[tuple[str, str, int]]:
        """(environment, variant, seed) of every RL run, in training order."""
        out = []
        for env in self.config.envs:
            for variant in self.config.variants:
                place = VARIANTS[variant].only_on
                if place is None or getattr(self.config, place) == env:
                    out += [(env, variant, seed) for seed in self.config.seeds]
        return out

    def rl_settings(self, env: str, variant: str, seed: int, model_dir: str) -> RLConfig:
        spec = VARIANTS[variant]
        rl = self.config.rl
        lam = self.config.aux_lambda0
        return replace(
            rl,
            model=model_dir,
            data=DataConfig(
                train=str(self.data_dir / env / "rl_train.jsonl"), prompt_column=PROMPT_COLUMN[env]
            ),
            rewards=[],
            env=env,
            env_args=self.env_args(env),
            max_turns=self.max_turns(env),
            loss=replace(rl.loss, advantage=spec.advantage),
            aux=replace(
                rl.aux,
                sp=AuxTermConfig(lam if spec.sp else 0.0),
                id=AuxTermConfig(lam if spec.id else 0.0),
                schedule=spec.schedule,
            ),
            save_every=self.config.eval_every,
            keep_checkpoints=rl.steps // self.config.eval_every + 1,
            seed=seed,
        )

    def train(self, env: str, variant: str, seed: int, model_dir: str) -> Path:
        rows = self.data_dir / env / "rl_train.jsonl"
        if not rows.exists():
            write_jsonl(rows, self.tasks(env, "train"))
        name = f"rl-{env}-{variant}-seed{seed}"
        settings = replace(
            self.rl_settings(env, variant, seed, model_dir),
            run_name=name,
            runs_root=str(self.run.path),
        )
        if not self.rl_finished(name):
            from posttrain.rl.launch import make_trainer

            # The asynchronous trainer when `rl.async.eta` is set (rollout on thread, process,
            # Ray or server workers), else the synchronous one.
            make_trainer(settings).train()
        return self.run.path / name

    # ------------------------------------------------------------------ evaluation

    def eval_steps(self) -> list[int]:
        steps = self.config.rl.steps
        return sorted({*range(self.config.eval_every, steps + 1, self.config.eval_every), steps})

    def checkpoint(self, run: Path, step: int) -> Path:
        if step == self.config.rl.steps:
            return run / "checkpoints" / "final"
        return run / "checkpoints" / f"step-{step:06d}"

    def evaluate(self, jobs: list[tuple[str, str, int, Path]]) -> ItemLog:
        """Greedy episodes of every (policy, env, step, model) job on both splits; outcomes
        go to evaluation/episodes.jsonl as each batch of `eval_batch` finishes."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        log = ItemLog(self.run.path / "evaluation" / "episodes.jsonl")
        pending = []
        for policy, env, step, model in jobs:
            for split in SPLITS:
                todo = [
                    t
                    for t in self.eval_tasks(env, split)
                    if episode_key(policy, env, step, split, t[TASK_KEY[env]]) not in log
                ]
                if todo:
                    pending.append((policy, env, step, model, split, todo))
        total = sum(len(p[-1]) for p in pending)
        columns = [TextColumn("[bold]eval"), BarColumn(), MofNCompleteColumn()]
        with Progress(*columns, disable=not progress_enabled(), console=self.console) as bar:
            task = bar.add_task("eval", total=total)
            loaded: tuple[Path, Any] | None = None
            for policy, env, step, model, split, todo in pending:
                if loaded is None or loaded[0] != model:
                    loaded = (model, _generator(model))
                for start in range(0, len(todo), self.config.eval_batch):
                    chunk = todo[start : start + self.config.eval_batch]
                    for row, sample in zip(chunk, self.play(loaded[1], env, chunk), strict=True):
                        log.append(outcome(policy, env, step, split, row[TASK_KEY[env]], sample))
                    bar.advance(task, len(chunk))
        return log

    def eval_tasks(self, env: str, split: str) -> list[dict[str, Any]]:
        limit = getattr(self.config, env).eval_tasks
        rows = self.tasks(env, split)
        return rows if limit is None else rows[:limit]

    def play(self, generator: Any, env: str, rows: list[dict[str, Any]]) -> list[Any]:
        from posttrain.envs import env_factory
        from posttrain.models.chat.base import GenerationParams
        from posttrain.rl.rollout import rollout_multi_turn

        params = GenerationParams(
            n=1, temperature=0.0, max_tokens=self.config.rl.rollout.max_tokens, seed=0
        )
        return rollout_multi_turn(
            generator,
            generator.tokenizer,
            rows,
            env_factory(env, **self.env_args(env)),
            params,
            max_turns=self.max_turns(env),
            env_threads=self.config.rl.env_threads,
        )

    # ------------------------------------------------------------------ whole run

    def stages(self) -> dict[str, Any]:
        config = self.config
        self.say("[bold]1/5 data[/]: " + ", ".join(config.envs))
        stats = self.data()
        for env, s in stats.items():
            self.say(
                f"    {env}: {s['tasks']['train']} train / {s['tasks']['heldout']} held-out"
                f" tasks, {s['expert_actions']['train']} expert actions to clone"
            )
        self.say("[bold]2/5 warm start[/]: behaviour cloning on the expert episodes")
        starts: dict[str, str] = {}
        for name, seed in self.warm_start_seeds().items():
            starts[name], seconds = self.policy(name, seed)
            took = "cache" if not seconds else f"{seconds:.0f}s"
            self.say(f"    {name}: {starts[name]} ({took})")
        names = list(starts)  # one per seed, or the one warm start of a given checkpoint
        self.start_name = {seed: names[i % len(names)] for i, seed in enumerate(config.seeds)}
        start_of = {seed: starts[self.start_name[seed]] for seed in config.seeds}
        start_jobs = [
            (name, env, 0, Path(model)) for env in config.envs for name, model in starts.items()
        ]
        started = success_table(self.evaluate(start_jobs).records.values())
        for name, env, _, _ in start_jobs:
            rates = [f"{split} {started[(name, env, 0, split)]:.0%}" for split in SPLITS]
            self.say(f"    {name} on {env}: greedy success " + ", ".join(rates))

        jobs = list(start_jobs)
        for env, variant, seed in self.runs():
            self.say(f"[bold]3/5 RL[/] {env} {variant} seed {seed}")
            run = self.train(env, variant, seed, start_of[seed])
            policy = f"{env}-{variant}-seed{seed}"
            jobs += [(policy, env, s, self.checkpoint(run, s)) for s in self.eval_steps()]
        self.say("[bold]4/5 evaluate[/]: greedy episodes, train-split and held-out tasks")
        log = self.evaluate(jobs)

        self.say("[bold]5/5 results[/]")
        success = success_table(log.records.values())
        results = {
            "final": final_success(success, self.runs(), config.rl.steps),
            "warm_start": warm_start_success(success, list(config.envs), list(starts)),
            "steps_to_baseline": steps_to_baseline(
                success, self.runs(), config.rl.steps, self.start_name
            ),
            "comparisons": self.comparisons(log),
            "aux_cost": self.aux_cost(),
        }
        self.run.write_json("results.json", results)
        curves = self.curves(success)
        self.console.print(render_final(results["final"], results["warm_start"]))
        self.console.print(render_comparisons(results["comparisons"]))
        return {"data": stats, "results": results, "curves": str(curves)}

    def comparisons(self, log: ItemLog) -> list[dict[str, Any]]:
        """Each variant against its baseline (`Variant.baseline`; a baseline variant against
        the warm start it began from) at the final step, per env and split: Welch over seeds
        and the paired bootstrap over (task, seed)."""
        trained = {(env, variant) for env, variant, _ in self.runs()}
        steps = self.config.rl.steps
        seeds = self.config.seeds

        def scores(env: str, name: str | None, split: str) -> dict[int, dict[str, float]]:
            if name is None:  # the warm start, at step 0
                return {s: episode_scores(log, self.start_name[s], env, 0, split) for s in seeds}
            return {
                s: episode_scores(log, f"{env}-{name}-seed{s}", env, steps, split) for s in seeds
            }

        out = []
        for env, variant in sorted(trained):
            baseline = VARIANTS[variant].baseline
            if baseline is not None and (env, baseline) not in trained:
                continue
            for split in SPLITS:
                out.append(
                    {
                        "env": env,
                        "split": split,
                        "baseline": baseline or WARM_START,
                        "treatment": variant,
                        **compare_runs(scores(env, baseline, split), scores(env, variant, split)),
                    }
                )
        return out

    def aux_cost(self) -> dict[str, dict[str, Any]]:
        """Seconds per RL step (mean over steps and seeds) of each env and variant: the whole
        step, the RL forward/backward and the auxiliary passes (`time/aux_s`)."""
        times: dict[str, dict[str, list[float]]] = {}
        for env, variant, seed in self.runs():
            metrics = read_metrics(self.run.path / f"rl-{env}-{variant}-seed{seed}")
            slot = times.setdefault(f"{env}/{variant}", {"step": [], "fb": [], "aux": []})
            for record in metrics:
                if "time/step_s" in record:
                    slot["step"].append(record["time/step_s"])
                    slot["fb"].append(record.get("time/forward_backward_s", 0.0))
                    slot["aux"].append(record.get("time/aux_s", 0.0))
        out = {}
        for name, slot in times.items():
            means = {k: statistics.fmean(v) if v else 0.0 for k, v in slot.items()}
            out[name] = {
                "step_s": means["step"],
                "forward_backward_s": means["fb"],
                "aux_s": means["aux"],
                "aux_over_forward_backward": means["aux"] / means["fb"] if means["fb"] else None,
                "steps": len(slot["step"]),
            }
        return out

    def curves(self, success: dict[tuple[str, str, int, str], float]) -> Path:
        """Success rate over RL steps (mean over seeds), one panel per env and split, step 0
        being the warm start."""
        panels: dict[str, dict[str, tuple[list[float], list[float]]]] = {}
        trained = sorted({(env, variant) for env, variant, _ in self.runs()})
        for env, variant in trained:
            for split in SPLITS:
                title = f"{env}: {'in-distribution' if split == 'train' else 'held-out'} success"
                xs, ys = [], []
                for step in [0, *self.eval_steps()]:
                    values = [
                        success.get(
                            (
                                self.start_name[seed]
                                if step == 0
                                else f"{env}-{variant}-seed{seed}",
                                env,
                                step,
                                split,
                            )
                        )
                        for seed in self.config.seeds
                    ]
                    values = [v for v in values if v is not None]
                    if values:
                        xs.append(float(step))
                        ys.append(statistics.fmean(values))
                panels.setdefault(title, {})[variant] = (xs, ys)
        return plot_curves(panels, self.run.path / "curves.png")


# ---------------------------------------------------------------------- data helpers


def _env_data(
    env: str, settings: EnvSettings
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[list[dict[str, str]]]]]:
    """Task rows per split (train limited to `train_tasks`) and expert chats per split."""
    if env == "textworld":
        from posttrain.envs.household_env import expert_episodes
        from posttrain.envs.household_games import PoolSettings, build_pool

        pool = build_pool(PoolSettings.from_dict(settings.data))
        tasks = {s: pool.tasks(s) for s in SPLITS}
        tasks["train"] = tasks["train"][: settings.train_tasks]
        experts = {s: expert_episodes(tasks[s], **settings.env) for s in SPLITS}
    else:
        from posttrain.envs.webshop import expert_episodes, webshop_tasks

        tasks = {
            "train": webshop_tasks("train", settings.train_tasks, **settings.data),
            "heldout": webshop_tasks("heldout", settings.eval_tasks, **settings.data),
        }
        options = {**settings.data, **settings.env}
        experts = {s: expert_episodes(tasks[s], **options) for s in SPLITS}
    return tasks, experts


def action_rows(messages: list[dict[str, str]]) -> list[dict[str, Any]]:
    """One SFT row per assistant turn of a chat: the conversation before it as the prompt,
    the action as the completion, so the loss covers that action only (TRL's completion-only
    loss for prompt/completion rows) and every action is learnt once."""
    return [
        {"prompt": messages[:i], "completion": [messages[i]]}
        for i, m in enumerate(messages)
        if m["role"] == "assistant"
    ]


def _env_class(env: str) -> Any:
    if env == "textworld":
        from posttrain.envs.household_env import HouseholdEnv

        return HouseholdEnv
    from posttrain.envs.webshop import WebShopEnv

    return WebShopEnv


def _generator(model_dir: Path) -> Any:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from posttrain.models.generation import LocalGenerator

    tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    return LocalGenerator(model, tokenizer)


# ---------------------------------------------------------------------- evaluation records


def episode_key(policy: str, env: str, step: int, split: str, task: str) -> str:
    return f"{policy}|{env}|{step}|{split}|{task}"


def outcome(policy: str, env: str, step: int, split: str, task: str, sample: Any) -> dict:
    """One evaluated episode: success is the game won / the purchase scoring 1."""
    infos = sample.metadata.get("info") or [{}]
    last = infos[-1]
    return {
        "key": episode_key(policy, env, step, split, task),
        "policy": policy,
        "env": env,
        "step": step,
        "split": split,
        "task": task,
        "success": bool(last.get("won") or last.get("success")),
        "reward": sample.reward,
        "turns": sample.metadata.get("turns", 0),
        "status": sample.status,
        "actions": [t.action for t in sample.turn_records],
    }


def success_table(records: Any) -> dict[tuple[str, str, int, str], float]:
    """(policy, env, step, split) -> success rate over its episodes."""
    groups: dict[tuple[str, str, int, str], list[bool]] = {}
    for r in records:
        groups.setdefault((r["policy"], r["env"], r["step"], r["split"]), []).append(r["success"])
    return {key: sum(v) / len(v) for key, v in groups.items()}


def episode_scores(log: ItemLog, policy: str, env: str, step: int, split: str) -> dict[str, float]:
    return {
        r["task"]: float(r["success"])
        for r in log.records.values()
        if (r["policy"], r["env"], r["step"], r["split"]) == (policy, env, step, split)
    }


def _spread(values: list[float]) -> dict[str, Any]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else None,
        "seeds": len(values),
        "per_seed": values,
    }


def final_success(success: dict, runs: list[tuple[str, str, int]], steps: int) -> dict:
    """`{env: {variant: {split: mean, std over seeds}}}` at the last step."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    grouped: dict[tuple[str, str], list[int]] = {}
    for env, variant, seed in runs:
        grouped.setdefault((env, variant), []).append(seed)
    for (env, variant), seeds in grouped.items():
        out.setdefault(env, {})[variant] = {
            split: _spread(
                [success[(f"{env}-{variant}-seed{s}", env, steps, split)] for s in seeds]
            )
            for split in SPLITS
        }
    return out


def warm_start_success(success: dict, envs: list[str], starts: list[str]) -> dict:
    """Each environment's success of the warm starts (mean, std over them)."""
    return {
        env: {
            split: _spread([success[(name, env, 0, split)] for name in starts]) for split in SPLITS
        }
        for env in envs
    }


def steps_to_baseline(
    success: dict, runs: list[tuple[str, str, int]], steps: int, starts: dict[int, str]
) -> list[dict]:
    """Per env, split and seed: the first evaluated step at which an EnvRL variant reaches
    its baseline's final success (None: never), and its share of the baseline's steps; then
    the mean share over the seeds that reached it (EnvRL reports 68.5%). A seed whose
    baseline ended no better than its warm start (`starts[seed]`, at step 0) has nothing to
    reach: it is recorded as such and left out of the share."""
    done = {(env, variant, seed) for env, variant, seed in runs}
    out = []
    for treatment, baseline in REACH.items():
        envs = sorted({env for env, variant, _ in runs if variant == treatment})
        for env in envs:
            seeds = [s for e, v, s in runs if e == env and v == treatment]
            for split in SPLITS:
                per_seed: dict[int, dict[str, Any]] = {}
                for seed in seeds:
                    if (env, baseline, seed) not in done:
                        continue
                    target = success[(f"{env}-{baseline}-seed{seed}", env, steps, split)]
                    start = success[(starts[seed], env, 0, split)]
                    if target <= start:
                        per_seed[seed] = {
                            "baseline_final": target,
                            "warm_start": start,
                            "step": None,
                            "fraction": None,
                            "defined": False,
                        }
                        continue
                    curve = sorted(
                        (step, rate)
                        for (policy, e, step, sp), rate in success.items()
                        if policy == f"{env}-{treatment}-seed{seed}" and e == env and sp == split
                    )
                    reached = next((step for step, rate in curve if rate >= target), None)
                    per_seed[seed] = {
                        "baseline_final": target,
                        "warm_start": start,
                        "step": reached,
                        "fraction": None if reached is None else reached / steps,
                        "defined": True,
                    }
                defined = [v for v in per_seed.values() if v["defined"]]
                fractions = [v["fraction"] for v in defined if v["fraction"] is not None]
                out.append(
                    {
                        "env": env,
                        "split": split,
                        "treatment": treatment,
                        "baseline": baseline,
                        "per_seed": per_seed,
                        "reached": f"{len(fractions)}/{len(defined)}",
                        "mean_fraction": statistics.fmean(fractions) if fractions else None,
                    }
                )
    return out


# ---------------------------------------------------------------------- terminal tables


def _cell(entry: dict[str, Any]) -> str:
    text = f"{entry['mean']:.1%}"
    return text + (f" ± {entry['std']:.1%}" if entry["std"] is not None else "")


def render_final(final: dict, warm: dict) -> Table:
    table = Table(title="EnvRL: final greedy success (mean ± std over seeds)")
    for column in ("env", "policy", "in-distribution", "held-out"):
        table.add_column(column)
    for env, variants in final.items():
        if env in warm:
            table.add_row(env, "warm start", _cell(warm[env]["train"]), _cell(warm[env]["heldout"]))
        for variant, cells in variants.items():
            table.add_row(env, variant, _cell(cells["train"]), _cell(cells["heldout"]))
        table.add_section()
    return table


def render_comparisons(comparisons: list[dict[str, Any]]) -> Table:
    table = Table(
        title="Treatment − baseline, final success, 95% CI (Welch over seeds; "
        "paired bootstrap over tasks and seeds)"
    )
    for column in ("env", "split", "comparison", "over seeds", "paired over tasks"):
        table.add_column(column)
    for c in comparisons:
        table.add_row(
            c["env"],
            c["split"],
            f"{c['treatment']} − {c['baseline']}",
            describe(c["welch"]),
            describe(c["bootstrap"]),
        )
    return table
