"""Batched generation on a local transformers model, returning token ids and log-probs.

Log-probs are those of the distribution the tokens were sampled from after temperature
scaling, log softmax(logits / T), as TRL's GRPOTrainer computes them for training (and as
vLLM reports them with `--logprobs-mode processed_logprobs`), so a forward pass over the
same tokens with logits divided by T gives the same numbers. Top-p truncation is not applied
to them: with top_p < 1 they are the log-probs of the temperature-scaled full distribution,
which the trainer's own log-probs match, not those of the renormalised nucleus. Greedy
decoding (T = 0) reports the raw distribution. Token ids are kept exactly as generated and
never re-tokenised from text.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from posttrain.models.chat.base import Choice, GenerationParams


class LocalGenerator:
    """Generates from token-id prompts with left padding; safe to share between threads."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self._lock = threading.Lock()  # one generate at a time: torch modules share state

    @property
    def context_length(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 0) or 2048)

    def stop_ids(self) -> list[int]:
        """Token ids that end a row: the generation config's eos ids and the tokenizer's."""
        ids = self.model.generation_config.eos_token_id
        ids = [ids] if isinstance(ids, int) else list(ids or [])
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in ids:
            ids.append(self.tokenizer.eos_token_id)
        return ids

    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        params: GenerationParams,
        should_stop: Callable[[], bool] | None = None,
        model_inputs: Mapping[str, torch.Tensor] | None = None,
    ) -> list[list[Choice]]:
        """Return `params.n` choices per prompt, in prompt order. `should_stop`, asked after
        every decode step, ends all rows there when true (the server yields to waiting
        requests this way): rows cut short end with finish reason "length".
        `model_inputs` go to `model.generate` beside the ids, batched for the `params.n`
        rows of each prompt in turn (a vision model's pixel values)."""
        if not prompts:
            return []
        room = self.context_length - max(len(p) for p in prompts)
        if room < 1:
            raise ValueError(
                f"prompt of {max(len(p) for p in prompts)} tokens leaves no room in the "
                f"context length of {self.context_length}"
            )
        max_new = min(params.max_tokens, room)
        pad_id = self.tokenizer.pad_token_id
        width = max(len(p) for p in prompts)
        rows = [list(p) for p in prompts for _ in range(params.n)]
        input_ids = torch.tensor([[pad_id] * (width - len(r)) + r for r in rows])
        attention = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
        sample = params.temperature > 0
        stop_ids = self.stop_ids()
        with self._lock:
            if params.seed is not None:
                torch.manual_seed(params.seed)
            out = self.model.generate(
                input_ids=input_ids.to(self.model.device),
                attention_mask=attention.to(self.model.device),
                **(model_inputs or {}),
                max_new_tokens=max_new,
                do_sample=sample,
                temperature=params.temperature if sample else None,
                top_p=params.top_p if sample else None,
                top_k=0 if sample else None,  # transformers samples from top-50 unless told
                eos_token_id=stop_ids,
                pad_token_id=pad_id,
                stopping_criteria=self._stopping(params.stop, width, should_stop),
                return_dict_in_generate=True,
                output_logits=params.logprobs,
            )
        new_tokens = out.sequences[:, width:].tolist()
        logprobs = None
        if params.logprobs:
            steps = torch.stack(out.logits, dim=1).float()
            if sample and params.temperature != 1.0:
                steps = steps / params.temperature
            steps = steps.log_softmax(-1)
            picked = steps.gather(-1, out.sequences[:, width:, None].to(steps.device))
            logprobs = picked.squeeze(-1).tolist()
        choices = [
            self.finish_row(tokens, logprobs[i] if logprobs else None, stop_ids, params, max_new)
            for i, tokens in enumerate(new_tokens)
        ]
        return [choices[i * params.n : (i + 1) * params.n] for i in range(len(prompts))]

    def _stopping(
        self, stops: Sequence[str], start: int, should_stop: Callable[[], bool] | None
    ) -> object | None:
        """The stopping criteria of one `generate` call: stop strings in the generated text,
        and `should_stop` (None where there are neither)."""
        from transformers import StoppingCriteriaList

        stops = [stop for stop in stops if stop]
        criteria = [_stop_strings(self.tokenizer, stops, start)] if stops else []
        criteria += [_stop_when(should_stop)] if should_stop else []
        return StoppingCriteriaList(criteria) if criteria else None

    def finish_row(
        self,
        tokens: list[int],
        logprobs: list[float] | None,
        stop_ids: list[int],
        params: GenerationParams,
        max_new: int,
    ) -> Choice:
        """Cut a generated row at its stop token or stop string and name why it ended (public:
        the server's engine finishes rows it generated in several time slices with it)."""
        end = next((i for i, t in enumerate(tokens) if t in stop_ids), None)
        finish = "stop" if end is not None else "length"
        # The stop token itself is kept in token_ids (it was sampled and is trained on),
        # but not shown in the text.
        kept = tokens[: end + 1] if end is not None else tokens[:max_new]
        visible = kept[:-1] if end is not None else kept
        text = self.tokenizer.decode(visible, skip_special_tokens=True)
        if any(stop in text for stop in params.stop):
            # A stop string ended the row. Keep tokens up to the one that completed it:
            # transformers fills a finished row with pad tokens that were never sampled.
            kept = visible[: self._stop_string_end(visible, params.stop)]
            text = self.tokenizer.decode(kept, skip_special_tokens=True)
            text, finish = text[: min(text.find(s) for s in params.stop if s in text)], "stop"
        return Choice(
            text=text,
            finish_reason=finish,
            token_ids=kept,
            logprobs=logprobs[: len(kept)] if logprobs is not None else None,
        )

    def _stop_string_end(self, tokens: list[int], stops: Sequence[str]) -> int:
        """Fewest leading tokens whose text contains a stop string (binary search)."""
        lo, hi = 1, len(tokens)
        while lo < hi:
            mid = (lo + hi) // 2
            text = self.tokenizer.decode(tokens[:mid], skip_special_tokens=True)
            if any(stop in text for stop in stops):
                hi = mid
            else:
                lo = mid + 1
        return hi


def _stop_when(should_stop: Callable[[], bool]) -> object:
    """A transformers stopping criterion that ends every row once `should_stop()` is true."""
    from transformers import StoppingCriteria

    class Stop(StoppingCriteria):
        def __call__(self, input_ids: torch.Tensor, scores: object, **_: object) -> torch.Tensor:
            return torch.full((input_ids.shape[0],), should_stop(), device=input_ids.device)

    return Stop()


def _stop_strings(tokenizer: PreTrainedTokenizerBase, stops: Sequence[str], start: int) -> object:
    """A stopping criterion that ends a row once its generated text (the tokens from
    `start` on) holds a stop string. transformers' own `stop_strings` also match across
    the prompt's end: a prompt ending in "\n" stopped at the first generated "\n" for the
    stop "\n\n". A string completed by the newest token lies within the last
    len(string) tokens (a token is at least one character), so only that tail is decoded."""
    from transformers import StoppingCriteria

    longest = max(len(stop) for stop in stops)

    class StopStrings(StoppingCriteria):
        def __call__(self, input_ids: torch.Tensor, scores: object, **_: object) -> torch.Tensor:
            tails = input_ids[:, max(start, input_ids.shape[1] - longest) :].tolist()
            texts = tokenizer.batch_decode(tails, skip_special_tokens=True)
            done = [any(stop in text for stop in stops) for text in texts]
            return torch.tensor(done, device=input_ids.device)

    return StopStrings()
