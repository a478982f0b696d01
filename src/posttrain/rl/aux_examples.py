"""State-prediction and inverse-dynamics examples from transitions, in the policy's own chat
template (EnvRL, Tsinghua 2026).

- SP (state prediction): the user message holds s_t and a_t; the target is s_t+1.
- ID (inverse dynamics): the user message holds s_t and s_t+1; the target is a_t.

Each example is the chat template's rendering of that user message with the generation
prompt, followed by the target as the policy would write a reply: the target text's tokens
and the end-of-turn token (`tokenizer.eos_token`). The loss covers the target span only.

Truncation rule: every state (s_t and s_t+1, as input or as SP's target) keeps its last
`max_state_tokens` tokens (as the tokenizer splits the state's text alone) and is decoded
back to text before rendering. The end of an observation is kept because environments put
what is newest there (the game's latest reply, the admissible commands, the page's
buttons). Actions are never cut: the rollout's token limit already bounds them. Each state
cut counts once per transition in `truncated_states`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from transformers import PreTrainedTokenizerBase

from posttrain.rl.transitions import Transition

AuxKind = Literal["sp", "id"]
AUX_KINDS: tuple[AuxKind, ...] = ("sp", "id")

SP_PROMPT = "State:\n{state}\n\nAction:\n{action}\n\nPredict the next state."
ID_PROMPT = "State:\n{state}\n\nNext state:\n{next_state}\n\nWhich action led there?"


@dataclass(frozen=True)
class AuxExample:
    """One rendered example: `input_ids[target_start:]` is the target span."""

    kind: AuxKind
    input_ids: list[int]
    target_start: int
    sample: int = 0
    """Index of the trajectory (in the trained batch) the transition comes from."""

    @property
    def target_ids(self) -> list[int]:
        return self.input_ids[self.target_start :]

    def loss_mask(self) -> list[int]:
        """Per input position t, 1 where token t+1 is a target token (what the logits at t
        predict), as the policy loss's masks are laid out."""
        count = len(self.input_ids) - 1
        return [1 if t + 1 >= self.target_start else 0 for t in range(count)]


def truncate_state(
    tokenizer: PreTrainedTokenizerBase, text: str, max_tokens: int
) -> tuple[str, bool]:
    """`text` cut to its last `max_tokens` tokens, and whether anything was cut."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) <= max_tokens:
        return text, False
    return tokenizer.decode(ids[-max_tokens:]), True


def render_example(
    tokenizer: PreTrainedTokenizerBase, kind: AuxKind, prompt: str, target: str
) -> AuxExample:
    """The chat-template prompt for `prompt` as a user message, then `target` + end of turn."""
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no eos_token to end the target reply with")
    prompt_ids = list(
        tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=False,
        )
    )
    target_ids = [*tokenizer.encode(target, add_special_tokens=False), tokenizer.eos_token_id]
    return AuxExample(kind, prompt_ids + target_ids, len(prompt_ids))


def transition_examples(
    tokenizer: PreTrainedTokenizerBase,
    transition: Transition,
    kinds: Sequence[AuxKind],
    max_state_tokens: int,
    sample: int = 0,
) -> tuple[list[AuxExample], int]:
    """The `kinds` examples of one transition and how many of its two states were cut."""
    if max_state_tokens < 1:
        raise ValueError(f"aux.max_state_tokens must be >= 1, got {max_state_tokens}")
    state, cut_before = truncate_state(tokenizer, transition.state, max_state_tokens)
    next_state, cut_after = truncate_state(tokenizer, transition.next_state, max_state_tokens)
    examples = []
    for kind in kinds:
        if kind == "sp":
            prompt = SP_PROMPT.format(state=state, action=transition.action)
            example = render_example(tokenizer, "sp", prompt, next_state)
        elif kind == "id":
            prompt = ID_PROMPT.format(state=state, next_state=next_state)
            example = render_example(tokenizer, "id", prompt, transition.action)
        else:
            raise ValueError(f"unknown auxiliary objective {kind!r}; expected one of {AUX_KINDS}")
        examples.append(AuxExample(kind, example.input_ids, example.target_start, sample))
    return examples, int(cut_before) + int(cut_after)
