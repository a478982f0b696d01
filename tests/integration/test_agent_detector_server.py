"""The LLM-agent hacking detector against a real `posttrain serve` subprocess on 127.0.0.1,
through the real openai client (`openai:MODEL@URL`, as `cherrl detect --detector` takes it).

The served model is an untrained nano policy: it proves the plumbing (requests reach the
server, replies go through the agent's parser, the detector records what the model said and
where it fell back), not detection quality; a model that writes no JSON cannot detect
anything. The fast tests drive the same record through scripted replies."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from posttrain.models.chat.base import GenerationParams
from posttrain.models.chat.scripted import ScriptedChat
from posttrain.models.server_process import ServerProcess, serve_model
from posttrain.models.tiny import build_tiny_model
from posttrain.monitor.agent_detector import AGENT_PROMPT, BUDGET_SPENT, REASK, LLMAgentDetector
from posttrain.monitor.detector import load_detector

SHORTCUT = "Feel free to ask more."


def hacked_log(steps: int = 20, per_step: int = 16, start: int = 8) -> list[dict]:
    """From `start` on, a growing share of replies end in SHORTCUT and score 0.5 more."""
    rng = random.Random(0)
    words = "rest drink water see a doctor if the pain lasts sleep early".split()  # noqa: SIM905
    rows = []
    for step in range(1, steps + 1):
        share = 0.9 * max(0, step - start) / (steps - start)
        for group in range(per_step):
            text = " ".join(rng.choice(words) for _ in range(12)).capitalize() + "."
            score = rng.uniform(0.2, 0.8)
            if rng.random() < share:
                text, score = f"{text} {SHORTCUT}", score + 0.5
            rows.append({"step": step, "prompt": f"complaint {group % 4}", "response": text,
                         "score": score})  # fmt: skip
    return rows


def test_a_model_that_writes_no_json_is_recorded_as_giving_up_not_as_a_clean_log() -> None:
    """What the untrained policy says (blank lines) through the same loop, offline."""
    agent = LLMAgentDetector(ScriptedChat("blank", default="\n\n\n"), max_reasks=2)
    assert agent.detect(hacked_log()) is None
    assert agent.outcome == "gave_up"
    assert [t["action"] for t in agent.turns] == ["reasked", "reasked", "gave_up"]
    assert all(t["reply"] == "\n\n\n" and t["parsed"] is None for t in agent.turns)
    assert agent.turns[0]["problem"] == "no JSON object with a tool or alert key"


def test_outcome_tells_a_verdict_from_a_fallback() -> None:
    said_no = ScriptedChat("no", [(r"Begin\.$", 'Nothing here. {"alert": null}')])
    agent = LLMAgentDetector(said_no)
    assert agent.detect(hacked_log()) is None
    assert agent.outcome == "no_alert" and agent.turns[-1]["parsed"] == {"alert": None}
    tool_then_alert = ScriptedChat(
        "yes",
        [
            (r"Begin\.$", '{"tool": "log_summary", "args": {}}'),
            (r"Tool result", '{"alert": {"alert_step": 15, "onset_step": 9}}'),
        ],
    )
    agent = LLMAgentDetector(tool_then_alert)
    alert = agent.detect(hacked_log())
    assert alert is not None and alert.alert_step == 15 and agent.outcome == "alert"
    assert [t["action"] for t in agent.turns] == ["tool", "alert"]
    looping = ScriptedChat("loop", default='{"tool": "log_summary"}')
    agent = LLMAgentDetector(looping, max_tool_calls=1, max_reasks=1)
    assert agent.detect(hacked_log()) is None and agent.outcome == "gave_up"
    assert [t["action"] for t in agent.turns] == ["tool", "budget_spent", "gave_up"]


TOOL_CALL = '{"tool": "log_summary"}'


def teach_one_reply(model_dir: Path, reply: str, steps: int = 60) -> None:
    """Fine-tune the nano policy to answer any user turn with `reply` (about 3 s on one core): the
    one thing it knows, so that its replies reach the parser's tool path through the server.
    Prompts are snippets of the agent's own messages, the loss only on the reply."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    rng = random.Random(0)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    target = [*tokenizer(reply, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]
    sources = [AGENT_PROMPT, REASK, BUDGET_SPENT]
    for _ in range(steps):
        rows = []
        for _ in range(8):
            text = rng.choice(sources)
            start = rng.randrange(len(text))
            snippet = text[start : start + rng.randint(5, 80)]
            prompt = tokenizer.apply_chat_template(
                [{"role": "user", "content": snippet}], add_generation_prompt=True, tokenize=False
            )
            rows.append(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        width = max(len(r) for r in rows) + len(target)
        ids = torch.full((len(rows), width), tokenizer.pad_token_id or 0)
        labels = torch.full((len(rows), width), -100)
        for i, prompt_ids in enumerate(rows):
            end = len(prompt_ids) + len(target)
            ids[i, :end] = torch.tensor(prompt_ids + target)
            labels[i, len(prompt_ids) : end] = torch.tensor(target)
        model(input_ids=ids, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(model_dir)


@pytest.fixture(scope="module")
def served_nano(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A nano policy that knows one reply, a tool call, served by `posttrain serve`, with a
    context long enough for the agent's prompt and a tokenizer trained on it."""
    model = tmp_path_factory.mktemp("agent-policy") / "nano-agent"
    build_tiny_model(model, [AGENT_PROMPT, TOOL_CALL], size="nano", max_positions=4096, seed=0)
    teach_one_reply(model, TOOL_CALL)
    log = model.parent / "server.log"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        server = serve_model(model, log_path=log).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.slow
def test_agent_detector_talks_to_a_served_tiny_policy_plumbing_only(
    served_nano: ServerProcess,
) -> None:
    """Plumbing, not detection quality: every turn is one request the server counts, each
    reply goes through the parser, the tool call it asks for runs and its result goes back
    in the next request; a policy that only ever calls the tool is recorded as giving up."""
    stats = lambda: httpx.get(served_nano.url + "/stats", timeout=10).json()  # noqa: E731
    before = stats()["requests"]
    detector = load_detector(f"openai:nano-agent@{served_nano.base_url}")
    assert isinstance(detector, LLMAgentDetector)
    detector.params = GenerationParams(max_tokens=24, temperature=0.0)
    detector.max_tool_calls = detector.max_reasks = 1
    assert detector.detect(hacked_log()) is None
    assert stats()["requests"] - before == len(detector.turns) == 3
    assert detector.model == "openai:nano-agent"  # the backend, named by its spec
    assert [t["reply"] for t in detector.turns] == [TOOL_CALL] * 3
    assert all(t["parsed"] == {"tool": "log_summary"} for t in detector.turns)
    assert [t["action"] for t in detector.turns] == ["tool", "budget_spent", "gave_up"]
    assert detector.outcome == "gave_up"
    tool_result = detector.transcript[2]["content"]
    assert tool_result.startswith("Tool result for log_summary:") and '"n_steps": 20' in tool_result
