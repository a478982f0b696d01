"""Household games on TextWorld: pools split by vocabulary and cached, the `textworld`
environment played against TextWorld's own answers, and expert episodes from walkthroughs.

Compiling a game costs about 1.5 s (Inform 7), so the file builds one pool of three games
for the whole session and one more single-game pool to see a changed setting rebuild.
"""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("textworld")

from numpy.random import RandomState  # noqa: E402

from posttrain.envs import env_factory  # noqa: E402
from posttrain.envs.household_env import HouseholdEnv, clean_text, expert_episodes  # noqa: E402
from posttrain.envs.household_games import (  # noqa: E402
    TASK_TYPES,
    PoolSettings,
    _make_game,
    build_pool,
    load_pool,
)
from posttrain.envs.household_vocab import HELD_OUT, SHARED_WORDS, TRAIN  # noqa: E402
from posttrain.errors import InputError  # noqa: E402

# Two training games (a locked container; two objects) and one held-out game.
SETTINGS = PoolSettings(
    seed=7, train_games=2, heldout_games=1, task_types=("unlock_then_take", "two_object")
)


@pytest.fixture(scope="session")
def pool_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("household-cache")


@pytest.fixture(scope="session")
def pool(pool_dir):
    return build_pool(SETTINGS, pool_dir)


def _play(game, commands, **kwargs):
    env = env_factory("textworld", **kwargs)()  # through the registry, as rollout builds it
    first = env.reset(game.task())
    return env, first, [env.step(command) for command in commands]


def test_vocabularies_share_no_name_and_no_word_but_key():
    assert not set(TRAIN.names()) & set(HELD_OUT.names())
    assert TRAIN.words() & HELD_OUT.words() == set(SHARED_WORDS)


def test_pool_splits_share_no_names_or_layouts(pool):
    train, heldout = pool.split("train"), pool.split("heldout")
    assert (len(train), len(heldout)) == (2, 1)
    types = [g.task_type for g in pool.games]
    assert types == ["unlock_then_take", "two_object", "unlock_then_take"]
    train_names = {n for g in train for n in g.names}
    heldout_names = {n for g in heldout for n in g.names}
    assert train_names <= set(TRAIN.names()) and heldout_names <= set(HELD_OUT.names())
    assert not train_names & heldout_names
    assert not {g.layout for g in train} & {g.layout for g in heldout}
    for game in pool.games:
        assert 2 <= len(game.rooms) <= 3 and Path(game.path).is_file()
        assert game.max_score == (2 if game.task_type == "two_object" else 1)


def test_a_second_build_loads_the_cache(pool, pool_dir):
    files = {p: p.stat().st_mtime_ns for p in pool.root.iterdir()}
    start = time.perf_counter()
    again = build_pool(SETTINGS, pool_dir)
    assert time.perf_counter() - start < 0.5
    assert again.root == pool.root and again.games == pool.games
    assert {p: p.stat().st_mtime_ns for p in again.root.iterdir()} == files
    assert load_pool(pool.root).games == pool.games


def test_a_changed_setting_builds_a_new_pool(pool, pool_dir):
    changed = PoolSettings(seed=8, train_games=1, heldout_games=0, task_types=("find_then_place",))
    other = build_pool(changed, pool_dir)
    assert other.root != pool.root and other.root.parent == pool.root.parent
    assert other.settings == changed and [g.task_type for g in other.games] == ["find_then_place"]
    (game,) = other.games
    # A find-then-place walkthrough opens the container that hides the object.
    assert any(c.startswith("open ") for c in game.walkthrough)
    _, _, steps = _play(game, game.walkthrough)
    assert steps[-1][3]["won"] and sum(s[1] for s in steps) == pytest.approx(1.0)


def test_generation_is_seeded():
    for task_type in TASK_TYPES:
        games = [_make_game(SETTINGS, TRAIN, task_type, RandomState([3, 1])) for _ in range(2)]
        assert games[0][1] == games[1][1]
        assert games[0][0].serialize() == games[1][0].serialize()
    different = _make_game(SETTINGS, TRAIN, "two_object", RandomState([4, 1]))
    assert different[1] != games[1][1]


def test_walkthrough_wins_with_reward_one(pool):
    for game in pool.games:
        env, first, steps = _play(game, game.walkthrough)
        assert first.startswith(f"Goal: {game.goal}\n") and env.walkthrough == list(
            game.walkthrough
        )
        rewards = [reward for _, reward, _, _ in steps]
        dones = [done for _, _, done, _ in steps]
        assert dones == [False] * (len(steps) - 1) + [True]
        assert steps[-1][3]["won"] and steps[-1][3]["steps"] == len(game.walkthrough)
        assert sum(rewards) == pytest.approx(1.0)
        # Each quest pays 1 / max_score when its object lands: two objects, two halves.
        assert sorted(r for r in rewards if r) == [1.0 / game.max_score] * game.max_score
        with pytest.raises(RuntimeError, match="reset"):
            env.step("look")


@pytest.mark.parametrize(
    ("raw", "clean"),
    [  # replies as the interpreter sends them, status bar included
        ("\nYou take the mug.\n\n\n>" + " " * 60 + "-= Kitchen =-1/4", "You take the mug."),
        (
            "\nAre you sure you want to quit?" + " " * 60 + "-= Attic =-0/1",
            "Are you sure you want to quit?",
        ),
        ("\nPlease answer yes or no.>" + " " * 60 + "-= Attic =-0/1", "Please answer yes or no."),
        (
            "\n\n-= Attic =-\nAn attic.\n\n  A sofa.  \n\n>" + " " * 9 + "-= Attic =-0/2",
            "-= Attic =-\nAn attic.\nA sofa.",
        ),
        ("\n\n>" + " " * 60 + "-= Attic =-0/1", ""),
    ],
)
def test_clean_text_drops_the_status_bar_prompt_and_blank_lines(raw, clean):
    assert clean_text(raw) == clean


def test_an_inadmissible_action_gets_the_games_own_answer(pool):
    import textworld

    game = pool.split("heldout")[0]
    env, _, steps = _play(game, ["dance wildly", "take   the moon\nnow"])
    reference = textworld.start(game.path, textworld.EnvInfos(admissible_commands=True))
    reference.reset()
    for (observation, reward, done, info), command in zip(
        steps, ["dance wildly", "take the moon now"], strict=True
    ):
        # The game's own reply, up to the interpreter's prompt line ("\n>" + status bar).
        raw = reference.step(command)[0].feedback
        answer = " ".join(raw[: raw.rindex("\n>")].split())
        text = observation.split("\nActions: ")[0]
        assert " ".join(text.split()) == answer and answer and text == clean_text(raw)
        assert (reward, done, info["admissible"], info["won"]) == (0.0, False, False, False)
    reference.close()
    env.close()


def test_file_commands_never_reach_the_game(pool, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where the interpreter writes transcripts and saves
    game = pool.split("train")[0]
    env, _, steps = _play(game, ["script", "save", "SAVE game", "look"])
    for observation, reward, done, info in steps[:3]:
        assert observation.startswith("That command is not available here.\nActions: ")
        assert (reward, done, info["admissible"]) == (0.0, False, False) and info["refused"]
    assert "refused" not in steps[3][3] and steps[3][3]["admissible"]  # the game still plays
    assert list(tmp_path.iterdir()) == []
    env.close()


def test_the_step_cap_ends_the_episode(pool):
    game = pool.split("train")[0]
    env, _, steps = _play(game, ["look", "inventory"], max_steps=2)
    assert [s[2] for s in steps] == [False, True]
    assert steps[-1][3]["truncated"] and not steps[-1][3]["won"] and steps[-1][3]["admissible"]
    assert env._game is None  # the game process is closed at the episode's end


def test_long_text_is_cut_by_the_rule_and_counted(pool):
    game = pool.split("train")[1]
    full_env, full, (full_step,) = _play(game, game.walkthrough[:1])
    env, short, (short_step,) = _play(
        game, game.walkthrough[:1], max_text_chars=20, omit_verbs=("examine", "look")
    )
    lines = full.split("\n")
    goal, text, actions = lines[0], "\n".join(lines[1:-1]), lines[-1]
    # The goal line stays whole, the game's text keeps its first 20 characters.
    assert short.rsplit("\n", 1)[0] == f"{goal}\n{text[:20]} [...]"
    assert env.reset_chars_cut == len(text) - 20 > 0 and full_env.reset_chars_cut == 0
    listed = actions.removeprefix("Actions: ").split(" | ")
    kept = [c for c in listed if c.split()[0] not in ("examine", "look")]
    assert short.split("\n")[-1] == "Actions: " + " | ".join(kept) and len(kept) < len(listed)
    reply = full_step[0].split("\nActions: ")[0]
    assert short_step[0].split("\nActions: ")[0] == reply[:20] + (
        " [...]" if len(reply) > 20 else ""
    )
    assert short_step[3]["chars_cut"] == max(0, len(reply) - 20)
    assert short_step[3]["reset_chars_cut"] == env.reset_chars_cut
    assert full_step[3]["chars_cut"] == 0
    env.close()
    full_env.close()


def test_expert_episodes_render_exactly_as_the_env(pool):
    episodes = expert_episodes(pool.games, max_text_chars=200)
    assert len(episodes) == len(pool.games)
    for game, messages in zip(pool.games, episodes, strict=True):
        env, first, steps = _play(game, game.walkthrough, max_text_chars=200)
        expected = [{"role": "user", "content": first}]
        for command, (observation, _, done, _) in zip(game.walkthrough, steps, strict=True):
            expected.append({"role": "assistant", "content": command})
            if not done:
                expected.append({"role": "user", "content": observation})
        assert messages == expected


def test_envs_on_threads_play_their_own_games(pool):
    def play(game):
        return _play(game, game.walkthrough)[2][-1][3]["won"]

    with ThreadPoolExecutor(3) as threads:
        assert list(threads.map(play, pool.games)) == [True] * 3


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"min_rooms": 0}, "household.min_rooms"),
        ({"max_rooms": 9}, "household.max_rooms"),
        ({"min_rooms": 3, "max_rooms": 2}, "household.max_rooms"),
        ({"task_types": ("cook_then_place",)}, "household.task_types"),
        ({"distractors": 99}, "household.distractors"),
        ({"train_games": 0}, "household.train_games"),
        ({"rooms": 3}, "household.rooms"),
    ],
)
def test_bad_settings_name_the_setting(values, key):
    with pytest.raises(InputError) as error:
        PoolSettings.from_dict(values)
    assert error.value.key == key and key in str(error.value)


def test_bad_env_input_is_named(tmp_path):
    with pytest.raises(InputError, match="max_steps"):
        HouseholdEnv(max_steps=0)
    with pytest.raises(InputError, match="no such game file"):
        HouseholdEnv().reset({"game": str(tmp_path / "missing.z8")})
    with pytest.raises(InputError, match="'game'"):
        HouseholdEnv().reset({"split": "train"})
    with pytest.raises(InputError, match="not a household game pool"):
        load_pool(tmp_path)


def test_posttrain_imports_without_textworld_and_the_factory_says_how_to_install():
    # A fresh interpreter where `import textworld` fails, as where the extra is not installed.
    code = (
        "import sys; sys.modules['textworld'] = None\n"
        "from posttrain.envs import env_factory\n"
        "try:\n    env_factory('textworld')()\n"
        "except ImportError as error:\n    print(error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "pip install 'posttrain[textworld]'" in result.stdout


def test_a_game_id_resolves_under_games_dir(pool):
    game = pool.split("heldout")[0]
    env = HouseholdEnv(games_dir=str(pool.root))
    assert env.reset({"game": game.game_id}) == HouseholdEnv().reset(game.task())
    env.close()


def test_control_characters_reach_the_game_as_spaces(pool):
    # A tiny policy wrote "\x0f" into a command once and the interpreter (libfrotz) crashed
    # the whole process; the env sends control characters as spaces.
    game = pool.split("train")[0]
    env, _, steps = _play(game, ["\x0flook\x00", "lo\x07ok"])
    clean = _play(game, ["look", "lo ok"])[2]
    for (observation, *_), (expected, *_) in zip(steps, clean, strict=True):
        assert observation == expected
    env.close()
