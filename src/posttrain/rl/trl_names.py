"""TRL's GRPOConfig names in `posttrain rl` configs, so a TRL GRPO YAML runs unchanged.

`from_trl(mapping)` rewrites the TRL names of a config mapping (the YAML file merged with the
`--set` overrides) into RLConfig keys before the mapping is typed. The table and the
reasoning behind each row are in docs/trl.md. Rules:

- a TRL name keeps TRL's meaning: batch sizes count completions per device, step counts
  count optimizer steps, `epsilon_high` defaults to `epsilon`;
- a TRL name and the posttrain key it maps to, given with different values, is an error;
- a TRL name with no posttrain equivalent is an error naming it, unless its value is what
  posttrain does anyway (`num_iterations: 1`, `use_vllm: false`, ...);
- names not given keep posttrain's defaults, not TRL's.
"""

from __future__ import annotations

import copy
from pathlib import PurePath
from typing import Any

from posttrain.config import ConfigError, set_dotted

_TRL_FIELDS = """
accelerator_config activation_checkpointing activation_checkpointing_kwargs adam_beta1
adam_beta2 adam_epsilon attn_implementation auto_find_batch_size
average_tokens_across_devices batch_eval_metrics beta bf16 bf16_full_eval
bnb_4bit_quant_storage bnb_4bit_quant_type cache_implementation cast_lm_head_to_fp32
chat_template_kwargs data_seed dataloader_drop_last dataloader_in_order
dataloader_multiprocessing_context dataloader_num_workers dataloader_persistent_workers
dataloader_pin_memory dataloader_prefetch_factor dataset_config dataset_name
dataset_streaming dataset_test_split dataset_train_split datasets ddp_backend
ddp_broadcast_buffers ddp_bucket_cap_mb ddp_find_unused_parameters ddp_static_graph
ddp_timeout debug deepspeed delta disable_dropout disable_tqdm do_eval do_predict do_train
ds3_gather_for_generation dtype enable_jit_checkpoint entropy_coef entropy_coef_delta
entropy_coef_max entropy_coef_min entropy_target epsilon epsilon_high
eval_accumulation_steps eval_delay eval_do_concat_batches eval_on_start eval_steps
eval_strategy eval_use_gather_object fp16 fp16_full_eval fsdp fsdp_config full_determinism
generation_batch_size generation_kwargs gradient_accumulation_steps gradient_checkpointing
gradient_checkpointing_kwargs greater_is_better hub_always_push hub_model_id
hub_private_repo hub_revision hub_strategy hub_token ignore_bias_buffers ignore_data_skip
importance_sampling_level include_for_metrics include_num_input_tokens_seen label_names
label_smoothing_factor learning_rate length_column_name liger_kernel_config
load_best_model_at_end load_in_4bit load_in_8bit local_rank log_completions
log_completions_hub_repo log_level log_level_replica log_multimodal log_on_each_node
log_unique_prompts logging_first_step logging_nan_inf_filter logging_steps logging_strategy
lora_alpha lora_dropout lora_modules_to_save lora_r lora_target_modules
lora_target_parameters lora_task_type loss_type lr_scheduler_kwargs lr_scheduler_type
mask_truncated_completions max_completion_length max_grad_norm max_steps
max_tool_calling_iterations metric_for_best_model min_p model_init_kwargs model_name_or_path
model_revision multi_objective_aggregation neftune_noise_alpha num_completions_to_print
num_generations num_generations_eval num_iterations num_train_epochs
off_policy_mask_threshold optim optim_args optim_target_modules output_dir
pad_to_multiple_of parallelism_config per_device_eval_batch_size per_device_train_batch_size
prediction_loss_only project push_to_hub ref_model_mixup_alpha ref_model_sync_steps
remove_unused_columns repetition_penalty report_to restore_callback_states_from_checkpoint
resume_from_checkpoint reward_funcs reward_model_name_or_path reward_weights
router_aux_loss_coef run_name sapo_temperature_neg sapo_temperature_pos save_on_each_node
save_only_model save_steps save_strategy save_total_limit scale_rewards seed shuffle_dataset
skip_memory_metrics steps_per_generation streaming sync_ref_model temperature
test_split_size tf32 top_entropy_quantile top_k top_p torch_compile torch_compile_backend
torch_compile_mode torch_empty_cache_steps trackio_bucket_id trackio_space_id
trackio_static_space_id train_sampling_strategy transformers_continuous_batching_config
trust_remote_code use_adaptive_entropy use_bias_correction_kl use_bnb_nested_quant use_cache
use_cpu use_dora use_liger_kernel use_peft use_rslora use_transformers_continuous_batching
use_transformers_paged use_vllm vespo_k_neg vespo_k_pos vespo_lambda_neg vespo_lambda_pos
vllm_enable_sleep_mode vllm_gpu_memory_utilization vllm_group_port
vllm_importance_sampling_cap vllm_importance_sampling_clip_max
vllm_importance_sampling_clip_min vllm_importance_sampling_correction
vllm_importance_sampling_mode vllm_max_model_length vllm_mode vllm_model_impl
vllm_server_base_url vllm_server_host vllm_server_port vllm_server_timeout
vllm_structured_outputs_regex vllm_tensor_parallel_size warmup_steps weight_decay
"""
TRL_NAMES = frozenset(_TRL_FIELDS.split())
"""Every field of TRL 1.16's GRPOConfig (with TrainingArguments), GRPOScriptArguments,
ModelConfig and DatasetMixtureConfig: what a `trl grpo --config` YAML may hold."""

SAME_NAME = frozenset({"seed", "run_name", "reward_weights", "gradient_checkpointing"})
"""Names posttrain spells the same way with the same meaning: left as they are."""

PROCESSES = "num_processes"
"""accelerate's process count (TRL takes it from the launcher); default 1."""

RENAMES: dict[str, tuple[str, str]] = {
    "num_generations": ("rollout.n", "int>=2"),
    "max_completion_length": ("rollout.max_tokens", "int>=1"),
    "temperature": ("rollout.temperature", "float>0"),
    "top_p": ("rollout.top_p", "prob"),
    "beta": ("loss.kl_coef", "float>=0"),
    "epsilon": ("loss.eps_low", "float>=0"),
    "epsilon_high": ("loss.eps_high", "float>=0"),
    "learning_rate": ("optim.lr", "float>0"),
    "weight_decay": ("optim.weight_decay", "float>=0"),
    "max_grad_norm": ("optim.max_grad_norm", "float>0"),
    "warmup_steps": ("optim.warmup_steps", "int>=0"),
    "lr_scheduler_type": ("optim.scheduler", "str"),
    "reward_funcs": ("rewards", "str-list"),
    "model_name_or_path": ("model", "str"),
    "use_peft": ("lora.enabled", "bool"),
    "lora_r": ("lora.r", "int>=1"),
    "lora_alpha": ("lora.alpha", "int>=1"),
    "lora_dropout": ("lora.dropout", "float>=0"),
    "lora_target_modules": ("lora.target_modules", "str-list"),
}
"""One TRL name -> one posttrain key, same meaning and unit."""

STEP_COUNTS = {
    "max_steps": "steps",
    "save_steps": "save_every",
    "logging_steps": "log_every",
    "eval_steps": "eval_every",
}
"""TRL counts optimizer steps, posttrain rollout batches (`mini_batches` optimizer steps each)."""

BATCH = (
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "steps_per_generation",
    "generation_batch_size",
    PROCESSES,
)

LOSS_TYPES = {
    "grpo": "seq-mean-token-mean",
    "dapo": "token-mean",
    "bnpo": "token-mean",
    "dr_grpo": "seq-mean-token-sum-norm",
}
"""TRL loss_type -> loss.aggregation (same clipped surrogate; only the normaliser differs)."""

NEUTRAL: dict[str, tuple[Any, ...]] = {
    "num_iterations": (1,),
    "use_vllm": (False,),
    "importance_sampling_level": ("token",),
    "multi_objective_aggregation": ("sum_then_normalize",),
    "mask_truncated_completions": (False,),
    "top_k": (0, None),
    "min_p": (None, 0, 0.0),
    "repetition_penalty": (1, 1.0),
    "delta": (None,),
    "sync_ref_model": (False,),
    "remove_unused_columns": (False,),
    "shuffle_dataset": (True,),
    "optim": ("adamw_torch", "adamw_torch_fused"),
    "push_to_hub": (False,),
    "eval_strategy": ("steps", "no"),  # "no" also sets eval_every: 0
    "save_strategy": ("steps", "no"),  # "no" also sets save_every: 0
    "logging_strategy": ("steps",),
}
"""TRL names accepted only with the value(s) that describe what posttrain does anyway."""

HINTS = {
    "dataset_name": "set data.train (and data.test) to local JSONL, parquet or datasets dirs",
    "dataset_train_split": "set data.train to the split's file",
    "dataset_test_split": "set data.test to the split's file",
    "datasets": "set data.train (and data.test) to local files",
    "num_train_epochs": "posttrain counts steps: set max_steps",
    "use_vllm": "posttrain rolls out itself; `async.workers.kind: server` uses "
    "OpenAI-compatible servers such as vLLM",
    "report_to": "name the trackers: tensorboard, trackio, wandb",
    "save_total_limit": "set keep_checkpoints",
    "num_iterations": "posttrain's mini_batches splits one rollout batch, it does not reuse it",
    "scale_rewards": "posttrain scales advantages by the group std or not at all",
}


def from_trl(data: dict[str, Any]) -> dict[str, Any]:
    """`data` with its TRL names rewritten as RLConfig keys (a new mapping; `data` unchanged).

    A mapping without TRL names comes back as it is. Raises ConfigError naming the TRL name
    for a bad value, a name with no posttrain equivalent, or a clash with a posttrain key.
    """
    names = [key for key in data if _is_trl(key, data[key])]
    if not names:
        return data
    return _Translation(data, names).result()


def _is_trl(key: Any, value: Any) -> bool:
    if key == "optim":  # posttrain's `optim` is a section; TRL's names the optimizer
        return not isinstance(value, dict)
    if key == "report_to":  # posttrain's is a list; TRL's may be one name or "none"
        return isinstance(value, str)
    return key == PROCESSES or (key in TRL_NAMES and key not in SAME_NAME)


class _Translation:
    """One pass over a mapping's TRL names; `result()` is the posttrain mapping."""

    def __init__(self, data: dict[str, Any], names: list[str]) -> None:
        self.source = data
        self.trl = {name: data[name] for name in names}
        self.out = copy.deepcopy({k: v for k, v in data.items() if k not in self.trl})

    def result(self) -> dict[str, Any]:
        handled = {*RENAMES, *STEP_COUNTS, *BATCH, *NEUTRAL, "loss_type", "scale_rewards"}
        handled |= {"adam_beta1", "adam_beta2", "output_dir", "report_to", "bf16", "fp16", "dtype"}
        missing = [name for name in self.trl if name not in handled]
        if missing:
            raise ConfigError("; ".join(_no_equivalent(name) for name in missing))
        for name, allowed in NEUTRAL.items():
            if name in self.trl and not any(_same(self.trl[name], a) for a in allowed):
                raise ConfigError(
                    f"{name}: {_yaml(self.trl[name])} has no posttrain equivalent; posttrain "
                    f"always behaves as {name}: {_yaml(allowed[0])}" + _hint(name)
                )
        for name, (key, kind) in RENAMES.items():
            if name in self.trl:
                self.put(key, _check(name, self.trl[name], kind), name)
        self._defaults_from_trl()
        self._precision()
        self._loss()
        self._optimizer_betas()
        self._output_dir()
        self._batch()
        self._step_counts()
        return self.out

    def put(self, key: str, value: Any, name: str) -> None:
        """Write `key`; a posttrain key given too must agree (checked against the input)."""
        given = _get(self.source, key)
        if given is not _MISSING and not _same(given, value):
            raise ConfigError(
                f"{name} and {key} set the same thing differently ({name} gives {key} = "
                f"{value!r}, {key} is {given!r}); keep one of them"
            )
        set_dotted(self.out, key, value)

    def _defaults_from_trl(self) -> None:
        """TRL's epsilon_high defaults to epsilon (a symmetric clip), unlike posttrain's 0.28."""
        if (
            "epsilon" in self.trl
            and "epsilon_high" not in self.trl
            and _get(self.source, "loss.eps_high") is _MISSING
        ):
            self.put("loss.eps_high", _check("epsilon", self.trl["epsilon"], "float>=0"), "epsilon")

    def _precision(self) -> None:
        """bf16/fp16 -> mixed_precision, dtype -> torch_dtype; report_to "none" -> []."""
        if "report_to" in self.trl:
            tracker = self.trl["report_to"]
            if tracker == "all":
                hint = _hint("report_to")
                raise ConfigError(f"report_to: 'all' has no posttrain equivalent{hint}")
            self.out["report_to"] = [] if tracker == "none" else [tracker]
        flags = {n: _check(n, self.trl[n], "bool") for n in ("bf16", "fp16") if n in self.trl}
        if flags.get("bf16") and flags.get("fp16"):
            raise ConfigError("bf16 and fp16 are both true; choose one")
        if flags:
            mode = "bf16" if flags.get("bf16") else "fp16" if flags.get("fp16") else "no"
            self.put("mixed_precision", mode, "/".join(flags))
        if "dtype" in self.trl:
            dtype = self.trl["dtype"]
            if dtype not in ("auto", "float32", "bfloat16", "float16"):
                raise ConfigError(
                    f"dtype: expected auto, float32, bfloat16 or float16, got {dtype!r}"
                )
            self.put("torch_dtype", dtype, "dtype")

    def _loss(self) -> None:
        if "loss_type" in self.trl:
            value = self.trl["loss_type"]
            if value not in LOSS_TYPES:
                raise ConfigError(
                    f"loss_type: {value!r} has no posttrain aggregation (supported: "
                    f"{', '.join(LOSS_TYPES)}; cispo, sapo, luspo and vespo change the "
                    "surrogate itself)"
                )
            self.put("loss.aggregation", LOSS_TYPES[value], "loss_type")
        if "scale_rewards" in self.trl:
            value = self.trl["scale_rewards"]
            scale = {True: True, "group": True, False: False, "none": False}
            if isinstance(value, str | bool) and value in scale:
                self.put("loss.scale_advantages", scale[value], "scale_rewards")
            elif value == "batch":
                raise ConfigError(
                    "scale_rewards: 'batch' has no posttrain equivalent" + _hint("scale_rewards")
                )
            else:
                raise ConfigError(
                    "scale_rewards: expected true, false, 'group', 'batch' or 'none', "
                    f"got {value!r}"
                )

    def _optimizer_betas(self) -> None:
        """adam_beta1/adam_beta2 -> optim.betas; the one not given keeps posttrain's value."""
        given = [n for n in ("adam_beta1", "adam_beta2") if n in self.trl]
        if not given:
            return
        current = _get(self.out, "optim.betas")
        betas = list(current) if isinstance(current, list | tuple) else [0.9, 0.99]
        for index, name in enumerate(("adam_beta1", "adam_beta2")):
            if name in self.trl:
                betas[index] = _check(name, self.trl[name], "prob")
        self.put("optim.betas", betas, "/".join(given))

    def _output_dir(self) -> None:
        """TRL writes to output_dir; posttrain to runs_root/run_name."""
        if "output_dir" not in self.trl:
            return
        path = PurePath(_check("output_dir", self.trl["output_dir"], "str"))
        if not path.name:
            raise ConfigError(f"output_dir: {self.trl['output_dir']!r} names no directory")
        self.put("runs_root", str(path.parent), "output_dir")
        self.put("run_name", path.name, "output_dir")

    def _batch(self) -> None:
        """TRL's generation batch (completions, all processes) -> posttrain's rollout batch.

        TRL generates per_device_train_batch_size x processes x steps_per_generation
        completions at once (steps_per_generation defaults to gradient_accumulation_steps,
        or comes from generation_batch_size) and takes one optimizer step per
        gradient_accumulation_steps micro-steps of per_device_train_batch_size each.
        """
        given = [name for name in BATCH if name in self.trl]
        if not given:
            return
        label = "/".join(given)
        device = self._int("per_device_train_batch_size", 8)
        accumulation = self._int("gradient_accumulation_steps", 1)
        processes = self._int(PROCESSES, 1)
        if "steps_per_generation" in self.trl and "generation_batch_size" in self.trl:
            raise ConfigError(
                "steps_per_generation and generation_batch_size cannot both be set (as in TRL)"
            )
        if "generation_batch_size" in self.trl:
            total = self._int("generation_batch_size", 0)
            if total % (device * processes):
                raise ConfigError(
                    f"generation_batch_size: {total} is not a multiple of "
                    f"per_device_train_batch_size x processes = {device * processes}"
                )
            per_generation = total // (device * processes)
        else:
            per_generation = self._int("steps_per_generation", accumulation)
            total = device * processes * per_generation
        group = _get(self.out, "rollout.n")
        group = group if isinstance(group, int) and not isinstance(group, bool) else 8
        if total % group:
            raise ConfigError(
                f"{label}: a generation batch of {total} completions (per_device_train_batch_size"
                f" {device} x processes {processes} x steps_per_generation {per_generation}) is "
                f"not a whole number of groups of num_generations = {group}"
            )
        if per_generation % accumulation:
            raise ConfigError(
                f"{label}: steps_per_generation ({per_generation}) must be a multiple of "
                f"gradient_accumulation_steps ({accumulation}): an optimizer step spanning two "
                "rollout batches has no posttrain equivalent"
            )
        self.put("prompts_per_step", total // group, label)
        self.put("mini_batches", per_generation // accumulation, label)
        if "per_device_train_batch_size" in self.trl:
            self.put("micro_batch_size", device, "per_device_train_batch_size")

    def _step_counts(self) -> None:
        mini = _get(self.out, "mini_batches")
        mini = mini if isinstance(mini, int) and not isinstance(mini, bool) and mini > 0 else 1
        for name, key in STEP_COUNTS.items():
            if name not in self.trl:
                continue
            # 0 turns posttrain's evaluation or saving off; steps and logging need at least 1
            minimum = "int>=0" if name in ("save_steps", "eval_steps") else "int>=1"
            count = _check(name, self.trl[name], minimum)
            if count % mini:
                raise ConfigError(
                    f"{name}: {count} optimizer steps is not a whole number of rollout batches "
                    f"of {mini} optimizer steps each (mini_batches); use a multiple of {mini}"
                )
            self.put(key, count // mini, name)
        for name, key in (("eval_strategy", "eval_every"), ("save_strategy", "save_every")):
            if self.trl.get(name) == "no":
                self.put(key, 0, name)

    def _int(self, name: str, default: int) -> int:
        if name not in self.trl:
            return default
        return _check(name, self.trl[name], "int>=1")


_MISSING = object()


def _get(data: dict[str, Any], key: str) -> Any:
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _number(value: Any) -> float | None:
    """A YAML number (YAML 1.1 reads `3e-4` as a string, so strings count too)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    x, y = _number(a), _number(b)
    if x is not None and y is not None and not (isinstance(a, str) and isinstance(b, str)):
        return x == y
    return a == b


_NUMBER_KINDS = {
    "float>=0": ("a number >= 0", lambda x: x >= 0),
    "float>0": ("a number > 0", lambda x: x > 0),
    "prob": ("a number in (0, 1]", lambda x: 0 < x <= 1),
}


def _check(name: str, value: Any, kind: str) -> Any:
    """`value` of TRL name `name` as the type `kind` describes, or a ConfigError naming it."""
    if kind.startswith("int"):
        low = int(kind.removeprefix("int>="))
        if isinstance(value, int) and not isinstance(value, bool) and value >= low:
            return value
        raise ConfigError(f"{name}: expected an integer >= {low}, got {value!r}")
    if kind in _NUMBER_KINDS:
        wanted, accepts = _NUMBER_KINDS[kind]
        number = _number(value)
        if number is not None and accepts(number):
            return number
        raise ConfigError(f"{name}: expected {wanted}, got {value!r}")
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{name}: expected true or false, got {value!r}")
    if kind == "str":
        if isinstance(value, str) and value:
            return value
        raise ConfigError(f"{name}: expected a non-empty string, got {value!r}")
    if kind == "str-list":
        items = [value] if isinstance(value, str) else value
        if isinstance(items, list) and items and all(isinstance(v, str) and v for v in items):
            return list(items)
        raise ConfigError(f"{name}: expected a list of names, got {value!r}")
    raise AssertionError(kind)


def _no_equivalent(name: str) -> str:
    return f"{name}: a TRL setting with no posttrain equivalent" + _hint(name)


def _hint(name: str) -> str:
    return f" ({HINTS[name]})" if name in HINTS else ""


def _yaml(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return str(value)
