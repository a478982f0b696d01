"""The general commands: tiny models, warm start, SFT, reward-model training, RL, the servers,
reports, quickstart."""

from __future__ import annotations

import json
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
        None, "--max-positions", help="Context length (default: 512; 8192 for DSA models)."
    ),
    arch: str = typer.Option(
        "qwen2",
        "--arch",
        help="qwen2, or a real DSA architecture at tiny size: glm_moe_dsa (GLM-5) or "
        "deepseek_v32 (DeepSeek-V3.2); DSA models are causal LMs only.",
    ),
) -> None:
    """Build a tiny model (Qwen2, or GLM-5 / DeepSeek-V3.2 DSA) and its tokenizer, saved with
    save_pretrained."""
    from posttrain.data.arithmetic import ArithmeticTask, tokenizer_corpus
    from posttrain.data.io import read_jsonl, read_text
    from posttrain.models.tiny import SIZES, build_tiny_model, describe_saved
    from posttrain.models.tiny_dsa import DSA_ARCHES, build_tiny_dsa_model

    if arch not in ("qwen2", *DSA_ARCHES):
        choices = ", ".join(("qwen2", *DSA_ARCHES))
        raise typer.BadParameter(f"choose one of {choices}", param_hint="--arch")
    if arch != "qwen2" and kind != "causal-lm":
        raise typer.BadParameter("DSA models are causal-lm only", param_hint="--kind")
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
        if arch == "qwen2":
            path = build_tiny_model(
                out,
                texts,
                size=size,
                vocab_size=vocab_size,
                kind=kind,
                seed=seed,
                max_positions=max_positions,
            )
        else:
            path = build_tiny_dsa_model(
                out,
                texts,
                arch=arch,
                size=size,
                vocab_size=vocab_size,
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

    cfg = load_settings(WarmStartConfig, config_file(config, positional), overrides)
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

    settings = load_settings(SFTStageConfig, config, overrides)
    try:
        final = train_sft(settings)
    except ValueError as err:  # DataError is a ValueError too
        raise fail("error", err) from None
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
    attn_implementation: str | None = typer.Option(
        None,
        help="transformers attention implementation (sdpa, eager, ...); posttrain_sparse "
        "gathers each query's top-k keys on DSA models (SDPA elsewhere). Default: "
        "transformers' own choice.",
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

        if attn_implementation == "posttrain_sparse":
            import posttrain.attention.sparse_kernel  # noqa: F401 - registers the name

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
            attn_implementation=attn_implementation,
        )
    except ValueError as err:  # a bad flag, or an unprotected bind
        raise fail("error", err) from None


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
        raise fail("error", err) from None
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


rm = typer.Typer(help="Reward models on your own preference pairs (serve them: serve-rm).")
app.add_typer(rm, name="rm")


@rm.command("train")
def rm_train(
    data: str | None = typer.Option(
        None,
        "--data",
        help="Preference pairs in TRL's layout (prompt, chosen, rejected: strings or chat "
        "messages; or whole conversations as chosen/rejected): JSONL, parquet, a saved "
        "dataset or a module:function loader. Sets train_file.",
    ),
    eval_data: str | None = typer.Option(
        None, "--eval-data", help="Held-out pairs, same layout. Sets eval_file."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Output directory (sets output_dir); the model goes to OUT/final."
    ),
    config: Path | None = typer.Option(
        None, "--config", help="YAML RewardModelConfig (model, steps, batch_size, ...)."
    ),
    overrides: list[str] | None = typer.Option(None, "--set", help=SET_HELP),
) -> None:
    """Train a Bradley–Terry reward model with TRL's RewardTrainer: pairs in, a model
    directory (OUT/final, loadable by serve-rm, rm-bench and RL) and its metrics out."""
    from dataclasses import replace

    from posttrain.report import write_report
    from posttrain.rewards.reward_model import RewardModelConfig, train_reward_model
    from posttrain.runs import Run

    settings = load_settings(RewardModelConfig, config, overrides)
    given = {"train_file": data, "eval_file": eval_data, "output_dir": out and str(out)}
    settings = replace(settings, **{k: v for k, v in given.items() if v is not None})
    if settings.train_file is None:
        raise InputError("no training pairs: pass --data FILE (or train_file in --config)")
    with Run(settings.output_dir) as log:  # TRL reports to settings.report_to itself
        final = train_reward_model(settings, log)
    write_report(settings.output_dir, title="reward model")
    summary = json.loads((final / "reward_model.json").read_text())
    shown = {k: v for k, v in summary.items() if k != "config"}
    typer.echo(json.dumps(shown, indent=2))
    typer.echo(f"model: {final}\nrun: {settings.output_dir}")


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

    settings = load_settings(RLConfig, config_file(config, positional), overrides)
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

    settings = load_settings(QuickstartConfig, config_file(config, positional), overrides)
    summary = QuickstartRecipe(settings, console())()
    typer.echo(json.dumps(summary, indent=2))


eureka = typer.Typer(
    help="EurekAgent: metric-driven discovery with a sealed grader (problems, grading, the "
    "agent loop and its log)."
)
app.add_typer(eureka, name="eureka")


@eureka.command("new-problem")
def eureka_new_problem(
    folder: Path = typer.Argument(..., help="An empty or new folder for the problem."),
    name: str | None = typer.Option(None, "--name", help="Problem name (default: the folder's)."),
) -> None:
    """Write a starter problem (INSTRUCTION.md, SUBMISSION_FORMAT.md, problem.json and a
    private/evaluator.py with its hidden value) to edit into your own."""
    from posttrain.eureka.problem import scaffold_problem

    try:
        problem = scaffold_problem(folder, name or folder.name)
    except ValueError as err:
        raise fail("error", err) from None
    typer.echo(f"wrote problem {problem.name!r} to {folder}: edit private/evaluator.py")


@eureka.command("grade")
def eureka_grade(
    problem: Path = typer.Option(..., "--problem", help="A problem folder (or a shipped name)."),
    submission: Path = typer.Option(..., "--submission", help="The file to grade."),
    results: Path = typer.Option(..., "--results", help="Results folder the grader writes."),
    approach: str = typer.Option("manual", "--approach", help="Approach name in the record."),
) -> None:
    """Grade one submission in the sealed grader (bubblewrap: the evaluator sees only its
    private/ folder and a copy of the submission) and print the results record."""
    from posttrain.eureka.grader import grade
    from posttrain.eureka.problem import load_problem, shipped_problems

    folder = shipped_problems().get(str(problem), problem)
    try:
        load_problem(folder)
        record = grade(
            folder, submission, approach=approach, round=0, repo_dir=None, results_dir=results
        )
    except (ValueError, OSError, RuntimeError) as err:
        raise fail("error", err) from None
    typer.echo(json.dumps(record, indent=2))


@eureka.command("monitor")
def eureka_monitor(
    run: Path = typer.Argument(..., help="A run folder of `eureka run` (running or not)."),
    port: int = typer.Option(0, "--port", help="Port (0: a free one)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Bind address (loopback by default)."),
) -> None:
    """Serve the live web monitor of a run (rounds, approaches, scores, best-so-far curve,
    budget, log; pause, resume, stop, notes) until Ctrl-C; prints the page's URL with its
    fresh token."""
    import secrets

    from posttrain.eureka.monitor import serve
    from posttrain.models.server_process import free_port

    if not run.is_dir():
        raise fail("error", InputError(f"{run}: not a run directory (no such folder)"))
    port = port or free_port(host)
    token = secrets.token_urlsafe(32)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    typer.echo(f"EurekAgent monitor of {run}: http://{shown}:{port}/?token={token}")
    serve(run, token, host, port)


@eureka.command("run")
def eureka_run(
    problem: str = typer.Option(..., "--problem", help="A problem folder or a shipped name."),
    agent: str = typer.Option(
        "scripted:eureka-agent", "--agent", help="Chat model spec (offline: the scripted agent)."
    ),
    k: int = typer.Option(3, "--k", help="Approaches per round, implemented in parallel."),
    rounds: int = typer.Option(4, "--rounds", help="Rounds to run in all."),
    cost_limit: float | None = typer.Option(
        5.0, "--cost-limit", help="USD; the loop stops at the round boundary that reaches it."
    ),
    out: Path = typer.Option(..., "--out", help="Run folder (the same command resumes it)."),
    seed: int = typer.Option(0, "--seed"),
    propose_seconds: float | None = typer.Option(None, "--propose-seconds"),
    implement_seconds: float | None = typer.Option(None, "--implement-seconds"),
    effort: str | None = typer.Option(
        None, "--effort", help="The scripted agent's work factor (small, normal, large, or N)."
    ),
    workers: str = typer.Option(
        "threads", "--workers", help="Where implementers run: threads, or ray (tasks)."
    ),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="--workers ray: a cluster's address (default: local)."
    ),
    ray_cpus_per_task: float = typer.Option(
        1.0, "--ray-cpus-per-task", help="--workers ray: CPUs Ray reserves per session."
    ),
) -> None:
    """Run EurekAgent's loop (propose -> implement in parallel -> grade -> rank) on a problem;
    progress goes to OUT/state.json and OUT/events.jsonl."""
    from posttrain.eureka.loop import EurekaConfig, run_eureka

    stages = {
        name: seconds
        for name, seconds in (("propose", propose_seconds), ("implement", implement_seconds))
        if seconds is not None
    }
    options: dict = {}
    if effort is not None:
        options["effort"] = effort if effort in ("small", "normal", "large") else float(effort)
    try:
        config = EurekaConfig(
            problem,
            agent,
            k,
            rounds,
            cost_limit,
            stages,
            seed,
            agent_options=options,
            workers=workers,
            ray_address=ray_address,
            ray_cpus_per_task=ray_cpus_per_task,
        )
        summary = run_eureka(config, out)
    except (ValueError, OSError, RuntimeError) as err:
        raise fail("error", err) from None
    if summary["scripted"]:
        typer.echo("[scripted] offline scripted agent: no language model was used")
    typer.echo(json.dumps(summary, indent=2))


@eureka.command("log")
def eureka_log(run: Path = typer.Argument(..., help="A run folder of `eureka run`.")) -> None:
    """The best approach's history as a story, with the grader's score of each version."""
    from posttrain.eureka.loop import best_story

    try:
        typer.echo(best_story(run))
    except (ValueError, OSError) as err:
        raise fail("error", err) from None
