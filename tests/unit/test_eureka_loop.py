"""EurekAgent's loop parts without the grader: workspace tools' confinement, the tool-call
protocol (robust parsing, re-asks counted by the budget, bounded turns), run-state files and
the scripted agent's proposals."""

from __future__ import annotations

import json
import os

import pytest

from posttrain.eureka import agents, history
from posttrain.eureka.budget import Budget, TrackedChat
from posttrain.eureka.prices import parse_prices
from posttrain.eureka.problem import load_problem, shipped_problems
from posttrain.eureka.run_state import RunState
from posttrain.eureka.scripted import EurekaScriptedAgent, scripted_actions, scripted_proposals
from posttrain.eureka.tools import ToolError, WorkspaceTools
from posttrain.models.chat.scripted import ScriptedChat


def _tools(tmp_path, **kwargs):
    workspace = tmp_path / "ws"
    history.init_approach(workspace, "a")
    return WorkspaceTools(
        workspace,
        "a",
        1,
        grader_url="http://127.0.0.1:9",
        grader_token="t",
        submission_file="out.txt",
        results_dir=tmp_path / "results",
        **kwargs,
    )


def test_tools_stay_inside_the_workspace(tmp_path):
    tools = _tools(tmp_path)
    (tmp_path / "secret.txt").write_text("hidden")
    assert tools.call("write_file", {"path": "sub/x.txt", "content": "hi"}).startswith("wrote 2")
    assert tools.call("read_file", {"path": "sub/x.txt"}) == "hi"
    assert "sub/x.txt (2 bytes)" in tools.call("list_files", {})
    os.symlink(tmp_path / "secret.txt", tools.workspace / "link")
    for tool, args in [
        ("read_file", {"path": "../secret.txt"}),
        ("read_file", {"path": "link"}),  # a symlink is resolved before the check
        ("read_file", {"path": str(tmp_path / "secret.txt")}),
        ("write_file", {"path": ".git/config", "content": "x"}),
        ("write_file", {"path": "link", "content": "x"}),
        ("nope", {}),
        ("read_file", {"bad": 1}),
        ("submit", {"solution": "s", "changed": "c"}),  # no out.txt yet: nothing to submit
    ]:
        with pytest.raises(ToolError):
            tools.call(tool, args)
    assert (tmp_path / "secret.txt").read_text() == "hidden"
    assert tools.call("feedback", {}) == "(no gradings yet)"


def test_parse_action_reads_json_in_prose_and_fences():
    assert agents.parse_action('I will look first. {"tool": "list_files", "args": {}}') == (
        "list_files",
        {},
    )
    fenced = 'Plan:\n```json\n{"tool": "read_file", "args": {"path": "a.py"}}\n```'
    assert agents.parse_action(fenced) == ("read_file", {"path": "a.py"})
    assert agents.parse_action("{'tool': 'done', 'args': None}") == ("done", {})
    assert agents.parse_action("no action here") is None
    assert agents.parse_action('{"tool": "x", "args": [1]}') is None


def _problem():
    return load_problem(shipped_problems()["circle_packing_26"])


def test_unreadable_replies_are_reasked_counted_and_turns_bounded(tmp_path):
    replies = iter(
        [
            "hmm, let me think",
            '{"tool": "list_files", "args": {}}',
            '{"tool": "done", "args": {"summary": "ok"}}',
        ]
    )
    chat = ScriptedChat("probe", [(r"(?s).", lambda m, c: next(replies))])
    prices = parse_prices({"models": {"scripted:probe": {"input": 1.0, "output": 2.0}}})
    budget = Budget(10.0)
    tracked = TrackedChat(chat, budget, "implement", prices)
    proposal = agents.Proposal("t", "p")
    outcome = agents.implement(tracked, _tools(tmp_path), _problem(), proposal, budget)
    assert (outcome.turns, outcome.finished, outcome.unreadable) == (3, True, 1)
    assert "could not read one JSON action" in outcome.transcript[2]["content"]
    assert "left" in outcome.transcript[4]["content"]  # the budget note reaches the agent
    tally = budget.summary()["stages"]["implement"]["models"]["scripted:probe"]
    assert tally["calls"] == 3 and tally["cost_usd"] > 0
    looping = ScriptedChat("loop", [(r"(?s).", '{"tool": "list_files", "args": {}}')])
    bounded = agents.implement(
        looping, _tools(tmp_path / "b"), _problem(), proposal, budget, max_turns=4
    )
    assert (bounded.turns, bounded.finished) == (4, False)


def test_proposals_are_reasked_until_k_readable():
    answers = iter(
        [
            '{"proposals": [{"title": "only one"}]}',
            '{"proposals": [{"title": "a", "plan": "x"}, {"title": "b"}]}',
        ]
    )
    chat = ScriptedChat("p", [(r"(?s).", lambda m, c: next(answers))])
    found = agents.propose(chat, _problem(), {"round": 1}, ["prefer grids"], Budget(None), 2)
    assert [p.title for p in found] == ["a", "b"]
    with pytest.raises(agents.AgentError):
        agents.propose(
            ScriptedChat("q", default="no"),
            _problem(),
            {"round": 1},
            [],
            Budget(None),
            2,
            retries=1,
        )


def test_scripted_agent_explores_then_refines_the_best():
    first = scripted_proposals({"problem": "circle_packing_26", "k": 3, "round": 1}, 1.0)
    assert len({json.dumps(p["params"], sort_keys=True) for p in first}) == 3
    assert all(p["parent"] is None and p["title"].startswith("[scripted]") for p in first)
    context = {
        "problem": "circle_packing_26",
        "k": 3,
        "round": 2,
        "direction": "max",
        "approaches": [
            {"name": "r1-a0", "score": 2.5, "valid": True},
            {"name": "r1-a1", "score": 2.6, "valid": True},
            {"name": "r1-a2", "score": None, "valid": False},
        ],
    }
    second = scripted_proposals(context, 1.0)
    assert [p["parent"] for p in second] == ["r1-a1", "r1-a1", None]
    # A refinement reads the parent's params.json and writes it back changed.
    proposal = {**second[0], "problem": "circle_packing_26"}
    actions = scripted_actions(
        proposal, ["Result of list_files:\n...", 'Result of read_file:\n{"hops": 3, "seed": 1}']
    )
    written = json.loads(
        next(
            a
            for a in actions
            if a["args"].get("path") == "params.json" and a["tool"] == "write_file"
        )["args"]["content"]
    )
    assert written["seed"] == second[0]["params"]["seed"] and written["starts"] == 0
    prompt = agents.proposer_prompt(_problem(), {"round": 1, "seed": 0}, [], "$1 left", 2)
    reply = EurekaScriptedAgent("small").respond([{"role": "user", "content": prompt}])
    assert len(json.loads(reply)["proposals"]) == 2


def test_run_state_events_notes_and_control(tmp_path):
    state = RunState(tmp_path)
    state.update(status="running", round=1)
    state.set_approach("r1-a0", round=1, status="graded", score=1.0, valid=True)
    saved = json.loads((tmp_path / "state.json").read_text())
    assert saved["approaches"][0]["name"] == "r1-a0" and saved["status"] == "running"
    with pytest.raises(ValueError):
        state.update(status="bogus")
    notes = tmp_path / "control" / "notes.jsonl"
    notes.write_text(json.dumps({"time": "t", "text": "try grids"}) + "\n")
    assert state.take_notes() == ["try grids"]
    assert state.take_notes() == []  # each note once
    with notes.open("a") as out:
        out.write(json.dumps({"time": "t", "text": "then refine"}) + "\n")
    assert RunState(tmp_path).take_notes() == ["then refine"]  # seen count survives restarts
    assert [e["type"] for e in state.events()] == ["note", "note"]
    (tmp_path / "control" / "stop").touch()
    assert state.stop_requested() and not state.pause_requested()
    with (tmp_path / "events.jsonl").open("a") as out:
        out.write('{"torn')
    assert len(state.events()) == 2
