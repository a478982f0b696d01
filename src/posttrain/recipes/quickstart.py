"""The foundation demo: warm-start a tiny model, serve it on loopback, question it over HTTP.

It exercises the whole path a real deployment takes: a model directory, `posttrain serve`,
and the official `openai` client, so the same steps work with a real checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.table import Table

from posttrain.data.arithmetic import make_splits
from posttrain.eval.exact_match import exact_match_accuracy
from posttrain.models.chat.base import GenerationParams
from posttrain.models.chat.openai_chat import OpenAIChat
from posttrain.models.server_process import serve_model
from posttrain.recipes.base import Recipe
from posttrain.sft.warm_start import WarmStartConfig, warm_start


@dataclass
class QuickstartConfig:
    warm_start: WarmStartConfig = field(default_factory=WarmStartConfig)
    questions: int = 200
    """How many held-out questions to ask the served model (all 200 by default)."""
    shown: int = 12
    """How many of the answers to print."""
    run_name: str = "quickstart"
    runs_root: str = "runs"


class QuickstartRecipe(Recipe):
    """Three stages and its own ending: `results.json` is the summary (there is no
    summary.json), and the accuracy is printed after the report is written."""

    title = "posttrain quickstart"
    rerun_may_change = None
    """No rerun guard: a rerun reuses nothing in the run directory (the warm start is cached
    by content hash; the questions are asked again)."""
    config: QuickstartConfig

    def stages(self) -> dict[str, Any]:
        """Warm start, serve, ask: the summary that results.json keeps."""
        config, console, run = self.config, self.console, self.run
        console.print(
            f"[bold]1/3 warm start[/] ({config.warm_start.size}, {config.warm_start.steps} steps)"
        )
        result = warm_start(config.warm_start, run)
        source = "cache" if result.cached else f"trained in {result.train_seconds:.0f}s"
        console.print(f"    model: {result.model_dir} ({source})", soft_wrap=True)

        console.print("[bold]2/3 serve[/] on loopback with `posttrain serve`")
        _, test = make_splits(config.warm_start.task)
        questions = test[: config.questions]
        with serve_model(
            result.model_dir,
            "--served-model-name",
            "tiny-arithmetic",
            log_path=run.path / "server.log",
        ) as server:
            console.print(f"    {server.base_url}")
            console.print("[bold]3/3 ask[/] through the official openai client")
            client = OpenAIChat(model="tiny-arithmetic", base_url=server.base_url)
            accuracy, records = exact_match_accuracy(
                client, questions, GenerationParams(max_tokens=8)
            )

        table = Table(title=f"First {config.shown} of {len(records)} held-out questions, over HTTP")
        for column in ("question", "answer", "reference", "ok"):
            table.add_column(column)
        for r in records[: config.shown]:
            table.add_row(r["prompt"], r["response"], r["answer"], "✓" if r["correct"] else "✗")
        console.print(table)
        return {
            "model_dir": str(result.model_dir),
            "heldout_accuracy_in_process": result.accuracy,
            "served_accuracy": accuracy,
            "questions": len(records),
            "answered_by": records[0]["model"],
        }

    def __call__(self) -> dict[str, Any]:
        config, console, run = self.config, self.console, self.run
        summary = self.stages()
        accuracy = summary["served_accuracy"]
        run.write_json("results.json", summary)
        run.log(0, served_accuracy=accuracy)
        run.close()
        report = self.report()
        in_process = summary["heldout_accuracy_in_process"]
        console.print(
            f"accuracy over HTTP on {summary['questions']} held-out questions: "
            f"[bold]{accuracy:.1%}[/]  (in-process on {config.warm_start.task.n_test}: "
            f"{in_process:.1%})"
        )
        console.print(f"run directory: {run.path}", soft_wrap=True)  # whole paths, for copying
        console.print(f"report: {report}", soft_wrap=True)
        return summary
