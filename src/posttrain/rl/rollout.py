"""Rollout: prompts (or environments) in, `Sample`s out, through any token-level generator.

The generator is anything with `generate(prompt_ids, params) -> list[list[Choice]]` whose
choices carry token ids and log-probs: the local policy (`LocalGenerator`) now, a served
model later. Multi-turn rollouts append environment turns as tokens with loss mask 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Protocol

from transformers import PreTrainedTokenizerBase

from posttrain.envs.base import Env
from posttrain.models.chat.base import Choice, GenerationParams
from posttrain.rl.sample import Sample, Turn


class TokenGenerator(Protocol):
    def generate(
        self, prompts: Sequence[Sequence[int]], params: GenerationParams
    ) -> list[list[Choice]]: ...


def as_messages(prompt: Any) -> list[dict[str, str]]:
    """A dataset prompt as chat messages (a bare string becomes one user message)."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return list(prompt)


def encode_prompt(tokenizer: PreTrainedTokenizerBase, prompt: Any) -> list[int]:
    return list(
        tokenizer.apply_chat_template(
            as_messages(prompt), add_generation_prompt=True, tokenize=True, return_dict=False
        )
    )


def _status(choice: Choice) -> str:
    return "truncated" if choice.finish_reason == "length" else "completed"


def token_versions(choice: Choice, default: int) -> list[int]:
    """The weight version of each token of `choice` (one version for the whole choice unless
    the generator reports per-token versions, as a resumed partial rollout does)."""
    count = len(choice.token_ids or [])
    if choice.token_versions is not None:
        return list(choice.token_versions)
    version = choice.weight_version if choice.weight_version is not None else default
    return [version] * count


def oldest_version(versions: Sequence[int], mask: Sequence[int], default: int) -> int:
    generated = [v for v, m in zip(versions, mask, strict=True) if m]
    return min(generated) if generated else default


def rollout_single_turn(
    generator: TokenGenerator,
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[dict[str, Any]],
    params: GenerationParams,
    *,
    first_group_id: int = 0,
    weight_version: int = 0,
    prompt_column: str = "prompt",
) -> list[Sample]:
    """`params.n` samples per row; rows become consecutive groups."""
    prompts = [encode_prompt(tokenizer, row[prompt_column]) for row in rows]
    samples = []
    for offset, (row, ids, choices) in enumerate(
        zip(rows, prompts, generator.generate(prompts, params), strict=True)
    ):
        columns = {k: v for k, v in row.items() if k != prompt_column}
        for choice in choices:
            tokens = choice.token_ids or []
            versions = token_versions(choice, weight_version)
            samples.append(
                Sample(
                    prompt_ids=ids,
                    response_ids=list(tokens),
                    loss_mask=[1] * len(tokens),
                    rollout_logprobs=list(choice.logprobs or [0.0] * len(tokens)),
                    group_id=first_group_id + offset,
                    status=_status(choice),
                    weight_version=min(versions, default=weight_version),
                    token_versions=versions,
                    prompt=row[prompt_column],
                    completion=choice.text,
                    columns=columns,
                )
            )
    return samples


_END_OF_REPLY = "<<posttrain: the policy's reply ends here>>"


def observation_ids(
    tokenizer: PreTrainedTokenizerBase,
    messages: list[dict[str, str]],
    observation: str,
    role: str = "user",
) -> list[int]:
    """Tokens the chat template puts between the end of an assistant turn (its end-of-turn
    token, `tokenizer.eos_token`, which the policy generated) and the next generation
    prompt, with `observation` as the next `role` message.

    The conversation is rendered once with a placeholder as the assistant's reply, and the
    text after the end-of-turn token that follows the placeholder is the gap. Templates that
    re-render earlier turns when a message is added (Qwen3 drops the `<think>` blocks of
    earlier replies) work too: the policy's own tokens are kept as generated and never
    re-rendered, as slime and verl keep multi-turn trajectories token in, token out.
    """
    conversation = [
        *messages,
        {"role": "assistant", "content": _END_OF_REPLY},
        {"role": role, "content": observation},
    ]
    text = tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    reply = text.rfind(_END_OF_REPLY)
    if reply < 0:
        raise ValueError("the chat template does not render the assistant's reply")
    eos = tokenizer.eos_token
    end = text.find(eos, reply) if eos else -1
    if end < 0:
        raise ValueError(f"the chat template does not end an assistant turn with {eos!r}")
    return list(tokenizer.encode(text[end + len(eos) :], add_special_tokens=False))


def rollout_multi_turn(
    generator: TokenGenerator,
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[dict[str, Any]],
    make_env: Callable[[], Env],
    params: GenerationParams,
    *,
    max_turns: int = 4,
    first_group_id: int = 0,
    weight_version: int = 0,
    observation_role: str = "user",
    env_threads: int = 32,
) -> list[Sample]:
    """`params.n` trajectories per row, generated turn by turn, all episodes in one batch.

    The reward of a trajectory is the sum of its environment rewards. A failing environment
    marks its trajectory `failed` instead of stopping the batch. Environment calls of one turn
    run on up to `env_threads` threads, since tools, sandboxes and judges mostly wait.
    """
    one = replace(params, n=1)
    episodes = []
    for offset, row in enumerate(rows):
        for _ in range(params.n):
            episodes.append(_Episode(row, first_group_id + offset, make_env()))
    with ThreadPoolExecutor(max(1, min(env_threads, len(episodes)))) as pool:
        list(pool.map(lambda e: e.start(tokenizer), episodes))
        for _ in range(max_turns):
            live = [e for e in episodes if not e.done]
            if not live:
                break
            outputs = generator.generate([e.prompt_ids + e.response_ids for e in live], one)
            turns = [(e, choice) for e, (choice,) in zip(live, outputs, strict=True)]
            list(
                pool.map(
                    lambda t: t[0].act(tokenizer, t[1], weight_version, observation_role), turns
                )
            )
    for episode in episodes:
        if not episode.done:
            episode.status = "truncated"  # ran out of turns
    return [e.to_sample(weight_version) for e in episodes]


class _Episode:
    """Mutable state of one trajectory while it is being rolled out."""

    def __init__(self, row: dict[str, Any], group_id: int, env: Env) -> None:
        self.row, self.group_id, self.env = row, group_id, env
        self.messages: list[dict[str, str]] = []
        self.prompt_ids: list[int] = []
        self.response_ids: list[int] = []
        self.mask: list[int] = []
        self.logprobs: list[float] = []
        self.versions: list[int] = []
        self.reward = 0.0
        self.done = False
        self.status = "completed"
        self.last_text = ""
        self.info: list[dict[str, Any]] = []
        self.turns = 0
        self.records: list[Turn] = []
        self.observation = ""
        """The environment text the next action answers (s_t)."""

    def start(self, tokenizer: PreTrainedTokenizerBase) -> None:
        try:
            first = self.env.reset(self.row)
        except Exception as error:  # noqa: BLE001 - an environment bug fails one episode
            self._fail(error)
            return
        self.observation = first
        self.messages = [{"role": "user", "content": first}]
        self.prompt_ids = encode_prompt(tokenizer, self.messages)

    def act(
        self, tokenizer: PreTrainedTokenizerBase, choice: Choice, version: int, role: str
    ) -> None:
        tokens = list(choice.token_ids or [])
        self.turns += 1
        start = len(self.response_ids)
        self.response_ids += tokens
        self.mask += [1] * len(tokens)
        self.logprobs += list(choice.logprobs or [0.0] * len(tokens))
        self.versions += token_versions(choice, version)
        self.last_text = choice.text
        # Recorded before the step; completed below once the environment has answered.
        record = Turn(self.observation, choice.text, None, 0.0, start, len(self.response_ids))
        self.records.append(record)
        if choice.finish_reason == "length":
            self.done, self.status = True, "truncated"
            return
        try:
            observation, reward, done, info = self.env.step(choice.text)
        except Exception as error:  # noqa: BLE001
            self._fail(error)
            return
        self.reward += float(reward)
        self.info.append(info)
        # The final observation is kept here too (it is no token of the trajectory: nothing
        # follows it), since state prediction and inverse dynamics learn from it.
        record.next_observation, record.reward, record.done = observation, float(reward), done
        self.observation = observation
        if done:
            self.done = True
            return
        gap = observation_ids(tokenizer, self.messages, observation, role)
        self.messages += [
            {"role": "assistant", "content": choice.text},
            {"role": role, "content": observation},
        ]
        self.response_ids += gap
        self.mask += [0] * len(gap)
        self.logprobs += [0.0] * len(gap)
        # Environment tokens were not generated; they carry the version of the turn before.
        self.versions += [self.versions[-1] if self.versions else version] * len(gap)

    def _fail(self, error: Exception) -> None:
        self.done, self.status = True, "failed"
        self.info.append({"error": f"{type(error).__name__}: {error}"})

    def to_sample(self, weight_version: int) -> Sample:
        return Sample(
            prompt_ids=self.prompt_ids,
            response_ids=self.response_ids,
            loss_mask=self.mask,
            rollout_logprobs=self.logprobs,
            group_id=self.group_id,
            status=self.status,  # type: ignore[arg-type]
            weight_version=oldest_version(self.versions, self.mask, weight_version),
            token_versions=self.versions,
            prompt=self.messages[:1],
            completion=self.last_text,
            columns=dict(self.row),
            reward=self.reward,
            reward_breakdown={"env": self.reward},
            turn_records=self.records,
            metadata={"turns": self.turns, "info": self.info},
        )
