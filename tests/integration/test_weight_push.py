"""Rollout through a served model and weight pushes that bump its version (real server)."""

import httpx
import pytest
import torch

from posttrain.data.arithmetic import ArithmeticTask, tokenizer_corpus
from posttrain.models.chat.base import GenerationParams
from posttrain.models.chat.hf import HFChat
from posttrain.models.remote_generator import RemoteGenerator
from posttrain.models.server_process import serve_model
from posttrain.models.tiny import build_tiny_model
from posttrain.rl.rollout import encode_prompt, rollout_single_turn

ROWS = [{"prompt": "What is 12 + 7?", "answer": "19"}, {"prompt": "What is 3 + 4?", "answer": "7"}]
GREEDY = GenerationParams(max_tokens=6, logprobs=True)


@pytest.fixture(scope="module")
def other_model_dir(tmp_path_factory):
    """Same architecture and tokenizer as `tiny_model_dir`, different initial weights."""
    out = tmp_path_factory.mktemp("other-model")
    return build_tiny_model(out, tokenizer_corpus(ArithmeticTask()), size="micro", seed=1)


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("push") / "server.log"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        root = str(tmp_path_factory.getbasetemp())  # pushes from any test's tmp_path
        proc = serve_model(
            tiny_model_dir, "--served-model-name", "policy", "--weights-root", root, log_path=log
        ).start()
    yield proc
    proc.stop()


def greedy_ids(model_dir, tokenizer):
    chat = HFChat(model_dir)
    prompts = [encode_prompt(tokenizer, row["prompt"]) for row in ROWS]
    return [c[0].token_ids for c in chat.generator.generate(prompts, GREEDY)]


def test_remote_rollout_records_the_servers_tokens_and_logprobs(server, tiny_model_dir):
    local = HFChat(tiny_model_dir)
    remote = RemoteGenerator(server.base_url, "policy")
    params = GenerationParams(n=2, temperature=1.0, max_tokens=6, seed=5, logprobs=True)
    samples = rollout_single_turn(remote, local.tokenizer, ROWS, params)
    assert [s.group_id for s in samples] == [0, 0, 1, 1]
    assert remote.weight_version == 0
    for s in samples:
        with torch.no_grad():
            logits = local.model(torch.tensor([s.prompt_ids + s.response_ids])).logits[0]
        expected = logits.log_softmax(-1)[len(s.prompt_ids) - 1 : -1]
        expected = expected.gather(-1, torch.tensor(s.response_ids)[:, None]).squeeze(-1)
        assert torch.allclose(torch.tensor(s.rollout_logprobs), expected, atol=1e-4)


def test_weight_pushes_change_the_model_and_bump_the_version(
    server, tiny_model_dir, other_model_dir, tmp_path
):
    tokenizer = HFChat(tiny_model_dir).tokenizer
    remote = RemoteGenerator(server.base_url, "policy")
    prompts = [encode_prompt(tokenizer, row["prompt"]) for row in ROWS]

    def served_ids():
        return [c[0].token_ids for c in remote.generate(prompts, GREEDY)]

    original, other = greedy_ids(tiny_model_dir, tokenizer), greedy_ids(other_model_dir, tokenizer)
    assert original != other  # different weights answer differently
    assert served_ids() == original

    pushed = httpx.post(f"{server.base_url}/weights", json={"path": str(other_model_dir)})
    assert pushed.status_code == 200 and pushed.json()["weight_version"] == 1
    assert served_ids() == other and remote.weight_version == 1

    # A plain state-dict file works too, and the trainer may name the version.
    state_file = tmp_path / "original.pt"
    torch.save(HFChat(tiny_model_dir).model.state_dict(), state_file)
    pushed = httpx.post(f"{server.base_url}/weights", json={"path": str(state_file), "version": 7})
    assert pushed.json()["weight_version"] == 7
    assert served_ids() == original
    assert httpx.get(f"{server.base_url}/weights").json() == {"weight_version": 7}


def test_bad_weight_pushes_are_refused_and_change_nothing(server, tiny_model_dir, tmp_path):
    before = httpx.get(f"{server.base_url}/weights").json()["weight_version"]
    missing = httpx.post(f"{server.base_url}/weights", json={"path": str(tmp_path / "nope")})
    assert missing.status_code == 400 and "nope" in missing.json()["error"]["message"]
    state = HFChat(tiny_model_dir).model.state_dict()
    state["model.norm.weight"] = torch.ones(3)
    torch.save(state, tmp_path / "bad.pt")
    bad = httpx.post(f"{server.base_url}/weights", json={"path": str(tmp_path / "bad.pt")})
    assert bad.status_code == 400 and "model.norm.weight" in bad.json()["error"]["message"]
    wrong_type = httpx.post(f"{server.base_url}/weights", json={"path": 3})
    assert wrong_type.status_code == 400
    assert httpx.get(f"{server.base_url}/weights").json()["weight_version"] == before
