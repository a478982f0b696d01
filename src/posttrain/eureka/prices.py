"""The price table: US dollars per million input and output tokens, per chat model name.

The shipped table is `prices.yaml` next to this file (editable; its header says how a name
is looked up). A model the table does not price is an `InputError` naming the model and the
table, unless the table has a `default` row: we chose an error over a silent zero because a
cost limit that counts an unpriced paid model as free would not limit anything.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from posttrain.errors import InputError

SHIPPED = Path(__file__).with_name("prices.yaml")
DEFAULT_ROW = "default"
PER = 1_000_000  # prices are per million tokens
_FIELDS = ("input", "output")


@dataclass(frozen=True)
class Price:
    """USD per million prompt (`input`) and completion (`output`) tokens."""

    input: float
    output: float

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        """Dollars for that many prompt and completion tokens."""
        return (tokens_in * self.input + tokens_out * self.output) / PER


@dataclass(frozen=True)
class PriceTable:
    """Rows by model name or glob pattern, in the file's order; `source` names the file."""

    rows: dict[str, Price]
    source: str = "<memory>"

    def price(self, model: str) -> Price:
        """The price of `model`: exact name, the name without its backend prefix
        (`openai:gpt-4o` -> `gpt-4o`), the first matching glob pattern, the `default` row;
        else an InputError naming the model and the table."""
        bare = model.split(":", 1)[1] if ":" in model else model
        for name in (model, bare):
            if name in self.rows:
                return self.rows[name]
        for pattern, price in self.rows.items():
            if _is_pattern(pattern) and (
                fnmatch.fnmatchcase(model, pattern) or fnmatch.fnmatchcase(bare, pattern)
            ):
                return price
        if DEFAULT_ROW in self.rows:
            return self.rows[DEFAULT_ROW]
        raise InputError(
            f"no price for model {model!r}"
            + (f" (nor {bare!r})" if bare != model else "")
            + "; add a row under `models:` "
            f"(zeros for local weights) or a `{DEFAULT_ROW}` row",
            self.source,
            key="models",
        )

    def cost(self, model: str, tokens_in: int, tokens_out: int) -> float:
        """Dollars `model` charges for that many prompt and completion tokens."""
        return self.price(model).cost(tokens_in, tokens_out)


def _is_pattern(name: str) -> bool:
    return any(ch in name for ch in "*?[")


def load_prices(path: str | Path | None = None) -> PriceTable:
    """Read and check a price table (the shipped one when `path` is None)."""
    path = Path(path) if path is not None else SHIPPED
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InputError(f"cannot read the price table: {error.strerror}", path) from error
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise InputError(f"not valid YAML: {error}", path, line=line) from error
    return parse_prices(data, source=str(path))


def parse_prices(data: Any, source: str = "<memory>") -> PriceTable:
    """Check a parsed table (`{"models": {name: {"input": x, "output": y}}}`)."""
    if not isinstance(data, dict) or set(data) != {"models"}:
        raise InputError("a price table is a mapping with one key, `models`", source)
    models = data["models"]
    if not isinstance(models, dict) or not models:
        raise InputError("`models` must map model names to prices", source, key="models")
    rows: dict[str, Price] = {}
    for name, row in models.items():
        key = f"models.{name}"
        if not isinstance(name, str) or not name:
            raise InputError("a model name must be a non-empty string", source, key=key)
        if not isinstance(row, dict) or set(row) != set(_FIELDS):
            raise InputError("a price row has exactly `input` and `output`", source, key=key)
        values = []
        for field in _FIELDS:
            value = row[field]
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not ok or not math.isfinite(value) or value < 0:
                raise InputError(
                    f"must be a finite number >= 0 (USD per million tokens), got {value!r}",
                    source,
                    key=f"{key}.{field}",
                )
            values.append(float(value))
        rows[name] = Price(*values)
    return PriceTable(rows=rows, source=source)
