"""Each recipe's `posttrain <name> run`, generated from `posttrain.recipes.RECIPES`, the
recipes' other sub-commands, and `posttrain demo`."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from pathlib import Path

import typer

from posttrain.cli.app import (
    ALIAS_HELP,
    CONFIG_HELP,
    SET_HELP,
    app,
    config_file,
    console,
    fail,
    load_settings,
)
from posttrain.errors import InputError
from posttrain.recipes import RECIPES, RecipeEntry


def _run_recipe(entry: RecipeEntry, config: Path | None, overrides: list[str] | None) -> None:
    """Load a recipe's config, build the recipe (a ValueError is a config error: exit 2), run
    it and print where its run directory is."""
    import datasets
    import transformers

    # Many small saves and loads: their per-file bars would bury the recipe's own progress.
    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    config_cls, recipe_cls = entry.load()
    settings = load_settings(config_cls, config, overrides)
    try:
        recipe = recipe_cls(settings, console())
    except ValueError as err:
        raise fail("error", err) from None
    summary = recipe()
    typer.echo(f"run: {summary['run']} ({summary['seconds']:.0f}s)")


def _recipe_run_command(entry: RecipeEntry) -> Callable[..., None]:
    """`posttrain <recipe> run` for a row of the recipe table: the row's flags, `--config`
    and `--set`. Typer reads the options from the signature built here; each flag's words
    (repeated or comma-separated) set its config key after the `--set` overrides."""

    def command(
        config: Path | None, overrides: list[str] | None, **flags: list[str] | None
    ) -> None:
        extra = []
        for flag in entry.flags:
            given = flags[_flag_parameter(flag.flag)]
            if given:
                _, recipe_cls = entry.load()
                words = [w.strip() for value in given for w in value.split(",") if w.strip()]
                values = recipe_cls.flag_values(flag.key, words)
                extra.append(f"{flag.key}=[{','.join(values)}]")
        _run_recipe(entry, config, [*(overrides or []), *extra])

    options = [
        *(
            (_flag_parameter(f.flag), list[str] | None, typer.Option(None, f.flag, help=f.help))
            for f in entry.flags
        ),
        ("config", Path | None, typer.Option(None, "--config", help=f"YAML {entry.config}.")),
        ("overrides", list[str] | None, typer.Option(None, "--set", help=SET_HELP)),
    ]
    parameters = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
        for name, kind, default in options
    ]
    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in parameters}
    command.__doc__ = entry.run_help
    return command


def _flag_parameter(flag: str) -> str:
    """The Python name of a flag's parameter: `--bias` -> `bias`."""
    return flag.lstrip("-").replace("-", "_")


def _recipe_group(entry: RecipeEntry) -> typer.Typer:
    """The command group `posttrain <name>` of a recipe, holding its generated `run`."""
    group = typer.Typer(help=entry.help)
    group.command(entry.command)(_recipe_run_command(entry))
    app.add_typer(group, name=entry.name)
    return group


_RECIPES = {entry.name: entry for entry in RECIPES}
_GROUPS = {entry.name: _recipe_group(entry) for entry in RECIPES}
# The recipes' commands other than `run`, added to their generated groups below.
longtrace = _GROUPS["longtrace"]
wildreward = _GROUPS["wildreward"]
cherrl = _GROUPS["cherrl"]
saerl = _GROUPS["saerl"]
mmthe = _GROUPS["mmthe"]


@longtrace.command("build")
def longtrace_build(
    config: Path | None = typer.Option(None, "--config", help="YAML LongTraceBuildConfig."),
    out: str | None = typer.Option(None, help="Output directory."),
    n: int | None = typer.Option(None, help="Training questions."),
    n_test: int | None = typer.Option(None, "--n-test", help="Held-out questions."),
    hops: str | None = typer.Option(None, help="Hop count(s), e.g. 3 or 2,3,4 (2 to 8)."),
    distractors: str | None = typer.Option(None, help="tiered, random or oneshot."),
    eval_settings: str | None = typer.Option(
        None,
        "--eval-settings",
        help="Also write test.<setting>.jsonl for these settings, e.g. tiered,random.",
    ),
    context_tokens: int | None = typer.Option(None, "--context-tokens", help="Token budget."),
    seed: int | None = typer.Option(None, help="Seed for the world, walks and contexts."),
    overrides: list[str] | None = typer.Option(None, "--set", help=SET_HELP),
) -> None:
    """Write DIR/train.jsonl, DIR/test.jsonl (and test.<setting>.jsonl), DIR/dataset and
    DIR/stats.json."""
    from posttrain.data.longtrace import LongTraceBuildConfig, build_longtrace

    flags = {
        "out": out,
        "n": n,
        "n_test": n_test,
        "distractors": distractors,
        "context_tokens": context_tokens,
        "seed": seed,
    }
    extra = [f"{key}={value}" for key, value in flags.items() if value is not None]
    if hops is not None:
        extra.append(f"hops=[{hops}]")
    if eval_settings is not None:
        extra.append(f"eval_settings=[{eval_settings}]")
    settings = load_settings(LongTraceBuildConfig, config, extra + list(overrides or []))
    try:
        stats = build_longtrace(settings)
    except ValueError as err:
        raise fail("error", err) from None
    typer.echo(json.dumps(stats, indent=2))
    typer.echo(f"wrote {settings.out}")


@longtrace.command("baseline")
def longtrace_baseline(
    data: Path = typer.Argument(..., help="A directory written by `posttrain longtrace build`."),
    split: str = typer.Option("test", help="train or test."),
) -> None:
    """Accuracy of the training-free BM25 chain reader on DATA/SPLIT.jsonl, per hop count."""
    from posttrain.data.io import read_jsonl
    from posttrain.eval.longtrace_reader import reader_accuracy

    path = data / f"{split}.jsonl"
    rows = read_jsonl(path)
    if not rows:
        raise InputError("no questions", path)
    typer.echo(json.dumps(reader_accuracy(rows), indent=2))


@wildreward.command("train")
def wildreward_train(
    data: Path = typer.Option(..., "--data", help="A pipeline output folder (train.jsonl)."),
    out: Path = typer.Option(..., "--out", help="Writes OUT/final (model + ordinal.json)."),
    config: Path | None = typer.Option(None, "--config", help="YAML OrdinalRewardConfig."),
    overrides: list[str] | None = typer.Option(None, "--set", help=SET_HELP),
) -> None:
    """Train an ordinal reward model (head: thresholds, coral or regression) on DATA."""
    from dataclasses import replace

    from posttrain.rewards.ordinal import OrdinalRewardConfig, train_ordinal_reward_model
    from posttrain.runs import Run

    settings = load_settings(OrdinalRewardConfig, config, overrides)
    settings = replace(settings, train_file=str(data / "train.jsonl"), output_dir=str(out))
    try:
        with Run(out) as run:
            final = train_ordinal_reward_model(settings, run)
    except ValueError as err:
        raise fail("error", err) from None
    typer.echo(f"wrote {final}")


@wildreward.command("eval")
def wildreward_eval(
    model: Path = typer.Option(..., "--model", help="An ordinal or Bradley–Terry model dir."),
    data: Path = typer.Option(..., "--data", help="A pipeline output folder (test.jsonl)."),
) -> None:
    """RMSE, threshold accuracy, ECE, Spearman and accuracy by score margin on DATA/test.jsonl;
    writes MODEL/results.json. A Bradley–Terry model is calibrated on DATA/train.jsonl."""
    from posttrain.data.io import read_jsonl
    from posttrain.eval.calibration import evaluate_reward_model
    from posttrain.rewards.ordinal import OrdinalRewardModel, WholeConversationScorer
    from posttrain.rewards.reward_model import RewardModel
    from posttrain.specs import ModelKind, describe_model_dir

    try:
        test = read_jsonl(data / "test.jsonl")
        if not test:
            raise InputError("no rows to evaluate", data / "test.jsonl")
        if describe_model_dir(model).kind is ModelKind.ORDINAL:
            result = evaluate_reward_model(OrdinalRewardModel(model), test)
        else:
            train = read_jsonl(data / "train.jsonl")
            scorer = WholeConversationScorer(RewardModel(model))
            result = evaluate_reward_model(scorer, test, calibration_rows=train)
    except (ValueError, OSError) as err:
        raise fail("error", err) from None
    (model / "results.json").write_text(json.dumps(result, indent=2))
    shown = ("n", "rmse", "mean_threshold_accuracy", "ece", "spearman", "pairwise_accuracy")
    typer.echo(json.dumps({k: result.get(k) for k in shown}, indent=2))


@wildreward.command("pipeline")
def wildreward_pipeline(
    inputs: list[str] = typer.Option(
        ...,
        "--input",
        help="Conversations in WildChat's layout: a JSONL or parquet file, a folder of "
        "shards or a saved dataset, or a module:function loader (repeatable).",
    ),
    out: Path = typer.Option(..., "--out", help="Writes train.jsonl, test.jsonl, summary.json."),
    config: Path | None = typer.Option(None, "--config", help="YAML FeedbackPipelineConfig."),
    overrides: list[str] | None = typer.Option(None, "--set", help=SET_HELP),
) -> None:
    """Label each assistant reply by the user's next message; resumes in OUT/stages/.
    A conversation_hash seen before (in any shard) is skipped and counted."""
    from posttrain.data.feedback import FeedbackPipelineConfig, run_pipeline

    settings = load_settings(FeedbackPipelineConfig, config, overrides)
    try:
        summary = run_pipeline(inputs, out, settings)
    except ValueError as err:
        raise fail("error", err) from None
    shown = ("conversations", "duplicate_conversations", "dropped", "labels", "split")
    typer.echo(json.dumps({k: summary[k] for k in shown}, indent=2))


@cherrl.command("onset")
def cherrl_onset(
    signals: Path | None = typer.Option(
        None, "--signals", help="Per-step smoothed signals (reference_onset_definition.json)."
    ),
    run: str | None = typer.Option(None, "--run", help="The run in --signals, e.g. run_A."),
    rollouts: Path | None = typer.Option(
        None, "--rollouts", help="A rollouts.jsonl (or its run directory) with main_score."
    ),
    shortcut: str | None = typer.Option(
        None, "--shortcut", help="Regex of the shortcut (case-insensitive), with --rollouts."
    ),
    h_min: int = typer.Option(20, "--h-min", help="Fewest top-scored rollouts for M(t)."),
) -> None:
    """The 12-point threshold sweep, canonical onset, interval and SEP, as JSON."""
    from posttrain.monitor.hacking import onset_from_rollouts, onset_summary, signals_from_reference

    try:
        if signals is not None and rollouts is None:
            if run is None:
                raise ValueError("--signals needs --run (e.g. --run run_A)")
            summary = onset_summary(signals_from_reference(signals, run))
        elif rollouts is not None and signals is None:
            if shortcut is None:
                raise ValueError("--rollouts needs --shortcut REGEX")
            per_step, _ = onset_from_rollouts(rollouts, shortcut, h_min=h_min)
            summary = onset_summary(per_step)
        else:
            raise ValueError(
                "give either --signals FILE --run NAME or --rollouts DIR --shortcut RE"
            )
    except (ValueError, OSError) as err:
        raise fail("error", err) from None
    typer.echo(json.dumps(summary, indent=2))


FIELDS_HELP = (
    "How the log names the detector's fields, e.g. step=global_step,response=completion,"
    "score=reward,prompt=prompt (unnamed ones keep their name; a.b reaches into objects)."
)


@cherrl.command("detect")
def cherrl_detect(
    rollouts: Path = typer.Option(
        ..., "--rollouts", help="A rollout log (JSONL or parquet) or a run directory."
    ),
    detector: str = typer.Option(
        "statistical", "--detector", help="statistical, or a model SPEC for the LLM agent."
    ),
    fields: str | None = typer.Option(None, "--fields", help=FIELDS_HELP),
) -> None:
    """Raise a hacking alert from {step, prompt, response, score} alone (JSON; null: none)."""
    from posttrain.monitor.detector import load_detector
    from posttrain.monitor.trainer_logs import parse_fields, read_trainer_log

    try:
        log = read_trainer_log(rollouts, parse_fields(fields))
        loaded = load_detector(detector)
        found = loaded.detect(log.records)
    except (ValueError, OSError) as err:
        raise fail("error", err) from None
    if getattr(loaded, "outcome", None) == "gave_up":  # the LLM agent: null is no verdict
        typer.echo("the agent gave no usable answer: null here is not 'no hacking'", err=True)
    out = found.to_dict() if found else None
    if out is not None and log.step_values:  # fractional steps: also as the log wrote them
        out["logged_alert_step"] = log.logged_step(found.alert_step)
        out["logged_onset_step"] = log.logged_step(found.onset_step)
    typer.echo(json.dumps(out, indent=2))


@cherrl.command("watch")
def cherrl_watch(
    run_dir: Path = typer.Argument(
        ..., help="A run directory (its rollouts.jsonl) or a JSONL rollout log being written."
    ),
    detector: str = typer.Option(
        "statistical", "--detector", help="statistical, or a model SPEC for the LLM agent."
    ),
    fields: str | None = typer.Option(None, "--fields", help=FIELDS_HELP),
    interval: float = typer.Option(10.0, "--interval", help="Seconds between reads of the log."),
    timeout: float | None = typer.Option(
        None, "--timeout", help="Give up after this many seconds (default: never)."
    ),
) -> None:
    """Follow a run's rollout log as it is written; print how the watch ended as JSON and exit
    1 on a hacking alert, 0 when the run finished without one (its checkpoints/final or a DONE
    file appeared), 3 at --timeout."""
    from posttrain.monitor.detector import load_detector
    from posttrain.monitor.live import watch
    from posttrain.monitor.trainer_logs import parse_fields

    try:
        result = watch(
            run_dir,
            fields=parse_fields(fields),
            detector=load_detector(detector),
            interval=interval,
            timeout=timeout,
        )
    except (ValueError, OSError) as err:
        raise fail("error", err) from None
    typer.echo(json.dumps(result.to_dict(), indent=2))
    raise typer.Exit({"alert": 1, "finished": 0, "timeout": 3}[result.outcome])


@app.command()
def demo(
    positional: Path | None = typer.Argument(None, metavar="CONFIG", help=ALIAS_HELP),
    config: Path | None = typer.Option(None, "--config", help=CONFIG_HELP),
    overrides: list[str] | None = typer.Option(None, "--set", help=SET_HELP),
) -> None:
    """The flagship recipe at demo size: LongTraceRL end to end (`posttrain longtrace run`)."""
    _run_recipe(_RECIPES["longtrace"], config_file(config, positional), overrides)


@saerl.command("select")
def saerl_select(
    model: str = typer.Option(..., "--model", help="A causal LM directory (the RL policy)."),
    data: str = typer.Option(..., "--data", help="JSONL / parquet of prompt and answer rows."),
    out: Path = typer.Option(..., "--out", help="Writes selected.jsonl, report.json, sae/."),
    config: Path | None = typer.Option(None, "--config", help="YAML SelectConfig."),
    overrides: list[str] | None = typer.Option(None, "--set", help=SET_HELP),
) -> None:
    """Order and filter RL prompts with the model's own SAE features: clusters, a difficulty
    curriculum and a quality filter (SAERL). Train with `data.order: as_written` and
    `prompts_per_step` = `selection.batch_size`."""
    from posttrain.recipes.saerl import SelectConfig, select_data

    settings = load_settings(SelectConfig, config, overrides)
    try:
        report = select_data(model, data, str(out), settings)
    except ValueError as err:
        raise fail("error", err) from None
    typer.echo(
        f"wrote {out / 'selected.jsonl'}: {report['kept']} of {report['rows']} rows in"
        f" {report['batches']} batches"
        + (f"; switched off: {', '.join(report['switched_off'])}" if report["switched_off"] else "")
    )


@mmthe.command("run")
def mmthe_run(
    model: str = typer.Option(..., "--model", help="Model SPEC: a VLM directory, openai:..."),
    judge: list[str] | None = typer.Option(
        None, "--judge", help="Judge SPEC (repeatable; several are also voted). Default: none."
    ),
    data: Path = typer.Option(..., "--data", help="An items JSONL or a directory of them."),
    out: Path = typer.Option(..., "--out", help="Output directory (resumable)."),
    max_tokens: int = typer.Option(160, "--max-tokens", help="Chain length limit in tokens."),
    batch_size: int = typer.Option(16, "--batch-size", help="Conversations per model call."),
    examples: int = typer.Option(8, "--examples", help="Items shown in report.html."),
) -> None:
    """Ask the model every item (image + question), split its chains into steps, label each
    step with the rule verifier (generated items) and the judges, and report every level."""
    from posttrain.eval.mmthe import commands
    from posttrain.eval.mmthe.pipeline import MMTheConfig

    try:
        config = MMTheConfig(batch_size=batch_size, max_tokens=max_tokens)
        results = commands.mmthe_run(model, judge or [], data, out, config, examples)
    except (ValueError, OSError) as err:  # a DataError is a ValueError
        raise fail("error", err) from None
    console().print(commands.table(results))
    typer.echo(f"wrote {out / 'results.json'} and {out / 'report.html'}")
