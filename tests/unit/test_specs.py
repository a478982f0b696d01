"""The one spec grammar (`posttrain.specs`) and what it says a model directory holds.

Table-driven: each row is a spec, the kinds its consumer accepts, and what it parses to (or
the error). The directory rows build tiny directories of marker files only (no weights):
`describe_model_dir` never reads more than config.json and the markers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from posttrain import specs
from posttrain.specs import ModelKind, SpecKind, describe_model_dir, parse_spec

CHAT = (SpecKind.SCRIPTED, SpecKind.OPENAI, SpecKind.DIRECTORY)
REWARD = (SpecKind.NAME, SpecKind.REWARD_MODEL, SpecKind.IMPORT_PATH)
SCORER = (SpecKind.NAME, SpecKind.URL, SpecKind.DIRECTORY)
SCORER_NAMES = {"names": ("length", "random"), "takes_argument": ("random", "judge")}


@pytest.fixture
def model_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An existing directory called `rm` in the working directory (specs name it relatively)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rm").mkdir()
    return tmp_path / "rm"


@pytest.mark.parametrize(
    ("text", "accept", "options", "expected"),
    [
        (
            "exact_match",
            REWARD,
            {"names": ("exact_match",)},
            {"kind": "name", "name": "exact_match"},
        ),
        ("length", SCORER, SCORER_NAMES, {"kind": "name", "name": "length", "argument": None}),
        ("random", SCORER, SCORER_NAMES, {"kind": "name", "name": "random", "argument": None}),
        ("random:3", SCORER, SCORER_NAMES, {"kind": "name", "name": "random", "argument": "3"}),
        (
            "judge:openai:m@http://h/v1",
            SCORER,
            SCORER_NAMES,
            {"kind": "name", "name": "judge", "argument": "openai:m@http://h/v1"},
        ),
        ("scripted:echo", CHAT, {}, {"kind": "scripted", "name": "echo"}),
        ("openai:m", CHAT, {}, {"kind": "openai", "model": "m", "base_url": "", "key_var": ""}),
        (
            "openai:org/m-7b@http://h:8/v1#JUDGE_KEY",
            CHAT,
            {},
            {
                "kind": "openai",
                "model": "org/m-7b",
                "base_url": "http://h:8/v1",
                "key_var": "JUDGE_KEY",
            },
        ),
        ("rm", CHAT, {}, {"kind": "directory", "path": Path("rm"), "query": ""}),
        (
            "rm?device=cpu",
            SCORER,
            {"directory_options": True},
            {"kind": "directory", "path": Path("rm"), "query": "device=cpu"},
        ),
        (
            "reward-model:rm?batch_size=2",
            REWARD,
            {},
            {"kind": "reward-model", "path": Path("rm"), "query": "batch_size=2", "url": ""},
        ),
        (
            "reward-model:http://h:8100/?a=b",
            REWARD,
            {},
            {"kind": "reward-model", "url": "http://h:8100/?a=b", "path": None, "query": ""},
        ),
        ("http://h:8100", SCORER, SCORER_NAMES, {"kind": "url", "url": "http://h:8100"}),
        (
            "pkg.mod:Judge.score",
            REWARD,
            {},
            {"kind": "import-path", "module": "pkg.mod", "attribute": "Judge.score"},
        ),
        ("pkg.mod.fn", REWARD, {}, {"kind": "import-path", "module": "pkg.mod", "attribute": "fn"}),
        # A prefix the consumer does not take is not special to it: an import path for rewards.
        ("openai:OpenAI", REWARD, {}, {"kind": "import-path", "module": "openai"}),
        ("scripted:x", REWARD, {}, {"kind": "import-path", "module": "scripted"}),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_the_grammar(
    model_dir: Path, text: str, accept: Any, options: dict[str, Any], expected: dict[str, Any]
) -> None:
    parsed = parse_spec(text, accept, **options)
    assert parsed.text == text
    for field, value in expected.items():
        assert getattr(parsed, field) == value, field


@pytest.mark.parametrize(
    ("text", "accept", "options", "error"),
    [
        (
            "nope",
            REWARD,
            {"names": ("exact_match",), "what": "reward"},
            (
                r"unknown reward 'nope' \(not a recognised form\); expected a registered name "
                r"\(exact_match\), 'reward-model:DIR\|URL' or an import path"
            ),
        ),
        (":fn", REWARD, {"what": "reward"}, r"malformed reward import path ':fn'"),
        ("pkg.", REWARD, {"what": "reward"}, r"malformed reward import path 'pkg\.'"),
        (
            "reward-model:nowhere",
            REWARD,
            {},
            r"reward model 'nowhere': no such directory \(or http",
        ),
        ("reward-model:", REWARD, {}, r"reward model '': no such directory"),
        ("openai:", CHAT, {"what": "model spec"}, r"model spec 'openai:' names no model; expected"),
        ("openai:@http://x/v1", CHAT, {}, r"names no model"),
        (
            "no/such/dir",
            CHAT,
            {"what": "model spec"},
            r"unknown model spec 'no/such/dir' \(no such directory\)",
        ),
        ("", CHAT, {}, r"unknown spec '' \(not a recognised form\)"),
        ("hf:x", CHAT, {"expected": "FORMS"}, r"\(no such directory\); expected FORMS$"),
        # Options split off only where the consumer takes them.
        ("rm?device=cpu", CHAT, {}, r"no such directory"),
        # A name that takes an argument is not a plain name unless listed as one too.
        ("judge", SCORER, SCORER_NAMES, r"unknown spec 'judge' \(no such directory\)"),
    ],
)
def test_bad_specs_are_named_with_what_was_expected(
    model_dir: Path, text: str, accept: Any, options: dict[str, Any], error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        parse_spec(text, accept, **options)


def test_a_file_is_not_a_directory_spec(model_dir: Path) -> None:
    (model_dir / "weights.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="not a recognised form"):
        parse_spec(str(model_dir / "weights.bin"), CHAT)


def test_home_is_expanded(monkeypatch: pytest.MonkeyPatch, model_dir: Path) -> None:
    monkeypatch.setenv("HOME", str(model_dir.parent))
    assert parse_spec("~/rm", CHAT).path == model_dir
    assert parse_spec("reward-model:~/rm", REWARD).path == model_dir


def test_import_paths_resolve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "spec_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("VALUE = 3\n")
    (package / "factories.py").write_text("class Env:\n    pass\n")  # not imported by __init__
    monkeypatch.syspath_prepend(str(tmp_path))

    def resolve(text: str) -> Any:
        return specs.resolve_import_path(parse_spec(text, REWARD), what="thing")

    assert resolve("spec_pkg.factories:Env").__name__ == "Env"
    assert resolve("spec_pkg:factories.Env").__name__ == "Env"  # a submodule, imported
    with pytest.raises(
        ValueError, match=r"cannot import module 'spec_nope' \(thing 'spec_nope:x'\)"
    ):
        resolve("spec_nope:x")
    with pytest.raises(ValueError, match=r"module 'spec_pkg' has no 'missing'"):
        resolve("spec_pkg:missing")
    with pytest.raises(ValueError, match="resolved to a non-callable int"):
        resolve("spec_pkg:VALUE")


def _seq_cls(labels: int) -> dict[str, Any]:
    return {
        "architectures": ["Qwen2ForSequenceClassification"],
        "model_type": "qwen2",
        "id2label": {str(i): f"LABEL_{i}" for i in range(labels)},
    }


@pytest.mark.parametrize(
    ("files", "kind"),
    [
        (
            {"config.json": {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2"}},
            "causal-lm",
        ),
        ({"config.json": {"architectures": ["GPT2LMHeadModel"]}}, "causal-lm"),
        ({"config.json": _seq_cls(1)}, "bradley-terry"),
        ({"config.json": {**_seq_cls(0), "num_labels": 1}}, "bradley-terry"),
        ({"config.json": _seq_cls(3)}, "sequence-classifier"),
        ({"config.json": _seq_cls(3), "ordinal.json": {"head": "thresholds"}}, "ordinal"),
        (  # transformers' DSA models (GLM-5, DeepSeek-V3.2) are causal LMs like any other
            {
                "config.json": {
                    "model_type": "glm_moe_dsa",
                    "architectures": ["GlmMoeDsaForCausalLM"],
                }
            },
            "causal-lm",
        ),
        ({"adapter_config.json": {"base_model_name_or_path": "x"}}, "peft-adapter"),
        ({"config.json": {"architectures": ["BertModel"], "model_type": "bert"}}, "other"),
        ({"config.json": {}}, "other"),
        ({"tokenizer.json": {}}, "no-model"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_what_a_directory_holds(tmp_path: Path, files: dict[str, Any], kind: str) -> None:
    for name, content in files.items():
        (tmp_path / name).write_text(json.dumps(content))
    assert describe_model_dir(tmp_path).kind == kind


def test_the_fields_it_decided_from(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(_seq_cls(1)))
    held = describe_model_dir(str(tmp_path))
    assert held.path == tmp_path and held.kind is ModelKind.BRADLEY_TERRY
    assert held.architectures == ("Qwen2ForSequenceClassification",)
    assert held.model_type == "qwen2" and held.num_labels == 1


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda p: None, "no such directory"),
        (lambda p: p.write_text("x"), "is a file; expected a model directory"),
        (
            lambda p: (p.mkdir(), (p / "config.json").write_text('{\n  "a": 1,\n}')),
            r"config.json:3: not valid JSON",
        ),
        (
            lambda p: (p.mkdir(), (p / "config.json").write_text("[1]")),
            "expected a JSON object, got list",
        ),
    ],
    ids=["missing", "a file", "bad JSON", "not an object"],
)
def test_bad_directories_are_named(tmp_path: Path, make: Any, error: str) -> None:
    path = tmp_path / "model"
    make(path)
    with pytest.raises(ValueError, match=error) as err:
        describe_model_dir(path)
    assert str(path) in str(err.value)


def test_a_real_tiny_model_is_a_causal_lm(tiny_model_dir: Path) -> None:
    assert describe_model_dir(tiny_model_dir).kind is ModelKind.CAUSAL_LM


def test_the_marker_names_are_the_writers_names() -> None:
    """specs cannot import the modules that write these markers (it sits below them)."""
    from posttrain.rewards.ordinal import META_FILE

    assert specs.ORDINAL_FILE == META_FILE


def test_importing_specs_loads_no_other_posttrain_module() -> None:
    code = (
        "import sys, posttrain.specs; "
        "print(sorted(m for m in sys.modules if m.startswith('posttrain.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['posttrain.specs']"
