import torch

from posttrain.models.chat.base import ChatModel, GenerationParams
from posttrain.models.chat.hf import HFChat

CONVERSATIONS = [
    [{"role": "user", "content": "What is 3 + 4?"}],
    [{"role": "user", "content": "What is 12 + 45? A longer prompt, so the other is padded."}],
]


def test_logprobs_equal_forward_pass_logprobs(tiny_model_dir):
    chat = HFChat(tiny_model_dir)
    assert isinstance(chat, ChatModel)
    params = GenerationParams(n=3, temperature=1.0, max_tokens=12, logprobs=True, seed=7)
    results = chat.chat(CONVERSATIONS, params)
    assert [len(r.choices) for r in results] == [3, 3]
    for conversation, result in zip(CONVERSATIONS, results, strict=True):
        prompt = chat.encode(conversation)
        for choice in result.choices:
            assert len(choice.token_ids) == len(choice.logprobs) > 0
            with torch.no_grad():
                logits = chat.model(torch.tensor([prompt + choice.token_ids])).logits[0]
            reference = logits.log_softmax(-1)[len(prompt) - 1 : -1]
            expected = reference.gather(-1, torch.tensor(choice.token_ids)[:, None]).squeeze(-1)
            assert torch.allclose(torch.tensor(choice.logprobs), expected, atol=1e-4)


def test_greedy_is_deterministic_and_batch_independent(tiny_model_dir):
    chat = HFChat(tiny_model_dir)
    params = GenerationParams(max_tokens=8)
    together = chat.chat(CONVERSATIONS, params)
    alone = [chat.chat([c], params)[0] for c in CONVERSATIONS]
    assert [r.choices[0].token_ids for r in together] == [r.choices[0].token_ids for r in alone]
    assert all(r.model == tiny_model_dir.name for r in together)


def test_seeded_sampling_repeats_and_length_is_reported(tiny_model_dir):
    chat = HFChat(tiny_model_dir)
    params = GenerationParams(n=2, temperature=1.0, max_tokens=4, seed=3)
    first = chat.chat(CONVERSATIONS[:1], params)[0]
    second = chat.chat(CONVERSATIONS[:1], params)[0]
    assert [c.token_ids for c in first.choices] == [c.token_ids for c in second.choices]
    for choice in first.choices:
        assert len(choice.token_ids) <= 4
        assert choice.finish_reason == (
            "length"
            if len(choice.token_ids) == 4 and choice.token_ids[-1] != chat.tokenizer.eos_token_id
            else "stop"
        )


def test_a_chat_over_a_model_in_memory_generates_as_the_loaded_one(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    loaded = HFChat(tiny_model_dir, batch_size=2)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir, padding_side="left")
    in_memory = HFChat.from_model(model, tokenizer, name="in-training", batch_size=2)
    conversations = [[{"role": "user", "content": f"what is {i} + {i}?"}] for i in range(5)]
    params = GenerationParams(max_tokens=6)
    ours = in_memory.chat(conversations, params)
    assert [r.text for r in ours] == [r.text for r in loaded.chat(conversations, params)]
    assert {r.model for r in ours} == {"in-training"} and in_memory.model_dir is None


def test_a_stop_string_matches_the_generated_text_only(tiny_model_dir):
    """The chat prompt ends in "\n" and this untrained model answers "\n" after "\n": the
    stop "\n\n" is first in the generated text after two tokens. transformers' own stop
    strings also read the prompt, and stopped after one token with finish reason "length"."""
    chat = HFChat(tiny_model_dir)
    conversation = [{"role": "user", "content": "What is 3 + 4?"}]
    assert chat.tokenizer.decode(chat.encode(conversation)).endswith("\n")
    free = chat.chat([conversation], GenerationParams(max_tokens=6))[0].choices[0]
    assert free.text.startswith("\n\n") and chat.tokenizer.decode(free.token_ids[:1]) == "\n"
    cut = chat.chat([conversation], GenerationParams(max_tokens=6, stop=("\n\n",)))[0].choices[0]
    assert (cut.text, cut.finish_reason, cut.token_ids) == ("", "stop", free.token_ids[:2])
