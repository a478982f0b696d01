"""Multi-turn rollouts record each turn's observation, action and next observation (the
episode's final one included) and the action's token span; `transitions` reads them back."""

from scripted_agent import CorridorEnv, ScriptedReplies

from posttrain.models.chat.base import Choice, GenerationParams
from posttrain.models.chat.hf import HFChat
from posttrain.rl.rollout import rollout_multi_turn
from posttrain.rl.transitions import Transition, transitions


class RecordingEnv(CorridorEnv):
    """The corridor, keeping what it showed and what it was told, independently of rollout."""

    def __init__(self):
        super().__init__()
        self.shown, self.told = [], []

    def reset(self, task):
        self.shown.append(super().reset(task))
        return self.shown[-1]

    def step(self, action):
        self.told.append(action)
        result = super().step(action)
        self.shown.append(result[0])
        return result


def test_transitions_follow_the_environment_turn_by_turn(tiny_model_dir):
    tok = HFChat(tiny_model_dir).tokenizer
    envs = []

    def make_env():
        envs.append(RecordingEnv())
        return envs[-1]

    replies = ScriptedReplies(tok, plan=[["right", "wait", "right"]])
    (sample,) = rollout_multi_turn(
        replies, tok, [{"prompt": "go"}], make_env, GenerationParams(n=1), max_turns=5
    )
    (env,) = envs
    assert sample.status == "completed" and sample.reward == 1.0
    expected = [
        Transition(env.shown[t], env.told[t], env.shown[t + 1], t) for t in range(len(env.told))
    ]
    assert transitions(sample) == expected
    assert len(expected) == 3 and expected[-1].next_state == "You reached room 2, the goal."
    # The final observation is recorded but, as before, is no token of the trajectory.
    assert "the goal" not in tok.decode(sample.response_ids)
    for turn, action in zip(sample.turn_records, ["right", "wait", "right"], strict=True):
        span = sample.response_ids[turn.start : turn.end]
        assert span == replies.choice(action).token_ids
        assert all(sample.loss_mask[turn.start : turn.end])
    assert [t.reward for t in sample.turn_records] == [0.0, 0.0, 1.0]
    assert [t.done for t in sample.turn_records] == [False, False, True]


class CutReplies(ScriptedReplies):
    """Every reply hits the token limit."""

    def choice(self, text):
        return Choice(**{**super().choice(text).__dict__, "finish_reason": "length"})


def test_a_reply_cut_by_the_token_limit_yields_no_transition(tiny_model_dir):
    tok = HFChat(tiny_model_dir).tokenizer
    replies = CutReplies(tok, plan=[["right"]])
    (sample,) = rollout_multi_turn(
        replies, tok, [{"prompt": "go"}], CorridorEnv, GenerationParams(n=1)
    )
    assert sample.status == "truncated" and len(sample.turn_records) == 1
    assert sample.turn_records[0].next_observation is None and transitions(sample) == []


def test_single_turn_samples_have_no_transitions(tiny_model_dir):
    from posttrain.rl.rollout import rollout_single_turn

    chat = HFChat(tiny_model_dir)
    params = GenerationParams(n=2, max_tokens=3, seed=0, logprobs=True)
    samples = rollout_single_turn(chat.generator, chat.tokenizer, [{"prompt": "1+1"}], params)
    assert all(transitions(s) == [] and s.token_advantages is None for s in samples)
