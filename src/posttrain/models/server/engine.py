"""The model behind the server: prompt checks, batched generation, per-token details.

One `Engine` holds one model. Request threads tokenise and check prompts with their own
copy of the tokenizer; generation runs on one batching thread (`Batcher`), which merges
concurrent requests with the same sampling settings into one `LocalGenerator.generate`
call and loads pushed weights only between batches.

Seeds: a batch is seeded once. A request that runs alone (nothing compatible was waiting,
or the server runs with `max_batch=1`) is seeded with its own seed, so the same seed and
prompt give the same output. Requests that share a batch share one random stream, seeded
from all their seeds in arrival order: the output is reproducible only with the same batch.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from posttrain.models.chat.base import Choice, Conversation, GenerationParams
from posttrain.models.chat.hf import HFChat
from posttrain.models.server.batcher import Batcher
from posttrain.models.server.errors import APIError
from posttrain.models.server.weights import load_into

# Rows per `generate` call (as HFChat batches), and so per batch of requests by default.
MAX_ROWS = 32
MAX_BATCH = 32


@dataclass
class TokenInfo:
    """One generated token as the logprobs of both APIs describe it."""

    text: str
    bytes: list[int]
    logprob: float | None
    top: list[tuple[str, list[int], float]]  # (text, bytes, logprob), most likely first


@dataclass
class Generated:
    """A choice plus its per-token details (present when logprobs were asked for)."""

    choice: Choice
    tokens: list[TokenInfo] | None = None


@dataclass(frozen=True)
class GenerationJob:
    """One request's prompts and settings, as the batching thread receives it."""

    prompts: list[list[int]]
    params: GenerationParams
    top_logprobs: int | None = None


@dataclass
class Answer:
    """`params.n` choices per prompt and the weight version that generated all of them."""

    generated: list[list[Generated]]
    weight_version: int


class Engine:
    """Checks prompts against the model and generates from them in batches."""

    def __init__(
        self, chat: HFChat, *, max_batch: int = MAX_BATCH, max_rows: int = MAX_ROWS
    ) -> None:
        self.chat = chat
        self.generator = chat.generator
        self.tokenizer = chat.tokenizer  # the batching thread's (decoding, stop strings)
        # Request threads encode with their own copy: a fast tokenizer must not be used by
        # two threads at once, and the batching thread decodes while requests arrive.
        self._request_tokenizer = copy.deepcopy(chat.tokenizer)
        self.lock = threading.Lock()  # guards the request threads' tokenizer
        self.max_rows = max_rows
        self.weight_version = 0
        """Bumped by `load_weights`; read only on the batching thread while generating."""
        self._byte_decoder = _byte_decoder(self.tokenizer)
        forward = inspect.signature(self.generator.model.forward).parameters
        self._keeps_logits = "logits_to_keep" in forward
        self.batcher: Batcher[GenerationJob] = Batcher(
            self._run_batch, max_batch=max_batch, max_rows=max_rows, name="generation"
        )

    @property
    def context_length(self) -> int:
        return self.generator.context_length

    @property
    def vocab_size(self) -> int:
        return int(self.generator.model.get_input_embeddings().num_embeddings)

    def encode_chat(self, conversation: Conversation) -> list[int]:
        """Prompt ids for a conversation; a template that rejects it is the client's problem."""
        try:
            with self.lock:
                ids = self._request_tokenizer.apply_chat_template(
                    list(conversation),
                    add_generation_prompt=True,
                    tokenize=True,
                    return_dict=False,
                )
            return list(ids)
        except Exception as exc:  # jinja raises TemplateError, TypeError, ... on odd input
            raise APIError(
                f"The messages could not be formatted with the model's chat template: {exc}",
                param="messages",
            ) from exc

    def encode_text(self, text: str) -> list[int]:
        with self.lock:
            return list(self._request_tokenizer.encode(text))

    def check_prompt(self, ids: Sequence[int], param: str = "messages") -> None:
        """Refuse prompts that are empty, hold unknown ids, or leave no room to generate."""
        if not ids:
            raise APIError("The prompt is empty (0 tokens).", param=param)
        bad = next((t for t in ids if not 0 <= t < self.vocab_size), None)
        if bad is not None:
            raise APIError(
                f"Token id {bad} is outside the vocabulary [0, {self.vocab_size}).", param=param
            )
        if len(ids) >= self.context_length:
            raise APIError(
                f"The prompt is {len(ids)} tokens long, but this model's context length is "
                f"{self.context_length} tokens, which leaves no room for a completion.",
                param=param,
                code="context_length_exceeded",
            )

    def max_new_tokens(self, prompts: Sequence[Sequence[int]], asked: int | None) -> int:
        """What was asked for, clamped to what the longest prompt leaves of the context."""
        room = self.context_length - max(len(p) for p in prompts)
        return room if asked is None else min(asked, room)

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        params: GenerationParams,
        top_logprobs: int | None = None,
    ) -> Answer:
        """`params.n` choices per prompt, generated in a batch with concurrent requests that
        share the settings (seeds aside); token details when `top_logprobs` is not None.

        `params.max_tokens` must already fit every prompt (see `max_new_tokens`): requests
        batch only with equal `max_tokens`, so no prompt is clamped by another's length.
        """
        job = GenerationJob([list(p) for p in prompts], params, top_logprobs)
        return self.batcher.run(replace(params, seed=None), len(prompts) * params.n, job)

    def load_weights(self, tensors: dict[str, torch.Tensor], version: int | None) -> int:
        """Copy `tensors` into the model between batches; returns the new weight version
        (`version`, or the current one plus 1)."""

        def load() -> int:
            load_into(self.generator.model, tensors)
            self.weight_version = self.weight_version + 1 if version is None else version
            return self.weight_version

        return self.batcher.between(load).result()

    def close(self) -> None:
        self.batcher.close()

    def _run_batch(self, jobs: Sequence[GenerationJob]) -> list[Answer]:
        """Generate every job's prompts together (runs on the batching thread)."""
        params = replace(jobs[0].params, seed=batch_seed([j.params.seed for j in jobs]))
        prompts = [p for job in jobs for p in job.prompts]
        per_call = max(1, self.max_rows // params.n)
        choices: list[list[Choice]] = []
        for call, start in enumerate(range(0, len(prompts), per_call)):
            # Later calls of a batch too big for one call get derived seeds: reseeding each
            # with the same seed would repeat the first call's samples.
            seed = params.seed if call == 0 or params.seed is None else _mix(params.seed, call)
            chunk = prompts[start : start + per_call]
            choices += self.generator.generate(chunk, replace(params, seed=seed))
        answers, start = [], 0
        for job in jobs:
            mine = choices[start : start + len(job.prompts)]
            start += len(job.prompts)
            generated = [
                [
                    Generated(c, self._details(prompt, c, job.top_logprobs, params.temperature))
                    if job.top_logprobs is not None
                    else Generated(c)
                    for c in per_prompt
                ]
                for prompt, per_prompt in zip(job.prompts, mine, strict=True)
            ]
            answers.append(Answer(generated, self.weight_version))
        return answers

    def token_text(self, token_id: int) -> str:
        return self.tokenizer.decode([token_id], skip_special_tokens=False)

    def token_bytes(self, token_id: int, text: str) -> list[int]:
        """The token's exact bytes: byte-level BPE tokens can be part of one UTF-8 character."""
        if self._byte_decoder is not None:
            piece = self.tokenizer.convert_ids_to_tokens(token_id)
            if isinstance(piece, str) and all(ch in self._byte_decoder for ch in piece):
                return [self._byte_decoder[ch] for ch in piece]
        return list(text.encode("utf-8"))

    @torch.no_grad()
    def _details(
        self, prompt: Sequence[int], choice: Choice, k: int, temperature: float = 0.0
    ) -> list[TokenInfo]:
        """Per-token text, bytes and log-prob, plus the `k` likeliest alternatives.

        The generator reports only the sampled tokens' log-probs; the alternatives come from
        one forward pass over prompt + completion, scaled by the sampling temperature as the
        generator's log-probs are (see `posttrain.models.generation`), so both are on one scale.
        """
        ids = choice.token_ids or []
        top: list[list[tuple[int, float]]] = [[] for _ in ids]
        if k > 0 and ids:
            model = self.generator.model
            inputs = torch.tensor([list(prompt) + ids], device=model.device)
            if self._keeps_logits:  # skip the lm-head over the prompt: vocab x length adds up
                logits = model(input_ids=inputs, logits_to_keep=len(ids) + 1).logits[0, :-1]
            else:
                logits = model(input_ids=inputs).logits[0, len(prompt) - 1 : -1]
            scale = temperature if temperature > 0 else 1.0
            values, indices = (logits.float() / scale).log_softmax(-1).topk(k, dim=-1)
            top = [
                list(zip(row_ids, row_vals, strict=True))
                for row_ids, row_vals in zip(indices.tolist(), values.tolist(), strict=True)
            ]
        logprobs = [_finite(lp) for lp in choice.logprobs] if choice.logprobs else [None] * len(ids)
        details = []
        for token_id, logprob, alternatives in zip(ids, logprobs, top, strict=True):
            text = self.token_text(token_id)
            details.append(
                TokenInfo(
                    text=text,
                    bytes=self.token_bytes(token_id, text),
                    logprob=logprob,
                    top=[self._described(t, lp) for t, lp in alternatives],
                )
            )
        return details

    def _described(self, token_id: int, logprob: float) -> tuple[str, list[int], float]:
        text = self.token_text(token_id)
        return text, self.token_bytes(token_id, text), _finite(logprob)


def batch_seed(seeds: Sequence[int | None]) -> int | None:
    """The seed of a batch: a lone request's own seed; for several, a stable mix of all of
    them in arrival order (None when no request asked for one)."""
    if len(seeds) == 1:
        return seeds[0]
    if all(s is None for s in seeds):
        return None
    return _mix(*seeds)


def _mix(*values: int | None) -> int:
    """A seed in [0, 2**63) from `values`, the same in every process (unlike `hash`)."""
    digest = hashlib.blake2b(repr(values).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def _finite(logprob: float) -> float:
    """JSON has no -inf: a token the model rules out (masked logits) reports -9999, as vLLM does."""
    return logprob if math.isfinite(logprob) else -9999.0


def _byte_decoder(tokenizer: object) -> dict[str, int] | None:
    """Map from byte-level BPE characters back to bytes, if the tokenizer is byte-level."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    decoder = getattr(backend, "decoder", None)
    if type(decoder).__name__ != "ByteLevel":
        return None
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    table = bytes_to_unicode()  # GPT-2's byte -> printable character map
    return {char: byte for byte, char in table.items()}
