"""A model directory is checked before transformers mistakes a bad path for a Hub repo id."""

import pytest

from posttrain.errors import InputError
from posttrain.models.model_dir import require_model_dir


def test_a_directory_with_a_model_or_an_adapter_passes(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    assert require_model_dir(tmp_path / "model") == str(tmp_path / "model")
    assert require_model_dir(str(tmp_path / "adapter")) == str(tmp_path / "adapter")


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda p: None, "no such directory"),
        (lambda p: p.mkdir(), "not a model directory: it has no config.json"),
        (lambda p: p.write_text("x"), "is a file; expected a model directory"),
    ],
    ids=["missing", "no model in it", "a file"],
)
def test_a_bad_local_path_is_named_with_its_key(tmp_path, make, needle):
    path = tmp_path / "policy"
    make(path)
    with pytest.raises(InputError) as err:
        require_model_dir(path, key="model")
    assert str(err.value).startswith(f"{path}: model: {needle}")


def test_a_hub_name_passes_online_and_only_from_the_cache_offline(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.chdir(tmp_path)  # no local directory of that name
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    assert require_model_dir("some-org/some-model") == "some-org/some-model"
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(InputError, match="nor a Hugging Face Hub model in the local cache"):
        require_model_dir("some-org/some-model")
    # A path that cannot be a repo id is a missing directory, never a Hub lookup.
    with pytest.raises(InputError, match="/abs/no-model: no such model directory"):
        require_model_dir("/abs/no-model")
