"""The WebShop-style store: WebShop's reward on hand-worked cases, the page flow and its
actions, the expert's sessions, the reader of WebShop's own files, and the split."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import MappingProxyType

import pytest

from posttrain.envs import env_factory
from posttrain.envs.webshop import (
    WebShopEnv,
    expert_episodes,
    load_store,
    load_webshop,
    purchase_reward,
    webshop_tasks,
)
from posttrain.envs.webshop.expert import key_words
from posttrain.envs.webshop.generate import generate_catalogue
from posttrain.envs.webshop.loader import goals_from_instructions, parse_products, price_bound
from posttrain.envs.webshop.records import Goal, Product
from posttrain.envs.webshop.reward import normalize_colour, token_set_ratio
from posttrain.errors import InputError

DATA = Path(__file__).resolve().parents[1] / "data" / "webshop"
FILES = {
    "products_path": DATA / "items_shuffle_sample.json",
    "instructions_path": DATA / "items_human_ins_sample.json",
    "attributes_path": DATA / "items_ins_v2_sample.json",
}
SMALL = {"n_products": 60, "seed": 3}


@pytest.fixture(scope="module")
def store():
    return load_store(**SMALL)


def _shirt(**changes) -> Product:
    fields = dict(
        asin="B0SHIRT001",
        title="Acme Cotton Crew Neck T-Shirt",
        price=20.0,
        price_tag="$20.00",
        description="A soft shirt for every day.",
        bullet_points=("Slim fit for everyday wear",),
        options=MappingProxyType({"color": ("navy blue", "white"), "size": ("small", "large")}),
        attributes=("cotton", "machine wash"),
        category="fashion",
        query="men's t-shirts",
        product_category="Clothing › Men › T-Shirts",
    )
    return Product(**{**fields, **changes})


def _goal(**changes) -> Goal:
    fields = dict(
        id="g",
        asin="B0SHIRT001",
        instruction_text="i need a cotton slim fit t-shirt in navy blue and large",
        attributes=("cotton", "slim fit"),
        options=("navy blue", "large"),
        price_upper=30.0,
        query="men's t-shirts",
        category="fashion",
        product_category="Clothing › Men › T-Shirts",
        name="Acme Cotton Crew Neck T-Shirt",
    )
    return Goal(**{**fields, **changes})


# -- the reward (WebShop's goal.py formula, worked by hand) ---------------------------------


def test_reward_all_matched_is_one():
    # cotton: listed attribute; slim fit: in the features; both options; 20 <= 30; same type.
    parts = purchase_reward(_shirt(), _goal(), {"color": "navy blue", "size": "large"})
    assert parts.reward == 1.0 and parts.success
    assert (parts.attribute_matches, parts.option_matches, parts.r_price) == (2, 2, True)
    assert parts.r_type == 1.0 and parts.query_match and parts.category_match


def test_missing_option_wrong_option_and_price_lower_the_reward():
    # (2 attributes + 1 option + price) / (2 + 2 + 1) = 4/5
    missing = purchase_reward(_shirt(), _goal(), {"color": "navy blue"})
    assert missing.reward == pytest.approx(0.8) and not missing.success
    assert missing.r_option == 0.5
    wrong = purchase_reward(_shirt(), _goal(), {"color": "white", "size": "large"})
    assert wrong.reward == pytest.approx(0.8)
    # over the bound: (2 + 2 + 0) / 5
    dear = purchase_reward(_shirt(), _goal(price_upper=15.0), {"color": "navy", "size": "large"})
    assert dear.r_price is False
    # an attribute neither listed nor in the text: (1 + 2 + 1) / 5; none asked for options
    # and one attribute of two matched: (1 + 0 + 1) / (2 + 0 + 1)
    other = _goal(attributes=("cotton", "waterproof"))
    assert purchase_reward(_shirt(), other, {"color": "navy blue", "size": "large"}).reward == (
        pytest.approx(0.8)
    )
    bare = _goal(attributes=("cotton", "waterproof"), options=())
    assert purchase_reward(_shirt(), bare, {}).reward == pytest.approx(2 / 3)


def test_type_factor_scales_the_reward():
    chosen = {"color": "navy blue", "size": "large"}
    # Other query, breadcrumb sharing one level, title sharing 1 of the goal's 5 words
    # (acme cotton crew neck shirt): title score 0.2, not above 0.2 -> r_type 0.5.
    half = _shirt(
        title="Zenith Cotton Hoodie Zip",
        query="women's hoodies",
        product_category="Clothing › Women › Hoodies",
        bullet_points=("slim fit",),
    )
    parts = purchase_reward(half, _goal(), chosen)
    assert parts.title_score == pytest.approx(0.2) and parts.r_type == 0.5
    assert parts.reward == pytest.approx(0.5)
    # No title word in common: r_type 0, whatever else matches.
    other = _shirt(title="Zenith Hiking Boots", query="boots", product_category="Shoes › Boots")
    assert purchase_reward(other, _goal(), chosen).reward == 0.0
    # The same breadcrumb keeps r_type 1 for a different product name with some overlap.
    sibling = _shirt(title="Zenith Crew Neck Polo", query="polos")
    assert purchase_reward(sibling, _goal(), chosen).r_type == 1.0


def test_fuzzy_matching_follows_token_set_ratio():
    # shared "essential" (9) + "oil" vs "oils": Indel distance 1 over 13 + 14 -> 96.3 -> 96.
    assert token_set_ratio("essential oil", "essential oils") == 96
    assert token_set_ratio("Navy Blue!", "blue navy") == 100  # same token set
    assert token_set_ratio("machine wash", "machine") == 100  # one side's tokens are shared
    assert token_set_ratio("", "anything") == 0
    assert token_set_ratio("tea tree", "earl gray") < 50
    assert normalize_colour("dark heather grey") == "grey"


def test_first_observation_is_instruction_and_search_page(store):
    env = WebShopEnv(**SMALL)
    row = webshop_tasks("train", **SMALL)[0]
    first = env.reset(row)
    assert first.startswith(f"Instruction: {row['instruction']}\n")
    assert first.endswith("Available actions: search[<query>]")
    assert env.store is store  # one store per process and settings


def test_expert_episodes_win_on_both_splits(store):
    rows = webshop_tasks("train", **SMALL) + webshop_tasks("heldout", **SMALL)
    env = WebShopEnv(**SMALL)
    chats = expert_episodes(rows, env=env)
    assert len(chats) == len(rows)
    for row, chat in zip(rows, chats, strict=True):
        assert [m["role"] for m in chat] == ["user", "assistant"] * (len(chat) // 2)
        assert chat[1]["content"].startswith("search[")
        assert chat[-1]["content"] == "click[buy now]"
        # Replaying the assistant turns in a fresh environment reproduces the chat and wins.
        replay = WebShopEnv(**SMALL)
        assert replay.reset(row) == chat[0]["content"]
        for i in range(1, len(chat), 2):
            observation, reward, done, info = replay.step(chat[i]["content"])
            if i + 1 < len(chat):
                assert observation == chat[i + 1]["content"] and not done
        assert done and reward == 1.0 and info["success"] and info["reward_parts"]["r_type"] == 1
        assert info["asin"] == store.goal(row["instruction_id"]).asin


def test_invalid_actions_explain_and_cost_nothing(store):
    env = WebShopEnv(max_steps=7, **SMALL)
    env.reset(webshop_tasks("train", **SMALL)[0])
    for action, reason in [
        ("buy the best shirt", "is not search[query] or click[label]"),
        ("click[buy now]", "the search page has nothing to click"),
        ("search[]", "is not search[query] or click[label]"),
    ]:
        observation, reward, done, info = env.step(action)
        assert observation.startswith("Invalid action: ") and reason in observation
        assert observation.endswith("Available actions: search[<query>]")  # page shown again
        assert (reward, done, info["valid"]) == (0.0, False, False)
    env.step("search[shirt]")
    assert env.state.kind == "results"
    observation, _, _, info = env.step("search[hoodie]")
    assert "only available on the search page" in observation and env.state.kind == "results"
    observation, _, done, info = env.step("click[b0nothere00]")
    assert "not clickable on this page" in observation and not done
    # The seventh action hits the step cap: the episode ends unpaid.
    observation, reward, done, info = env.step("click[back to search]")
    assert done and reward == 0.0 and info["truncated"] and "Step limit" in observation
    with pytest.raises(RuntimeError, match="call reset"):
        env.step("search[shirt]")


def test_results_paginate_and_item_pages_navigate(store):
    env = WebShopEnv(results_per_page=3, max_steps=50, **SMALL)
    env.reset(webshop_tasks("train", **SMALL)[0])
    observation, *_ = env.step("search[black white grey]")
    hits = env.state.hits
    assert len(hits) > 6
    pages = -(-len(hits) // 3)
    assert f"page 1 of {pages} (total results: {len(hits)})" in observation
    assert "click[next >]" in observation and "click[< prev]" not in observation
    assert [f"[{asin}]" in observation for asin in hits[:4]] == [True, True, True, False]
    observation, *_ = env.step("click[next >]")
    assert "page 2 of" in observation and "click[< prev]" in observation
    assert all(f"[{asin}]" in observation for asin in hits[3:6])
    assert f"[{hits[2]}]" not in observation and f"[{hits[6]}]" not in observation
    # An item opened from page 2, an option chosen, a sub-page and back.
    asin = hits[4]
    product = store.products[asin]
    observation, *_ = env.step(f"click[{asin.lower()}]")
    assert observation.splitlines()[1] == f"[{asin}] {product.title}"
    name, values = next(iter(product.options.items()))
    env.step(f"click[{values[-1]}]")
    observation, *_ = env.step("click[description]")
    assert product.description in observation
    observation, *_ = env.step("click[< prev]")
    assert f"Selected options: {name}: {values[-1]}" in observation  # kept across the sub-page
    observation, *_ = env.step("click[< prev]")
    assert "page 2 of" in observation  # back to the page the item was opened from
    # The last page offers no next.
    for _ in range(pages - 2):
        observation, *_ = env.step("click[next >]")
    assert f"page {pages} of {pages}" in observation and "click[next >]" not in observation
    env.step("click[back to search]")
    assert env.state.kind == "search"


def test_env_is_registered_and_checks_tasks(store):
    env = env_factory("webshop", **SMALL)()
    assert isinstance(env, WebShopEnv)
    row = webshop_tasks("heldout", **SMALL)[0]
    with pytest.raises(ValueError, match="is in split 'heldout', not 'train'"):
        env.reset({**row, "split": "train"})
    with pytest.raises(ValueError, match="unknown WebShop instruction_id 'nope'"):
        env.reset({"instruction_id": "nope"})
    with pytest.raises(ValueError, match="max_steps"):
        WebShopEnv(max_steps=0, **SMALL)


def test_instances_on_threads_share_only_the_store(store):
    rows = webshop_tasks("train", limit=12, **SMALL)
    alone = expert_episodes(rows, **SMALL)
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda row: expert_episodes([row], **SMALL)[0], rows))
    assert threaded == alone


# -- splits ----------------------------------------------------------------------------------


@pytest.mark.parametrize("split_by", ["product", "type"])
def test_train_and_heldout_share_nothing(split_by):
    store = load_store(split_by=split_by, **SMALL)
    train, held = store.split_goals("train"), store.split_goals("heldout")
    assert train and held
    assert not {g.instruction_text for g in train} & {g.instruction_text for g in held}
    assert not {g.id for g in train} & {g.id for g in held}
    assert not {g.asin for g in train} & {g.asin for g in held}
    if split_by == "type":
        assert not {g.product_category for g in train} & {g.product_category for g in held}
    assert all(g.split == "train" for g in train) and all(g.split == "heldout" for g in held)


def test_generated_catalogue_is_seeded_and_priced_below_its_bounds():
    assert generate_catalogue(20, seed=1) == generate_catalogue(20, seed=1)
    assert generate_catalogue(20, seed=1) != generate_catalogue(20, seed=2)
    store = load_store(**SMALL)
    for goal in store.goals.values():
        price = store.products[goal.asin].price
        assert goal.price_upper > price and goal.price_upper % 10 == 0
        assert goal.price_upper <= (int(price // 10) + 4) * 10  # within four steps above
        assert goal.instruction_text.endswith(
            f", and price lower than {goal.price_upper:.2f} dollars"
        )
    assert "price" not in key_words(next(iter(store.goals.values())).instruction_text)


def test_price_bound_rule():
    import random

    bounds = {price_bound(23.5, random.Random(i)) for i in range(200)}
    assert bounds == {40.0, 50.0, 60.0}  # the larger of two of 30, 40, 50, 60
    assert price_bound(985.0, random.Random(0)) is None  # fewer than two steps above


# -- WebShop's own files ---------------------------------------------------------------------


def test_loader_reads_webshop_files():
    products, goals = load_webshop(**FILES)
    by_asin = {p.asin: p for p in products}
    assert len(products) == 4 and len(goals) == 2
    shirt = by_asin["B08TEE2002"]
    assert dict(shirt.options) == {
        "color": ("navy | white", "heather grey"),  # "/" shown as " | ", lower-cased
        "size": ("medium", "large", "x-large"),
    }
    assert shirt.price_tag == "$15.99 to $19.99" and 15.99 <= shirt.price <= 19.99
    assert shirt.attributes == ("slim fit", "short sleeve", "machine wash")
    assert by_asin["B09HDP3003"].options == {}  # null customization_options
    assert by_asin["B09HDP3003"].bullet_points == (
        "Active noise cancelling with 40 hours of playback",
    )
    goal = next(g for g in goals if g.asin == "B08TEE2002")
    assert goal.options == ("heather grey", "large")
    assert goal.attributes == ("slim fit", "machine wash")
    assert goal.instruction_text.startswith("i'm looking for a men's slim fit t-shirt")
    assert goal.query == "men's t-shirts" and goal.name == shirt.title


def test_loaded_store_plays_end_to_end():
    rows = webshop_tasks("train", **FILES) + webshop_tasks("heldout", **FILES)
    assert len(rows) == 2
    chats = expert_episodes(rows, **FILES)
    assert all(chat[-1]["content"] == "click[buy now]" for chat in chats)


def test_instructions_without_attributes_or_product_are_skipped():
    products = {
        p.asin: p for p in parse_products(json.loads(FILES["products_path"].read_text()), "p")
    }
    raw = {
        "B07TEA1001": [
            {"instruction": "tea", "instruction_attributes": [], "instruction_options": []}
        ],
        "B0UNKNOWN0": [
            {"instruction": "x", "instruction_attributes": ["y"], "instruction_options": []}
        ],
    }
    assert goals_from_instructions(raw, "h.json", products) == []


def _broken(tmp_path, name, edit):
    raw = json.loads(FILES[name].read_text())
    edit(raw)
    path = tmp_path / FILES[name].name
    path.write_text(json.dumps(raw))
    return {**FILES, name: path}


@pytest.mark.parametrize(
    ("name", "edit", "expected"),
    [
        ("products_path", lambda raw: raw[1].pop("pricing"), "[1].pricing: missing key"),
        ("products_path", lambda raw: raw[0].update(name=7), "[0].name: expected str, got int"),
        (
            "products_path",
            lambda raw: raw[3]["customization_options"].update(Size=[{"image": None}]),
            "[3].customization_options.Size[0]: missing string 'value'",
        ),
        (
            "instructions_path",
            lambda raw: raw["B08TEE2002"][0].pop("instruction_options"),
            "B08TEE2002[0].instruction_options: missing key",
        ),
        (
            "attributes_path",
            lambda raw: raw["B07TEA1001"].update(attributes="organic"),
            "B07TEA1001.attributes: expected a list of strings",
        ),
    ],
)
def test_malformed_files_name_file_and_key(tmp_path, name, edit, expected):
    paths = _broken(tmp_path, name, edit)
    with pytest.raises(InputError) as caught:
        load_webshop(**paths)
    assert str(caught.value).startswith(str(paths[name]))
    assert expected in str(caught.value)


def test_unreadable_files_are_named(tmp_path):
    bad = tmp_path / "items_shuffle_bad.json"
    bad.write_text('[{"asin": "B0",\n  oops}]')
    with pytest.raises(InputError, match=r"items_shuffle_bad\.json:2: not JSON"):
        load_webshop(bad, FILES["instructions_path"])
    with pytest.raises(InputError, match="file not found"):
        load_webshop(tmp_path / "missing.json", FILES["instructions_path"])
    wrong = tmp_path / "items_human_ins_list.json"
    wrong.write_text("[]")
    with pytest.raises(InputError, match="expected a JSON object keyed by asin"):
        load_webshop(FILES["products_path"], wrong)
