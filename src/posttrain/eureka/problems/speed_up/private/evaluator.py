"""Grader of speed_up: outputs equal to the reference on hidden and fresh inputs, then the median
speed ratio (standard library only).

The reference and the submission each run in their own worker process (worker.py); this
process sends the inputs and times each call from outside, so a submission cannot touch the
timer. Timing lists are fresh random ones per repeat, so remembered answers do not help, and
the two functions run interleaved, alternating which goes first. A repeat's ratio is the best
reference time over the best submission time of a few calls; the score is the median ratio.
Not defended here: a submission that leaves busy threads or processes running to slow the
reference down; the grading sandbox's CPU-time and process limits bound that.
"""

import json
import os
import random
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FUNCTION = "count_inversions"
HERE = Path(__file__).resolve().parent
CALL_SECONDS = 20.0


class Invalid(Exception):
    """The submission fails; the message names how."""


class Worker:
    """A worker.py process running one module's function."""

    def __init__(self, module_path, label):
        self.label = label
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-S", "-B", str(HERE / "worker.py"), str(module_path), FUNCTION],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
        )
        try:
            reply = self._read()
        except Invalid:
            self.close()
            raise
        if "error" in reply:
            self.close()
            raise Invalid(f"{label}: {reply['error']}")

    def _read(self):
        ready, _, _ = select.select([self.process.stdout], [], [], CALL_SECONDS)
        line = self.process.stdout.readline() if ready else None
        if not line:
            self.stderr.seek(0)
            tail = self.stderr.read()[-300:].decode("utf-8", "replace").strip()
            why = "timed out" if ready == [] else "exited"
            raise Invalid(f"{self.label} {why} (stderr: {tail or 'empty'})")
        try:
            reply = json.loads(line)
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            raise Invalid(f"{self.label} broke the worker protocol: {line[:60]!r}")
        return reply

    def _send(self, text):
        try:
            self.process.stdin.write(text + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise Invalid(f"{self.label} exited") from None

    def call(self, values):
        """(result, seconds) of the function on `values`, timed from sending the input to
        reading the answer. The input travels with the request (its decoding, tens of
        microseconds, is timed for both functions alike) so no code in the worker can know
        it, and compute an answer, before the clock starts."""
        request = "R " + json.dumps(values)
        start = time.perf_counter()
        self._send(request)
        reply = self._read()
        seconds = time.perf_counter() - start
        if "error" in reply:
            raise Invalid(f"{self.label} raised {reply['error']}")
        return reply["result"], seconds

    def close(self):
        self.process.kill()
        self.process.wait()
        self.stderr.close()


def _same(result, expected):
    return type(result) is int and result == expected  # True or 3.0 are not the reference's int


def grade_submission(path, ctx):
    """{"score", "valid", "message", ...}: score = median(reference time / submission time)."""
    private = Path(ctx.get("private_dir") or HERE)
    spec = json.loads((private / "cases.json").read_text(encoding="utf-8"))
    workers = []
    try:
        submission = Worker(path, "the submission")
        workers.append(submission)
        for number, (values, expected) in enumerate(
            zip(spec["inputs"], spec["expected"], strict=True), 1
        ):
            result, _ = submission.call(values)
            if not _same(result, expected):
                raise Invalid(
                    f"wrong output on hidden case {number} (n={len(values)}): "
                    f"expected {expected}, got {str(result)[:40]}"
                )
        reference = Worker(private / "reference.py", "the reference")
        workers.append(reference)
        timing = spec["timing"]
        # Fresh, unpredictable lists: the hidden data is readable inside the grading sandbox.
        rng = random.Random(os.urandom(16))
        ratios, ref_times, sub_times = [], [], []
        for repeat in range(timing["repeats"]):
            # Each repeat: best of `pairs` calls per function (timeit's rule against scheduler
            # noise), every pair on its own fresh list so no call can reuse an earlier answer.
            best_ref = best_sub = float("inf")
            for pair in range(timing["pairs"]):
                values = [rng.randint(timing["low"], timing["high"]) for _ in range(timing["n"])]
                first_ref = (repeat + pair) % 2 == 0
                order = (reference, submission) if first_ref else (submission, reference)
                out = {worker.label: worker.call(values) for worker in order}
                (expected, t_ref), (result, t_sub) = out["the reference"], out["the submission"]
                if not _same(result, expected):
                    raise Invalid(
                        f"wrong output on a fresh random list (n={timing['n']}): "
                        f"expected {expected}, got {str(result)[:40]}"
                    )
                best_ref, best_sub = min(best_ref, t_ref), min(best_sub, t_sub)
            ratios.append(best_ref / max(best_sub, 1e-9))
            ref_times.append(best_ref)
            sub_times.append(best_sub)
    except Invalid as err:
        return {"score": None, "valid": False, "message": str(err)}
    except OSError as err:  # a worker could not start (process limit) or its pipe failed
        return {"score": None, "valid": False, "message": f"grading failed: {err}"}
    finally:
        for worker in workers:
            worker.close()
    score = statistics.median(ratios)
    return {
        "score": score,
        "valid": True,
        "message": (
            f"valid: outputs equal on {len(spec['inputs'])} hidden and "
            f"{len(ratios) * timing['pairs']} fresh lists; median speed ratio {score:.2f}x"
        ),
        "ratios": ratios,
        "reference_seconds": statistics.median(ref_times),
        "submission_seconds": statistics.median(sub_times),
    }


def is_better(new, old):
    """A valid result beats an invalid or missing one; between valid ones the higher ratio wins."""
    if not new or not new.get("valid"):
        return False
    if not old or not old.get("valid"):
        return True
    return new["score"] > old["score"]
