"""Which rules an RPC-Bench run follows: posttrain's own wording, or the official protocol.

A `Protocol` bundles what differs between the two: the answer and judge prompts, the claim
rule, how a judge reply is read, whether empty answers are judged, and where full papers
live. ``posttrain`` (the default) is this package's paraphrased prompts and lenient readers;
``official`` reads RPC-Bench's own templates from a checkout (see `official`). The name is
written to ``run.json``, every judgment record and ``scores.json``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posttrain.eval.rpc import answer, data, judge, official
from posttrain.models.chat.base import Conversation

PROTOCOLS = ("posttrain", "official")


@dataclass(frozen=True)
class Protocol:
    name: str
    conversation: Callable[[dict[str, Any]], Conversation]
    claim_verdict: Callable[[str], str | None]
    judge_conversation: Callable[[dict[str, Any], str, str], Conversation]
    read_rating: Callable[[Any, str], float | None]
    judge_order: tuple[str, ...]
    judge_empty: bool  # ask the judge about an empty answer (official) or score it 0 unasked
    paper_text: Callable[[str | Path, str], str]
    merge_replies: Callable[[list[str]], dict[str, float | None]] | None = None
    rpc_bench: Path | None = None  # the checkout the official templates came from
    default_papers: Path | None = None

    def judge(self, chat: Any, max_retries: int) -> judge.RPCJudge:
        return judge.RPCJudge(
            chat,
            max_retries=max_retries,
            conversation=self.judge_conversation,
            read_rating=self.read_rating,
            order=self.judge_order,
            judge_empty=self.judge_empty,
            merge=self.merge_replies,
            protocol=self.name,
        )


POSTTRAIN = Protocol(
    name="posttrain",
    conversation=answer.conversation,
    claim_verdict=answer.normalise_claim,
    judge_conversation=judge.judge_conversation,
    read_rating=judge.parse_rating,
    judge_order=judge.DIMENSIONS,
    judge_empty=False,
    paper_text=data.paper_text,
)


def load_protocol(name: str, rpc_bench: str | Path | None = None) -> Protocol:
    """The protocol called ``name``; ``official`` needs the RPC-Bench checkout ``rpc_bench``."""
    if name not in PROTOCOLS:
        raise ValueError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {name!r}")
    if name == "posttrain":
        if rpc_bench is not None:
            raise ValueError("--rpc-bench is only read with --protocol official")
        return POSTTRAIN
    if rpc_bench is None:
        raise ValueError("--protocol official needs --rpc-bench DIR (an RPC-Bench checkout)")
    prompts = official.load_official(rpc_bench)
    return Protocol(
        name="official",
        conversation=prompts.conversation,
        claim_verdict=official.claim_verdict,
        judge_conversation=prompts.judge_conversation,
        read_rating=official.read_rating,
        judge_order=official.JUDGE_ORDER,
        judge_empty=True,
        paper_text=official.paper_text,
        merge_replies=official.merged_ratings,
        rpc_bench=prompts.checkout,
        default_papers=prompts.papers_dir,
    )
