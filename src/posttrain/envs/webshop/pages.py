"""The store's pages as compact text, and the actions each page offers.

WebShop's page flow (`web_agent_site/envs/web_agent_text_env.py`): the search page takes
`search[query]`; a results page lists ten hits per page with `click[next >]`,
`click[< prev]` (after page 1), `click[back to search]` and one `click[<asin>]` per hit; an
item page shows the options (`click[<value>]` selects one), `click[description]`,
`click[features]`, `click[reviews]`, `click[< prev]` (back to the results) and
`click[buy now]`, which ends the episode; a sub-page goes back with `click[< prev]`. Labels are
lower-case, as WebShop's text environment lowers every clickable. Every page repeats the
instruction, as WebShop's do, and ends with the list of available actions. Two departures:
`click[next >]` is offered only while there are more hits (WebShop shows it on the last page
too, leading to an empty page), and `search[...]` only on the search page (WebShop's text
environment lists it only there).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from posttrain.envs.webshop.records import Goal, Product

BACK_TO_SEARCH = "back to search"
NEXT_PAGE = "next >"
PREV_PAGE = "< prev"
BUY_NOW = "buy now"
SUB_PAGES = ("description", "features", "reviews")
SEARCH_ACTION = "search[<query>]"

_ACTION = re.compile(r"(search|click)\[(.+)\]", re.IGNORECASE | re.DOTALL)


def parse_action(text: str) -> tuple[str, str] | None:
    """(`search` or `click`, lower-cased argument) of an action string, or None when it is
    not of the form `search[...]` / `click[...]`."""
    match = _ACTION.fullmatch(text.strip())
    if match is None:
        return None
    return match.group(1).lower(), " ".join(match.group(2).split()).lower()


@dataclass
class PageState:
    """Where the shopper is: the page kind and what it shows."""

    kind: str = "search"  # search | results | item | sub | done
    query: str = ""
    hits: tuple[str, ...] = ()
    page: int = 1
    asin: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    sub_page: str = ""

    def page_count(self, per_page: int) -> int:
        return max(1, -(-len(self.hits) // per_page))

    def page_hits(self, per_page: int) -> tuple[str, ...]:
        return self.hits[(self.page - 1) * per_page : self.page * per_page]


def available_actions(state: PageState, product: Product | None, per_page: int) -> list[str]:
    """The actions the current page offers, in display order."""
    if state.kind == "search":
        return [SEARCH_ACTION]
    if state.kind == "results":
        actions = [BACK_TO_SEARCH]
        if state.page > 1:
            actions.append(PREV_PAGE)
        if state.page < state.page_count(per_page):
            actions.append(NEXT_PAGE)
        actions += [asin.lower() for asin in state.page_hits(per_page)]
        return [f"click[{label}]" for label in actions]
    if state.kind == "item":
        assert product is not None
        values = [value for values in product.options.values() for value in values]
        labels = [BACK_TO_SEARCH, PREV_PAGE, *values, *SUB_PAGES, BUY_NOW]
        return [f"click[{label}]" for label in labels]
    if state.kind == "sub":
        return [f"click[{BACK_TO_SEARCH}]", f"click[{PREV_PAGE}]"]
    return []


def _item_lines(state: PageState, product: Product) -> list[str]:
    lines = [f"[{product.asin}] {product.title}", f"Price: {product.price_tag}"]
    for name, values in product.options.items():
        lines.append(f"{name}: {'; '.join(values)}")  # "; ": WebShop values may hold " | "
    chosen = ", ".join(f"{name}: {value}" for name, value in state.options.items())
    lines.append(f"Selected options: {chosen or 'none'}")
    return lines


def _sub_page_lines(state: PageState, product: Product) -> list[str]:
    if state.sub_page == "description":
        return [f"Description: {product.description or '(none)'}"]
    if state.sub_page == "features":
        return ["Features:", *(f"- {line}" for line in product.bullet_points or ("(none)",))]
    return ["Reviews: (none yet)"]


def render(
    state: PageState, goal: Goal, product: Product | None, titles: dict[str, Product], per_page: int
) -> str:
    """The page as text: instruction, content, available actions."""
    lines = [f"Instruction: {goal.instruction_text}"]
    if state.kind == "search":
        lines.append("WebShop search page. Type a query to search the store.")
    elif state.kind == "results":
        lines.append(
            f'Results for "{state.query}": page {state.page} of {state.page_count(per_page)} '
            f"(total results: {len(state.hits)})"
        )
        for asin in state.page_hits(per_page):
            hit = titles[asin]
            lines.append(f"[{asin}] {hit.title} | {hit.price_tag}")
        if not state.hits:
            lines.append("No products match this query.")
    elif state.kind == "item":
        assert product is not None
        lines += _item_lines(state, product)
    elif state.kind == "sub":
        assert product is not None
        lines += [f"[{product.asin}] {product.title}", *_sub_page_lines(state, product)]
    actions = available_actions(state, product, per_page)
    lines.append("Available actions: " + ", ".join(actions))
    return "\n".join(lines)
