import json
from dataclasses import dataclass

import pytest
import yaml

from posttrain.errors import InputError
from posttrain.report import metric_series, write_report
from posttrain.runs import Run, read_metrics


@dataclass
class Cfg:
    lr: float = 0.1


@pytest.mark.parametrize("name", ["", ".", "..", "../outside", "a/b", "/tmp/abs", "a\\b"])
def test_a_run_name_that_would_leave_the_runs_root_is_refused(tmp_path, name):
    with pytest.raises(InputError, match="run_name: .* is not a run directory name"):
        Run.create(name, Cfg(), root=tmp_path / "runs")
    assert not any(tmp_path.iterdir())  # nothing written anywhere


def test_run_writes_config_and_metrics(tmp_path):
    with Run.create("my run:1", Cfg(), root=tmp_path) as run:
        run.log(1, loss=2.0, accuracy=0.1)
        run.log(2, loss=1.5, accuracy=0.3, note="text is kept but not plotted")
        # Flushed as written: readable before the run is closed.
        assert [r["loss"] for r in read_metrics(run.path)] == [2.0, 1.5]
    assert run.path == tmp_path / "my-run-1"
    assert yaml.safe_load((run.path / "config.yaml").read_text()) == {"lr": 0.1}


def test_torn_last_line_is_skipped_but_corruption_elsewhere_is_an_error(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "lo')
    assert read_metrics(tmp_path) == [{"step": 1, "loss": 1.0}]
    path.write_text('{"step": 1, "lo\n{"step": 2, "loss": 1.0}\n')
    try:
        read_metrics(tmp_path)
    except ValueError as err:
        assert "metrics.jsonl:1" in str(err)
    else:
        raise AssertionError("a corrupt middle line must raise")


def test_resume_appends(tmp_path):
    with Run.create("r", root=tmp_path) as run:
        run.log(1, loss=1.0)
    with Run.create("r", root=tmp_path) as run:
        run.log(2, loss=0.5)
    assert [r["step"] for r in read_metrics(tmp_path / "r")] == [1, 2]


def test_report_embeds_one_plot_per_metric(tmp_path):
    with Run.create("r", Cfg(), root=tmp_path) as run:
        for step in range(5):
            run.log(step, loss=1.0 / (step + 1), reward=step * 0.1)
        run.write_json("results.json", {"accuracy": 0.42})
    assert set(metric_series(read_metrics(run.path))) == {"loss", "reward"}
    page = write_report(run.path).read_text()
    assert page.count("<svg ") == 2 and "<title>loss</title>" in page
    assert "results.json" in page and "0.42" in page and "lr: 0.1" in page
    assert json.loads((run.path / "results.json").read_text()) == {"accuracy": 0.42}


def test_report_shows_recipe_figures_and_links_inner_runs(tmp_path):
    from posttrain.report import plot_curves

    with Run.create("outer", Cfg(), root=tmp_path) as outer:
        pass
    with Run.create("inner", Cfg(), root=outer.path) as inner:
        inner.log(1, loss=1.0)
        inner.log(2, loss=0.5)
    write_report(inner.path)
    plot_curves(
        {"accuracy": {"a": ([0, 10], [0.1, 0.3]), "b": ([0, 10], [0.1, 0.2])}},
        outer.path / "curves.png",
    )
    page = write_report(outer.path).read_text()
    assert "<h2>curves.png</h2><img src='data:image/png;base64," in page
    assert "<a href='inner/report.html'>inner</a>" in page


def test_a_metric_chart_places_its_points_and_skips_non_finite_values():
    from xml.etree import ElementTree

    from posttrain.report import line_svg

    svg = ElementTree.fromstring(line_svg([0, 1, 2, 3], [1.0, float("nan"), 3.0, 2.0], "a<b"))
    ns = {"s": "http://www.w3.org/2000/svg"}
    assert svg.find("s:title", ns).text == "a<b"  # escaped in the markup, read back whole
    line = svg.find("s:polyline", ns).get("points").split()
    (x0, y_low), (_, y_high), (x3, y_mid) = [tuple(map(float, p.split(","))) for p in line]
    assert len(line) == 3 and x0 < x3  # the NaN at step 1 is left out
    assert y_high < y_mid < y_low  # SVG's y grows downwards: the largest value is highest
    ticks = [t.text for t in svg.findall("s:text", ns)]
    assert {"1", "2", "3", "0", "step"} <= set(ticks)
    flat = ElementTree.fromstring(line_svg([0, 1], [0.5, 0.5], "flat"))
    ys = {p.split(",")[1] for p in flat.find("s:polyline", ns).get("points").split()}
    assert len(ys) == 1  # drawn, not divided by a zero range
