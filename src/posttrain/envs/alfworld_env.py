"""`alfworld`: ALFWorld's own text games (Shridhar et al., 2021), played as ALFWorld plays them.

ALFWorld's games are PDDL problems from ALFRED's scenes, which users download with the
`alfworld` package's `alfworld-download` (the `json_2.1.1/<split>/<task>/<trial>/` folders, each
with `traj_data.json` and `game.tw-pddl`). This module reads such a directory and plays its games
through the installed package, never a copy of it: TextWorld's PDDL backend
(`textworld.start` on a `.tw-pddl` file) wrapped in ALFWorld's `AlfredDemangler` (object ids
such as `Apple_bar__plus_00_dot_25...` become `apple 1`) and `AlfredInfos`, as
`alfworld/agents/environment/alfred_tw_env.py` registers them, and ALFWorld's `AlfredExpert`
(its hand-coded expert or the Fast Downward planner) where an expert is asked for.

A task row is `{"game": PATH}` to a `game.tw-pddl` (relative paths are taken under the
environment's `data_dir`); `alfworld_tasks` lists the rows of a split with ALFWorld's own skip
rules. The game logic is ALFWorld's: the PDDL domain and text grammar a `game.tw-pddl` carries
(`alfworld-generate` writes them in), else the package's `alfred.pddl` / `alfred.twl2`, or the
files the environment's `domain` / `grammar` name (these override a game's own). A grammar not
taken from the game has ALFWorld's goal placeholder filled from the trial's `traj_data.json`
with the first of ALFWorld's goal templates for the task type (`_templated_goal`).

Observations have the `textworld` environment's shape (`household_env`):

    Goal: put a apple in fridge.                (first turn only: ALFWorld's "Your task is to")
    You are in the middle of a room. ...        (the game's text, cut by household_env's rule)
    Actions: go to cabinet 1 | ... | look       (the admissible commands)

The first observation drops ALFWorld's banner line (`-= Welcome to TextWorld, ALFRED! =-`) and
its "Your task is to: ..." line, which becomes the goal line. The game's text is cut to
`max_text_chars` characters by `household_env.cut` (`info["chars_cut"]`; the first step's info
also carries `reset_chars_cut`); the goal and action lines are never cut. Commands whose first
word is in `omit_verbs` are left out of the list (ALFWorld offers `examine`, `inventory`, `look`
and `help` everywhere), though the game still answers them.

An action is sent as the policy wrote it, whitespace collapsed; a command outside the
admissible ones is answered by ALFWorld's game itself ("Nothing happens.") with
`info["admissible"]` False. Unlike the Z-machine games of `household_env` nothing is refused:
TextWorld's PDDL backend only looks a command up among the state's actions, so no command can
reach a file. Reward is 1.0 on the step that wins (ALFWorld's success: the PDDL goal holds) and
0 otherwise; ALFWorld games cannot be lost, so an episode ends on a win or after `max_steps`
actions (`info["truncated"]`; ALFWorld's own evaluations cap episodes at 50).

Started games are reused by the next episodes of the process (`_IdleGames`): each holds its
own copy of Fast Downward's library, which is never unloaded, and starting one parses the
domain and grammar. Starting, resetting and stepping games are serialised (household_env's
lock): TextWorld's PDDL backend derives every reply with one shared (tatsu) grammar parser.

Importing the `alfworld` package (when an environment is built or tasks are listed) creates
`~/.cache/alfworld` and sets `ALFWORLD_DATA` unless it is set: the package does so itself.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
from pathlib import Path
from typing import Any

from posttrain.envs.expert_chat import play_expert
from posttrain.envs.household_env import (
    TEXTWORLD_PARSER_LOCK,
    actions_line,
    check_episode_options,
    clean_text,
    cut,
)
from posttrain.envs.registry import register_env
from posttrain.errors import InputError

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'posttrain[alfworld]'"
GAME_FILE = "game.tw-pddl"
TRAJ_FILE = "traj_data.json"
EXPERTS = ("handcoded", "planner")
"""ALFWorld's `AlfredExpertType` values."""
_BANNER = re.compile(r"^-= .* =-$")
_GOAL = re.compile(r"^Your task is to: (.*)$")
_GOAL_PLACEHOLDER = "UNKNOWN GOAL"
"""The goal text `alfred.twl2` carries until a task is put into it (`add_task_to_grammar`)."""


def require_alfworld() -> Any:
    """ALFWorld's TextWorld environment module, or an ImportError that says how to install it."""
    try:
        import textworld  # noqa: F401
        from alfworld.agents.environment import alfred_tw_env
    except ImportError as error:
        raise ImportError(
            f"the ALFWorld environment needs the `alfworld` package: {INSTALL_HINT}"
        ) from error
    return alfred_tw_env


def _read_json(path: Path, what: str) -> dict[str, Any]:
    """A JSON object from `path`, or an InputError naming the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InputError(f"cannot read the {what}: {error.strerror}", path) from error
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        line = getattr(error, "lineno", None)
        raise InputError(f"the {what} is not JSON: {error}", path, line=line) from error
    if not isinstance(data, dict):
        raise InputError(f"the {what} is not a JSON object", path)
    return data


def _task_type_names(task_types: Any, known: dict[int, str]) -> set[str]:
    """Task types given as ALFWorld's ids (1..6, as in its configs) or names -> names."""
    if task_types is None:
        return set(known.values())
    if isinstance(task_types, (str, int)):
        task_types = [task_types]
    names = set()
    for item in task_types:
        name = known.get(item) if isinstance(item, int) else item
        if name not in known.values():
            raise InputError(
                f"unknown ALFWorld task type {item!r} (ids {sorted(known)} or names "
                f"{sorted(known.values())})",
                key="task_types",
            )
        names.add(name)
    return names


def alfworld_tasks(
    data_dir: str | Path,
    split: str,
    task_types: list[int | str] | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Task rows for the games of `split` (`train`, `valid_seen`: in distribution,
    `valid_unseen`: out of distribution) under a user's ALFWorld data: `data_dir` is the
    `json_2.1.1` folder or the folder holding it (`$ALFWORLD_DATA`).

    ALFWorld's own rules (`AlfredTWEnv.collect_game_files`) pick the games: trials whose path
    names `movable` or `Sliced` are skipped (the path below the split: ALFWorld looks at the
    whole path, so a data folder named so would lose every game), then trials of other task types,
    then trials without a game file, then games without a `solvable` key or not solvable. The
    trials are taken in path order and the first `limit` kept. Each row is `{"game": path of
    the game file relative to data_dir, "task_type", "trial", "split"}`. A directory with no
    playable game, an unreadable `traj_data.json` or game file, or a trial without a
    `task_type` is an InputError naming it.
    """
    known = require_alfworld().TASK_TYPES
    wanted = _task_type_names(task_types, known)
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise InputError(f"must be a positive integer (got {limit!r})", key="limit")
    data_dir = Path(data_dir)
    root = data_dir / split
    if not root.is_dir() and (data_dir / "json_2.1.1" / split).is_dir():
        root = data_dir / "json_2.1.1" / split
    if not root.is_dir():
        raise InputError(
            f"no split {split!r} here (expected {split}/ or json_2.1.1/{split}/; "
            "ALFWorld's data comes from `alfworld-download`)",
            data_dir,
        )
    rows: list[dict[str, Any]] = []
    skipped = {"movable or sliced": 0, "task type": 0, "no game file": 0, "not solvable": 0}
    for traj_path in sorted(root.rglob(TRAJ_FILE)):
        trial_dir = traj_path.parent
        below = trial_dir.relative_to(root).as_posix()
        if "movable" in below or "Sliced" in below:
            skipped["movable or sliced"] += 1
            continue
        traj = _read_json(traj_path, "ALFWorld trial")
        if "task_type" not in traj:
            raise InputError("the trial has no task type", traj_path, key="task_type")
        if traj["task_type"] not in wanted:
            skipped["task type"] += 1
            continue
        game_path = trial_dir / GAME_FILE
        if not game_path.is_file():
            skipped["no game file"] += 1
            continue
        if not _read_json(game_path, "ALFWorld game file").get("solvable"):
            skipped["not solvable"] += 1
            continue
        rows.append(
            {
                "game": game_path.relative_to(data_dir).as_posix(),
                "task_type": traj["task_type"],
                "trial": trial_dir.name,
                "split": split,
            }
        )
        if limit is not None and len(rows) >= limit:
            break
    if not rows:
        counts = ", ".join(f"{n} {why}" for why, n in skipped.items() if n)
        raise InputError(
            f"no playable ALFWorld game (a {TRAJ_FILE} beside a solvable {GAME_FILE}) of task "
            f"types {sorted(wanted)}; skipped: {counts or 'none found'}",
            root,
        )
    return rows


def _templated_goal(traj: dict[str, Any], path: Path) -> str:
    """The goal ALFWorld's templates give a trial (`alfworld.gen.goal_library`).

    ALFWorld's `add_task_to_grammar` draws one of the task type's templates from Python's
    global random generator, so the same game could read differently from one episode (or
    worker) to the next, which breaks step grouping by identical states; the first template is
    taken here instead, filled the same way."""
    from alfworld.gen import goal_library

    params = traj.get("pddl_params")
    if not isinstance(params, dict):
        raise InputError("the trial has no pddl_params object", path, key="pddl_params")
    key = traj["task_type"] + ("_slice" if params.get("object_sliced") else "")
    if key not in goal_library.gdict:
        raise InputError(f"no ALFWorld goal template for {key!r}", path, key="task_type")
    fields = {}
    for field, name in (
        ("object_target", "obj"),
        ("parent_target", "recep"),
        ("toggle_target", "toggle"),
        ("mrecep_target", "mrecep"),
    ):
        if not isinstance(params.get(field), str):
            raise InputError("missing or not a string", path, key=f"pddl_params.{field}")
        fields[name] = params[field].lower()
    return goal_library.gdict[key]["templates"][0].format(**fields)


def _game_data(game_path: Path, domain: Path | None, grammar: Path | None) -> dict[str, Any]:
    """The game file's data with ALFWorld's logic filled in (see the module docstring), for
    TextWorld's PDDL backend; InputErrors name the game file or trial at fault."""
    from alfworld.info import ALFRED_PDDL_PATH, ALFRED_TWL2_PATH

    data = _read_json(game_path, "ALFWorld game file")
    if not isinstance(data.get("pddl_problem"), str):
        raise InputError("no PDDL problem (a string)", game_path, key="pddl_problem")
    if domain is not None or not isinstance(data.get("pddl_domain"), str):
        data["pddl_domain"] = (domain or Path(ALFRED_PDDL_PATH)).read_text(encoding="utf-8")
    if grammar is not None or not isinstance(data.get("grammar"), str):
        text = (grammar or Path(ALFRED_TWL2_PATH)).read_text(encoding="utf-8")
        data["grammar"] = text.replace(_GOAL_PLACEHOLDER, _trial_goal(game_path))
    return data


def _trial_goal(game_path: Path) -> str:
    """The templated goal of the trial beside `game_path`, checking the `traj_data.json` keys
    ALFWorld reads (`task_type`, `pddl_params`: its goal templates and hand-coded expert)."""
    traj_path = game_path.parent / TRAJ_FILE
    traj = _read_json(traj_path, "ALFWorld trial")
    if "task_type" not in traj:
        raise InputError("the trial has no task type", traj_path, key="task_type")
    return _templated_goal(traj, traj_path)


@functools.cache
def _logic_wrapper() -> type:
    """A TextWorld wrapper that hands the PDDL backend a game's data with ALFWorld's logic
    filled in (see the module docstring), keeping the file's path for the wrappers above it
    (ALFWorld's expert reads `traj_data.json` beside the game file). Built on first use, as
    TextWorld is imported lazily."""
    import textworld

    class AlfredLogic(textworld.core.Wrapper):
        def __init__(self, *, domain: Path | None, grammar: Path | None) -> None:
            super().__init__()
            self.domain, self.grammar = domain, grammar

        def load(self, path: str) -> None:
            self._wrapped_env.load(_game_data(Path(path), self.domain, self.grammar))

    return AlfredLogic


def _logic_file(path: str | None, key: str) -> Path | None:
    if path is None:
        return None
    if not Path(path).is_file():
        raise InputError("no such file", path, key=key)
    return Path(path)


class _IdleGames:
    """Started games no episode is playing, kept for the next episodes of this process.

    Every TextWorld PDDL game loads its own copy of Fast Downward's library (33 MB, never
    unloaded), so starting a game per episode grows memory by ~1 MB an episode; and starting one
    parses ALFWorld's domain and grammar (~0.5 s). A game is therefore reused: for the same
    game file by TextWorld's own `reset` (a fresh state from the PDDL problem, as ALFWorld's gym
    environments reset a loaded game), for another file by `load` on it. Memory then grows with
    the number of episodes played at once, not in total. Games are keyed by the settings their
    wrappers were built with (domain, grammar, expert); a game reused for the same file does
    not read it again. The lock is reentrant because `put` also runs from `__del__`, which the
    garbage collector may call on a thread that is inside `take`."""

    def __init__(self, limit: int = 64) -> None:
        self.limit = limit
        self._games: dict[tuple[Any, ...], list[tuple[str, Any]]] = {}
        self._lock = threading.RLock()

    def take(self, key: tuple[Any, ...], path: str) -> Any:
        """An idle game of `key` loaded with `path` (loaded now if it held another), or None.
        The caller holds `TEXTWORLD_PARSER_LOCK` (loading parses)."""
        with self._lock:
            games = self._games.get(key) or []
            same = [i for i, (loaded, _) in enumerate(games) if loaded == path]
            if not games:
                return None
            loaded, game = games.pop(same[0] if same else -1)
        if loaded != path:
            try:
                game.load(path)
            except BaseException:
                game.close()  # half-loaded: never reused
                raise
        return game

    def put(self, key: tuple[Any, ...], path: str, game: Any) -> None:
        with self._lock:
            games = self._games.setdefault(key, [])
            if len(games) < self.limit:
                games.append((path, game))
                return
        game.close()


_IDLE = _IdleGames()


@register_env("alfworld")
class AlfWorldEnv:
    """One ALFWorld game per episode; see the module docstring."""

    def __init__(
        self,
        max_steps: int = 50,
        max_text_chars: int = 600,
        omit_verbs: tuple[str, ...] | list[str] = (),
        data_dir: str | None = None,
        domain: str | None = None,
        grammar: str | None = None,
        expert: str | None = None,
    ) -> None:
        self._alfred = require_alfworld()
        check_episode_options(max_steps, max_text_chars)
        if expert is not None and expert not in EXPERTS:
            raise InputError(f"must be one of {EXPERTS} or null (got {expert!r})", key="expert")
        self.max_steps = max_steps
        self.max_text_chars = max_text_chars
        self.omit_verbs = frozenset(omit_verbs)
        self.data_dir = Path(data_dir) if data_dir else None
        self.domain = _logic_file(domain, "domain")
        self.grammar = _logic_file(grammar, "grammar")
        self.expert = expert
        self._pool_key = (self.domain, self.grammar, expert)
        self._game: Any = None
        self._game_path = ""
        self._admissible: list[str] = []
        self.expert_plan: list[str] = []
        """ALFWorld's expert's next command(s) for the current state, with `expert` set."""
        self.goal = ""
        self.steps = 0
        self.done = True
        self.reset_chars_cut = 0

    def _path(self, task: dict[str, Any]) -> Path:
        if "game" not in task:
            raise InputError(f"the task row has no 'game' (keys: {sorted(task)})", key="game")
        path = Path(str(task["game"]))
        if not path.is_absolute() and self.data_dir is not None:
            path = self.data_dir / path
        if path.suffix != ".tw-pddl":
            raise InputError(f"not an ALFWorld game file ({GAME_FILE})", path, key="game")
        if not path.is_file():
            where = "" if self.data_dir else " (relative paths need the env's data_dir)"
            raise InputError(f"no such game file{where}", path, key="game")
        return path

    def reset(self, task: dict[str, Any]) -> str:
        path = self._path(task)
        self.close()
        # Checked before any TextWorld game is touched: a bad file neither spoils an idle game
        # nor starts one (each start maps another copy of Fast Downward's library).
        _game_data(path, self.domain, self.grammar)
        if self.expert == "handcoded":  # it reads the trial's traj_data.json itself
            _trial_goal(path)
        # TextWorld parses the domain and grammar with shared (tatsu) parsers.
        with TEXTWORLD_PARSER_LOCK:
            self._game_path = str(path.resolve())
            self._game = _IDLE.take(self._pool_key, self._game_path)
            if self._game is None:
                self._game = self._start(path)
            state = self._game.reset()
        lines = clean_text(state.feedback).splitlines()
        goals = [m.group(1) for m in map(_GOAL.match, lines) if m]
        self.goal = goals[0] if goals else ""
        text = "\n".join(line for line in lines if not (_GOAL.match(line) or _BANNER.match(line)))
        self.steps, self.done = 0, False
        self._observe(state)
        text, self.reset_chars_cut = cut(text, self.max_text_chars)
        if self.reset_chars_cut:
            log.debug("first observation of %s: %d characters cut", path, self.reset_chars_cut)
        goal_line = f"Goal: {self.goal}\n" if self.goal else ""
        return f"{goal_line}{text}\n{self._actions_line()}"

    def _start(self, path: Path) -> Any:
        """A new TextWorld game for `path` with ALFWorld's wrappers (its `init_env`'s)."""
        import textworld

        infos = textworld.EnvInfos(won=True, admissible_commands=True, extras=["gamefile"])
        wrappers = [
            _logic_wrapper()(domain=self.domain, grammar=self.grammar),
            self._alfred.AlfredDemangler(shuffle=False),
            self._alfred.AlfredInfos,
        ]
        if self.expert is not None:
            infos.extras.append("expert_plan")
            wrappers.append(self._alfred.AlfredExpert(expert_type=self.expert))
        return textworld.start(str(path), infos, wrappers)

    def _observe(self, state: Any) -> None:
        self._admissible = list(state["admissible_commands"] or [])
        if self.expert is not None:
            self.expert_plan = list(state["extra.expert_plan"] or [])

    def _actions_line(self) -> str:
        return actions_line(self._admissible, self.omit_verbs)

    def step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        if self.done or self._game is None:
            raise RuntimeError("the episode is over (or never started); call reset first")
        command = " ".join(action.split())
        admissible = command in self._admissible
        with TEXTWORLD_PARSER_LOCK:  # the step's reply comes from the same shared parser
            state, _, _ = self._game.step(command)
        self.steps += 1
        won = bool(state["won"])
        truncated = not won and self.steps >= self.max_steps
        self.done = won or truncated
        self._observe(state)
        text, chars_cut = cut(clean_text(state.feedback), self.max_text_chars)
        info = {
            "won": won,
            "truncated": truncated,
            "admissible": admissible,
            "steps": self.steps,
            "chars_cut": chars_cut,
        }
        if self.steps == 1:  # rollout keeps step infos only: the first observation's cut too
            info["reset_chars_cut"] = self.reset_chars_cut
        if self.done:
            self.close()
        return f"{text}\n{self._actions_line()}", 1.0 if won else 0.0, self.done, info

    def close(self) -> None:
        """End the episode; its game goes back to the process's idle games (`_IdleGames`)."""
        if self._game is not None:
            game, self._game = self._game, None
            _IDLE.put(self._pool_key, self._game_path, game)
        self.done = True

    def __del__(self) -> None:
        # Rollout drops environments whose episode ran out of turns without closing them.
        if getattr(self, "_game", None) is not None:
            self.close()


def expert_episodes(
    tasks: list[dict[str, Any]], expert: str = "handcoded", **env_kwargs: Any
) -> list[list[dict[str, str]]]:
    """One chat per task: the environment's observations as `user` turns and ALFWorld's expert
    commands (`expert`: its hand-coded expert, the one `alfworld-generate` and its DAgger
    training use, or `planner`, Fast Downward's plan) as `assistant` turns, played through
    `AlfWorldEnv(expert=expert, **env_kwargs)` so behaviour cloning sees exactly what
    reinforcement learning will (no observation after the last action). An expert that does
    not win within `max_steps` is a RuntimeError naming the game."""
    episodes = []
    for task in tasks:
        env = AlfWorldEnv(expert=expert, **env_kwargs)
        try:
            messages, won = play_expert(env, task, _expert_step)
        finally:
            env.close()
        if not won:
            raise RuntimeError(
                f"ALFWorld's {expert} expert does not win {task['game']} within "
                f"{env.max_steps} steps"
            )
        episodes.append(messages)
    return episodes


def _expert_step(env: AlfWorldEnv, step: int) -> str | None:
    """ALFWorld's expert's next command in the current state (None when it has none)."""
    return env.expert_plan[0] if env.expert_plan else None
