"""MM-THEBench's rule verifier and the scripted scene reader whose injected errors it must find."""

from __future__ import annotations

from collections import Counter

import pytest
from PIL import Image

from posttrain.data.scenes.graph import Scene, Shape, scene_from_dict
from posttrain.data.scenes.render import scene_png
from posttrain.data.scenes.splits import SceneConfig, make_scene_items
from posttrain.data.scenes.steps import format_chain
from posttrain.eval.mmthe.scene_reader import (
    NO_SCENE,
    UNKNOWN_QUESTION,
    ReaderOptions,
    reader_chain,
)
from posttrain.eval.mmthe.taxonomy import CATEGORIES
from posttrain.eval.mmthe.verifier import answer_correct, verify_steps
from posttrain.models.chat.images import data_url, image_part, png_bytes, text_part
from posttrain.models.chat.scripted import make_script

NOISY = ReaderOptions(
    error_rates={"perception": 0.35, "knowledge": 0.6, "reasoning": 0.35},
    reflection_rate=0.5,
    invalid_format_rate=0.5,
)


@pytest.fixture(scope="module")
def items():
    split = make_scene_items(SceneConfig(seed=5, train_scenes=40, test_scenes=0, ood_scenes=20))
    return split["train"] + split["ood"]


def _steps(chain: str) -> list[str]:
    return [line.split(": ", 1)[1] for line in chain.splitlines() if line.startswith("Step")]


def _answer(chain: str) -> str:
    return chain.rsplit("Answer: ", 1)[1]


def test_gold_chains_are_all_correct(items):
    for item in items:
        labels = verify_steps(item, [s["text"] for s in item["steps"]])
        assert [label.label for label in labels] == ["correct"] * len(item["steps"]), item["id"]
        assert answer_correct(item, item["answer"])


@pytest.mark.parametrize("seed", [0, 1])
def test_verifier_finds_exactly_the_injected_errors(items, seed):
    options = ReaderOptions(**{**NOISY.__dict__, "seed": seed})
    found = Counter()
    for item in items:
        chain, injected = reader_chain(item, item["question"], options)
        labels = verify_steps(item, _steps(chain))
        wrong = [(x.index, x.category, x.subcategory) for x in labels if x.label != "correct"]
        assert wrong == [(x.index, x.category, x.subcategory) for x in injected], chain
        found.update(x.subcategory for x in injected)
    # every sub-category the generated tasks can show is exercised
    assert set(found) == {sub for subs in CATEGORIES.values() for sub in subs}


def test_reader_is_deterministic_and_exact_without_errors(items):
    item = items[0]
    assert reader_chain(item, item["question"], NOISY) == reader_chain(
        item, item["question"], NOISY
    )
    seeds = {reader_chain(i, i["question"], ReaderOptions(**{**NOISY.__dict__, "seed": s}))[0]
             for i in items[:10] for s in (0, 1)}  # fmt: skip
    assert len(seeds) > 10  # the seed changes the errors
    for item in items[:20]:
        chain, injected = reader_chain(item, item["question"])
        assert chain == format_chain([s["text"] for s in item["steps"]], item["answer"])
        assert injected == []


def test_reflection_and_invalid_spatial_format(items):
    options = ReaderOptions(reflection_rate=1.0, reflection_error_rate=1.0, invalid_format_rate=1.0)
    spatial = [i for i in items if i["task"] == "spatial"]
    assert spatial
    for item in items:
        chain, injected = reader_chain(item, item["question"], options)
        reflections = [i for i, s in enumerate(_steps(chain)) if s.startswith("Wait, let me")]
        assert len(reflections) == 1 and [x.index for x in injected] == reflections
        assert "self-reflection" in injected[0].reason
        if item in spatial:
            assert _answer(chain).lower() not in item["choices"]
            assert not answer_correct(item, _answer(chain))


SCENE = Scene(
    "shapes", 64, 64, rows=2, cols=2,
    objects=(
        Shape("A", "circle", "red", "small", 1, 1, (4, 4, 20, 20)),
        Shape("B", "square", "blue", "large", 2, 2, (36, 36, 60, 60), name="apple"),
    ),
)  # fmt: skip
COUNT = {"type": "count", "colour": "red", "shape": "circle", "value": 1}
STEP = {"text": "There is 1 red circle.", "needs": "perception", "claim": COUNT}
ITEM = {"id": "hand-1", "scene": SCENE.to_dict(), "answer": "1", "choices": None, "steps": [STEP]}


@pytest.mark.parametrize(
    "step, category, subcategory",
    [
        ("There are 2 red circles.", "perception", "count"),
        ("There is 1 red circle.", None, None),
        ("Object C is a red circle.", "perception", "object"),
        ("Object A is a blue circle.", "perception", "attribute"),
        ("Object A is right of object B.", "perception", "spatial"),
        ("Object B is in row 1, column 2.", "perception", "spatial"),
        ("Object B is a banana.", "perception", "text_value"),
        ("The bar for cats is 3.", "perception", "object"),
        ("An apple is not a fruit.", "knowledge", "fact"),
        ("An apple can fly.", "knowledge", "fabricated"),
        ("A unicorn is an animal.", "knowledge", "fabricated"),
        ("1 + 1 = 3.", "reasoning", "arithmetic"),
        ("9 + 1 = 10.", "reasoning", "inconsistency"),
        ("1 is greater than 1.", "reasoning", "comparison"),
        ("So the answer is 2.", "reasoning", "conclusion"),
        ("The picture is pretty.", "unverifiable", None),
    ],
)
def test_single_steps_on_a_hand_made_scene(step, category, subcategory):
    (label,) = verify_steps(ITEM, [step])
    if category is None:
        assert label.label == "correct"
    elif category == "unverifiable":
        assert label.label == "unverifiable"
    else:
        assert (label.label, label.category, label.subcategory) == (
            "hallucinated",
            category,
            subcategory,
        )


def test_conclusion_follows_the_chain_not_the_truth():
    steps = ["There are 2 red circles.", "So the answer is 2."]
    assert [x.label for x in verify_steps(ITEM, steps)] == ["hallucinated", "correct"]


def test_answers_and_missing_scene():
    item = {"id": "c", "answer": "blue squares", "choices": ["red circles", "blue squares"]}
    assert answer_correct(item, "B") and answer_correct(item, "The blue squares.")
    assert not answer_correct(item, "A") and not answer_correct(item, None)
    assert answer_correct({"answer": "5", "choices": None}, " 5.0 ")
    with pytest.raises(ValueError, match="item c: no scene graph"):
        verify_steps(item, ["x"])
    with pytest.raises(ValueError, match="unknown categories"):
        ReaderOptions(error_rates={"vision": 0.1})
    with pytest.raises(ValueError, match="reflection_rate"):
        ReaderOptions(reflection_rate=2)


def test_scripted_scene_reader_reads_the_png(items):
    item = next(i for i in items if i["scene"]["kind"] == "chart")
    png = scene_png(scene_from_dict(item["scene"]))
    chat = make_script("scripted:scene-reader", error_rates={"reasoning": 1.0}, seed=2)
    question = f"Answer step by step.\n{item['question']}"
    message = {"role": "user", "content": [image_part(png), text_part(question)]}
    reply = chat.chat([[message]])[0]
    expected, injected = reader_chain(
        item, question, ReaderOptions(error_rates={"reasoning": 1.0}, seed=2)
    )
    assert reply.model == "scripted:scene-reader" and reply.choices[0].text == expected
    assert injected  # the conclusion at least
    blank = data_url(png_bytes(Image.new("RGB", (4, 4))))
    bare = {"role": "user", "content": [image_part(blank), text_part(item["question"])]}
    assert chat.chat([[bare]])[0].choices[0].text == NO_SCENE
    unknown = {"role": "user", "content": [image_part(png), text_part("What is the meaning?")]}
    assert chat.chat([[unknown]])[0].choices[0].text == UNKNOWN_QUESTION


def test_an_answer_outside_the_choices_is_format_invalid():
    from posttrain.eval.mmthe.verifier import answer_allowed

    spatial = {"choices": ["left", "right"], "answer": "left"}
    assert answer_allowed(spatial, "Left.") and answer_allowed(spatial, "b")
    assert not answer_allowed(spatial, "on the left side")
    assert not answer_allowed(spatial, None)
    assert answer_allowed({"choices": None, "answer": "5"}, "7")
