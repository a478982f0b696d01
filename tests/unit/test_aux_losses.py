"""EnvRL's auxiliary losses: schedules, SP/ID rendering and truncation, their gradient in the
policy update, lambda0 = 0 changing nothing, and a multi-turn RL run with them on."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from scripted_agent import CorridorEnv, ScriptedReplies

from posttrain.models.chat.base import GenerationParams
from posttrain.rl.aux_examples import ID_PROMPT, SP_PROMPT, transition_examples, truncate_state
from posttrain.rl.aux_losses import AuxLosses, check_aux_config, schedule_weight
from posttrain.rl.config import AuxConfig, RLConfig
from posttrain.rl.rollout import rollout_multi_turn
from posttrain.rl.trainer import RLTrainer
from posttrain.rl.transitions import Transition, transitions
from posttrain.runs import read_metrics

ENV = "scripted_agent:CorridorEnv"


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [("cosine", (0.2, 0.1, 0.0)), ("linear", (0.2, 0.1, 0.0)), ("constant", (0.2, 0.2, 0.2))],
)
def test_schedules_at_the_start_middle_and_end(schedule, expected):
    got = tuple(schedule_weight(0.2, schedule, t, 40) for t in (0, 20, 40))
    assert got == pytest.approx(expected, abs=1e-12)
    # Cosine and linear differ between: at t = T/4 cosine is (1 + cos(pi/4)) / 2.
    quarter = schedule_weight(0.2, schedule, 10, 40)
    want = {"cosine": 0.1 * (1 + math.cos(math.pi / 4)), "linear": 0.15, "constant": 0.2}
    assert quarter == pytest.approx(want[schedule])


def test_bad_aux_settings_name_their_key():
    with pytest.raises(ValueError, match="aux.schedule"):
        schedule_weight(0.1, "exponential", 0, 10)
    bad = AuxConfig()
    bad.id.lambda0 = -0.1
    with pytest.raises(ValueError, match=r"aux\.id\.lambda0"):
        check_aux_config(bad)
    with pytest.raises(ValueError, match="aux.max_state_tokens"):
        check_aux_config(AuxConfig(max_state_tokens=0))
    with pytest.raises(ValueError, match="aux.max_transitions_per_step"):
        check_aux_config(AuxConfig(max_transitions_per_step=0))


def test_sp_and_id_examples_mask_all_but_the_target(tokenizer):
    step = Transition("You see a key.", "take key", "You take the key.", 0)
    sp, id_ = transition_examples(tokenizer, step, ["sp", "id"], max_state_tokens=1000)[0]
    for example, prompt, target in [
        (sp, SP_PROMPT.format(state=step.state, action=step.action), step.next_state),
        (id_, ID_PROMPT.format(state=step.state, next_state=step.next_state), step.action),
    ]:
        rendered = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
        )
        assert tokenizer.decode(example.input_ids[: example.target_start]) == rendered
        target_ids = tokenizer.encode(target, add_special_tokens=False)
        assert example.target_ids == [*target_ids, tokenizer.eos_token_id]
        # Position t predicts token t + 1: exactly the target's tokens are in the loss.
        mask = example.loss_mask()
        predicted = [example.input_ids[t + 1] for t, m in enumerate(mask) if m]
        assert predicted == example.target_ids and len(mask) == len(example.input_ids) - 1
    assert "take key" in tokenizer.decode(sp.input_ids[: sp.target_start])
    assert "take key" not in tokenizer.decode(id_.input_ids[: id_.target_start])


def test_truncation_keeps_the_last_tokens_and_counts_each_cut_state(tokenizer):
    long = "the old hall " * 30 + "exits: north"
    ids = tokenizer.encode(long, add_special_tokens=False)
    short, cut = truncate_state(tokenizer, long, 10)
    assert cut and tokenizer.encode(short, add_special_tokens=False) == ids[-10:]
    assert long.endswith(short) and len(short) < len(long) / 10
    assert truncate_state(tokenizer, "a hall", 10) == ("a hall", False)
    one = Transition(long, "go north", "a hall", 0)
    (sp,), cuts = transition_examples(tokenizer, one, ["sp"], max_state_tokens=10)
    assert cuts == 1 and "the old hall " * 3 not in tokenizer.decode(sp.input_ids)
    _, both = transition_examples(tokenizer, Transition(long, "x", long, 0), ["sp", "id"], 10)
    assert both == 2


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def make_config(model_dir, root, **aux) -> RLConfig:
    config = RLConfig(
        model=str(model_dir), runs_root=str(root), env=ENV, rewards=[], eval_size=0,
        save_every=0, max_turns=2, prompts_per_step=2, steps=2, micro_batch_size=64,
    )  # fmt: skip
    config.rollout.n = 3
    config.optim.max_grad_norm = 1e9  # no clipping: gradients are compared as computed
    for key, value in aux.items():
        if key in ("sp", "id"):
            getattr(config.aux, key).lambda0 = value
        else:
            setattr(config.aux, key, value)
    return config


def corridor_samples(tokenizer, advantage=0.0, groups=2):
    """Groups of three corridor trajectories (scripted moves), with a set advantage."""
    replies = ScriptedReplies(tokenizer, seed=3)
    rows = [{"prompt": "a"}, {"prompt": "b"}][:groups]
    samples = rollout_multi_turn(
        replies, tokenizer, rows, CorridorEnv, GenerationParams(n=3), max_turns=2
    )
    for i, sample in enumerate(samples):
        sample.advantage = advantage * (1 if i % 2 else -1)
    return samples


def grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_the_aux_gradient_is_that_of_the_weighted_cross_entropies(tiny_model_dir, tmp_path):
    config = make_config(
        tiny_model_dir, tmp_path, sp=0.3, id=0.2, schedule="constant", max_state_tokens=12
    )
    config.optim.lr, config.micro_batch_size = 0.0, 5  # a few micro-batches of each kind
    trainer = RLTrainer(config)
    # Advantages 0: the RL loss adds nothing to the gradient.
    samples = corridor_samples(trainer.tokenizer, groups=1)
    reference = copy.deepcopy(trainer.model)
    metrics = trainer.update(samples)
    # Independently: every transition's SP and ID example, cross-entropy on the target span,
    # a token mean per objective, weighted by lambda.
    steps = [t for s in samples for t in transitions(s)]
    sums, counts = {"sp": 0.0, "id": 0.0}, {"sp": 0, "id": 0}
    for step in steps:
        for example in transition_examples(trainer.tokenizer, step, ["sp", "id"], 12)[0]:
            ids = torch.tensor(example.input_ids)
            logits = reference(input_ids=ids[None]).logits[0].float()
            start = example.target_start
            nll = F.cross_entropy(logits[start - 1 : -1], ids[start:], reduction="sum")
            sums[example.kind] += nll
            counts[example.kind] += len(ids) - start
    loss = 0.3 * sums["sp"] / counts["sp"] + 0.2 * sums["id"] / counts["id"]
    loss.backward()
    expected, got = grads(reference), grads(trainer.model)
    assert expected.keys() == got.keys() and expected
    for name, grad in expected.items():
        torch.testing.assert_close(got[name], grad, rtol=1e-4, atol=1e-6)
    for kind in ("sp", "id"):
        mean = sums[kind].item() / counts[kind]
        assert metrics[f"aux/{kind}_loss"] == pytest.approx(mean, rel=1e-5)
    assert metrics["aux/transitions"] == len(steps) >= 5  # several micro-batches of 5
    assert metrics["aux/truncated_states"] == 2 * len(steps)  # every corridor state > 12
    assert (metrics["aux/sp_weight"], metrics["aux/id_weight"]) == (0.3, 0.2)


def test_max_transitions_per_step_spreads_the_kept_transitions(tiny_model_dir, tmp_path):
    config = make_config(tiny_model_dir, tmp_path, sp=0.1, max_transitions_per_step=4)
    trainer = RLTrainer(config)
    samples = corridor_samples(trainer.tokenizer)
    batch = trainer.updater.aux.batch(samples, 0, trainer.processes)
    total = sum(len(transitions(s)) for s in samples)
    assert batch.metrics["aux/transitions"] == 4 < total
    assert [e.kind for e in batch.examples] == ["sp"] * 4  # id's lambda0 is 0: not built
    assert batch.examples[0].sample == 0 and batch.examples[-1].sample > 2


def test_lambda0_zero_leaves_the_update_bitwise_unchanged(tiny_model_dir, tmp_path):
    config = make_config(tiny_model_dir, tmp_path, schedule="linear", max_state_tokens=4)
    trainer = RLTrainer(config)
    assert trainer.updater.aux is None  # nothing to build, nothing to run
    start = copy.deepcopy(trainer.model.state_dict())
    optimizer = copy.deepcopy(trainer.optimizer.state_dict())
    forwards = []
    trainer.model.register_forward_hook(lambda *args: forwards.append(1))

    def run(samples, aux):
        trainer.model.load_state_dict(start)
        trainer.optimizer.load_state_dict(optimizer)
        trainer.updater.aux = aux
        forwards.clear()
        metrics = trainer.update(samples)
        params = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
        kept = {k: v for k, v in metrics.items() if not k.startswith("time/")}
        return params, kept, len(forwards)

    samples = corridor_samples(trainer.tokenizer, advantage=1.0)
    plain, plain_metrics, plain_forwards = run(samples, None)
    # An AuxLosses whose weights are 0 at this step runs nothing either.
    zero = AuxLosses(config.aux, trainer.tokenizer, config.steps, config.micro_batch_size)
    with_zero, zero_metrics, zero_forwards = run(samples, zero)
    # The same trajectories without any transition records: the update as before them.
    for sample in samples:
        sample.turn_records = []
    bare, bare_metrics, bare_forwards = run(samples, None)
    assert plain_forwards == zero_forwards == bare_forwards == 1  # 6 samples, micro 64
    assert plain_metrics == zero_metrics == bare_metrics
    assert not any(key.startswith("aux/") for key in plain_metrics)
    for name, value in bare.items():
        assert torch.equal(plain[name], value) and torch.equal(with_zero[name], value)
    assert any(not torch.equal(start[n], v) for n, v in bare.items())  # it did train


def test_a_multi_turn_run_with_aux_and_gigpo_logs_the_metrics(tiny_model_dir, tmp_path):
    config = make_config(tiny_model_dir, tmp_path, sp=0.2, id=0.1)
    config.loss.advantage, config.prompts_per_step = "gigpo", 1
    trainer = RLTrainer(config)
    trainer.generator = ScriptedReplies(trainer.tokenizer, seed=1)
    trainer.train()
    trainer.run.close()
    records = read_metrics(trainer.run.path)
    assert [r["step"] for r in records] == [1, 2]
    for record, t in zip(records, (0, 1), strict=True):
        assert record["aux/sp_weight"] == pytest.approx(0.2 * (1 + math.cos(math.pi * t / 2)) / 2)
        assert record["aux/id_weight"] == pytest.approx(0.1 * (1 + math.cos(math.pi * t / 2)) / 2)
        assert record["aux/transitions"] > 0 and record["aux/truncated_states"] == 0
        assert record["aux/sp_loss"] > 0 and record["aux/id_loss"] > 0
        assert record["time/aux_s"] > 0 and "gigpo/anchor_groups" in record


def test_aux_losses_need_an_environment(tiny_model_dir, tmp_path):
    config = make_config(tiny_model_dir, tmp_path, sp=0.2)
    config.env, config.rewards = None, ["exact_match"]
    with pytest.raises(ValueError, match="aux.sp.lambda0"):
        RLTrainer(config)


def test_aux_and_gigpo_keys_load_from_yaml_and_set(tmp_path):
    from posttrain.config import load_config

    path = tmp_path / "envrl.yaml"
    path.write_text(
        "env: arithmetic_retry\naux:\n  sp: {lambda0: 0.2}\n  schedule: linear\n"
        "loss:\n  advantage: gigpo\n  gigpo: {omega: 0.5}\n"
    )
    config = load_config(RLConfig, path, ["aux.id.lambda0=0.1", "loss.gigpo.gamma=0.9"])
    assert (config.aux.sp.lambda0, config.aux.id.lambda0, config.aux.schedule) == (
        0.2, 0.1, "linear",
    )  # fmt: skip
    assert (config.loss.gigpo.omega, config.loss.gigpo.gamma) == (0.5, 0.9)
    with pytest.raises(ValueError, match="aux.schedule"):
        load_config(RLConfig, path, ["aux.schedule=exponential"])
