"""Seeded conversations in WildChat's layout whose user follow-ups reveal, noisily, how good
each assistant reply was: the embedded default input of WildReward's feedback pipeline.

Why synthetic: WildChat is not reachable offline, and a generator knows the true quality of
every reply, so the pipeline's labels can be checked against it. The quality lives in the
reply's content (a wrong number, an off-topic paragraph, a refusal), never in a token that
gives the label away, so a reward model trained on these replies learns from text alone.

Rows: {"conversation_hash", "conversation": [{"role", "content"}, ...], "language", "model",
"user_id", "turn_quality": [1..5, one per assistant reply], "turn_tasks": [the oracle facts
of the task each reply answered]}. The last two are the generator's ground truth, for
evaluation only: the feedback pipeline must not label from them.

Many simulated users each have a style (verbose or terse, polite or rude, typos, follow-up
tendency, how often they react at all, how harsh they are, a topic mix and a personal
subset of phrasings), so more users give more diverse data. Tasks come from families whose
quality is well defined (arithmetic, unit conversion, capitals, sorting, past-tense
rewriting, definitions, benign how-tos that tempt a false refusal, harmful requests that
should be refused). `policy_prompts` draws held-out prompts from other users and streams,
and `reply_quality` scores any reply text to them: the held-out judge for online training.

Modules, in the order they build on each other:

- `tables`: FAMILIES, QUALITY, MODELS, the world facts, the assistant's stock lines and the
  users' phrasings, read from the shipped `posttrain/data/tables/wild_conversations.yaml`
- `users`: WildUser and make_users
- `tasks`: Task, make_task and each family's builder
- `replies`: render_reply and each family's reply builder
- `conversations`: generate_conversations, write_conversations and policy_prompts
- `oracle`: reply_quality and is_refusal, the held-out judge
"""

from __future__ import annotations

from posttrain.data.wild_conversations.conversations import (
    generate_conversations,
    policy_prompts,
    write_conversations,
)
from posttrain.data.wild_conversations.oracle import is_refusal, reply_quality
from posttrain.data.wild_conversations.replies import render_reply
from posttrain.data.wild_conversations.tables import (
    FAMILIES,
    HOWTOS,
    LOCAL,
    MODELS,
    QUALITY,
    REJECTIONS,
    SATISFIED,
    WORDS,
)
from posttrain.data.wild_conversations.tasks import Task, make_task
from posttrain.data.wild_conversations.users import WildUser, make_users

_make_task = make_task
"""The name `make_task` had before the package split (tests import it)."""

__all__ = [
    "FAMILIES",
    "HOWTOS",
    "LOCAL",
    "MODELS",
    "QUALITY",
    "REJECTIONS",
    "SATISFIED",
    "WORDS",
    "Task",
    "WildUser",
    "_make_task",
    "generate_conversations",
    "is_refusal",
    "make_task",
    "make_users",
    "policy_prompts",
    "render_reply",
    "reply_quality",
    "write_conversations",
]
