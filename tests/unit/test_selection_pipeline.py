"""`select`: the whole selection stage on synthetic features with known truth, its ablations,
a TF-IDF baseline through the same interface, and its errors."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from selection_synthetic import TOPICS, make_synthetic

from posttrain.data.selection import Selection, SelectionSettings, ordered_rows, select
from posttrain.errors import InputError

SETTINGS = SelectionSettings(batch_size=8, clusters=4, difficulty_cv_folds=3)


@pytest.fixture(scope="module")
def data():
    return make_synthetic()


@pytest.fixture(scope="module")
def full(data) -> Selection:
    return select(data.features, data.rows, SETTINGS)


def _whole_batches(selection: Selection, size: int) -> None:
    assert all(len(batch) == size for batch in selection.batches)
    assert selection.order == [row for batch in selection.batches for row in batch]
    assert len(set(selection.order)) == len(selection.order)


def test_select_reports_every_component_against_the_truth(data, full):
    report = full.report
    assert report["purity"] == 1.0 and report["silhouette"] > 0.5
    assert report["difficulty_r2"] > 0.9 and report["difficulty_spearman"] > 0.9
    assert report["quality_auc"] > 0.95
    assert report["kept"] == len(full.order) and report["kept"] % 8 == 0
    assert (
        report["rows"]
        == report["kept"] + report["quality_dropped"] + report["dropped_to_fill_batches"]
    )
    assert report["mixing_p"] == 0.25 and report["mixing_rows_exchanged"] == 1
    assert json.loads(json.dumps(report)) == report  # plain values: the recipe writes it as is
    _whole_batches(full, 8)


def test_select_drops_the_low_quality_rows(data, full):
    kept = np.zeros(len(data.rows), dtype=bool)
    kept[full.order] = True
    assert data.bad[kept].sum() <= 1  # a bad row kept is a probe error
    assert (~data.bad & ~kept).sum() <= 3  # good rows lost: probe errors + the batch trim


def test_select_orders_batches_cluster_first_and_easy_to_hard(data, full):
    # Mixing exchanges one row a boundary: each batch is one topic but for at most 2 rows,
    # except the last ones, which pack the clusters' leftovers (fewer than 4 x 8 rows).
    for batch in full.batches[:-3]:
        assert np.bincount(data.topic[batch], minlength=4).max() >= 6
    # Easy to hard: the true difficulty climbs within each topic over the run.
    position = np.empty(len(data.rows))
    position[full.order] = np.arange(len(full.order))
    for topic in range(len(TOPICS)):
        rows = np.array([r for r in full.order if data.topic[r] == topic])
        assert np.corrcoef(position[rows], data.difficulty[rows])[0, 1] > 0.8
    # Topics take turns: the first four batches hold four different majority topics.
    firsts = [np.bincount(data.topic[batch]).argmax() for batch in full.batches[:4]]
    assert sorted(firsts) == [0, 1, 2, 3]


def test_ablations_switch_components_off(data):
    plain = replace(SETTINGS, clusters=None, curriculum=False, quality_filter=False, mixing="none")
    selection = select(data.features, data.rows, plain)
    assert selection.cluster_ids is None and selection.difficulty is None
    assert selection.quality is None
    assert sorted(selection.order) == list(range(200))  # 200 rows: 25 whole batches, none lost
    assert not any(key.startswith(("quality_", "difficulty_")) for key in selection.report)
    assert "purity" not in selection.report
    assert select(data.features, data.rows, plain).order == selection.order  # seeded
    other = select(data.features, data.rows, replace(plain, seed=1)).order
    assert other != selection.order


def test_mixing_presets_change_only_the_rows_at_batch_boundaries(data):
    base = replace(SETTINGS, quality_filter=False)
    none = select(data.features, data.rows, replace(base, mixing="none"))
    heavy = select(data.features, data.rows, replace(base, mixing="heavy"))
    assert heavy.report["mixing_rows_exchanged"] == 3
    assert sorted(none.order) == sorted(heavy.order)
    moved = sum(set(a) != set(b) for a, b in zip(none.batches, heavy.batches, strict=True))
    assert moved == len(none.batches)


def test_tfidf_features_go_through_the_same_interface():
    from sklearn.feature_extraction.text import TfidfVectorizer

    rng = np.random.default_rng(0)
    words = {topic: [f"{topic}{i}" for i in range(12)] for topic in TOPICS}
    rows = []
    for index in range(96):
        topic = TOPICS[index % 4]
        text = " ".join(rng.choice(words[topic], 6)) + " what is the answer"
        rows.append({"prompt": text, "topic": topic})
    features = TfidfVectorizer().fit_transform([row["prompt"] for row in rows])  # sparse
    settings = SelectionSettings(
        batch_size=8, clusters=4, cluster_normalize=True, curriculum=False, quality_filter=False
    )
    selection = select(features, rows, settings)
    assert selection.report["purity"] == 1.0
    _whole_batches(selection, 8)


def test_pass_rates_and_low_quality_flags_can_be_the_labels(data):
    rows = []
    for row in data.rows:
        row = dict(row)
        if "difficulty" in row:
            row["pass_rate"] = -row.pop("difficulty")  # higher is easier
            row["defect"] = not row.pop("quality_ok")
        rows.append(row)
    settings = replace(
        SETTINGS,
        difficulty_column="pass_rate",
        difficulty_higher_is_easier=True,
        quality_column="defect",
        quality_column_flags_low=True,
    )
    selection = select(data.features, rows, settings)
    assert selection.report["difficulty_spearman"] > 0.9
    assert np.corrcoef(selection.difficulty, data.difficulty)[0, 1] > 0.95
    assert selection.report["quality_auc"] > 0.95


def test_ordered_rows_are_the_rows_in_training_order(data, full):
    written = ordered_rows(data.rows, full)
    assert [row["prompt"] for row in written] == [f"q{index}" for index in full.order]


def test_bad_inputs_name_the_option(data):
    with pytest.raises(InputError, match="features: has 199 rows but the data has 200"):
        select(data.features[:199], data.rows, SETTINGS)
    unlabelled = [{k: v for k, v in row.items() if k != "difficulty"} for row in data.rows]
    with pytest.raises(InputError, match="difficulty: no row has this column"):
        select(data.features, unlabelled, replace(SETTINGS, quality_filter=False))
    few = [dict(row) for row in data.rows]
    for row in [row for row in few if "difficulty" in row][8:]:
        del row["difficulty"]
    with pytest.raises(InputError, match=r"difficulty: 8 labelled rows; .* at least 9"):
        select(data.features, few, replace(SETTINGS, quality_filter=False))
    with pytest.raises(InputError, match="mixing"):
        select(data.features, data.rows, replace(SETTINGS, mixing="lots"))
    with pytest.raises(InputError, match="batch_size: 512: only"):
        select(data.features, data.rows, replace(SETTINGS, batch_size=512, quality_filter=False))


def test_label_budget_uses_a_seeded_part_of_a_fully_labelled_set():
    data = make_synthetic(labelled=200, bad_share=0.3)  # every row labelled, as generated
    settings = replace(SETTINGS, label_budget=48, clusters=None, mixing="none")
    selection = select(data.features, data.rows, settings)
    assert selection.report["difficulty_labelled"] == 48
    assert selection.report["quality_labelled"] == 48
    assert selection.report["difficulty_spearman"] > 0.9
    with pytest.raises(InputError, match="label_budget"):
        select(data.features, data.rows, replace(settings, label_budget=0))
