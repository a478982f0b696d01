"""`textworld`: one household game (`household_games`) played through TextWorld.

A task row names the game to play: `{"game": PATH_TO_Z8, ...}` (the rows of
`GamePool.tasks(split)`), or a game id such as `train-0003` with the pool's directory as the
environment's `games_dir` (relative paths are taken under it). The game runs in TextWorld's
Z-machine interpreter (Jericho, which loads its own copy of the interpreter library per game,
so environments on different threads share no state). Each environment instance runs at most
one game, closed on the next reset, at the episode's end and on `close()`. The environment's
`max_steps` should not exceed the rollout's `max_turns`, or rollout cuts episodes first.

Observations, in the compact form a tiny policy with a short context reads:

    Goal: Put the apple in the fridge.          (first turn only)
    -= Kitchen =-                               (the game's text: on the first turn the
    You are in a kitchen. ...                    room description, afterwards its reply)
    Actions: examine fridge | go east | ...     (the admissible commands)

The game's text has its blank lines and the interpreter's closing prompt and status bar removed.
Truncation rule: the game's text is cut to its first `max_text_chars` characters and " [...]"
appended when longer; the goal line and the action list are never cut (the goal says what to
do, the list what can be done). `info["chars_cut"]` says how many characters were dropped
from the step's observation; the first step's info also carries `reset_chars_cut`, the count
for the first observation (also the attribute of that name). Commands whose first word is in
`omit_verbs` are left out of the list, though the game still answers them.

An action is sent to the game as the policy wrote it, control characters made spaces and
whitespace collapsed to single spaces (the interpreter reads one line); whether it was
admissible is `info["admissible"]`, and the reply to any other command is the game's own
("That's not a verb I recognise."). Reward is the score gained by the step over the game's
maximum score, so an episode's rewards sum to its final score fraction (1.0 for a win);
`info["won"]` says whether the game was won. The episode ends on a win, a loss or after
`max_steps` actions (`info["truncated"]`).

`expert_episodes` plays each game's walkthrough through this same environment, so behaviour
cloning sees exactly the observations reinforcement learning will.
"""

from __future__ import annotations

import logging
import re
import threading
import warnings
from pathlib import Path
from typing import Any

from posttrain.envs.expert_chat import play_expert
from posttrain.envs.household_games import GameRecord, require_textworld
from posttrain.envs.registry import register_env
from posttrain.errors import InputError

log = logging.getLogger(__name__)

CUT_MARK = " [...]"
FILE_COMMANDS = frozenset({"save", "restore", "script", "unscript", "noscript", "transcript"})
"""Interpreter meta-commands that read or write files in the working directory (a policy's
`script` left a transcript beside the tests, `save` a .qzl file): answered here, never sent to
the game, so a policy's action cannot touch the file system."""
TEXTWORLD_PARSER_LOCK = threading.Lock()
"""Starting a game is serialised: TextWorld parses the game's logic with one shared (tatsu)
parser, which concurrent starts on rollout's threads corrupted (IndexError). ALFWorld's PDDL
games (`alfworld_env`) take it too."""
_STATUS = re.compile(r"\s*-= [^\n]* =-\s*-?\d+/\d+\s*\Z")
"""The status bar the interpreter appends to every reply: `-= Room =-score/moves`."""
_PROMPT = re.compile(r"\s*>\s*\Z")
"""The input prompt ending a reply (on its own line, or after a yes/no question)."""


def clean_text(text: str) -> str:
    """The game's text without the status bar and prompt at its end, blank lines or edge
    spaces."""
    text = _PROMPT.sub("", _STATUS.sub("", text))
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


def check_episode_options(max_steps: Any, max_text_chars: Any) -> None:
    """The options every text-game environment takes: positive integers, else an InputError
    naming the option."""
    for key, value in (("max_steps", max_steps), ("max_text_chars", max_text_chars)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InputError(f"must be a positive integer (got {value!r})", key=key)


def actions_line(commands: list[str], omit_verbs: frozenset[str]) -> str:
    """`Actions: a | b | ...`: the admissible commands, less those whose first word is in
    `omit_verbs`."""
    shown = [c for c in commands if c.split(" ", 1)[0] not in omit_verbs]
    return "Actions: " + " | ".join(shown)


def cut(text: str, limit: int) -> tuple[str, int]:
    """`text` cut to its first `limit` characters (the module's rule) and the count dropped."""
    if len(text) <= limit:
        return text, 0
    return text[:limit] + CUT_MARK, len(text) - limit


@register_env("textworld")
class HouseholdEnv:
    """One TextWorld household game per episode; see the module docstring."""

    def __init__(
        self,
        max_steps: int = 30,
        max_text_chars: int = 600,
        omit_verbs: tuple[str, ...] | list[str] = (),
        games_dir: str | None = None,
    ) -> None:
        self._textworld = require_textworld()
        # Jericho warns on every start that a TextWorld game is not one of its catalogued
        # games (no score or move tables); TextWorld tracks both itself, so it is noise.
        warnings.filterwarnings("ignore", r"Game .* is not fully supported", module="jericho")
        check_episode_options(max_steps, max_text_chars)
        self.max_steps = max_steps
        self.max_text_chars = max_text_chars
        self.omit_verbs = frozenset(omit_verbs)
        self.games_dir = Path(games_dir) if games_dir else None
        self._game: Any = None
        self._admissible: list[str] = []
        self.walkthrough: list[str] = []
        self.goal = ""
        self.steps = 0
        self.score = 0
        self.max_score = 1
        self.done = True
        self.reset_chars_cut = 0

    def _path(self, task: dict[str, Any]) -> Path:
        if "game" not in task:
            raise InputError(f"the task row has no 'game' (keys: {sorted(task)})", key="game")
        path = Path(str(task["game"]))
        if not path.is_absolute() and self.games_dir is not None:
            path = self.games_dir / path
        if not path.suffix:  # a game id: the pool's file of that name
            path = path.with_suffix(".z8")
        if not path.is_file():
            raise InputError("no such game file", path, key="game")
        return path

    def reset(self, task: dict[str, Any]) -> str:
        path = self._path(task)
        self.close()
        infos = self._textworld.EnvInfos(
            admissible_commands=True,
            description=True,
            objective=True,
            score=True,
            max_score=True,
            won=True,
            lost=True,
            extras=["walkthrough"],
        )
        with TEXTWORLD_PARSER_LOCK:
            self._game = self._textworld.start(str(path), infos)
            state = self._game.reset()
        self.goal = state["objective"]
        self.walkthrough = list(state["extra.walkthrough"] or [])
        self.max_score = max(1, int(state["max_score"]))
        self.score, self.steps, self.done = 0, 0, False
        self._admissible = list(state["admissible_commands"])
        text, self.reset_chars_cut = cut(clean_text(state["description"]), self.max_text_chars)
        if self.reset_chars_cut:
            log.debug("first observation of %s: %d characters cut", path, self.reset_chars_cut)
        return f"Goal: {self.goal}\n{text}\n{self._actions_line()}"

    def _actions_line(self) -> str:
        return actions_line(self._admissible, self.omit_verbs)

    def step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        if self.done or self._game is None:
            raise RuntimeError("the episode is over (or never started); call reset first")
        # Control characters become spaces: libfrotz segfaults or corrupts its heap on some
        # (a tiny policy wrote "\x0f" into a command), and no command contains one.
        command = " ".join("".join(c if c.isprintable() else " " for c in action).split())
        admissible = command in self._admissible
        if command.lower().split(" ", 1)[0] in FILE_COMMANDS:
            return self._refuse(command)
        state, score, ended = self._game.step(command)
        self.steps += 1
        reward = (score - self.score) / self.max_score
        self.score = score
        won, lost = bool(state["won"]), bool(state["lost"])
        truncated = not (won or lost or ended) and self.steps >= self.max_steps
        self.done = won or lost or ended or truncated
        self._admissible = list(state["admissible_commands"] or [])
        text, chars_cut = cut(clean_text(state.feedback), self.max_text_chars)
        info = {
            "won": won,
            "lost": lost,
            "truncated": truncated,
            "admissible": admissible,
            "score": score,
            "max_score": self.max_score,
            "steps": self.steps,
            "chars_cut": chars_cut,
        }
        if self.steps == 1:  # rollout keeps step infos only: the first observation's cut too
            info["reset_chars_cut"] = self.reset_chars_cut
        if self.done:
            self.close()
        return f"{text}\n{self._actions_line()}", reward, self.done, info

    def _refuse(self, command: str) -> tuple[str, float, bool, dict[str, Any]]:
        """A step that never reaches the interpreter: see ``FILE_COMMANDS``."""
        self.steps += 1
        truncated = self.steps >= self.max_steps
        self.done = truncated
        info = {
            "won": False,
            "lost": False,
            "truncated": truncated,
            "admissible": False,
            "refused": command,
            "score": self.score,
            "max_score": self.max_score,
            "steps": self.steps,
            "chars_cut": 0,
        }
        if self.done:
            self.close()
        return f"That command is not available here.\n{self._actions_line()}", 0.0, self.done, info

    def close(self) -> None:
        """Stop the running game, if any."""
        if self._game is not None:
            self._game.close()
            self._game = None
        self.done = True

    def __del__(self) -> None:
        # Rollout drops environments whose episode ran out of turns without closing them.
        if getattr(self, "_game", None) is not None:
            self.close()


def expert_episodes(
    games: list[GameRecord] | list[dict[str, Any]], **env_kwargs: Any
) -> list[list[dict[str, str]]]:
    """One chat per game: the environment's observations as `user` turns and the game's
    walkthrough commands as `assistant` turns, recorded by playing the walkthrough through
    `HouseholdEnv(**env_kwargs)`, as multi-turn rollout would (no observation after the last
    action). A walkthrough that does not win is a RuntimeError naming the game."""
    episodes = []
    for game in games:
        task = game.task() if isinstance(game, GameRecord) else game
        env = HouseholdEnv(**env_kwargs)
        try:
            messages, won = play_expert(env, task, _walkthrough_step)
        finally:
            env.close()
        if not won:
            raise RuntimeError(
                f"the walkthrough of {task['game']} does not win within {env.max_steps} steps"
            )
        episodes.append(messages)
    return episodes


def _walkthrough_step(env: HouseholdEnv, step: int) -> str | None:
    """The game's walkthrough command at `step` (None past its end)."""
    return env.walkthrough[step] if step < len(env.walkthrough) else None
