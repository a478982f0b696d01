"""Every command answers a malformed input with one line on stderr that names it, exit 2.

Table-driven: each input a command reads (config file, `--set`, data files, corpus, model
directory, run name) crossed with the malformed forms that input can take: a missing file,
a directory for a file, an empty file, a line that is not JSON, non-UTF-8 bytes, a text file
named .parquet, YAML that is empty, a list or broken, an unknown key, a wrong type, a
missing model directory, a directory that is not a model, a run name that leaves `runs/`.
Each case runs the real command in-process and fails on any traceback (an exception other
than the command's exit), on an exit status other than 2, or on a message that is not one
line naming the file (and line or key). All errors come before any training or serving, so
the whole table takes seconds; two cases also run as subprocesses, as a user runs them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from posttrain.cli import app

# A case that slipped past validation would start training or a server: fail it instead.
pytestmark = pytest.mark.timeout(60)


@dataclass(frozen=True)
class Case:
    id: str
    argv: Callable[[Path, Path], list]
    """(tmp_path, model_dir) -> the command line; it writes the inputs it needs."""
    names: Callable[[Path], list[str]]
    """tmp_path -> what the one-line message must contain (the file, its line or key)."""


# --------------------------------------------------------------------- malformed files

GOOD_ROW = {"prompt": "1+1=", "answer": "2"}

FILE_KINDS: dict[str, tuple[bytes | None, tuple[str, ...]]] = {
    # kind: (content; None: not created, b"/": a directory) and what the message names.
    # Line 1 is blank (every reader skips it, whatever rows it expects): the fault is line 2.
    "missing": (None, ()),
    "directory": (b"/", ()),
    "empty": (b"", ()),
    "bad-json-line": (b'\n{"prompt": oops}\n', (":2:",)),
    "not-utf8": (b'\n{"prompt": "caf\xe9"}\n', (":2:", "UTF-8")),
}
ALL_KINDS = (*FILE_KINDS, "text-as-parquet")


def bad_file(tmp: Path, kind: str, name: str = "rows.jsonl") -> Path:
    """Write the malformed input `kind` as tmp/in/`name` and return its path."""
    if kind == "text-as-parquet":
        name, kind = "rows.parquet", "text"
    path = tmp / "in" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    content = b"just some text\n" if kind == "text" else FILE_KINDS[kind][0]
    if content == b"/":
        path.mkdir(exist_ok=True)
    elif content is not None:
        path.write_bytes(content)
    return path


def good_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# A command reading a data file: (id, kinds, file name, tmp/file/model -> argv). With a file
# name other than rows.jsonl the command takes the folder the file is in.
DATA_INPUTS = [
    (
        "rl data.train",
        ALL_KINDS,
        "rows.jsonl",
        lambda t, f, m: ["rl", "--set", f"model={m}", "--set", f"data.train={f}"],
    ),
    (
        "rl data.test",
        ALL_KINDS,
        "rows.jsonl",
        lambda t, f, m: ["rl", "--set", f"model={m}", "--set", f"data.test={f}"],
    ),
    (
        "sft train_file",
        ALL_KINDS,
        "rows.jsonl",
        lambda t, f, m: [
            "sft",
            "--set",
            f"model={m}",
            "--set",
            f"train_file={f}",
            "--set",
            f"output_dir={t / 'out'}",
        ],
    ),
    (
        "warm-start train_file",
        ALL_KINDS,
        "rows.jsonl",
        lambda t, f, m: ["warm-start", "--set", f"train_file={f}"],
    ),
    (
        "warm-start test_file",
        ALL_KINDS,
        "rows.jsonl",
        lambda t, f, m: ["warm-start", "--set", f"test_file={f}"],
    ),
    (
        "tiny-model --corpus jsonl",
        tuple(FILE_KINDS),
        "rows.jsonl",
        lambda t, f, m: ["tiny-model", "--out", t / "model", "--corpus", f],
    ),
    (
        "tiny-model --corpus text",
        ("empty", "not-utf8"),
        "corpus.txt",
        lambda t, f, m: ["tiny-model", "--out", t / "model", "--corpus", f],
    ),
    (
        "rm-bench --data",
        tuple(FILE_KINDS),
        "rows.jsonl",
        lambda t, f, m: ["rm-bench", "--data", f, "--scorer", "length", "--out", t / "out"],
    ),
    (
        "longtrace baseline",
        tuple(FILE_KINDS),
        "test.jsonl",
        lambda t, f, m: ["longtrace", "baseline", f.parent],
    ),
    (
        "wildreward pipeline --input",
        ALL_KINDS,
        "rows.jsonl",
        lambda t, f, m: ["wildreward", "pipeline", "--input", f, "--out", t / "out"],
    ),
    (
        "wildreward train --data",
        tuple(FILE_KINDS),
        "train.jsonl",
        lambda t, f, m: ["wildreward", "train", "--data", f.parent, "--out", t / "out"],
    ),
    (
        "wildreward eval --data",
        tuple(FILE_KINDS),
        "test.jsonl",
        lambda t, f, m: ["wildreward", "eval", "--model", m, "--data", f.parent],
    ),
    (
        "cherrl detect --rollouts",
        ("missing", "empty", "bad-json-line", "not-utf8"),
        "rows.jsonl",
        lambda t, f, m: ["cherrl", "detect", "--rollouts", f],
    ),
    (
        "cherrl onset --rollouts",
        ("missing", "empty", "bad-json-line", "not-utf8"),
        "rows.jsonl",
        lambda t, f, m: ["cherrl", "onset", "--rollouts", f, "--shortcut", "x"],
    ),
    (
        "cherrl onset --signals",
        tuple(FILE_KINDS),
        "signals.json",
        lambda t, f, m: ["cherrl", "onset", "--signals", f, "--run", "run_A"],
    ),
    (
        "rpc answer --data",
        tuple(FILE_KINDS),
        "rows.jsonl",
        lambda t, f, m: ["rpc", "answer", "--data", f, "--out", t / "out"],
    ),
    (
        "rpc consistency --pairwise",
        tuple(FILE_KINDS),
        "rows.jsonl",
        lambda t, f, m: ["rpc", "consistency", "--pairwise", f, "--judges", t],
    ),
    (
        "rpc score answers",
        ("missing",),
        "answers.jsonl",
        lambda t, f, m: ["rpc", "score", f.parent],
    ),
    (
        "report metrics.jsonl",
        ("bad-json-line", "not-utf8"),
        "metrics.jsonl",
        lambda t, f, m: ["report", f.parent],
    ),
]


def _data_case(label: str, kind: str, name: str, argv: Callable) -> Case:
    def build(tmp: Path, model: Path) -> list:
        return argv(tmp, bad_file(tmp, kind, name), model)

    def names(tmp: Path) -> list[str]:
        path = bad_file(tmp, kind, name)
        # A folder input missing its file may name the folder or the file in it.
        shown = path.parent if kind == "missing" and name != "rows.jsonl" else path
        extra = () if kind == "text-as-parquet" else FILE_KINDS[kind][1]
        return [str(shown), *extra]

    return Case(f"{label}: {kind}", build, names)


def _metrics_bad_line(case: Case) -> Case:
    """report: a bad line that is not the last (a torn last line is a live run's, skipped)."""

    def build(tmp: Path, model: Path) -> list:
        path = tmp / "in" / "metrics.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b'{"step": 1}\n{oops\n{"step": 2}\n')
        return ["report", path.parent]

    return Case(case.id, build, lambda tmp: [f"{tmp / 'in' / 'metrics.jsonl'}:2"])


DATA_CASES = [
    _data_case(label, kind, name, argv)
    for label, kinds, name, argv in DATA_INPUTS
    for kind in kinds
]
DATA_CASES = [
    _metrics_bad_line(c) if c.id == "report metrics.jsonl: bad-json-line" else c for c in DATA_CASES
]

# ----------------------------------------------------------------------- config files

# A command taking --config and --set: (argv prefix, an int key of its config).
CONFIG_COMMANDS = {
    "warm-start": (["warm-start"], "steps"),
    "sft": (["sft"], "batch_size"),
    "rl": (["rl"], "steps"),
    "quickstart": (["quickstart"], "questions"),
    "demo": (["demo"], "vocab_size"),
    "longtrace build": (["longtrace", "build"], "n"),
    "longtrace run": (["longtrace", "run"], "vocab_size"),
    "storyreward run": (["storyreward", "run"], "best_of_n"),
    "wildreward run": (["wildreward", "run"], "users"),
    "wildreward train": (["wildreward", "train", "--data", "DATA", "--out", "OUT"], "num_levels"),
    "wildreward pipeline": (
        ["wildreward", "pipeline", "--input", "DATA/rows.jsonl", "--out", "OUT"],
        "lookahead",
    ),
    "indexcache run": (["indexcache", "run"], "repeats"),
    "rm train": (["rm", "train", "--data", "DATA/rows.jsonl", "--out", "OUT"], "batch_size"),
    "cherrl run": (["cherrl", "run"], "vocab_size"),
    "envrl run": (["envrl", "run"], "vocab_size"),
    "saerl run": (["saerl", "run"], "vocab_size"),
    "mmthe demo": (["mmthe", "demo"], "examples"),
    "saerl select": (
        ["saerl", "select", "--model", "DATA", "--data", "DATA/rows.jsonl", "--out", "OUT"],
        "limit",
    ),
}

CONFIG_KINDS: dict[str, tuple[bytes | None, Callable[[str], tuple[str, ...]]]] = {
    # kind: (config.yaml content; None: not created, b"/": a directory), key -> named parts
    "missing": (None, lambda key: ()),
    "directory": (b"/", lambda key: ()),
    "empty": (b"", lambda key: ("empty",)),
    "comments only": (b"# nothing set\n", lambda key: ("empty",)),
    "not-utf8": (b"# caf\xe9\nseed: 1\n", lambda key: ("UTF-8",)),
    "a list": (b"- steps\n- 10\n", lambda key: ("mapping",)),
    "broken YAML": (b"run_name: x\nsteps: [1, 2\n", lambda key: (":3",)),
    "unknown key": (b"no_such_key: 1\n", lambda key: ("no_such_key",)),
    "wrong type": (None, lambda key: (key,)),
}


def _real_inputs(tmp: Path, argv: list[str]) -> list:
    """Fill DATA/OUT placeholders with well-formed inputs, so only the config is at fault."""
    data = tmp / "data"
    good_jsonl(data / "rows.jsonl", [GOOD_ROW])
    good_jsonl(data / "train.jsonl", [GOOD_ROW])
    return [a.replace("DATA", str(data)).replace("OUT", str(tmp / "out")) for a in argv]


def _config_case(command: str, kind: str) -> Case:
    prefix, int_key = CONFIG_COMMANDS[command]
    content, parts = CONFIG_KINDS[kind]

    def build(tmp: Path, model: Path) -> list:
        path = tmp / "config.yaml"
        if kind == "wrong type":
            path.write_text(f"{int_key}: lots\n")
        elif content == b"/":
            path.mkdir()
        elif content is not None:
            path.write_bytes(content)
        return [*_real_inputs(tmp, prefix), "--config", path]

    return Case(
        f"{command} --config: {kind}",
        build,
        lambda tmp: [str(tmp / "config.yaml"), *parts(int_key)],
    )


def _set_case(command: str, kind: str) -> Case:
    prefix, int_key = CONFIG_COMMANDS[command]
    item, named = {
        "no =": ("steps", "'steps'"),
        "unknown key": ("no_such_key=1", "no_such_key"),
        "wrong type": (f"{int_key}=lots", int_key),
        "under a value": (f"{int_key}.x=1", int_key),
    }[kind]
    return Case(
        f"{command} --set: {kind}",
        lambda tmp, model: [*_real_inputs(tmp, prefix), "--set", item],
        lambda tmp: ["--set", named],
    )


CONFIG_CASES = [_config_case(c, k) for c in CONFIG_COMMANDS for k in CONFIG_KINDS]
SET_CASES = [
    _set_case(c, k)
    for c in CONFIG_COMMANDS
    for k in ("no =", "unknown key", "wrong type", "under a value")
]

# -------------------------------------------------------------------- model directories

MODEL_KINDS: dict[str, Callable[[Path], str]] = {
    "missing directory": lambda tmp: str(tmp / "no-such-model"),
    "missing relative name": lambda tmp: "models/no-such-model",
    "not a model": lambda tmp: str(tmp / "not-a-model"),
}


def _rm_bench_data(tmp: Path) -> Path:
    row = {"id": "1", "prompt": "p", "chosen": "a", "rejected": ["b"]}
    return good_jsonl(tmp / "data" / "bench.jsonl", [row])


def _rollouts(tmp: Path) -> Path:
    row = {"step": 1, "prompt": "p", "response": "r", "score": 1.0}
    return good_jsonl(tmp / "data" / "rollouts.jsonl", [row])


def _eval_data(tmp: Path) -> Path:
    good_jsonl(tmp / "data" / "test.jsonl", [GOOD_ROW])
    good_jsonl(tmp / "data" / "train.jsonl", [GOOD_ROW])
    return tmp / "data"


# A command reading a model directory: model -> argv (after its inputs are written).
MODEL_INPUTS: dict[str, Callable[[Path, str], list]] = {
    "rl model": lambda t, m: ["rl", "--set", f"model={m}"],
    "sft model": lambda t, m: [
        "sft",
        "--set",
        f"model={m}",
        "--set",
        f"train_file={good_jsonl(t / 'data' / 'sft.jsonl', [{'prompt': 'a', 'completion': 'b'}])}",
    ],
    "warm-start base_model": lambda t, m: ["warm-start", "--set", f"base_model={m}"],
    "serve": lambda t, m: ["serve", m],
    "serve-rm": lambda t, m: ["serve-rm", m],
    "rm-bench --scorer": lambda t, m: [
        "rm-bench",
        "--data",
        _rm_bench_data(t),
        "--scorer",
        m,
        "--out",
        t / "out",
    ],
    "wildreward eval --model": lambda t, m: [
        "wildreward",
        "eval",
        "--model",
        m,
        "--data",
        _eval_data(t),
    ],
    "cherrl detect --detector": lambda t, m: [
        "cherrl",
        "detect",
        "--rollouts",
        _rollouts(t),
        "--detector",
        m,
    ],
}


def _model_case(command: str, kind: str) -> Case:
    def build(tmp: Path, model: Path) -> list:
        (tmp / "not-a-model").mkdir(exist_ok=True)
        (tmp / "not-a-model" / "notes.txt").write_text("not weights\n")
        return MODEL_INPUTS[command](tmp, MODEL_KINDS[kind](tmp))

    return Case(f"{command}: {kind}", build, lambda tmp: [MODEL_KINDS[kind](tmp)])


MODEL_CASES = [_model_case(c, k) for c in MODEL_INPUTS for k in MODEL_KINDS]

# --------------------------------------------------------------------------- run names

RUN_NAME_COMMANDS = [
    "rl",
    "quickstart",
    "demo",
    "longtrace run",
    "storyreward run",
    "wildreward run",
    "indexcache run",
    "cherrl run",
    "envrl run",
    "saerl run",
    "mmthe demo",
]
BAD_RUN_NAMES = ["..", "../outside", "nested/name", "/tmp/absolute", ""]


def _run_name_case(command: str, name: str) -> Case:
    prefix = CONFIG_COMMANDS[command][0]
    return Case(
        f"{command} run_name={name!r}",
        lambda tmp, model: [*prefix, "--set", f"run_name={name}"],
        lambda tmp: ["run_name"],
    )


RUN_NAME_CASES = [_run_name_case(c, n) for c in RUN_NAME_COMMANDS for n in BAD_RUN_NAMES] + [
    Case(
        f"warm-start --run-name {name!r}",
        lambda tmp, model, name=name: ["warm-start", "--run-name", name],
        lambda tmp: ["run_name"],
    )
    for name in BAD_RUN_NAMES
]

CASES = DATA_CASES + CONFIG_CASES + SET_CASES + MODEL_CASES + RUN_NAME_CASES


# ------------------------------------------------------------------------------- tests


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Each case runs in its own directory (a run name that escaped would write there),
    with the warm-start cache out of the user's home."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("POSTTRAIN_CACHE", str(tmp_path / "cache"))


def assert_named_error(result, names: list[str]) -> None:
    exc = result.exception
    if exc is not None and not isinstance(exc, SystemExit):
        import traceback

        trace = "".join(traceback.format_exception(exc))
        pytest.fail(f"TRACEBACK ({type(exc).__name__}):\n{trace}")
    assert result.exit_code == 2, f"exit {result.exit_code}:\n{result.output}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"not one line:\n{result.stderr}"
    assert lines[0].startswith("error: "), lines[0]
    for name in names:
        assert name in lines[0], f"{name!r} not named in: {lines[0]}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_named_line(case: Case, tmp_path, tiny_model_dir):
    argv = [str(a) for a in case.argv(tmp_path, tiny_model_dir)]
    result = CliRunner().invoke(app, argv)
    assert_named_error(result, case.names(tmp_path))
    if "run_name" in case.id or "--run-name" in case.id:  # refused before any run directory
        assert not list(tmp_path.rglob("config.yaml"))


def test_the_table_covers_every_command_that_reads_input():
    """A new command taking --config, or a model, gets its rows here."""
    from typer.main import get_command

    def leaves(group, prefix=()):
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                yield from leaves(command, (*prefix, name))
            else:
                yield " ".join((*prefix, name)), command

    tried = " ".join(c.id for c in CASES)
    for name, command in leaves(get_command(app)):
        options = {o for p in command.params for o in p.opts}
        if "--config" in options:
            assert name in CONFIG_COMMANDS, f"{name} takes --config but has no rows"
        if name in ("serve", "serve-rm"):
            assert f"{name}: not a model" in tried


SUBPROCESS_CASES = [
    Case(
        # model: null: the prompt file is checked before the warm start (and torch) begins.
        "rl bad data line",
        lambda t, m: [
            "rl",
            "--set",
            f"data.train={bad_file(t, 'bad-json-line')}",
        ],
        lambda t: [f"{bad_file(t, 'bad-json-line')}:2:"],
    ),
    Case(
        "serve missing model",
        lambda t, m: ["serve", t / "no-such-model"],
        lambda t: [str(t / "no-such-model")],
    ),
]


@pytest.mark.parametrize("case", SUBPROCESS_CASES, ids=[c.id for c in SUBPROCESS_CASES])
def test_the_installed_command_prints_no_traceback(case: Case, tmp_path, tiny_model_dir):
    """As a user runs it: `python -m posttrain ...` in a subprocess."""
    argv = [str(a) for a in case.argv(tmp_path, tiny_model_dir)]
    result = subprocess.run(
        [sys.executable, "-m", "posttrain", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and all(n in line for n in case.names(tmp_path)), line
