"""The evaluation core: per-item logs that survive crashes, resume, batching, cached models."""

from __future__ import annotations

import pytest

from posttrain.data.io import DataError
from posttrain.eval.core import ItemLog, chat_with_cache, map_items

ITEMS = [{"key": f"q{i}", "question": f"{i} + {i}"} for i in range(5)]


def test_map_items_appends_as_it_goes_and_resumes(tmp_path):
    path = tmp_path / "out.jsonl"
    calls: list[list[str]] = []

    def double(batch):
        calls.append([item["key"] for item in batch])
        if len(calls) == 2:
            raise RuntimeError("crash in the second batch")
        return [{"value": 2 * int(item["key"][1:])} for item in batch]

    with pytest.raises(RuntimeError):
        map_items(ITEMS, double, ItemLog(path), batch_size=2, progress=False)
    assert len(ItemLog(path)) == 2  # the first batch was kept

    calls.clear()
    records = map_items(ITEMS, double_ok, ItemLog(path), batch_size=2, progress=False)
    assert [r["key"] for r in records] == [item["key"] for item in ITEMS]
    assert [r["value"] for r in records] == [0, 2, 4, 6, 8]
    again = map_items(ITEMS, _never, ItemLog(path), progress=False)
    assert again == records


def double_ok(batch):
    return [{"value": 2 * int(item["key"][1:])} for item in batch]


def _never(batch):
    raise AssertionError("everything was already done")


def test_item_log_drops_a_torn_last_line_but_not_a_bad_middle_one(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"key": "a", "v": 1}\n{"key": "b", "v": 2}\n{"key": "c", "v"')
    log = ItemLog(path)
    assert sorted(log.records) == ["a", "b"] and "c" not in log
    assert path.read_text().count("\n") == 2  # the torn line is gone before new appends
    log.append({"key": "c", "v": 3})
    assert ItemLog(path).records["c"]["v"] == 3
    path.write_text('{"key": "a"}\nnot json\n{"key": "b"}\n')
    with pytest.raises(DataError, match=r"log\.jsonl:2"):
        ItemLog(path)
    path.write_text('{"id": "a"}\n')
    with pytest.raises(DataError, match="'key'"):
        ItemLog(path)


def test_duplicate_keys_and_wrong_result_counts_are_errors(tmp_path):
    with pytest.raises(ValueError, match="duplicate item key 'q0'"):
        map_items([ITEMS[0], ITEMS[0]], double_ok, ItemLog(tmp_path / "a.jsonl"), progress=False)
    with pytest.raises(RuntimeError, match="got 0 results for 5"):
        map_items(ITEMS, lambda batch: [], ItemLog(tmp_path / "b.jsonl"), progress=False)


def test_chat_with_cache_gives_remote_models_a_response_cache(tmp_path):
    remote = chat_with_cache("openai:judge@http://127.0.0.1:9/v1", tmp_path / "cache.sqlite")
    assert remote.cache is not None and (tmp_path / "cache.sqlite").exists()
    remote.close()
    assert chat_with_cache("scripted:echo", tmp_path / "unused.sqlite").name == "scripted:echo"
    assert not (tmp_path / "unused.sqlite").exists()
