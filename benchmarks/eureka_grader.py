"""The sealed grader's overhead per evaluation: jailed against in-process grading.

For each shipped EurekAgent problem, one valid submission is graded by the sealed grader
(`posttrain.eureka.grader.grade`: a bubblewrap jail holding only the evaluator's private/
folder and a copy of the submission, results files written atomically) and by importing the
evaluator in this process (`grade_in_process`, what an unisolated loop does), interleaved,
the side that goes first alternating, `--repeats` times. The speed task's evaluator times
worker processes itself, so its overhead is the jail's share of a longer evaluation.

Writes benchmarks/results/eureka_grader.json: per problem, the median seconds of each side,
their min-max, and the overhead (sealed minus in-process, and the ratio).

    .venv/bin/python benchmarks/eureka_grader.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

from posttrain.eureka.grader import grade
from posttrain.eureka.problem import grade_in_process, load_problem, shipped_problems

RESULTS = Path(__file__).parent / "results" / "eureka_grader.json"


def _submissions() -> dict[str, str]:
    """One valid submission per shipped problem (file name -> text)."""
    circles = [f"{0.1 + 0.16 * (i % 6):.6f} {0.1 + 0.16 * (i // 6):.6f} 0.05" for i in range(26)]
    problems = shipped_problems()
    tabular = problems["tabular_classification"] / "data" / "test_features.csv"
    ids = [line.split(",")[0] for line in tabular.read_text().splitlines()[1:]]
    reference = (problems["speed_up"] / "reference.py").read_text()
    return {
        "circle_packing_26": "\n".join(circles) + "\n",
        "tabular_classification": "id,label\n" + "".join(f"{i},1\n" for i in ids),
        "speed_up": reference,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="eureka-grader-"))
    report: dict = {"machine": platform.platform(), "repeats": args.repeats, "problems": {}}
    for name, text in _submissions().items():
        problem = load_problem(shipped_problems()[name])
        path = scratch / name / problem.submission_file
        path.parent.mkdir(parents=True)
        path.write_text(text)
        times: dict[str, list[float]] = {"sealed": [], "in_process": []}
        for repeat in range(args.repeats):
            order = ["sealed", "in_process"][:: 1 if repeat % 2 == 0 else -1]
            for side in order:
                start = time.perf_counter()
                if side == "sealed":
                    record = grade(
                        problem.dir,
                        path,
                        approach="bench",
                        round=repeat,
                        repo_dir=None,
                        results_dir=scratch / name / "results",
                    )
                else:
                    record = grade_in_process(problem, path)
                times[side].append(time.perf_counter() - start)
                if not record["valid"]:
                    raise SystemExit(f"{name}: the benchmark's submission is invalid: {record}")
        sealed, plain = (statistics.median(times[k]) for k in ("sealed", "in_process"))
        report["problems"][name] = {
            "sealed_s": sealed,
            "in_process_s": plain,
            "sealed_range_s": [min(times["sealed"]), max(times["sealed"])],
            "in_process_range_s": [min(times["in_process"]), max(times["in_process"])],
            "overhead_s": sealed - plain,
            "ratio": sealed / plain,
        }
        print(f"{name}: sealed {sealed:.3f} s, in-process {plain:.3f} s (+{sealed - plain:.3f} s)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
