"""`webshop`: the WebShop-style store as an `Env` (Yao et al., 2022's task, our catalogue).

    env = env_factory("webshop", n_products=300, seed=0)()
    first = env.reset({"instruction_id": "B0ABCD1234-0"})   # instruction + search page
    obs, reward, done, info = env.step("search[fleece lined hoodie]")

A task row names a goal by `instruction_id` (rows from `webshop_tasks(split)`); an optional
`split` is checked against the goal's. Actions are WebShop's `search[query]` and
`click[label]` (see pages.py); anything else, or a label the page does not offer, is answered
with an explanation and the page again, and no reward. `click[buy now]` ends the episode with
WebShop's reward (reward.py), its parts in `info["reward_parts"]`, success when it is 1. An
episode also ends, with reward 0 and `info["truncated"]`, after `max_steps` actions.

The store comes from the generated catalogue (`n_products`, `seed`, ...) or, given
`products_path` and `instructions_path` (and optionally `attributes_path`), from WebShop's own
files. It is built once per process and shared read-only; an instance keeps only its own
episode, so instances may run on separate threads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from posttrain.envs.registry import register_env
from posttrain.envs.webshop.pages import (
    BACK_TO_SEARCH,
    BUY_NOW,
    NEXT_PAGE,
    PREV_PAGE,
    SUB_PAGES,
    PageState,
    available_actions,
    parse_action,
    render,
)
from posttrain.envs.webshop.records import Goal, Product
from posttrain.envs.webshop.reward import purchase_reward
from posttrain.envs.webshop.store import Store, generated_store, webshop_store

DEFAULT_MAX_STEPS = 15
"""verl-agent's WebShop episode length."""


def load_store(
    *,
    n_products: int = 300,
    seed: int = 0,
    instructions_per_product: int = 2,
    products_path: str | Path | None = None,
    instructions_path: str | Path | None = None,
    attributes_path: str | Path | None = None,
    split_by: str = "product",
    heldout_fraction: float = 0.2,
) -> Store:
    """The (cached) store these settings describe: WebShop's files when `products_path` is
    given, else the generated catalogue."""
    if products_path is not None or instructions_path is not None:
        if products_path is None or instructions_path is None:
            raise ValueError("WebShop files need both products_path and instructions_path")
        return webshop_store(
            products_path,
            instructions_path,
            attributes_path,
            split_by=split_by,
            heldout_fraction=heldout_fraction,
            seed=seed,
        )
    if attributes_path is not None:
        raise ValueError("attributes_path needs products_path and instructions_path")
    return generated_store(n_products, seed, instructions_per_product, split_by, heldout_fraction)


def webshop_tasks(split: str = "train", limit: int | None = None, **store_options: Any):
    """Task rows for `split` ({"instruction_id", "split", "instruction"}), in store order;
    `store_options` are `load_store`'s (the environment must be built with the same)."""
    goals = load_store(**store_options).split_goals(split)
    rows = [
        {"instruction_id": g.id, "split": g.split, "instruction": g.instruction_text} for g in goals
    ]
    return rows if limit is None else rows[:limit]


@register_env("webshop")
class WebShopEnv:
    """A shopping episode per `reset`; see the module docstring."""

    def __init__(
        self,
        max_steps: int = DEFAULT_MAX_STEPS,
        results_per_page: int = 10,
        **store_options: Any,
    ) -> None:
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        if results_per_page < 1:
            raise ValueError(f"results_per_page must be >= 1, got {results_per_page}")
        self.store = load_store(**store_options)
        self.max_steps = max_steps
        self.per_page = results_per_page
        self.goal: Goal | None = None
        self.state = PageState()
        self.steps = 0
        self.done = True

    # -- episode -----------------------------------------------------------------------

    def reset(self, task: dict[str, Any]) -> str:
        if "instruction_id" not in task:
            raise ValueError("a webshop task row needs 'instruction_id'")
        goal = self.store.goal(str(task["instruction_id"]))
        if "split" in task and task["split"] != goal.split:
            raise ValueError(
                f"instruction {goal.id!r} is in split {goal.split!r}, not {task['split']!r}"
            )
        self.goal, self.state, self.steps, self.done = goal, PageState(), 0, False
        return self.observation()

    def observation(self) -> str:
        assert self.goal is not None
        return render(self.state, self.goal, self._product(), self.store.products, self.per_page)

    def available_actions(self) -> list[str]:
        return available_actions(self.state, self._product(), self.per_page)

    def _product(self) -> Product | None:
        asin = self.state.asin
        return self.store.products[asin] if asin is not None else None

    def _info(self, valid: bool, **extra: Any) -> dict[str, Any]:
        return {"page": self.state.kind, "valid": valid, "steps": self.steps, **extra}

    def step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        if self.done or self.goal is None:
            raise RuntimeError("the episode is over (or never started); call reset first")
        self.steps += 1
        problem = self._apply(action)
        if self.state.kind == "done":
            return self._purchase()
        if self.steps >= self.max_steps:
            self.done = True
            text = f"Step limit ({self.max_steps}) reached without buying."
            return text, 0.0, True, self._info(problem is None, truncated=True)
        if problem is not None:
            text = f"Invalid action: {problem}\n{self.observation()}"
            return text, 0.0, False, self._info(False, error=problem)
        return self.observation(), 0.0, False, self._info(True)

    def _purchase(self) -> tuple[str, float, bool, dict[str, Any]]:
        assert self.goal is not None
        product = self.store.products[self.state.asin or ""]
        parts = purchase_reward(product, self.goal, self.state.options)
        self.done = True
        chosen = ", ".join(f"{k}: {v}" for k, v in self.state.options.items()) or "none"
        text = (
            f"Thank you for shopping with us! You bought [{product.asin}] {product.title} "
            f"(options: {chosen}). Your score (min 0.0, max 1.0): {parts.reward:.2f}"
        )
        info = self._info(
            True,
            asin=product.asin,
            options=dict(self.state.options),
            reward_parts=parts.as_dict(),
            success=parts.success,
            goal_asin=self.goal.asin,
        )
        return text, parts.reward, True, info

    # -- page transitions ----------------------------------------------------------------

    def _apply(self, action: str) -> str | None:
        """Move to the page `action` leads to; the reason when it is invalid (state kept)."""
        parsed = parse_action(action)
        if parsed is None:
            return f"{action.strip()[:80]!r} is not search[query] or click[label]."
        verb, label = parsed
        state = self.state
        if verb == "search":
            if state.kind != "search":
                return f"search is only available on the search page; click[{BACK_TO_SEARCH}]."
            hits = tuple(self.store.index.search(label))
            self.state = PageState(kind="results", query=label, hits=hits)
            return None
        if f"click[{label}]" not in self.available_actions():
            if state.kind == "search":
                return "the search page has nothing to click; use search[query]."
            return f"{label!r} is not clickable on this page."
        if label == BACK_TO_SEARCH:
            self.state = PageState()
        elif state.kind == "results":
            if label == NEXT_PAGE:
                state.page += 1
            elif label == PREV_PAGE:
                state.page -= 1
            else:  # a product link: its item page, no options chosen yet
                asin = next(a for a in state.page_hits(self.per_page) if a.lower() == label)
                state.kind, state.asin, state.options = "item", asin, {}
        elif state.kind == "item":
            if label == PREV_PAGE:
                state.kind, state.asin, state.options = "results", None, {}
            elif label in SUB_PAGES:
                state.kind, state.sub_page = "sub", label
            elif label == BUY_NOW:
                state.kind = "done"
            else:
                product = self._product()
                assert product is not None
                name = product.option_name_of(label)
                assert name is not None
                state.options[name] = label
        elif state.kind == "sub":  # only < prev is left: back to the item, options kept
            state.kind, state.sub_page = "item", ""
        return None
