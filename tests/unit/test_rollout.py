"""Rollout records token ids as generated, with masks that separate policy and environment."""

import torch

from posttrain.models.chat.base import Choice, GenerationParams
from posttrain.models.chat.hf import HFChat
from posttrain.rl.rollout import observation_ids, rollout_multi_turn, rollout_single_turn

ROWS = [{"prompt": "What is 1 + 2?", "answer": "3"}, {"prompt": "What is 4 + 4?", "answer": "8"}]


def test_single_turn_groups_and_forward_logprobs(tiny_model_dir):
    chat = HFChat(tiny_model_dir)
    params = GenerationParams(n=3, temperature=1.0, max_tokens=6, seed=1, logprobs=True)
    samples = rollout_single_turn(chat.generator, chat.tokenizer, ROWS, params, first_group_id=5)
    assert [s.group_id for s in samples] == [5, 5, 5, 6, 6, 6]
    assert samples[4].columns == {"answer": "8"} and samples[4].prompt == ROWS[1]["prompt"]
    for s in samples:
        assert s.loss_mask == [1] * len(s.response_ids)
        assert s.status == (
            "truncated"
            if len(s.response_ids) == 6 and s.response_ids[-1] != chat.tokenizer.eos_token_id
            else "completed"
        )
        with torch.no_grad():
            logits = chat.model(torch.tensor([s.prompt_ids + s.response_ids])).logits[0]
        expected = logits.log_softmax(-1)[len(s.prompt_ids) - 1 : -1]
        expected = expected.gather(-1, torch.tensor(s.response_ids)[:, None]).squeeze(-1)
        assert torch.allclose(torch.tensor(s.rollout_logprobs), expected, atol=1e-4)


class CountdownEnv:
    """Replies with a numbered observation; ends after `turns` policy moves."""

    def __init__(self, turns=2, fail_on_step=False):
        self.turns, self.fail_on_step, self.moves = turns, fail_on_step, 0

    def reset(self, task):
        return f"Start: {task['prompt']}"

    def step(self, action):
        if self.fail_on_step:
            raise RuntimeError("sandbox crashed")
        self.moves += 1
        done = self.moves >= self.turns
        return f"observation {self.moves}", 0.5, done, {"moves": self.moves}


class FixedReplies:
    """A token generator that always answers "ok" and ends its turn (the model is not under
    test here; the rollout's bookkeeping is)."""

    def __init__(self, tokenizer):
        self.ids = tokenizer.encode("ok", add_special_tokens=False) + [tokenizer.eos_token_id]

    def generate(self, prompts, params):
        choice = Choice(text="ok", token_ids=self.ids, logprobs=[-0.5] * len(self.ids))
        return [[choice] * params.n for _ in prompts]


def test_multi_turn_masks_environment_tokens(tiny_model_dir):
    tok = HFChat(tiny_model_dir).tokenizer
    params = GenerationParams(n=2, max_tokens=8)
    samples = rollout_multi_turn(FixedReplies(tok), tok, ROWS[:1], lambda: CountdownEnv(3), params)
    assert len(samples) == 2
    for s in samples:
        assert s.status == "completed" and s.reward == 1.5 and s.metadata["turns"] == 3
        # ok<eos> | gap | ok<eos> | gap | ok<eos>
        reply = FixedReplies(tok).ids
        assert s.response_ids[: len(reply)] == reply and s.response_ids[-len(reply) :] == reply
        assert sum(s.loss_mask) == 3 * len(reply)
        gaps = [i for i, m in enumerate(s.loss_mask) if m == 0]
        gap_text = tok.decode([s.response_ids[i] for i in gaps])
        assert "observation 1" in gap_text and "observation 2" in gap_text
        assert "observation 3" not in gap_text  # the last step ended the episode
        assert all(s.rollout_logprobs[i] == 0.0 for i in gaps)
        assert all(s.rollout_logprobs[i] == -0.5 for i in range(len(s.loss_mask)) if s.loss_mask[i])
        # The whole trajectory is exactly what the chat template would render.
        rendered = tok.apply_chat_template(
            [
                {"role": "user", "content": "Start: What is 1 + 2?"},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "observation 1"},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "observation 2"},
                {"role": "assistant", "content": "ok"},
            ],
            tokenize=False,
        )
        assert tok.decode(s.prompt_ids + s.response_ids) + "\n" == rendered


def test_turn_limit_truncates(tiny_model_dir):
    tok = HFChat(tiny_model_dir).tokenizer
    samples = rollout_multi_turn(
        FixedReplies(tok),
        tok,
        ROWS[:1],
        lambda: CountdownEnv(10),
        GenerationParams(),
        max_turns=2,
    )
    assert samples[0].status == "truncated" and samples[0].metadata["turns"] == 2


def test_observation_ids_match_the_chat_template(tiny_model_dir):
    tok = HFChat(tiny_model_dir).tokenizer
    messages = [{"role": "user", "content": "hi"}]
    gap = observation_ids(tok, messages, "tool says 42")
    full = tok.apply_chat_template(
        messages
        + [{"role": "assistant", "content": "hello"}, {"role": "user", "content": "tool says 42"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    head = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert head + "hello" + tok.eos_token + tok.decode(gap) == full


# Qwen3's layout, written here: a reply's <think> block is shown only while that reply
# belongs to the current query (after the last user message); adding a message re-renders
# earlier replies without it, so renderings before and after a turn do not extend each other.
QWEN3_STYLE = (
    "{%- set ns = namespace(last_query=-1) -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}{%- set ns.last_query = loop.index0 -%}{%- endif -%}"
    "{%- endfor -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{%- set content = message['content'] -%}"
    "{%- set reasoning = '' -%}"
    "{%- if '</think>' in content -%}"
    "{%- set reasoning = content.split('</think>')[0].split('<think>')[-1].strip() -%}"
    "{%- set content = content.split('</think>')[-1].lstrip() -%}"
    "{%- endif -%}"
    "{{ '<|im_start|>assistant\\n' }}"
    "{%- if loop.index0 > ns.last_query and (loop.last or reasoning) -%}"
    "{{ '<think>\\n' + reasoning + '\\n</think>\\n\\n' }}"
    "{%- endif -%}"
    "{{ content + '<|im_end|>\\n' }}"
    "{%- else -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)


class ThinkingReplies:
    """Thinks, then answers "ok", and ends its turn (token ids as a policy would emit them)."""

    text = "<think>\nadd them\n</think>\n\nok"

    def __init__(self, tokenizer):
        self.ids = tokenizer.encode(self.text, add_special_tokens=False)
        self.ids.append(tokenizer.eos_token_id)

    def generate(self, prompts, params):
        choice = Choice(text=self.text, token_ids=self.ids, logprobs=[-0.5] * len(self.ids))
        return [[choice] * params.n for _ in prompts]


def test_multi_turn_with_a_template_that_rerenders_earlier_turns(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.chat_template = QWEN3_STYLE
    policy = ThinkingReplies(tok)
    first = [{"role": "user", "content": "Start: What is 1 + 2?"}]
    reply = {"role": "assistant", "content": policy.text}
    before = tok.apply_chat_template([*first, reply], tokenize=False)
    after = tok.apply_chat_template(
        [*first, reply, {"role": "user", "content": "observation 1"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert "<think>" in before and "<think>" not in after  # the template re-renders turn 1

    [sample] = rollout_multi_turn(
        policy, tok, ROWS[:1], lambda: CountdownEnv(3), GenerationParams(max_tokens=32)
    )
    assert sample.status == "completed" and sample.metadata["turns"] == 3
    gaps = [
        tok.encode(f"\n<|im_start|>user\nobservation {k}<|im_end|>\n<|im_start|>assistant\n")
        for k in (1, 2)
    ]
    # Token in, token out: prompt, then each reply exactly as generated, then each gap.
    assert sample.prompt_ids == tok.apply_chat_template(
        first, add_generation_prompt=True, tokenize=True, return_dict=False
    )
    assert sample.response_ids == policy.ids + gaps[0] + policy.ids + gaps[1] + policy.ids
    mask = [1] * len(policy.ids)
    assert sample.loss_mask == mask + [0] * len(gaps[0]) + mask + [0] * len(gaps[1]) + mask
    spans, start = [], 0
    for gap in gaps:
        start += len(policy.ids)
        spans.append(tok.decode(sample.response_ids[start : start + len(gap)]))
        start += len(gap)
    assert spans == [
        f"\n<|im_start|>user\nobservation {k}<|im_end|>\n<|im_start|>assistant\n" for k in (1, 2)
    ]


def test_failing_environment_fails_only_its_trajectory(tiny_model_dir):
    tok = HFChat(tiny_model_dir).tokenizer
    envs = iter([CountdownEnv(fail_on_step=True), CountdownEnv(1)])
    samples = rollout_multi_turn(
        FixedReplies(tok), tok, ROWS[:1], lambda: next(envs), GenerationParams(n=2)
    )
    assert [s.status for s in samples] == ["failed", "completed"]
    assert "sandbox crashed" in samples[0].metadata["info"][-1]["error"]
