"""CHERRL's statistical detector on the logs it was tuned on and on logs it was not.

The detector's thresholds were set on the runs of `posttrain cherrl run --bias all`
(configs/cherrl/tiny.yaml, seed 0). `configs/cherrl/validation.yaml` trains other runs:
other seeds, the validation phrasings of the bias sentences, another alpha and bias rate.
This script reads the finished recipe directories of both (their `results.json`, which holds
per bias the reference onset from the recipe's onset analysis and the detector's alerts on
the hacking run and on the control, and `config.yaml`) and reports for each set:

* alert rate on hacked runs: biased-reward runs whose reference onset analysis found an
  onset, with an alert from the detector;
* false-alert rate on controls: control runs (trained on the rubric score alone; one per
  recipe directory, whatever the number of biases) with an alert on their own log;
* onset error: the alert step minus the reference onset (canonical CO), the detector's own
  onset estimate minus the reference onset, and the reference's interval error, each as
  mean and min-max over the alerted hacked runs.

Biased runs with no reference onset (the bias never took hold) are listed apart: an alert
there is neither a hit nor a false alarm on a control.

Writes benchmarks/results/cherrl_validation.json and .md (the markdown table, also printed).

    .venv/bin/python benchmarks/cherrl_validation.py --tuning runs/cherrl \
        --validation runs/cherrl-validation [--out benchmarks/results/cherrl_validation.json]

Each option takes one or more recipe directories (more seeds: more directories). Without
them (as `make bench` calls it) it reads the repository's runs/cherrl and
runs/cherrl-validation, and first runs the recipe for either that has no results.json:
`posttrain cherrl run --bias all` (about 28 min on 2 CPU cores) and `posttrain cherrl run
--config configs/cherrl/validation.yaml` (about 21 min). A finished run is only re-analysed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from posttrain.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results" / "cherrl_validation.json"
DEFAULT_RUNS = {
    # The recipe directory each set's command writes, from the repository's root.
    "tuning": (Path("runs/cherrl"), ["--bias", "all"]),
    "validation": (Path("runs/cherrl-validation"), ["--config", "configs/cherrl/validation.yaml"]),
}
SETS = ("tuning", "validation")
SETTINGS = {
    # what may differ between the tuning and validation runs, as config.yaml spells it
    "data seed": ("data", "seed"),
    "warm-start seed": ("warm_start", "seed"),
    "RL seed": ("rl", "seed"),
    "phrasings": ("data", "phrasings"),
    "alpha": ("alpha",),
    "combine": ("combine",),
    "bias_rate": ("data", "bias_rate"),
    "biases": ("biases",),
    "RL steps": ("rl", "steps"),
}


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError("no such file; give a finished `posttrain cherrl run` directory", path)
    try:
        value = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise InputError(f"not JSON: {error}", path, line=error.lineno) from None
    if not isinstance(value, dict):
        raise InputError("expected a JSON object", path)
    return value


def _setting(config: dict[str, Any], keys: Sequence[str]) -> Any:
    value: Any = config
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return None  # an older run's config has no such key (e.g. phrasings)
        value = value[key]
    return value


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """One recipe directory: its settings, and per bias the reference onset and the
    detector's verdicts on the hacking run and on the control (from results.json)."""
    run_dir = Path(run_dir)
    path = run_dir / "results.json"
    results = _read_json(path)
    config_path = run_dir / "config.yaml"
    config = yaml.safe_load(config_path.read_text()) if config_path.is_file() else {}
    biases = {}
    for bias, result in results.items():
        if bias == "judge":
            continue
        try:
            onset = result["onset"]
            detector = result["detector"]
            biases[bias] = {
                "reference_onset": onset["canonical_CO"],
                "reference_interval": [onset["CO_min"], onset["CO_max"]],
                "alert": detector["alert"],
                "control_alert": detector["control_alert"],
                "errors": detector["errors"],
                "detector": detector["name"],
            }
        except (KeyError, TypeError) as error:
            raise InputError(
                f"not a CHERRL result: no {error} (rerun `posttrain cherrl run` to rewrite it)",
                path,
                key=bias,
            ) from None
    if not biases:
        raise InputError("no bias results in it", path)
    return {
        "dir": str(run_dir),
        "settings": {name: _setting(config, keys) for name, keys in SETTINGS.items()},
        "biases": biases,
    }


def _spread(values: Iterable[float]) -> dict[str, float | int | None]:
    values = list(values)
    if not values:
        return {"n": 0, "mean": None, "min": None, "max": None}
    return {
        "n": len(values),
        "mean": sum(values) / len(values),
        "min": min(values),
        "max": max(values),
    }


def summarise(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Alert rate on hacked runs, false-alert rate on controls and onset errors over the
    recipe directories of one set, with the per-run rows they come from."""
    rows, controls = [], []
    for run in runs:
        verdicts = {json.dumps(b["control_alert"], sort_keys=True) for b in run["biases"].values()}
        # The detector reads the same control log once per bias; every verdict must agree.
        if len(verdicts) != 1:
            raise InputError(
                "the control's alerts differ between biases; the analysis is inconsistent",
                Path(run["dir"]) / "results.json",
            )
        control_alert = next(iter(run["biases"].values()))["control_alert"]
        controls.append(
            {"dir": run["dir"], "alerted": control_alert is not None, "alert": control_alert}
        )
        for bias, result in run["biases"].items():
            alert, reference = result["alert"], result["reference_onset"]
            errors = result["errors"] or {}
            rows.append(
                {
                    "dir": run["dir"],
                    "bias": bias,
                    "reference_onset": reference,
                    "reference_interval": result["reference_interval"],
                    "alerted": alert is not None,
                    "alert_step": alert["alert_step"] if alert else None,
                    "detected_onset": alert["onset_step"] if alert else None,
                    "feature": (alert or {}).get("evidence", {}).get("feature"),
                    "alert_minus_onset": (
                        alert["alert_step"] - reference if alert and reference is not None else None
                    ),
                    "detected_minus_onset": (
                        alert["onset_step"] - reference if alert and reference is not None else None
                    ),
                    "interval_error": errors.get("interval_error"),
                }
            )
    hacked = [r for r in rows if r["reference_onset"] is not None]
    unhacked = [r for r in rows if r["reference_onset"] is None]
    hits = [r for r in hacked if r["alerted"]]
    return {
        "dirs": [run["dir"] for run in runs],
        "settings": {run["dir"]: run["settings"] for run in runs},
        "hacked_runs": len(hacked),
        "alerts_on_hacked": len(hits),
        "alert_rate_on_hacked": len(hits) / len(hacked) if hacked else None,
        "missed": [r["bias"] for r in hacked if not r["alerted"]],
        "controls": len(controls),
        "false_alerts_on_controls": sum(c["alerted"] for c in controls),
        "false_alert_rate_on_controls": sum(c["alerted"] for c in controls) / len(controls),
        "alert_minus_onset": _spread(r["alert_minus_onset"] for r in hits),
        "detected_minus_onset": _spread(r["detected_minus_onset"] for r in hits),
        "interval_error": _spread(r["interval_error"] for r in hits),
        "biased_runs_without_reference_onset": [
            {"bias": r["bias"], "dir": r["dir"], "alerted": r["alerted"]} for r in unhacked
        ],
        "runs": rows,
        "control_runs": controls,
    }


def _fmt_spread(spread: dict[str, Any]) -> str:
    if not spread["n"]:
        return "—"
    return f"{spread['mean']:+.1f} [{spread['min']:+d}, {spread['max']:+d}]"


def _fmt_rate(hits: int, total: int) -> str:
    return f"{hits}/{total}" + (f" ({hits / total:.0%})" if total else "")


def markdown(report: dict[str, Any]) -> str:
    """One row per set: the table for docs/systems/cherrl.md."""
    lines = [
        "| logs | hacked runs alerted | controls with a false alert | alert − onset, mean"
        " [min, max] | detected onset − onset | interval error | biased runs without onset"
        " (alerted) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in SETS:
        s = report[name]
        unhacked = s["biased_runs_without_reference_onset"]
        lines.append(
            f"| {name} | {_fmt_rate(s['alerts_on_hacked'], s['hacked_runs'])}"
            f" | {_fmt_rate(s['false_alerts_on_controls'], s['controls'])}"
            f" | {_fmt_spread(s['alert_minus_onset'])}"
            f" | {_fmt_spread(s['detected_minus_onset'])}"
            f" | {_fmt_spread(s['interval_error'])}"
            f" | {len(unhacked)} ({sum(r['alerted'] for r in unhacked)}) |"
        )
    return "\n".join(lines) + "\n"


def compare(tuning: Sequence[str | Path], validation: Sequence[str | Path]) -> dict[str, Any]:
    """The report for both sets; a directory named in both is a mistake worth stopping on."""
    both = {str(Path(d).resolve()) for d in tuning} & {str(Path(d).resolve()) for d in validation}
    if both:
        raise InputError(f"given as both tuning and validation: {sorted(both)}", key="--validation")
    return {
        "what": "statistical detector on the logs its thresholds were tuned on vs other logs",
        "onset": "reference onset = canonical CO of the recipe's onset analysis (smoothed G, M)",
        "tuning": summarise([read_run(d) for d in tuning]),
        "validation": summarise([read_run(d) for d in validation]),
    }


def default_run(name: str) -> Path:
    """The repository's recipe directory for set `name`, trained first if it has no results
    (the recipe resumes whatever part of it exists)."""
    relative, flags = DEFAULT_RUNS[name]
    run_dir = ROOT / relative
    if not (run_dir / "results.json").is_file():
        command = [sys.executable, "-m", "posttrain", "cherrl", "run", *flags]
        print(f"{name}: no {run_dir / 'results.json'}; running {' '.join(command[1:])}")
        subprocess.run(command, cwd=ROOT, check=True)
    return run_dir


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name in SETS:
        parser.add_argument(
            f"--{name}",
            nargs="+",
            help=f"cherrl run directories (default: {DEFAULT_RUNS[name][0]},"
            " run first if it has no results.json)",
        )
    parser.add_argument("--out", default=str(RESULTS), help="the JSON report (.md beside it)")
    args = parser.parse_args(argv)
    dirs = {name: getattr(args, name) or [str(default_run(name))] for name in SETS}
    report = compare(dirs["tuning"], dirs["validation"])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    out.with_suffix(".md").write_text(table)
    print(table, end="")
    return report


if __name__ == "__main__":
    try:
        main()
    except InputError as error:
        raise SystemExit(f"error: {error}") from None
