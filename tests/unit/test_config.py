from dataclasses import dataclass, field
from typing import Literal

import pytest

from posttrain.config import ConfigError, load_config, to_dict


@dataclass
class Optim:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.99)


@dataclass
class Train:
    steps: int = 10
    name: str = "run"
    mode: Literal["sync", "async"] = "sync"
    model: str | None = None
    optim: Optim = field(default_factory=Optim)
    tags: list[str] = field(default_factory=list)


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("steps: 5\noptim:\n  lr: 0.01\n")
    cfg = load_config(Train, path, ["optim.lr=3e-4", "mode=async", "tags=[a, b]", "model=/m"])
    assert cfg.steps == 5
    assert cfg.optim.lr == pytest.approx(3e-4)
    assert cfg.mode == "async" and cfg.tags == ["a", "b"] and cfg.model == "/m"
    assert to_dict(cfg)["optim"]["betas"] == [0.9, 0.99]


def test_int_accepted_for_float():
    assert load_config(Train, None, ["optim.lr=1"]).optim.lr == 1.0


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        (["optim.lrr=1"], "unknown key 'optim.lrr'; did you mean 'optim.lr'"),
        (["steps=ten"], "steps: expected int, got 'ten'"),
        (["steps=true"], "steps: expected int"),
        (["mode=fast"], "mode: expected one of ['sync', 'async'], got 'fast'"),
        (["optim=3"], "optim: expected a mapping"),
        (["tags=abc"], "tags: expected list"),
        (["optim.betas=[0.9, x]"], "optim.betas[1]: expected float"),
        (["noequals"], "not of the form key=value"),
    ],
)
def test_errors_name_the_key(override, needle):
    with pytest.raises(ConfigError) as err:
        load_config(Train, None, override)
    assert needle in str(err.value)


def test_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [1\n")
    with pytest.raises(ConfigError, match="bad.yaml:2: not valid YAML"):
        load_config(Train, bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("stepz: 3\n")
    with pytest.raises(ConfigError, match=r"typo.yaml: unknown key 'stepz'; did you mean 'steps'"):
        load_config(Train, typo)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(Train, tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"", "c.yaml: the config is empty"),
        (b"# only a comment\n", "c.yaml: the config is empty"),
        (b"- steps\n- 3\n", "c.yaml: expected a mapping of keys at the top level, got a list"),
        (b"steps: 3\nname: caf\xe9\n", "c.yaml:2: not UTF-8 text (byte 0xe9 at column 10)"),
    ],
    ids=["empty", "comments only", "a list", "not UTF-8"],
)
def test_a_config_file_that_is_not_a_mapping_is_named(tmp_path, content, needle):
    path = tmp_path / "c.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        load_config(Train, path)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_a_directory_given_as_the_config_is_named(tmp_path):
    with pytest.raises(ConfigError, match="is a directory, not a YAML config file"):
        load_config(Train, tmp_path)


def test_a_mistake_is_blamed_on_the_file_or_on_the_override(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("steps: ten\n")
    with pytest.raises(ConfigError, match=r"c.yaml: steps: expected int, got 'ten'"):
        load_config(Train, path, ["optim.lr=0.1"])
    with pytest.raises(ConfigError, match=r"^--set: optim.lr: expected float"):
        load_config(Train, path, ["steps=3", "optim.lr=fast"])
    with pytest.raises(ConfigError, match=r"^--set: steps.x: 'steps' is not a section"):
        load_config(Train, path, ["steps.x=1"])
    with pytest.raises(ConfigError, match=r"^--set: 'steps' is not of the form key=value"):
        load_config(Train, path, ["steps"])


@dataclass
class Recipe:
    """A recipe whose nested sections default to its own sizes, not the sections' classes."""

    train: Train = field(default_factory=lambda: Train(steps=40, optim=Optim(lr=0.5)))


def test_a_partial_section_overrides_the_fields_own_default():
    cfg = load_config(Recipe, None, ["train.optim.betas=[0.8, 0.9]"])
    assert cfg.train.steps == 40  # the recipe's default survives a sibling override
    assert cfg.train.optim.lr == 0.5
    assert cfg.train.optim.betas == (0.8, 0.9)
    assert load_config(Recipe).train.steps == 40
