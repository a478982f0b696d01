"""The model behind the server: prompt checks, generation, and per-token details.

One `Engine` holds one model. Callers hold `Engine.lock` around tokenisation and generation,
so requests are served one at a time whichever thread FastAPI runs them on.
"""

from __future__ import annotations

import inspect
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from posttrain.models.chat.base import Choice, Conversation, GenerationParams
from posttrain.models.chat.hf import HFChat
from posttrain.models.server.errors import APIError

# Rows generated per `generate` call, as HFChat batches (a multi-prompt completion request).
_MAX_ROWS = 32


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


class Engine:
    """Checks prompts against the model and generates from them."""

    def __init__(self, chat: HFChat) -> None:
        self.chat = chat
        self.generator = chat.generator
        self.tokenizer = chat.tokenizer
        self.lock = threading.RLock()
        self._byte_decoder = _byte_decoder(self.tokenizer)
        forward = inspect.signature(self.generator.model.forward).parameters
        self._keeps_logits = "logits_to_keep" in forward

    @property
    def context_length(self) -> int:
        return self.generator.context_length

    @property
    def vocab_size(self) -> int:
        return int(self.generator.model.get_input_embeddings().num_embeddings)

    def encode_chat(self, conversation: Conversation) -> list[int]:
        """Prompt ids for a conversation; a template that rejects it is the client's problem."""
        try:
            return self.chat.encode(conversation)
        except Exception as exc:  # jinja raises TemplateError, TypeError, ... on odd input
            raise APIError(
                f"The messages could not be formatted with the model's chat template: {exc}",
                param="messages",
            ) from exc

    def encode_text(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text))

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
    ) -> list[list[Generated]]:
        """`params.n` choices per prompt; token details when `top_logprobs` is not None."""
        per_call = max(1, _MAX_ROWS // params.n)
        results: list[list[Generated]] = []
        with self.lock:
            for start in range(0, len(prompts), per_call):
                batch = prompts[start : start + per_call]
                for prompt, choices in zip(
                    batch, self.generator.generate(batch, params), strict=True
                ):
                    results.append(
                        [
                            Generated(c, self._details(prompt, c, top_logprobs))
                            if top_logprobs is not None
                            else Generated(c)
                            for c in choices
                        ]
                    )
        return results

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
    def _details(self, prompt: Sequence[int], choice: Choice, k: int) -> list[TokenInfo]:
        """Per-token text, bytes and log-prob, plus the `k` likeliest alternatives.

        The generator reports only the sampled tokens' log-probs; the alternatives come from
        one forward pass over prompt + completion, which gives the same raw distribution.
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
            values, indices = logits.float().log_softmax(-1).topk(k, dim=-1)
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
