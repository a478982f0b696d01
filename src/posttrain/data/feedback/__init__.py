"""WildReward's feedback pipeline: in-the-wild conversations -> ordinal reward-model rows.

The user's next message is implicit feedback on the assistant's reply. Each turn is
labelled on a 5-level scale by a ChatModel, neutral turns adopt praise that came a turn or
two later (hindsight), refusals are re-judged by an adjudicator, and filtered turns become
rows with ordinal labels 1..4, split by conversation.

Modules, in pipeline order:

- `turns`: extract_turns (one item per assistant reply that a user message follows)
- `labeling`: the 5-level SCALE, labeling_prompt, parse_label, label_chunk (re-asking
  unparseable answers through `posttrain.models.chat.replies.ask_parsed`) and the rule
  labeler `scripted:feedback-rules`
- `hindsight`: TF-IDF / MiniLM similarity and apply_hindsight
- `refusals`: looks_like_refusal, the adjudication prompt and verdicts, the rule
  adjudicator `scripted:refusal-rules`
- `filters`: drop reasons, personal-data regexes, LABEL_MAP, split_of
- `stages`: resumable chunked stage files
- `agreement`: Spearman (`posttrain.data.correlation`) and confusion against a held-out quality
- `pipeline`: FeedbackPipelineConfig and run_pipeline
"""

from __future__ import annotations

from posttrain.data.feedback.agreement import agreement
from posttrain.data.feedback.filters import (
    DROP_REASONS,
    LABEL_MAP,
    drop_reason,
    has_personal_data,
    map_label,
    split_of,
)
from posttrain.data.feedback.hindsight import apply_hindsight, make_similarity
from posttrain.data.feedback.labeling import (
    FEEDBACK_RULES,
    SCALE,
    feedback_rules_script,
    label_chunk,
    labeling_prompt,
    parse_label,
    register_feedback_scripts,
    rule_label,
)
from posttrain.data.feedback.pipeline import FeedbackPipelineConfig, run_pipeline
from posttrain.data.feedback.refusals import (
    VERDICTS,
    adjudicate_chunk,
    adjudication_prompt,
    looks_like_refusal,
    parse_verdict,
    refusal_rules_script,
)
from posttrain.data.feedback.stages import read_stage, run_stage
from posttrain.data.feedback.turns import extract_turns

register_feedback_scripts()

__all__ = [
    "DROP_REASONS",
    "FEEDBACK_RULES",
    "LABEL_MAP",
    "SCALE",
    "VERDICTS",
    "FeedbackPipelineConfig",
    "adjudicate_chunk",
    "adjudication_prompt",
    "agreement",
    "apply_hindsight",
    "drop_reason",
    "extract_turns",
    "feedback_rules_script",
    "has_personal_data",
    "label_chunk",
    "labeling_prompt",
    "looks_like_refusal",
    "make_similarity",
    "map_label",
    "parse_label",
    "parse_verdict",
    "read_stage",
    "refusal_rules_script",
    "register_feedback_scripts",
    "rule_label",
    "run_pipeline",
    "run_stage",
    "split_of",
]
