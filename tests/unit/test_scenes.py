"""MM-THEBench scenes: graphs, rendering, claim sentences, questions, splits and user data."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from posttrain.data.io import DataError
from posttrain.data.scenes.facts import FACTS_FILE
from posttrain.data.scenes.generate import Layout
from posttrain.data.scenes.graph import SCENE_CHUNK, scene_from_dict, scene_from_json
from posttrain.data.scenes.render import PALETTE, render_scene
from posttrain.data.scenes.splits import SceneConfig, make_scene_items, write_scene_data
from posttrain.data.scenes.steps import format_chain, parse_step, render_claim
from posttrain.data.scenes.user_data import NEEDS, convert_scienceqa_like, load_items
from posttrain.eval.mmthe import taxonomy

DATA = Path(__file__).resolve().parents[1] / "data" / "mmthe"
SMALL = SceneConfig(seed=3, train_scenes=12, test_scenes=6, ood_scenes=6)


@pytest.fixture(scope="module")
def items():
    return make_scene_items(SMALL)


def test_every_gold_step_round_trips_through_its_sentence(items):
    steps = [s for split in items.values() for item in split for s in item["steps"]]
    assert len(steps) > 100
    for step in steps:
        assert step["text"] == render_claim(step["claim"])
        assert parse_step(step["text"]) == step["claim"], step
        assert step["needs"] in taxonomy.NEEDS


def test_parse_step_tolerates_prefixes_case_words_and_reflection():
    assert parse_step("Step 3: there ARE three Red Circles") == {
        "type": "count", "colour": "red", "shape": "circle", "value": 3}  # fmt: skip
    assert parse_step("Wait, let me re-check: object a is to the left of object b!") == {
        "type": "relation", "subject": "A", "relation": "left_of", "object": "B"}  # fmt: skip
    assert parse_step("7 x 8 = 56")["op"] == "*"
    assert parse_step("Hmm, 4 is fewer than 9.")["relation"] == "<"
    assert parse_step("Therefore, the answer is Bob.") == {"type": "conclusion", "answer": "Bob"}
    assert parse_step("A penguin cannot fly.") == {
        "type": "fact", "thing": "penguin", "property": "can_fly", "value": False}  # fmt: skip
    assert parse_step("The picture looks nice overall.") is None
    assert format_chain(["a.", "b."], "5") == "Step 1: a.\nStep 2: b.\nAnswer: 5"


def _oracle(item):
    """The answer computed from the raw scene dict and facts.json, apart from the generators."""
    scene, q = item["scene"], item["question"]
    objs = scene["objects"]

    def count(colour, shape):
        return sum(o["colour"] == colour and o["shape"] == shape for o in objs)

    if m := re.fullmatch(r"How many (\w+) (\w+)s are there\?", q):
        return str(count(m[1], m[2]))
    if m := re.fullmatch(r"How many (\w+) (\w+)s and (\w+) (\w+)s are there in all\?", q):
        return str(count(m[1], m[2]) + count(m[3], m[4]))
    if m := re.fullmatch(r"How many more (\w+) (\w+)s than (\w+) (\w+)s are there\?", q):
        return str(count(m[1], m[2]) - count(m[3], m[4]))
    if m := re.fullmatch(r"Are there more (\w+) (\w+)s or (\w+) (\w+)s\?", q):
        return item["choices"][0 if count(m[1], m[2]) > count(m[3], m[4]) else 1]
    if m := re.match(r"Is the (\w+) (\w+) left or right of the (\w+) (\w+)\?", q):
        a, b = (
            [o for o in objs if (o["colour"], o["shape"]) == p]
            for p in (m.group(1, 2), m.group(3, 4))
        )
        return "left" if a[0]["col"] < b[0]["col"] else "right"
    if m := re.match(r"Which object is in row (\d), column (\d)", q):
        return next(o["label"] for o in objs if (o["row"], o["col"]) == (int(m[1]), int(m[2])))
    if m := re.match(r"Is the object labelled (\w) (a fruit|a vegetable|an animal|edible)\?", q):
        name = next(o["name"] for o in objs if o["label"] == m[1])
        prop = m[2].split()[-1]
        return "yes" if json.loads(FACTS_FILE.read_text())[name][prop] else "no"
    bars = dict(scene["bars"])
    if m := re.fullmatch(r"What is the total of the bars for (\w+) and (\w+)\?", q):
        return str(bars[m[1]] + bars[m[2]])
    if m := re.fullmatch(r"What is the value of the bar for (\w+)\?", q):
        return str(bars[m[1]])
    if m := re.fullmatch(r"How many (\w+) does (\w+) have\?", q):
        row = next(r for r in scene["table"] if r[0] == m[2])
        return str(row[scene["header"].index(m[1])])
    return None


def test_gold_answers_agree_with_an_independent_reading_of_the_scene(items):
    checked = 0
    for item in (i for split in items.values() for i in split):
        expected = _oracle(item)
        if expected is not None:
            assert item["answer"] == expected, item["question"]
            checked += 1
    assert checked > 40


def test_splits_are_disjoint_and_ood_is_larger(items):
    scenes = {s: {json.dumps(i["scene"], sort_keys=True) for i in items[s]} for s in items}
    assert not scenes["train"] & scenes["test"] and not scenes["train"] & scenes["ood"]
    most = {s: max(len(i["scene"]["objects"]) for i in items[s]) for s in items}
    assert most["ood"] > max(most["train"], most["test"])
    assert {i["scene"]["rows"] for i in items["ood"] if i["scene"]["kind"] == "shapes"} == {5}
    assert {i["task"] for i in items["train"]} >= {"spatial", "chart_value", "table_value"}
    assert make_scene_items(SMALL)["test"] == items["test"]  # deterministic from the seed


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="train_scenes"):
        SceneConfig(train_scenes=-1)
    with pytest.raises(ValueError, match="kinds"):
        SceneConfig(kinds=("photos",))
    with pytest.raises(ValueError, match="objects"):
        Layout(objects=(3, 40))


def test_written_data_carries_the_graph_in_each_png(tmp_path, items):
    config = SceneConfig(seed=3, train_scenes=3, test_scenes=2, ood_scenes=1, image_size=96)
    paths = write_scene_data(config, tmp_path)
    rows = [json.loads(line) for line in paths["train"].read_text().splitlines()]
    assert {r["split"] for r in rows} == {"train"} and len(rows) >= 3
    for row in rows:
        with Image.open(tmp_path / row["image"]) as image:
            assert image.size == (96, 96)
            assert json.loads(image.text[SCENE_CHUNK]) == row["scene"]
    loaded = load_items(paths["train"])  # a written split loads back, images made absolute
    assert [i["scene"] for i in loaded] == [r["scene"] for r in rows]
    assert [i["steps"] for i in loaded] == [r["steps"] for r in rows]
    assert all(Path(i["image"]).is_file() for i in loaded)


def test_rendered_objects_show_their_colour(items):
    shapes = next(i["scene"] for i in items["ood"] if i["scene"]["kind"] == "shapes")
    scene = scene_from_dict(shapes)
    assert scene_from_json(scene.to_json()) == scene
    pixels = render_scene(scene).load()
    for obj in scene.objects:
        left, top, right, bottom = obj.box
        inside = [pixels[x, y] for x in range(left, right) for y in range(top, bottom)]
        assert inside.count(PALETTE[obj.colour]) > 0.2 * len(inside), obj


def test_user_jsonl_rows_become_items():
    items = load_items(DATA / "user" / "items.jsonl")
    assert [i["id"] for i in items] == ["1", "blue-1", "green-1"]
    assert Path(items[0]["image"]).name == "red.png" and Path(items[0]["image"]).is_absolute()
    assert items[1]["image"].startswith("data:image/png;base64,")
    assert items[2]["steps"][0]["claim"]["type"] == "count"
    assert items[1]["steps"][0] == {"text": "The image shows one blue square.", "needs": None,
                                    "claim": None}  # fmt: skip
    assert NEEDS == taxonomy.NEEDS


@pytest.mark.parametrize(
    "row, message",
    [
        ({"image": "x.png", "question": "q"}, "missing field 'answer'"),
        ({"image": "https://example.com/a.png", "question": "q", "answer": "a"}, "URL"),
        ({"image": base64.b64encode(b"hello").decode(), "question": "q", "answer": "a"},
         "not a readable image"),
        ({"image": "nope.png", "question": "q", "answer": "a"}, "not found"),
        ({"image": "img.png", "question": "q", "answer": "a", "steps": [{"needs": "x"}]},
         r"steps\[0\]"),
    ],
)  # fmt: skip
def test_bad_user_rows_name_file_and_line(tmp_path, row, message):
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="PNG")
    (tmp_path / "img.png").write_bytes(buffer.getvalue())
    good = {"image": "img.png", "question": "q", "answer": "a"}
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(DataError, match=message) as caught:
        load_items(path)
    assert f"{path}:2" in str(caught.value)


def test_scienceqa_and_mathvista_files_convert():
    sqa = convert_scienceqa_like(
        DATA / "scienceqa" / "problems.json", DATA / "scienceqa" / "images"
    )
    assert [i["id"] for i in sqa] == ["1", "2"]  # the text-only problem is skipped
    assert sqa[0]["answer"] == "orange" and sqa[0]["choices"] == ["blue", "orange", "green"]
    assert [s["text"] for s in sqa[0]["steps"]] == [
        "The square is orange.",
        "So the answer is orange.",
    ]
    assert sqa[0]["context"] == "Look at the picture." and sqa[1]["split"] == "test"
    assert Path(sqa[1]["image"]).parts[-3:] == ("test", "2", "image.png")
    vista = convert_scienceqa_like(DATA / "mathvista" / "testmini.json", DATA / "mathvista")
    assert [(i["answer"], i["choices"], i["task"]) for i in vista] == [
        ("1", None, "mathvista"), ("circle", ["circle", "square"], "mathvista")]  # fmt: skip
    assert vista[0]["split"] == "testmini" and "Hint" in vista[0]["prompt"]


def test_scienceqa_errors_name_the_problem(tmp_path):
    problems = json.loads((DATA / "scienceqa" / "problems.json").read_text())
    problems["1"]["answer"] = 7
    path = tmp_path / "problems.json"
    path.write_text(json.dumps(problems))
    with pytest.raises(DataError, match=r"problems.json: 1: answer 7"):
        convert_scienceqa_like(path, DATA / "scienceqa" / "images")
    with pytest.raises(DataError, match="not found"):
        convert_scienceqa_like(DATA / "scienceqa" / "problems.json", tmp_path)
