"""The `alfworld` environment: ALFWorld's own games through the installed `alfworld` package.

The real ALFWorld data (`alfworld-download`) is not here; `tests/data/alfworld` holds one
hand-written trial in its published layout (`json_2.1.1/train/<task>/<trial>/` with
`traj_data.json` and `game.tw-pddl`): a room with a countertop holding an apple, a fridge and a
cabinet; the task is ALFWorld's pick_and_place_simple, apple into fridge. The references are
ALFWorld's and TextWorld's own objects: the game played by `textworld.start` with ALFWorld's
wrappers, ALFWorld's hand-coded expert and Fast Downward's planner.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("alfworld")

from posttrain.envs import env_factory  # noqa: E402
from posttrain.envs.alfworld_env import (  # noqa: E402
    AlfWorldEnv,
    alfworld_tasks,
    expert_episodes,
)
from posttrain.envs.household_env import clean_text  # noqa: E402
from posttrain.errors import InputError  # noqa: E402

DATA = Path(__file__).parents[1] / "data" / "alfworld"
TASK_DIR = "json_2.1.1/train/pick_and_place_simple-Apple-None-Fridge-1"
TRIAL = "trial_T20260101_000000_000001"
GAME = f"{TASK_DIR}/{TRIAL}/game.tw-pddl"
WALKTHROUGH = [
    "go to countertop 1",
    "take apple 1 from countertop 1",
    "go to fridge 1",
    "open fridge 1",
    "move apple 1 to fridge 1",
]


def _env(**kwargs):
    kwargs.setdefault("data_dir", str(DATA))
    return env_factory("alfworld", **kwargs)()  # through the registry, as rollout builds it


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """The trial with the game logic written into its game file, as `alfworld-generate`
    writes it: the package's domain, and its grammar with ALFWorld's second goal template."""
    from alfworld.info import ALFRED_PDDL_PATH, ALFRED_TWL2_PATH

    root = tmp_path_factory.mktemp("alfworld-published")
    trial = root / "json_2.1.1" / "train" / "task" / TRIAL
    shutil.copytree(DATA / TASK_DIR / TRIAL, trial)
    game = json.loads((trial / "game.tw-pddl").read_text())
    game["pddl_domain"] = Path(ALFRED_PDDL_PATH).read_text()
    grammar = Path(ALFRED_TWL2_PATH).read_text()
    game["grammar"] = grammar.replace("UNKNOWN GOAL", "put some apple on fridge")
    (trial / "game.tw-pddl").write_text(json.dumps(game))
    return trial / "game.tw-pddl"


def _copies() -> int:
    """Mappings of Fast Downward's library in this process (each started game loads a copy)."""
    return Path("/proc/self/maps").read_text().count("libdownward")


def _trial(root: Path, task_dir: str, trial: str, task_type: str, game: dict | None):
    """A copy of the test trial under `root`, with its task type and game file changed."""
    path = root / "json_2.1.1" / "train" / task_dir / trial
    path.mkdir(parents=True)
    traj = json.loads((DATA / TASK_DIR / TRIAL / "traj_data.json").read_text())
    (path / "traj_data.json").write_text(json.dumps({**traj, "task_type": task_type}))
    if game is not None:
        (path / "game.tw-pddl").write_text(json.dumps(game))
    return path


def test_the_loader_finds_the_published_trial():
    (row,) = alfworld_tasks(DATA, "train")
    assert row == {
        "game": GAME,
        "task_type": "pick_and_place_simple",
        "trial": TRIAL,
        "split": "train",
    }
    # The folder holding json_2.1.1 ($ALFWORLD_DATA) and json_2.1.1 itself both work.
    inner = alfworld_tasks(DATA / "json_2.1.1", "train", task_types=[1], limit=1)
    assert [(DATA / "json_2.1.1" / r["game"]) for r in inner] == [DATA / GAME]


def test_the_loader_applies_alfworlds_skip_rules(tmp_path):
    game = json.loads((DATA / GAME).read_text())
    _trial(
        tmp_path,
        "pick_and_place_simple-Apple-None-Fridge-1",
        "trial_a",
        "pick_and_place_simple",
        game,
    )
    _trial(
        tmp_path,
        "pick_and_place_simple-Apple-None-Fridge-2",
        "trial_b",
        "pick_two_obj_and_place",
        game,
    )
    _trial(
        tmp_path,
        "pick_and_place_with_movable_recep-Apple-Bowl-Fridge-1",
        "trial_c",
        "pick_and_place_simple",
        game,
    )
    _trial(
        tmp_path,
        "pick_and_place_simple-AppleSliced-None-Fridge-1",
        "trial_d",
        "pick_and_place_simple",
        game,
    )
    _trial(
        tmp_path,
        "pick_and_place_simple-Apple-None-Fridge-3",
        "trial_e",
        "pick_and_place_simple",
        {**game, "solvable": False},
    )
    no_key = {k: v for k, v in game.items() if k != "solvable"}
    _trial(
        tmp_path,
        "pick_and_place_simple-Apple-None-Fridge-4",
        "trial_f",
        "pick_and_place_simple",
        no_key,
    )
    _trial(
        tmp_path,
        "pick_and_place_simple-Apple-None-Fridge-5",
        "trial_g",
        "pick_and_place_simple",
        None,
    )
    trials = [r["trial"] for r in alfworld_tasks(tmp_path, "train")]
    assert trials == ["trial_a", "trial_b"]
    assert [r["trial"] for r in alfworld_tasks(tmp_path, "train", task_types=[1])] == ["trial_a"]
    only_two = alfworld_tasks(tmp_path, "train", task_types=["pick_two_obj_and_place"])
    assert [(r["trial"], r["task_type"]) for r in only_two] == [
        ("trial_b", "pick_two_obj_and_place")
    ]
    assert len(alfworld_tasks(tmp_path, "train", limit=1)) == 1
    with pytest.raises(InputError, match=r"train: no playable ALFWorld game.*2 movable or sliced"):
        alfworld_tasks(tmp_path, "train", task_types=[2])


def test_the_loader_names_bad_input(tmp_path):
    with pytest.raises(InputError, match="no split 'valid_seen'") as error:
        alfworld_tasks(DATA, "valid_seen")
    assert str(DATA) in str(error.value)
    with pytest.raises(InputError, match="task_types: unknown ALFWorld task type 7"):
        alfworld_tasks(DATA, "train", task_types=[7])
    with pytest.raises(InputError, match="limit"):
        alfworld_tasks(DATA, "train", limit=0)
    trial = _trial(tmp_path, "t", "trial_x", "pick_and_place_simple", None)
    (trial / "game.tw-pddl").write_text("{not json")
    with pytest.raises(InputError, match=r"trial_x/game.tw-pddl:1: the ALFWorld game file is not"):
        alfworld_tasks(tmp_path, "train")
    (trial / "traj_data.json").write_text(json.dumps({"pddl_params": {}}))
    with pytest.raises(InputError, match=r"trial_x/traj_data.json: task_type: the trial has no"):
        alfworld_tasks(tmp_path, "train")


@pytest.fixture(scope="module")
def walked(published):
    """The walkthrough played by the environment and, beside it, by ALFWorld's own game (its
    wrappers on TextWorld's PDDL backend, no posttrain code): (first observation, steps,
    reference first state, reference states). Starting a game costs ~0.5 s (TextWorld parses
    the domain and grammar), so the tests share this play."""
    import textworld
    from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredInfos

    reference = textworld.start(
        str(published),
        textworld.EnvInfos(won=True, admissible_commands=True, extras=["gamefile"]),
        [AlfredDemangler(shuffle=False), AlfredInfos],
    )
    start = reference.reset()
    states = [reference.step(command)[0] for command in WALKTHROUGH]
    reference.close()
    root = published.parents[3]
    env = _env(data_dir=str(root))
    first = env.reset({"game": str(published.relative_to(root))})
    steps = [env.step(command) for command in WALKTHROUGH]
    with pytest.raises(RuntimeError, match="reset"):
        env.step("look")
    return first, steps, start, states


def test_the_walkthrough_wins_with_reward_one_and_matches_alfworlds_game(walked):
    first, steps, start, states = walked
    goal, *text, actions = first.split("\n")
    # No banner, no "Your task is to" line: the goal line holds the game's own goal.
    assert goal == "Goal: put some apple on fridge." and len(text) == 1
    assert "Your task is to: put some apple on fridge." in start.feedback
    assert text[0].startswith("You are in the middle of a room.") and text[0] in start.feedback
    assert actions == "Actions: " + " | ".join(start["admissible_commands"])
    assert "take apple 1 from countertop 1" not in actions  # not there yet
    for (observation, reward, done, info), state in zip(steps, states, strict=True):
        text, actions = observation.split("\nActions: ")
        assert text == clean_text(state.feedback) and text
        assert actions.split(" | ") == state["admissible_commands"] and info["admissible"]
        assert (reward, done, info["won"]) == (float(state["won"]), state["won"], state["won"])
    assert [s[1] for s in steps] == [0.0] * 4 + [1.0] and steps[-1][3]["steps"] == 5
    assert steps[0][0].startswith("You arrive at countertop 1. On the countertop 1, you see")


def test_a_wrong_command_gets_the_games_own_answer_and_the_cap_ends_the_episode(published):
    env = _env(max_steps=3)
    first = env.reset({"game": str(published)})
    assert first.startswith("Goal: put some apple on fridge.\nYou are in the middle of a room.")
    observation, reward, done, info = env.step("  fly   to the moon ")
    assert observation.split("\n")[0] == "Nothing happens."  # TextWorld's PDDL answer
    assert (reward, done, info["admissible"], info["won"]) == (0.0, False, False, False)
    # Taking the apple from afar is not one of the state's actions either.
    observation, _, done, info = env.step("take apple 1 from countertop 1")
    assert observation.startswith("Nothing happens.\n") and not info["admissible"] and not done
    observation, reward, done, info = env.step("go to countertop 1")
    assert observation.startswith("You arrive at countertop 1.") and info["admissible"]
    assert (reward, done, info["truncated"], info["won"]) == (0.0, True, True, False)
    assert env._game is None  # closed at the episode's end


def test_long_text_is_cut_by_the_rule_and_a_given_grammar_wins(walked, published):
    from alfworld.info import ALFRED_TWL2_PATH

    full, full_steps, _, _ = walked
    env = AlfWorldEnv(max_text_chars=20, omit_verbs=("examine", "look"), grammar=ALFRED_TWL2_PATH)
    short = env.reset({"game": str(published)})
    _, text, actions = full.split("\n")
    # The given grammar overrides the game's own (first template, not the game's second).
    assert short.rsplit("\n", 1)[0] == f"Goal: put a apple in fridge.\n{text[:20]} [...]"
    assert env.reset_chars_cut == len(text) - 20 > 0
    listed = actions.removeprefix("Actions: ").split(" | ")
    kept = [c for c in listed if c.split()[0] not in ("examine", "look")]
    assert short.split("\n")[-1] == "Actions: " + " | ".join(kept) and len(kept) < len(listed)
    observation, _, _, info = env.step(WALKTHROUGH[0])
    reply = full_steps[0][0].split("\nActions: ")[0]
    assert observation.split("\nActions: ")[0] == reply[:20] + " [...]"
    assert info["chars_cut"] == len(reply) - 20 and full_steps[0][3]["chars_cut"] == 0
    assert info["reset_chars_cut"] == env.reset_chars_cut
    env.close()


def test_finished_games_are_reused_and_start_afresh(walked):
    """Each started game maps its own copy of Fast Downward's library, never unloaded: a new
    environment takes a finished game (`walked` left one, of another file) instead."""

    before = _copies()
    firsts = []
    for max_steps in (50, 2):
        env = _env(max_steps=max_steps)
        firsts.append(env.reset({"game": GAME}))
        assert env.step("go to countertop 1")[3]["admissible"]
        assert env.step("take apple 1 from countertop 1")[3]["admissible"]
        env.close()  # the capped episode closed itself already
    assert _copies() == before
    # Each episode starts from the problem's first state: the apple back on the countertop.
    assert firsts[0] == firsts[1]
    assert firsts[0].startswith("Goal: put a apple in fridge.\n")


@pytest.mark.parametrize("expert", ["handcoded", pytest.param("planner", marks=pytest.mark.slow)])
def test_alfworlds_expert_wins_the_game(expert):
    (chat,) = expert_episodes([{"game": GAME}], expert=expert, data_dir=str(DATA))
    commands = [m["content"] for m in chat if m["role"] == "assistant"]
    assert chat[0]["content"].startswith("Goal: put a apple in fridge.\n")
    assert [m["role"] for m in chat] == ["user", "assistant"] * len(commands)
    # Whatever the route (the hand-coded expert searches the fridge first), it ends with the
    # apple moved into the opened fridge, the step that won (expert_episodes checks `won`).
    assert commands[-1] == "move apple 1 to fridge 1" and "open fridge 1" in commands
    if expert == "handcoded":  # the trajectory alfworld-generate records as the walkthrough
        assert commands == json.loads((DATA / GAME).read_text())["walkthrough"]
    else:  # Fast Downward's plan is the shortest
        assert commands == WALKTHROUGH


def test_bad_input_names_the_key_or_file(tmp_path):
    before = _copies()
    env = _env()
    with pytest.raises(InputError, match="game: the task row has no 'game'"):
        env.reset({"gamefile": GAME})
    with pytest.raises(InputError, match=r"nowhere/game.tw-pddl: game: no such game file"):
        env.reset({"game": "nowhere/game.tw-pddl"})
    with pytest.raises(InputError, match=r"game.z8: game: not an ALFWorld game file"):
        env.reset({"game": "game.z8"})
    with pytest.raises(InputError, match=r"expert: must be one of"):
        AlfWorldEnv(expert="oracle")
    with pytest.raises(InputError, match=r"max_steps: must be a positive integer"):
        AlfWorldEnv(max_steps=0)
    with pytest.raises(InputError, match=r"domain: no such file"):
        AlfWorldEnv(domain=str(tmp_path / "alfred.pddl"))
    trial = _trial(tmp_path, "t", "trial_y", "pick_and_place_simple", {"solvable": True})
    with pytest.raises(InputError, match=r"trial_y/game.tw-pddl: pddl_problem: no PDDL problem"):
        env.reset({"game": str(trial / "game.tw-pddl")})
    game = json.loads((DATA / GAME).read_text())
    (trial / "game.tw-pddl").write_text(json.dumps(game))
    (trial / "traj_data.json").write_text(json.dumps({"task_type": "pick_and_place_simple"}))
    with pytest.raises(InputError, match=r"trial_y/traj_data.json: pddl_params: the trial has"):
        env.reset({"game": str(trial / "game.tw-pddl")})
    game["grammar"] = "a game's own grammar: no goal from the trial is needed"
    (trial / "game.tw-pddl").write_text(json.dumps(game))
    with pytest.raises(InputError, match=r"trial_y/traj_data.json: pddl_params"):  # the expert's
        _env(expert="handcoded").reset({"game": str(trial / "game.tw-pddl")})
    assert _copies() == before  # refused before any TextWorld game was started or loaded
