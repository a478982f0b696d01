"""The `posttrain` command: one sub-command per tool and recipe. Nothing imports this module.

A command parses its arguments, loads its config, calls a stage (or a recipe) and prints.
Each recipe's `posttrain <name> run` is generated from the recipe table,
`posttrain.recipes.RECIPES`; a recipe's other sub-commands are written here. Heavy imports
(torch, transformers) happen inside each command, so `posttrain --help` answers at once.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import typer
from typer.core import TyperGroup

from posttrain.errors import InputError
from posttrain.recipes import RECIPES, RecipeEntry


class _Commands(TyperGroup):
    """Runs the chosen command; a bad input it meets anywhere (an InputError from a loader:
    config, data file, model directory, run name) is one line and exit 2, not a traceback."""

    def invoke(self, ctx):  # noqa: ANN001, ANN201 - click's signature
        try:
            return super().invoke(ctx)
        except InputError as err:
            raise _fail("error", err) from None


app = typer.Typer(
    cls=_Commands,
    help="posttrain: post-training systems end to end, from a 2-core CPU to a cluster.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

SET_HELP = "Override a config key, e.g. --set steps=500 (repeatable)."


def _fail(kind: str, err: Exception) -> typer.Exit:
    """Print a bad-input error on one line, in red on stderr; the exit (status 2) for the
    caller to raise."""
    typer.secho(f"{kind}: {' '.join(str(err).split())}", fg="red", err=True)
    return typer.Exit(2)


def _load(cls: type, config: Path | None, overrides: list[str] | None):  # noqa: ANN202
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


def _config_file(option: Path | None, positional: Path | None) -> Path | None:
    """`--config FILE`, or the positional CONFIG kept for older scripts; both must agree."""
    if option is not None and positional is not None and option.resolve() != positional.resolve():
        raise InputError(f"two configs given: --config {option} and {positional}; give one")
    return option if option is not None else positional


def _console():  # noqa: ANN202
    from rich.console import Console

    # Captured output (CI logs, a pipe) gets tables wide enough not to wrap.
    return Console() if sys.stdout.isatty() else Console(width=120)


@app.command("tiny-model")
def tiny_model(
    out: Path = typer.Option(..., "--out", help="Directory to write the model and tokenizer to."),
    corpus: Path | None = typer.Option(
        None,
        help="Tokenizer corpus: a text file (one text a line) or JSONL with a 'text' "
        "field. Default: the arithmetic task.",
    ),
    size: str = typer.Option(
        "micro", help="nano (~0.1M), micro (~0.8M), mini (~3M), small (~10M)."
    ),
    vocab_size: int = typer.Option(512, help="Tokenizer vocabulary size."),
    kind: str = typer.Option("causal-lm", help="causal-lm (policy) or seq-cls (reward model)."),
    seed: int = typer.Option(0, help="Initialisation seed."),
    max_positions: int | None = typer.Option(
        None, "--max-positions", help="Context length (default: 512)."
    ),
) -> None:
    """Build a tiny Qwen2-architecture model and its tokenizer, saved with save_pretrained."""
    from posttrain.data.arithmetic import ArithmeticTask, tokenizer_corpus
    from posttrain.data.io import read_jsonl, read_text
    from posttrain.models.tiny import SIZES, build_tiny_model, describe_saved

    if size not in SIZES:
        raise typer.BadParameter(f"choose one of {', '.join(SIZES)}", param_hint="--size")
    if corpus is None:
        texts = tokenizer_corpus(ArithmeticTask())
    elif corpus.suffix == ".jsonl":
        texts = [str(r["text"]) for r in read_jsonl(corpus) if "text" in r]
    else:
        texts = [line for line in read_text(corpus).splitlines() if line.strip()]
    if not texts:
        raise InputError("no texts to train the tokenizer on", corpus, key="--corpus")
    try:
        path = build_tiny_model(
            out,
            texts,
            size=size,
            vocab_size=vocab_size,
            kind=kind,
            seed=seed,
            max_positions=max_positions,
        )
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    typer.echo(f"wrote {path} ({describe_saved(path, kind)})")


@app.command("warm-start")
def warm_start_cmd(
    positional: Path | None = typer.Argument(None, metavar="CONFIG", help=ALIAS_HELP),
    config: Path | None = typer.Option(None, "--config", help=CONFIG_HELP),
    overrides: list[str] | None = typer.Option(None, "--set", help=SET_HELP),
    run_name: str = typer.Option("warm-start", help="Run directory name under runs/."),
) -> None:
    """Supervised warm start of a tiny policy with TRL's SFTTrainer, cached by content hash."""
    from posttrain.report import write_report
    from posttrain.runs import Run
    from posttrain.sft.warm_start import WarmStartConfig, warm_start

    cfg = _load(WarmStartConfig, _config_file(config, positional), overrides)
    with Run.create(run_name, cfg) as run:
        result = warm_start(cfg, run)
        run.write_json(
            "results.json",
            {
                "model_dir": str(result.model_dir),
                "heldout_accuracy": result.accuracy,
                "cached": result.cached,
            },
        )
    write_report(run.path, title="warm start")
    accuracy = "n/a" if result.accuracy is None else f"{result.accuracy:.1%}"
    typer.echo(
        f"model: {result.model_dir}\nheld-out accuracy: {accuracy}"
        f"{' (cached)' if result.cached else ''}\nrun: {run.path}"
    )


@app.command()
def sft(
    config: Path | None = typer.Option(
        None, "--config", help="YAML SFTStageConfig, e.g. configs/sft/tiny.yaml."
    ),
    overrides: list[str] | None = typer.Option(None, "--set", help=SET_HELP),
) -> None:
    """Supervised fine-tuning with TRL's SFTTrainer: a model directory and TRL SFT rows in,
    a run directory (metrics, report, checkpoints/final) out. Works under accelerate launch."""
    from posttrain.report import write_report
    from posttrain.sft.trainer import SFTStageConfig, is_main_process, train_sft

    settings = _load(SFTStageConfig, config, overrides)
    try:
        final = train_sft(settings)
    except ValueError as err:  # DataError is a ValueError too
        raise _fail("error", err) from None
    if is_main_process():
        write_report(settings.output_dir, title="sft")
        typer.echo(f"model: {final}\nrun: {settings.output_dir}")


API_KEY_HELP = (
    "API key clients must send as 'Authorization: Bearer KEY' on every route but /health "
    "(prefer the environment variable: a flag shows in the process list). Required to bind "
    "anything but loopback."
)


@app.command()
def serve(
    model_dir: Path = typer.Argument(..., help="A model directory loadable with from_pretrained."),
    host: str = typer.Option("127.0.0.1", help="Address to bind; loopback by default."),
    port: int = typer.Option(8000, help="TCP port."),
    served_model_name: str | None = typer.Option(None, help="Model name clients ask for."),
    api_key: str | None = typer.Option(None, envvar="POSTTRAIN_API_KEY", help=API_KEY_HELP),
    weights_root: Path | None = typer.Option(
        None,
        help="Directory weight pushes (POST /v1/weights, /update_weights_from_disk) may load "
        "from; without it, pushes are refused.",
    ),
    max_n: int = typer.Option(16, help="Largest `n` a request may ask for."),
    max_prompts: int = typer.Option(64, help="Largest number of prompts per completions request."),
    max_stop: int = typer.Option(16, help="Largest number of stop strings per request."),
    max_stop_chars: int = typer.Option(256, help="Longest stop string, in characters."),
    max_sampled_tokens: int = typer.Option(
        65536, help="Largest n * max_tokens per prompt (also cuts the default max_tokens)."
    ),
    max_queued_tokens: int = typer.Option(
        1 << 20,
        help="Tokens (n * (prompt + max_tokens) per prompt) of all requests in progress; "
        "a request over it gets 429.",
    ),
    request_timeout: float = typer.Option(
        600.0, help="Seconds a request may take, queued and generating; then 408."
    ),
    time_slice: float = typer.Option(
        0.5,
        help="Seconds a batch generates before yielding to waiting requests (its unfinished "
        "rows continue after them).",
    ),
    max_body_bytes: int = typer.Option(1 << 20, help="Largest request body; larger gets 413."),
    device: str = typer.Option("auto", help="torch device; auto picks cuda when available."),
    max_batch: int = typer.Option(
        32, help="Concurrent requests generated together; 1 answers one at a time."
    ),
) -> None:
    """Serve a local model over an OpenAI-compatible HTTP API."""
    from posttrain.models.server.limits import ServerLimits
    from posttrain.models.server.security import check_bind, resolve_api_key

    try:
        key = resolve_api_key(api_key)
        check_bind(host, key)  # at once, before seconds of imports and loading
        limits = ServerLimits(
            max_n=max_n,
            max_prompts=max_prompts,
            max_stop=max_stop,
            max_stop_chars=max_stop_chars,
            max_sampled_tokens=max_sampled_tokens,
            max_queued_tokens=max_queued_tokens,
            request_timeout_s=request_timeout,
            time_slice_s=time_slice,
        )
        from posttrain.models.model_dir import require_model_dir

        require_model_dir(model_dir)  # a bad one is named at once, before the server imports
        from posttrain.models.server import serve as run_server

        run_server(
            model_dir,
            host=host,
            port=port,
            served_model_name=served_model_name,
            max_body_bytes=max_body_bytes,
            device=device,
            max_batch=max_batch,
            limits=limits,
            api_key=key,
            weights_root=weights_root,
        )
    except ValueError as err:  # a bad flag, or an unprotected bind
        raise _fail("error", err) from None


@app.command("serve-rm")
def serve_rm(
    model_dir: Path = typer.Argument(
        ..., help="A reward-model directory (sequence classification)."
    ),
    host: str = typer.Option("127.0.0.1", help="Address to bind; loopback by default."),
    port: int = typer.Option(8100, help="TCP port."),
    served_model_name: str | None = typer.Option(None, help="Name reported with the rewards."),
    api_key: str | None = typer.Option(None, envvar="POSTTRAIN_API_KEY", help=API_KEY_HELP),
    batch_size: int = typer.Option(16, help="Pairs scored per forward pass."),
    max_length: int | None = typer.Option(
        None, help="Tokens kept per pair (the last ones; default: the model's context)."
    ),
    max_items: int = typer.Option(256, help="Largest number of pairs per request."),
    max_body_bytes: int = typer.Option(4 << 20, help="Largest request body; larger gets 413."),
    device: str | None = typer.Option(None, help="torch device (default: cuda when available)."),
    torch_dtype: str = typer.Option(
        "auto",
        help="Weights dtype: auto (the checkpoint's on a GPU, float32 on CPU), float32, "
        "bfloat16 or float16.",
    ),
) -> None:
    """Serve a reward model: POST /score {"prompts": [...], "responses": [...]} -> rewards.

    Prompts and responses are strings or chat-message lists; each pair is scored as one
    conversation through the model's chat template (plain text when it has none)."""
    from posttrain.models.server.security import check_bind, resolve_api_key

    key = resolve_api_key(api_key)
    try:
        check_bind(host, key)  # at once, before seconds of imports and loading
    except ValueError as err:
        raise _fail("error", err) from None
    from posttrain.models.model_dir import require_model_dir

    require_model_dir(model_dir)  # a bad one is named at once, before the server imports
    from posttrain.rewards.reward_model import DTYPES
    from posttrain.rewards.reward_model_server import serve as run_server

    if torch_dtype not in DTYPES:
        raise typer.BadParameter(
            f"must be one of {', '.join(DTYPES)}, got {torch_dtype!r}", param_hint="--torch-dtype"
        )
    run_server(
        model_dir,
        host=host,
        port=port,
        batch_size=batch_size,
        max_length=max_length,
        max_items=max_items,
        max_body_bytes=max_body_bytes,
        device=device,
        torch_dtype=torch_dtype,
        served_model_name=served_model_name,
        api_key=key,
    )


@app.command()
def rl(
    positional: Path | None = typer.Argument(None, metavar="CONFIG", help=ALIAS_HELP),
    config: Path | None = typer.Option(
        None,
        "--config",
        help="YAML config, e.g. configs/rl/tiny.yaml; TRL GRPOConfig names are accepted too "
        "(docs/trl.md).",
    ),
    overrides: list[str] | None = typer.Option(None, "--set", help=SET_HELP),
) -> None:
    """Train a policy with GRPO-family RL; resumes from the run's latest checkpoint."""
    from posttrain.rl.config import RLConfig
    from posttrain.rl.launch import make_trainer, prepare_policy

    settings = _load(RLConfig, _config_file(config, positional), overrides)
    prepare_policy(settings)  # `model: null`: the warm-start policy, trained once and cached
    trainer = make_trainer(settings)
    metrics = trainer.train()
    if trainer.is_main:
        shown = {k: round(v, 4) for k, v in metrics.items() if k.startswith(("eval_", "reward"))}
        typer.echo(json.dumps(shown, indent=2))
        typer.echo(f"run: {trainer.run.path}")


@app.command()
def report(run_dir: Path = typer.Argument(..., help="A run directory under runs/.")) -> None:
    """(Re)write RUN_DIR/report.html from its metrics and summaries."""
    from posttrain.report import write_report

    if not run_dir.is_dir():
        raise InputError("not a run directory", run_dir)
    typer.echo(write_report(run_dir))


@app.command()
def quickstart(
    positional: Path | None = typer.Argument(None, metavar="CONFIG", help=ALIAS_HELP),
    config: Path | None = typer.Option(None, "--config", help=CONFIG_HELP),
    overrides: list[str] | None = typer.Option(None, "--set", help=SET_HELP),
) -> None:
    """Warm-start a tiny model, serve it on loopback, and question it through the openai client."""
    from posttrain.recipes.quickstart import QuickstartConfig, QuickstartRecipe

    settings = _load(QuickstartConfig, _config_file(config, positional), overrides)
    summary = QuickstartRecipe(settings, _console())()
    typer.echo(json.dumps(summary, indent=2))


@app.command()
def demo(
    positional: Path | None = typer.Argument(None, metavar="CONFIG", help=ALIAS_HELP),
    config: Path | None = typer.Option(None, "--config", help=CONFIG_HELP),
    overrides: list[str] | None = typer.Option(None, "--set", help=SET_HELP),
) -> None:
    """The flagship recipe at demo size: LongTraceRL end to end (`posttrain longtrace run`)."""
    _run_recipe(_RECIPES["longtrace"], _config_file(config, positional), overrides)


def _run_recipe(entry: RecipeEntry, config: Path | None, overrides: list[str] | None) -> None:
    """Load a recipe's config, build the recipe (a ValueError is a config error: exit 2), run
    it and print where its run directory is."""
    import datasets
    import transformers

    # Many small saves and loads: their per-file bars would bury the recipe's own progress.
    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    config_cls, recipe_cls = entry.load()
    settings = _load(config_cls, config, overrides)
    try:
        recipe = recipe_cls(settings, _console())
    except ValueError as err:
        raise _fail("error", err) from None
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
    group.command("run")(_recipe_run_command(entry))
    app.add_typer(group, name=entry.name)
    return group


_RECIPES = {entry.name: entry for entry in RECIPES}
_GROUPS = {entry.name: _recipe_group(entry) for entry in RECIPES}
# The recipes' commands other than `run`, added to their generated groups below.
longtrace = _GROUPS["longtrace"]
wildreward = _GROUPS["wildreward"]
cherrl = _GROUPS["cherrl"]


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
    settings = _load(LongTraceBuildConfig, config, extra + list(overrides or []))
    try:
        stats = build_longtrace(settings)
    except ValueError as err:
        raise _fail("error", err) from None
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


@app.command("rm-bench")
def rm_bench(
    data: Path = typer.Option(
        ...,
        "--data",
        help="StoryRMB-format JSONL: id, prompt, chosen, rejected (a list), optional dimension.",
    ),
    scorer: str = typer.Option(
        ...,
        "--scorer",
        help="A reward-model dir (DIR?torch_dtype=bfloat16&device=cuda sets how it loads), "
        "http(s)://HOST:PORT (posttrain serve-rm), judge:MODEL_SPEC, "
        "judge-listwise:MODEL_SPEC, length, vocabulary or random[:SEED].",
    ),
    out: Path = typer.Option(..., "--out", help="Writes OUT/results.json and OUT/scores.jsonl."),
    chunk_size: int = typer.Option(32, "--chunk-size", help="Instances scored per batch."),
) -> None:
    """Reward-model benchmark with tie credit: overall and per-dimension accuracy against
    the random baseline. Resumes from OUT/scores.jsonl."""
    from posttrain.eval.rm_bench import evaluate_scorer, load_instances
    from posttrain.eval.set_scorers import load_scorer

    try:
        instances = load_instances(data)
        chosen = load_scorer(scorer)
    except ValueError as err:  # DataError is a ValueError too
        raise _fail("error", err) from None
    results = evaluate_scorer(chosen, instances, out, chunk_size=chunk_size)
    typer.echo(json.dumps(results, indent=2))


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

    settings = _load(OrdinalRewardConfig, config, overrides)
    settings = replace(settings, train_file=str(data / "train.jsonl"), output_dir=str(out))
    try:
        with Run(out) as run:
            final = train_ordinal_reward_model(settings, run)
    except ValueError as err:
        raise _fail("error", err) from None
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
        raise _fail("error", err) from None
    (model / "results.json").write_text(json.dumps(result, indent=2))
    shown = ("n", "rmse", "mean_threshold_accuracy", "ece", "spearman", "pairwise_accuracy")
    typer.echo(json.dumps({k: result.get(k) for k in shown}, indent=2))


@wildreward.command("pipeline")
def wildreward_pipeline(
    input_path: Path = typer.Option(..., "--input", help="Conversations (WildChat layout)."),
    out: Path = typer.Option(..., "--out", help="Writes train.jsonl, test.jsonl, summary.json."),
    config: Path | None = typer.Option(None, "--config", help="YAML FeedbackPipelineConfig."),
    overrides: list[str] | None = typer.Option(None, "--set", help=SET_HELP),
) -> None:
    """Label each assistant reply by the user's next message; resumes in OUT/stages/."""
    from posttrain.data.feedback import FeedbackPipelineConfig, run_pipeline

    settings = _load(FeedbackPipelineConfig, config, overrides)
    try:
        summary = run_pipeline(input_path, out, settings)
    except ValueError as err:
        raise _fail("error", err) from None
    typer.echo(json.dumps({k: summary[k] for k in ("dropped", "labels", "split")}, indent=2))


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
        raise _fail("error", err) from None
    typer.echo(json.dumps(summary, indent=2))


@cherrl.command("detect")
def cherrl_detect(
    rollouts: Path = typer.Option(..., "--rollouts", help="A rollouts.jsonl or its run directory."),
    detector: str = typer.Option(
        "statistical", "--detector", help="statistical, or a model SPEC for the LLM agent."
    ),
) -> None:
    """Raise a hacking alert from {step, prompt, response, score} alone (JSON; null: none)."""
    from posttrain.monitor.detector import load_detector

    try:
        found = load_detector(detector).detect(rollouts)
    except (ValueError, OSError) as err:
        raise _fail("error", err) from None
    typer.echo(json.dumps(found.to_dict() if found else None, indent=2))


rpc = typer.Typer(help="RPC-Bench: review–rebuttal QA on CS papers, LLM judge, consistency.")
app.add_typer(rpc, name="rpc")


@rpc.command("answer")
def rpc_answer(
    data: Path = typer.Option(..., "--data", help="RPC-Bench JSONL (one paper a line)."),
    model: str = typer.Option(
        "scripted:rpc-extractive", "--model", help="Answering model SPEC (default: scripted)."
    ),
    out: Path = typer.Option(..., "--out", help="Writes OUT/answers.jsonl (resumed on rerun)."),
    papers: Path | None = typer.Option(
        None, "--papers", help="Folder of <paper id>.md full texts (default: title + abstract)."
    ),
    limit: int | None = typer.Option(None, "--limit", help="Answer only the first N items."),
    batch_size: int = typer.Option(8, "--batch-size", help="Questions per model call."),
    max_tokens: int = typer.Option(1024, "--max-tokens", help="Answer length limit in tokens."),
) -> None:
    """Answer every RPC-Bench question from its paper's context."""
    from posttrain.eval.rpc import commands

    try:
        summary = commands.answer(data, model, out, papers, limit, batch_size, max_tokens)
    except (ValueError, OSError) as err:
        raise _fail("error", err) from None
    typer.echo(json.dumps(summary, indent=2))


@rpc.command("judge")
def rpc_judge(
    answers: Path = typer.Option(..., "--answers", help="An answers folder from `rpc answer`."),
    judges: list[str] = typer.Option(
        ["scripted:rpc-lexical-judge"],
        "--judge",
        help="Judge model SPEC, repeatable (default: the lexical proxy, not an LLM).",
    ),
    max_retries: int = typer.Option(2, "--max-retries", help="Re-asks of an unreadable reply."),
    batch_size: int = typer.Option(8, "--batch-size", help="Answers per judge call batch."),
) -> None:
    """Rate correctness, completeness and conciseness (0–5) with each judge; resumable."""
    from posttrain.eval.rpc import commands

    try:
        summary = commands.judge(answers, judges, max_retries, batch_size)
    except (ValueError, OSError) as err:
        raise _fail("error", err) from None
    typer.echo(json.dumps(summary, indent=2))


@rpc.command("score")
def rpc_score(answers: Path = typer.Argument(..., help="An answers folder (judged).")) -> None:
    """RPC-Bench scores overall and per category: writes scores.json and a bar plot."""
    from rich.table import Table

    from posttrain.eval.rpc import commands

    try:
        scores = commands.score(answers)
    except (ValueError, OSError) as err:
        raise _fail("error", err) from None
    judges = ", ".join(scores["judge_labels"].values()) or "no judge"
    table = Table(title=f"RPC-Bench: {scores['model']} (judge: {judges})")
    for column in ("category", "items", "Cor", "Com", "F1", "Con-adj", "accuracy"):
        table.add_column(column, justify="left" if column == "category" else "right")

    def cell(row: dict, key: str) -> str:
        if key not in row:
            return ""
        return "n/a" if row[key] is None else f"{row[key]:.2f}"

    keys = ("correctness", "completeness", "f1", "conciseness_adjusted")
    overall = {**scores, "accuracy": scores["claim_accuracy"]}
    table.add_row(
        "overall",
        str(scores["answered"]),
        *(cell(overall, k) for k in keys),
        cell(overall, "accuracy"),
    )
    for category, row in scores["categories"].items():
        table.add_row(
            category, str(row["items"]), *(cell(row, k) for k in keys), cell(row, "accuracy")
        )
    _console().print(table)
    typer.echo(f"wrote {answers / 'scores.json'}")


@rpc.command("consistency")
def rpc_consistency(
    pairwise: Path = typer.Option(..., "--pairwise", help="Human pairwise preferences (JSONL)."),
    judges: list[Path] = typer.Option(
        ..., "--judges", help="Judge folders of <model>_score.json files (repeatable)."
    ),
    out: Path | None = typer.Option(None, "--out", help="Also write the table as JSON here."),
) -> None:
    """Judge–human consistency: Pearson/Spearman against human Bradley–Terry, pairwise AUC."""
    from rich.table import Table

    from posttrain.eval.rpc import commands
    from posttrain.eval.rpc.consistency import METRICS

    try:
        result = commands.consistency(pairwise, judges, out)
    except (ValueError, OSError) as err:
        raise _fail("error", err) from None
    table = Table(title="RPC-Bench judge–human consistency")
    table.add_column("judge")
    for metric in METRICS:
        table.add_column(metric, justify="right")
    for name, metrics in result["judges"].items():
        table.add_row(name, *(f"{metrics[m]:.4f}" for m in METRICS))
    _console().print(table)
    if out is not None:
        typer.echo(f"wrote {out}")


sustain = typer.Typer(
    help="SustainScore: accuracy after inserting self-evident constraints (math, QA, code)."
)
app.add_typer(sustain, name="sustain")


@sustain.command("run")
def sustain_run(
    model: str = typer.Option(
        "scripted:sustain-solver", "--model", help="Model SPEC (default: the scripted solver)."
    ),
    domains: str = typer.Option("math,qa,code", "--domains", help="Comma-separated domains."),
    out: Path = typer.Option(..., "--out", help="Output directory (resumable)."),
    n: int = typer.Option(100, "--n", help="Items per domain (HumanEval has 164)."),
    max_constraints: int = typer.Option(3, "--max-constraints", help="Largest k inserted."),
    seed: int = typer.Option(0, "--seed", help="Seed for items and constraint choice."),
    max_tokens: int = typer.Option(512, "--max-tokens", help="Answer length limit in tokens."),
    batch_size: int = typer.Option(16, "--batch-size", help="Conversations per model call."),
    attention: bool = typer.Option(
        True, "--attention/--no-attention", help="Attention shares (local model dirs only)."
    ),
) -> None:
    """Solve, extract constraints from the solved outputs, re-ask with them inserted, score;
    writes baseline/constrained JSONL, results.json, plots and report.html."""
    from posttrain.eval.sustain import commands
    from posttrain.eval.sustain.tasks import parse_domains

    try:
        results = commands.sustain_run(
            model,
            out,
            parse_domains(domains),
            n,
            max_constraints,
            seed,
            max_tokens,
            batch_size,
            attention,
        )
    except (ValueError, OSError) as err:
        raise _fail("error", err) from None
    _console().print(commands.table(results))
    if "attention" in results:
        typer.echo("attention share on the constraint: " + json.dumps(results["attention"]))
    typer.echo(f"wrote {out / 'results.json'} and {out / 'report.html'}")


def main() -> None:
    """The `posttrain` command. Offline and without telemetry unless the caller's environment
    says otherwise; set here, before any Hugging Face library loads, not on `import
    posttrain`, so that library users keep their own settings."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    app()
