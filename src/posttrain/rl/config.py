"""Configuration of an RL run (`posttrain rl CONFIG.yaml --set key=value`).

Defaults are the embedded CPU default: the warm-started arithmetic policy trained with
GRPO on the exact-match reward.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from posttrain.sft.warm_start import WarmStartConfig


@dataclass
class DataConfig:
    train: str | None = None
    """JSONL / parquet / `datasets` dir with a prompt column; None: the arithmetic task."""
    test: str | None = None
    """Held-out rows for evaluation; None: the arithmetic task's held-out split when `train`
    is None too, otherwise no held-out evaluation."""
    prompt_column: str = "prompt"
    order: Literal["shuffle", "as_written"] = "shuffle"
    """`shuffle`: a seeded reshuffle every epoch; `as_written`: the file's order every epoch,
    `prompts_per_step` consecutive rows a step (a selection stage's ordered batches,
    `posttrain.data.selection`). Both resume at the same row."""


@dataclass
class RolloutConfig:
    n: int = 8
    """Samples per prompt (the GRPO group size)."""
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 8


@dataclass
class GiGPOConfig:
    """`loss.advantage: gigpo` (Feng et al. 2025, "Group-in-Group Policy Optimization for LLM
    Agent Training"; verl-agent): see posttrain.rl.gigpo."""

    omega: float = 1.0
    """Weight of the step-level advantage added to the episode-level one (verl-agent's
    step_advantage_w)."""
    gamma: float = 0.95
    """Discount of later step rewards in each step's return (the paper's gamma)."""
    step_normalize: bool = True
    """Divide step advantages by their anchor group's std (as GRPO scales episode ones);
    False only subtracts the anchor group's mean (verl-agent's mean_norm)."""


@dataclass
class LossConfig:
    eps_low: float = 0.2
    eps_high: float = 0.28
    """Clip-higher (DAPO): a larger upper clip keeps exploration alive."""
    aggregation: Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"] = (
        "token-mean"
    )
    scale_advantages: bool = True
    """Divide by the group std (GRPO); False is Dr.GRPO's variant."""
    kl_coef: float = 0.0
    kl_estimator: Literal["k1", "k3"] = "k3"
    kind: str = "ppo"
    """A registered policy loss (`posttrain.rl.objectives`) or a dotted import path to one.
    Built in: ppo: GRPO's clipped surrogate against the trainer's own log-probs before the
    update; direct_is: GLM-5's double-sided importance sampling against the rollout log-probs
    (no pi_old); decoupled_ppo: AReaL's clip against a recomputed proximal policy, weighted
    by pi_prox / pi_rollout; online_dpo: DPO on each group's best- vs worst-reward sample
    against the frozen reference, with beta = kl_coef (see posttrain.rl.online_dpo)."""
    advantage: str = "grpo"
    """A registered advantage estimator or a dotted import path to one. Built in: grpo
    (group mean baseline, divided by the group std when `scale_advantages`), rloo
    (leave-one-out mean baseline) and gigpo (multi-turn: grpo's episode advantage plus
    `gigpo.omega` x a step advantage per turn, from anchor states shared across the group)."""
    tis_cap: float | None = None
    """Truncated importance sampling against rollout log-probs, capped at this value."""
    icepop_beta: float | None = None
    """IcePop: weight each token by its train/rollout probability ratio while the ratio lies
    in [1/beta, beta], and drop it (weight 0) outside."""
    behaviour_cap: float | None = None
    """decoupled_ppo: cap on the behaviour weight pi_prox / pi_rollout."""
    gigpo: GiGPOConfig = field(default_factory=GiGPOConfig)


@dataclass
class AuxTermConfig:
    lambda0: float = 0.0
    """The term's weight at step 0 (EnvRL: 0.2 for a 1.5B policy, 0.1 for 7B); 0: off."""


@dataclass
class AuxConfig:
    """EnvRL's auxiliary objectives on the rollout transitions, added to the RL loss in the
    same update (posttrain.rl.aux_losses): state prediction (sp: s_t, a_t -> s_t+1) and
    inverse dynamics (id: s_t, s_t+1 -> a_t). With both lambda0 = 0 nothing extra runs."""

    sp: AuxTermConfig = field(default_factory=AuxTermConfig)
    id: AuxTermConfig = field(default_factory=AuxTermConfig)
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    """lambda(t) over the run's `steps` T: cosine lambda0 (1 + cos(pi t / T)) / 2, linear
    lambda0 (1 - t / T), constant lambda0; t is the number of steps already trained."""
    max_state_tokens: int = 256
    """Each state (observation) keeps only its last this many tokens; cuts are counted in
    `aux/truncated_states`."""
    max_transitions_per_step: int | None = None
    """At most this many transitions per step over all processes, evenly spaced over the
    batch's transitions in trajectory order (None: all)."""


@dataclass
class OptimConfig:
    lr: float = 3e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.99)
    max_grad_norm: float = 1.0
    warmup_steps: int = 0
    scheduler: str = "constant_with_warmup"


@dataclass
class LoraSettings:
    enabled: bool = False
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"]
    )


@dataclass
class WorkerSettings:
    kind: Literal["thread", "process", "ray", "server"] = "thread"
    """thread: a policy copy in the trainer process; process: one per child process;
    ray: one per Ray actor; server: OpenAI-compatible servers (started here unless `urls`)."""
    count: int = 1
    torch_threads: int | None = 1
    """Intra-op threads per process/actor engine (None: torch's default)."""
    urls: list[str] = field(default_factory=list)
    """server: OpenAI-style base URLs (ending in /v1) of running servers to use instead."""
    served_model: str | None = None
    """server: the model name the servers expect (default: the first of /v1/models)."""
    weight_sync: Literal["push", "none"] = "push"
    """server: push checkpoint directories to `<url><weights_endpoint>`, or never (the
    servers keep their weights; generation is then fully off-policy)."""
    server_kind: Literal["posttrain", "sglang", "vllm"] = "posttrain"
    """server: how weight pushes are sent. posttrain: `{"path", "version"}` to
    `<url><weights_endpoint>`; sglang: SGLang's `POST /update_weights_from_disk` (posttrain
    serve takes it too); vllm: `POST /collective_rpc` with `reload_weights(weights_path=...)`
    then `/reset_prefix_cache` (vLLM > 0.12 started with VLLM_SERVER_DEV_MODE=1; needs `urls`).
    See `rl/asynchronous/weight_sync.py`."""
    weights_endpoint: str = "/weights"
    """server, server_kind posttrain: path under the base URL that takes `{"path": dir,
    "version": v}` (posttrain serve's `/v1/weights`)."""
    api_key_env: str = "POSTTRAIN_API_KEY"
    """server, with urls: the environment variable holding the servers' API key, sent as
    `Authorization: Bearer <key>` (unset or empty: none). The key itself never goes in a
    config. Servers started here get a random key of their own."""
    ray_address: str | None = None
    """ray: a cluster address; None starts a local runtime."""
    ray_cpus: int | None = None
    """ray: CPUs of the local runtime (None: all)."""


@dataclass
class AsyncSettings:
    eta: int | None = None
    """None: the classic synchronous loop in the trainer. An int turns on the asynchronous
    engine with AReaL's capacity rule: at most (eta + v + 1) * B groups admitted at trainer
    version v; 0 is synchronous training with rollout on the workers."""
    max_version_gap: int | None = None
    """GLM-5's tau: drop samples whose oldest weight version lags the trainer's by more."""
    push_every: int = 1
    """K: push new weights to the workers every K updates (each push is a new version)."""
    reset_optimizer: bool = False
    """Clear the optimiser state after each push (GLM-5's agentic RL does)."""
    partial_rollout: Literal["finish", "resume"] = "finish"
    """finish: a request in flight completes with the weights it started with; resume: a push
    aborts the batch being generated at its next decode step, and each unfinished response
    continues from its prefix with the new weights (thread, process and Ray engines; server
    engines finish the batch first)."""
    mask_stale_prefix: bool = False
    """Leave tokens written by older weights than a sample's newest out of the loss."""
    rollout_threads: int | None = None
    """Groups rolled out at once (default: the capacity, (eta + 1) * prompts_per_step, at
    most 64)."""
    workers: WorkerSettings = field(default_factory=WorkerSettings)


@dataclass
class MonitorSettings:
    hacking: str | None = None
    """Watch the run for reward hacking as it trains: "statistical" (the drift-and-payoff
    test of posttrain.monitor) or a chat-model spec (the LLM agent detector); None: off.
    Each step's rollouts are checked as they are scored; `monitor/*` metrics are logged and
    the first alert goes to `alerts.jsonl` in the run directory."""
    on_alert: Literal["continue", "stop"] = "continue"
    """stop: save a checkpoint and end the run at the step the alert is raised."""


@dataclass
class RLConfig:
    model: str | None = None
    """Policy model directory; None: the warm-start policy (built and cached on demand)."""
    warm_start: WarmStartConfig = field(default_factory=WarmStartConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rewards: list[str] = field(default_factory=lambda: ["exact_match"])
    """Registered reward names or dotted import paths (TRL reward-function signature)."""
    reward_weights: list[float] | None = None
    env: str | None = None
    """Multi-turn: a registered environment name or dotted path; its rewards add to `rewards`."""
    env_args: dict[str, Any] = field(default_factory=dict)
    max_turns: int = 4
    env_threads: int = 32
    """Environment steps of one turn run on this many threads (tools mostly wait)."""
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    aux: AuxConfig = field(default_factory=AuxConfig)
    """Multi-turn: EnvRL's state-prediction and inverse-dynamics losses (off by default)."""
    async_: AsyncSettings = field(default_factory=AsyncSettings)
    """`async:` in YAML and `--set async.eta=2`."""
    steps: int = 80
    prompts_per_step: int = 16
    mini_batches: int = 1
    """Optimizer steps per rollout batch (more than 1 makes later ones off-policy)."""
    micro_batch_size: int = 64
    """Samples per forward/backward pass; gradients accumulate over a mini-batch."""
    dynamic_sampling: bool = False
    """Drop groups whose rewards all agree and draw more prompts to refill the batch."""
    max_resample_rounds: int = 4
    log_rollouts: bool = False
    """Append every scored rollout to `rollouts.jsonl` in the run (for monitors)."""
    monitor: MonitorSettings = field(default_factory=MonitorSettings)
    eval_every: int = 10
    eval_size: int = 200
    log_every: int = 1
    """Log metrics (metrics.jsonl, trackers) every this many steps; TRL's logging_steps
    divided by mini_batches."""
    save_every: int = 20
    keep_checkpoints: int = 2
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    """accelerate's autocast for the policy's forward and backward (weights stay in
    `torch_dtype`); fp16 adds gradient scaling."""
    torch_dtype: Literal["auto", "float32", "bfloat16", "float16"] = "float32"
    """dtype the policy and reference are loaded in; auto: the checkpoint's own."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass (less memory, about a third more time)."""
    seed: int = 0
    run_name: str = "rl"
    report_to: list[str] = field(default_factory=list)
    """Trackers that also get every logged metric: tensorboard, trackio, wandb (empty: none)."""
    runs_root: str = "runs"

    @staticmethod
    def translate_keys(data: dict[str, Any]) -> dict[str, Any]:
        """TRL's GRPOConfig names (`num_generations`, `per_device_train_batch_size`, ...) as
        RLConfig keys, so a TRL GRPO YAML loads (see posttrain.rl.trl_names, docs/trl.md)."""
        from posttrain.rl.trl_names import from_trl

        return from_trl(data)
