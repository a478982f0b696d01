"""Budgets of a run: dollars spent on chat models, and wall-clock time per stage.

`TrackedChat` wraps any `ChatModel` and records every conversation it answers, each retry
included (a re-ask is another call through it), in a `Budget`, by stage and model:

- tokens come from the backend's own `usage` when it reports one (OpenAI-compatible
  servers), else from the local tokenizer (models with `encode` whose choices carry token
  ids: `HFChat`), else from an estimate of `CHARS_PER_TOKEN` characters per token, counted
  in `estimated` so a summary says which numbers are guesses;
- a reply served by a response cache (`ChatResult.cached`) costs nothing and adds no tokens;
- dollars are the price table's (`posttrain.eureka.prices`) for the model's name.

The cost limit is not enforced inside a call: the loop asks `exhausted()` at each round
boundary and stops there, so a round in flight finishes and its work is kept. A stage's time
limit is checked before each model call of that stage (`StageTimeExceeded`), and by agents
through `StageClock.check()` between their steps; overruns are counted in the summary.

A budget with a `path` writes its totals there atomically after every change and, when
built again on the same path, carries on from them (resume after a crash).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from posttrain.atomic import write_text
from posttrain.errors import InputError
from posttrain.eureka.prices import PriceTable, load_prices
from posttrain.models.chat.base import ChatResult, Conversation, GenerationParams
from posttrain.models.chat.images import content_text

CHARS_PER_TOKEN = 4
"""The estimate used where neither the backend nor a local tokenizer gives a count: about
four characters per token, the usual rule of thumb for English text with BPE tokenizers."""

FORMAT_VERSION = 1


class StageTimeExceeded(RuntimeError):
    """A stage ran past its wall-clock limit."""


@dataclass
class Tally:
    """What one model cost in one stage. Tokens and dollars are those billed: cached
    replies count in `cached` only."""

    calls: int = 0
    """Conversations answered, cached or not, retries included."""
    cached: int = 0
    """Of those, answered from a response cache (free)."""
    errors: int = 0
    """`chat` calls that raised (nothing counted for them)."""
    estimated: int = 0
    """Calls whose tokens were estimated from characters."""
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0


@dataclass
class StageTime:
    """Wall-clock seconds spent in a stage over all its entries."""

    seconds: float = 0.0
    entries: int = 0
    overruns: int = 0


class StageClock:
    """One entry into a stage: its elapsed time against its limit (None: no limit)."""

    def __init__(self, name: str, limit: float | None) -> None:
        self.name = name
        self.limit = limit
        self.started = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def remaining(self) -> float | None:
        return None if self.limit is None else max(0.0, self.limit - self.elapsed)

    @property
    def over(self) -> bool:
        return self.limit is not None and self.elapsed > self.limit

    def check(self) -> None:
        """Raise StageTimeExceeded once the stage is past its limit."""
        if self.over:
            raise StageTimeExceeded(
                f"stage {self.name!r} ran {self.elapsed:.1f} s, past its limit of {self.limit} s"
            )


class Budget:
    """A run's spending (cost limit in USD, None for none) and per-stage time limits.
    Thread-safe: K implementers may record into one budget at once."""

    def __init__(
        self,
        cost_limit_usd: float | None,
        stage_seconds: Mapping[str, float] | None = None,
        *,
        path: str | Path | None = None,
    ) -> None:
        """With `path`, totals already saved there are loaded (a resumed run); the limits are
        always this call's, so a person can raise a limit and carry on."""
        if cost_limit_usd is not None and not (
            math.isfinite(cost_limit_usd) and cost_limit_usd >= 0
        ):
            raise ValueError(f"cost_limit_usd must be a finite number >= 0, got {cost_limit_usd}")
        stage_seconds = dict(stage_seconds or {})
        for name, seconds in stage_seconds.items():
            if not (isinstance(seconds, int | float) and seconds > 0 and math.isfinite(seconds)):
                raise ValueError(f"stage_seconds[{name!r}] must be a number > 0, got {seconds!r}")
        self.cost_limit_usd = cost_limit_usd
        self.stage_seconds = stage_seconds
        self.path = Path(path) if path is not None else None
        self._lock = threading.RLock()
        self._tallies: dict[str, dict[str, Tally]] = {}
        self._times: dict[str, StageTime] = {}
        self._active: dict[str, StageClock] = {}
        if self.path is not None and self.path.exists():
            self._load(self.path)

    # --- recording ------------------------------------------------------------------------

    def record(
        self,
        stage: str,
        model: str,
        tokens_in: int,
        tokens_out: int,
        cost_usd: float,
        *,
        cached: bool = False,
        estimated: bool = False,
    ) -> None:
        """Count one answered conversation (a cached one adds no tokens and no cost)."""
        with self._lock:
            tally = self._tally(stage, model)
            tally.calls += 1
            if cached:
                tally.cached += 1
            else:
                tally.tokens_in += tokens_in
                tally.tokens_out += tokens_out
                tally.cost_usd += cost_usd
                tally.estimated += int(estimated)
            self.save()

    def record_error(self, stage: str, model: str) -> None:
        """Count a `chat` call that raised."""
        with self._lock:
            self._tally(stage, model).errors += 1
            self.save()

    def _tally(self, stage: str, model: str) -> Tally:
        return self._tallies.setdefault(stage, {}).setdefault(model, Tally())

    # --- money ----------------------------------------------------------------------------

    def spent(self) -> float:
        """Dollars spent so far."""
        with self._lock:
            return sum(t.cost_usd for models in self._tallies.values() for t in models.values())

    def remaining(self) -> float:
        """Dollars left (infinity without a cost limit; never below zero)."""
        if self.cost_limit_usd is None:
            return math.inf
        return max(0.0, self.cost_limit_usd - self.spent())

    def exhausted(self) -> bool:
        """Whether the cost limit is reached: the loop stops at the next round boundary."""
        return self.cost_limit_usd is not None and self.spent() >= self.cost_limit_usd

    # --- time -----------------------------------------------------------------------------

    @contextmanager
    def stage(self, name: str) -> Iterator[StageClock]:
        """Time one entry into a stage (`with budget.stage("implement") as clock:`). Model
        calls of this stage raise StageTimeExceeded once it is over its limit; on leaving,
        the time is added and an overrun counted. A stage is entered once at a time."""
        with self._lock:
            if name in self._active:
                raise ValueError(f"stage {name!r} is already running")
            clock = StageClock(name, self.stage_seconds.get(name))
            self._active[name] = clock
        try:
            yield clock
        finally:
            with self._lock:
                del self._active[name]
                spent = self._times.setdefault(name, StageTime())
                spent.seconds += clock.elapsed
                spent.entries += 1
                spent.overruns += int(clock.over)
                self.save()

    def active_stage(self, name: str) -> StageClock | None:
        """The running entry of stage `name`, if any."""
        with self._lock:
            return self._active.get(name)

    # --- reports --------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """Totals, then per stage: time and, per model, calls, tokens in/out and cost."""
        with self._lock:
            stages: dict[str, Any] = {}
            for name in sorted(set(self._tallies) | set(self._times)):
                timing = self._times.get(name, StageTime())
                stages[name] = {
                    **asdict(timing),
                    "limit_seconds": self.stage_seconds.get(name),
                    "models": {
                        m: asdict(t) for m, t in sorted(self._tallies.get(name, {}).items())
                    },
                }
            spent = self.spent()
            return {
                "cost_limit_usd": self.cost_limit_usd,
                "spent_usd": spent,
                "remaining_usd": None if self.cost_limit_usd is None else self.remaining(),
                "exhausted": self.exhausted(),
                "stages": stages,
            }

    def prompt_note(self, stage: str | None = None) -> str:
        """The one line agents see, e.g. "$3.21 of $5.00 left; stage implement: 4m 10s of
        10m 00s left" (the given stage, else every running one that has a limit)."""
        if self.cost_limit_usd is None:
            parts = [f"${self.spent():.2f} spent (no cost limit)"]
        else:
            parts = [f"${self.remaining():.2f} of ${self.cost_limit_usd:.2f} left"]
        with self._lock:
            clocks = [self._active[stage]] if stage in self._active else []
            if stage is None:
                clocks = list(self._active.values())
        for clock in clocks:
            if clock.limit is not None:
                parts.append(
                    f"stage {clock.name}: {_duration(clock.remaining or 0.0)} of "
                    f"{_duration(clock.limit)} left"
                )
        return "; ".join(parts)

    # --- persistence ----------------------------------------------------------------------

    def save(self) -> None:
        """Write the totals to `path` atomically (nothing without a path)."""
        if self.path is None:
            return
        with self._lock:
            state = {
                "version": FORMAT_VERSION,
                "cost_limit_usd": self.cost_limit_usd,
                "stage_seconds": self.stage_seconds,
                "tallies": {
                    stage: {m: asdict(t) for m, t in models.items()}
                    for stage, models in self._tallies.items()
                },
                "times": {name: asdict(t) for name, t in self._times.items()},
            }
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_text(self.path, json.dumps(state, indent=1, sort_keys=True) + "\n")

    def _load(self, path: Path) -> None:
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise InputError(f"cannot read the saved budget: {error}", path) from error
        if not isinstance(state, dict) or state.get("version") != FORMAT_VERSION:
            raise InputError(f"not a budget file of version {FORMAT_VERSION}", path, key="version")
        try:
            self._tallies = {
                stage: {m: _typed(Tally, t) for m, t in models.items()}
                for stage, models in state["tallies"].items()
            }
            self._times = {name: _typed(StageTime, t) for name, t in state["times"].items()}
        except (KeyError, TypeError, AttributeError, ValueError) as error:
            raise InputError(f"malformed budget totals: {error}", path) from error


def _typed(cls: type, data: Mapping[str, Any]) -> Any:
    """A Tally / StageTime from saved JSON, each field converted to its declared type."""
    names = {f.name for f in fields(cls)}
    if set(data) != names:
        raise ValueError(f"expected fields {sorted(names)}, got {sorted(data)}")
    defaults = cls()
    return cls(**{name: type(getattr(defaults, name))(data[name]) for name in names})


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def estimate_tokens(text: str) -> int:
    """The character estimate of a text's token count (see CHARS_PER_TOKEN)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def conversation_text(conversation: Conversation) -> str:
    """The text of every message (text parts only), as the estimate counts it."""
    return "\n".join(content_text(m.get("content", "")) for m in conversation)


class TrackedChat:
    """A `ChatModel` that records every call of `model` in `budget` under `stage`.

    The model is priced by its `name` when this is built, so an unpriced model fails before
    any money is spent. `inner` is the wrapped model."""

    def __init__(
        self,
        model: Any,
        budget: Budget,
        stage: str,
        prices: PriceTable | None = None,
    ) -> None:
        self.inner = model
        self.name = model.name
        self.budget = budget
        self.stage = stage
        self.price = (prices if prices is not None else load_prices()).price(model.name)

    def chat(
        self, conversations: Sequence[Conversation], params: GenerationParams | None = None
    ) -> list[ChatResult]:
        clock = self.budget.active_stage(self.stage)
        if clock is not None:
            clock.check()
        try:
            results = self.inner.chat(conversations, params)
        except Exception:
            self.budget.record_error(self.stage, self.name)
            raise
        for conversation, result in zip(conversations, results, strict=False):
            tokens_in, tokens_out, estimated = self.count(conversation, result)
            self.budget.record(
                self.stage,
                self.name,
                tokens_in,
                tokens_out,
                0.0 if result.cached else self.price.cost(tokens_in, tokens_out),
                cached=result.cached,
                estimated=estimated,
            )
        return results

    def count(self, conversation: Conversation, result: ChatResult) -> tuple[int, int, bool]:
        """(prompt tokens, completion tokens, estimated?) of one answered conversation: the
        prompt once, the completions of all choices together, as APIs bill `n` > 1."""
        if result.usage is not None:
            return result.usage.prompt_tokens, result.usage.completion_tokens, False
        encode = getattr(self.inner, "encode", None)
        ids = [c.token_ids for c in result.choices]
        if callable(encode) and all(i is not None for i in ids):
            return len(encode(conversation)), sum(len(i) for i in ids), False
        text_out = sum(estimate_tokens(c.text) for c in result.choices)
        return estimate_tokens(conversation_text(conversation)), text_out, True
