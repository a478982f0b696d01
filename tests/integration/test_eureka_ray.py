"""EurekAgent's implementers as Ray tasks (`workers="ray"`): the same run as with threads —
the same gradings, git history and exact budget — with the sessions in other processes, the
events reaching the run's log live, and a dying worker ending only its approach. Needs the
`ray` extra (installed by `make test-all`)."""

from __future__ import annotations

import json
import os
import sys

import pytest

from posttrain.eureka import grader
from posttrain.eureka.loop import EurekaConfig, run_eureka
from posttrain.eureka.scripted import EurekaScriptedAgent
from posttrain.sandbox import bubblewrap

pytest.importorskip("ray")
pytestmark = pytest.mark.skipif(
    bubblewrap.unavailable_reason() is not None, reason="bubblewrap cannot run here"
)


@pytest.fixture(scope="module")
def ray_runtime():
    import ray
    from ray import cloudpickle

    # Ray's workers cannot import this test module: its agents travel by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _config(**kwargs) -> EurekaConfig:
    base = {
        "problem": "circle_packing_26",
        "k": 2,
        "rounds": 2,
        "agent_options": {"effort": 0.05},
        "cost_limit": None,
    }
    return EurekaConfig(**{**base, **kwargs})


class PidAgent(EurekaScriptedAgent):
    """The scripted agent, writing down which process answers each implementer turn."""

    def __init__(self, effort: float, log: str) -> None:
        super().__init__(effort)
        self.log = log

    def respond(self, conversation):
        if "CONTEXT_JSON" not in conversation[0]["content"]:  # an implementer's turn
            with open(self.log, "a") as handle:
                handle.write(f"{os.getpid()}\n")
        return super().respond(conversation)


def _tallies(run):
    return json.loads((run / "budget.json").read_text())["tallies"]


def test_ray_run_matches_the_threaded_run(ray_runtime, tmp_path):
    log = tmp_path / "pids.txt"
    on_ray = run_eureka(_config(workers="ray"), tmp_path / "ray", chat=PidAgent(0.05, str(log)))
    threaded = run_eureka(_config(), tmp_path / "threads", chat=EurekaScriptedAgent(0.05))
    assert on_ray["status"] == threaded["status"] == "finished"
    pids = {int(line) for line in log.read_text().split()}
    assert pids and os.getpid() not in pids  # the sessions ran in Ray's workers
    records = {
        name: [
            (r["approach"], r["score"], r["valid"], r["sha256"])
            for r in grader._read_jsonl(tmp_path / name / "results" / grader.INTERMEDIATE)
        ]
        for name in ("ray", "threads")
    }
    assert len(records["ray"]) == 4 and sorted(records["ray"]) == sorted(records["threads"])
    # every call the workers made reached the run's budget: the same tallies as threads
    assert _tallies(tmp_path / "ray") == _tallies(tmp_path / "threads")
    assert _tallies(tmp_path / "ray")["implement"]["scripted:eureka-agent"]["calls"] > 4
    events = [
        json.loads(line) for line in (tmp_path / "ray" / "events.jsonl").read_text().splitlines()
    ]
    assert [e["type"] for e in events].count("graded") == 4
    state = json.loads((tmp_path / "ray" / "state.json").read_text())
    assert all(a["status"] == "graded" for a in state["approaches"])
    assert state["best"]["score"] == on_ray["best"]["score"] == threaded["best"]["score"]


class DyingAgent(EurekaScriptedAgent):
    """Kills the worker process that runs approach a1's session at its first turn."""

    def respond(self, conversation):
        content = conversation[0]["content"]
        if "CONTEXT_JSON" not in content and "r1-a1" in content:
            os._exit(3)
        return super().respond(conversation)


def test_a_dying_worker_ends_its_approach_not_the_run(ray_runtime, tmp_path):
    run = tmp_path / "run"
    summary = run_eureka(_config(rounds=1, workers="ray"), run, chat=DyingAgent(0.05))
    assert summary["status"] == "finished" and summary["best"]["approach"] == "r1-a0"
    round1 = json.loads((run / "rounds" / "round-001.json").read_text())
    ended = {r["approach"]: r["ended"] for r in round1["results"]}
    assert ended["r1-a1"].startswith("failed: worker died")
    state = {a["name"]: a for a in json.loads((run / "state.json").read_text())["approaches"]}
    assert state["r1-a1"]["status"] == "no_submission" and state["r1-a0"]["status"] == "graded"


def test_workers_must_be_threads_or_ray():
    with pytest.raises(ValueError, match="workers"):
        _config(workers="processes")
