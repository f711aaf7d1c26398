"""How a LoRA recipe reads its config: the sections, the top-level keys and the `ray:` section.

`raytune_chat.config` checks each `_component_` section against its builder's signature; what
it cannot know is which sections a recipe needs, which arguments the recipe passes itself, and
the top-level scalars (`epochs`, `batch_size`, ...), which belong to no builder. Those live
here, once for every recipe. Every key a config may hold is a field here or a section; anything
else is an error naming the key. torchtune's keys keep their names.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from raytune_chat.config import ConfigError, check_section
from raytune_chat.training.checkpointing._checkpointer import RESUME_HINT

__all__ = [
    "SECTIONS",
    "TORCHTUNE_KEYS_WITHOUT_EFFECT",
    "RaySettings",
    "RecipeSettings",
    "RESUME_WARNING",
    "build_settings",
    "parse_settings",
    "validate_config",
]

# section -> (required, arguments the recipe passes itself)
SECTIONS: dict[str, tuple[bool, tuple[str, ...]]] = {
    "model": (True, ()),
    "tokenizer": (True, ()),
    "dataset": (True, ("tokenizer", "cache_path")),
    "dataset_val": (False, ("tokenizer", "cache_path")),
    "optimizer": (True, ("params",)),
    "lr_scheduler": (False, ("optimizer", "num_training_steps")),
    "loss": (True, ()),
    "checkpointer": (False, ()),
    "metric_logger": (False, ()),
    "profiler": (False, ()),
}


# --- torchtune recipe keys accepted without effect (issue 12) --------------------------------
# Keys of torchtune 0.6.1's LoRA recipes that mean nothing here; `validate_config` prints one
# warning line per key present, and `parse_settings` skips them, so a torchtune config runs.
TORCHTUNE_KEYS_WITHOUT_EFFECT: dict[str, str] = {
    "low_cpu_ram": "base weights already stream tensor by tensor into the model (NF4 for QLoRA)",
    "fsdp": "FSDP is chosen with ray.strategy: fsdp (no CPU offload)",
    "fsdp_cpu_offload": "FSDP is chosen with ray.strategy: fsdp (no CPU offload)",
    "fsdp_reshard_after_forward": "ray.strategy: fsdp always reshards after forward",
    "custom_sharded_layers": "ray.strategy: fsdp shards the whole model, not chosen layers",
    "cudnn_deterministic_mode": "seeding is set by `seed`; cuDNN algorithms are left to torch",
    "collate_fn": "chat_dataset collates its batches (padded, or packed with packed: True)",
}
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RaySettings:
    """The `ray:` section: how many workers, on what, and where runs are stored.

    Attributes:
        num_workers: training workers (processes); more than one trains data-parallel.
        use_gpu: True, False or "auto" (GPU when the cluster has one and `device` is cuda).
        resources_per_worker: Ray resources per worker, e.g. ``{CPU: 4, GPU: 1}``.
        strategy: "ddp" (default) or "fsdp" (shards the model for models too big for a GPU).
        storage_path: where Ray Train keeps checkpoints (local folder or ``s3://...``);
            None means ``<output_dir>/ray_results``.
        name: run name under `storage_path`; rerunning the same name resumes it.
        max_failures: worker failures to recover from automatically (-1 = unlimited).
        num_to_keep: checkpoints kept in storage (None = all).
        label_selector: node labels the workers must run on (Ray's `ScalingConfig.label_selector`):
            one ``{label: value}`` for every worker, or a list with one per worker whose
            first entry places rank 0 (``[{zone: a}, {zone: b}]``: rank 0 on a node started
            with ``--labels zone=a``, rank 1 on one with ``zone=b``).
    """

    num_workers: int = 1
    use_gpu: bool | Literal["auto"] = "auto"
    resources_per_worker: dict[str, float] | None = None
    strategy: Literal["ddp", "fsdp"] = "ddp"
    storage_path: str | None = None
    name: str = "lora_finetune"
    max_failures: int = 0
    num_to_keep: int | None = 2
    label_selector: dict[str, str] | list[dict[str, str]] | None = None


@dataclass(frozen=True)
class RecipeSettings:
    """Top-level scalar keys of the LoRA recipes (torchtune names and defaults).

    Beyond torchtune's: `max_steps` ends the run after that many optimizer steps and
    `max_trained_tokens` once that many tokens (all ranks) have been in the loss, whichever
    comes first, `epochs` still being an upper bound (torchtitan-style budgets);
    `log_row_ids` makes every rank write the row ids of each step to
    `<output_dir>/row_ids/rank_<r>.jsonl`; `eval_generate_n` (0 = off) is how many
    validation prompts (first user turn) are generated from greedily at the end of the run,
    up to `eval_max_new_tokens` tokens each, to report the share that ends with a stop token
    (`raytune_chat.generation.stop_token_share`; needs a validation set).

    Validation (torchtune's names): with a `dataset_val` section the validation loss is
    computed at the end of the run and, with `run_val_every_n_steps`, every that many
    optimizer steps, over at most `max_validation_steps` batches per rank (None: all rows).

    `resume_from_checkpoint` is accepted but does nothing: Ray Train resumes a run from its
    latest checkpoint whenever it is started again with the same `ray.name` and
    `ray.storage_path` (True prints a warning saying so).
    """

    output_dir: str
    seed: int | None = None
    shuffle: bool = True
    batch_size: int = 2
    epochs: int = 1
    max_steps_per_epoch: int | None = None
    max_steps: int | None = None
    max_trained_tokens: int | None = None
    log_row_ids: bool = False
    eval_generate_n: int = 0
    eval_max_new_tokens: int = 64
    gradient_accumulation_steps: int = 1
    clip_grad_norm: float | None = None
    compile: bool = False
    dtype: Literal["bf16", "fp32", "fp16"] = "bf16"
    device: Literal["cuda", "cpu"] = "cuda"
    enable_activation_checkpointing: bool = False
    enable_activation_offloading: bool = False
    log_every_n_steps: int = 1
    log_peak_memory_stats: bool = True
    save_every_n_steps: int | None = None
    save_adapter_weights_only: bool = False
    run_val_every_n_steps: int | None = None
    max_validation_steps: int | None = None
    resume_from_checkpoint: bool = False  # accepted for torchtune; resuming is automatic
    ray: RaySettings = field(default_factory=RaySettings)


def _allowed(hint: Any) -> tuple[tuple[type, ...], tuple[Any, ...]]:
    """The types and the literal values a field's type hint allows."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    args = typing.get_args(hint) if union else (hint,)
    kinds: list[type] = []
    values: list[Any] = []
    for arg in args:
        if typing.get_origin(arg) is Literal:
            values += typing.get_args(arg)
        else:
            kinds.append(typing.get_origin(arg) or arg)
    if float in kinds:
        kinds.append(int)
    return tuple(kinds), tuple(values)


def _check(key: str, value: Any, hint: Any) -> None:
    kinds, values = _allowed(hint)
    if value in values and not isinstance(value, bool):
        return
    if value is None and type(None) not in kinds:
        raise ConfigError(key, "may not be null")
    # bool is an int to Python, never to a config: `epochs: True` is a mistake
    if isinstance(value, kinds) and (not isinstance(value, bool) or bool in kinds):
        return
    if values and not kinds:
        raise ConfigError(key, f"must be one of {values}, got {value!r}")
    names = [k.__name__ for k in kinds if k is not type(None) and not (k is int and float in kinds)]
    wanted = " or ".join([*names, *map(repr, values)])
    raise ConfigError(key, f"expects {wanted}, got {type(value).__name__} {value!r}")


def _build(cls: type, values: dict[str, Any], prefix: str) -> Any:
    """`cls(**values)` after checking each key against the dataclass's fields and hints."""
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        if key not in hints:
            raise ConfigError(f"{prefix}{key}", f"unknown key; known keys: {', '.join(hints)}")
        if key != "ray":
            _check(f"{prefix}{key}", value, hints[key])
    return cls(**values)


def build_settings(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    """`cls(**values)` for a settings dataclass, each key checked against its fields and
    type hints (the generation recipes' settings use it too).

    Raises:
        ConfigError: naming an unknown key (with `prefix`) or a value of the wrong type.

    Example:
        >>> build_settings(RaySettings, {"num_workers": 2}, "ray.").num_workers
        2
    """
    return _build(cls, values, prefix)


def parse_settings(cfg: dict[str, Any]) -> RecipeSettings:
    """Split a config into `RecipeSettings`; sections are left to `validate_config`.

    Raises:
        ConfigError: naming an unknown top-level key, a bad value, or a missing section.

    Example:
        >>> s = parse_settings({"output_dir": "/tmp/o", "epochs": 3, "ray": {"num_workers": 2},
        ...                     "model": {}, "tokenizer": {}, "dataset": {}, "optimizer": {},
        ...                     "loss": {}})
        >>> s.epochs, s.ray.num_workers, s.batch_size
        (3, 2, 2)
    """
    for name, (required, _) in SECTIONS.items():
        if required and name not in cfg:
            raise ConfigError(name, "required section is missing")
    scalars = {
        k: v for k, v in cfg.items() if k not in SECTIONS and k not in TORCHTUNE_KEYS_WITHOUT_EFFECT
    }
    if "output_dir" not in scalars:
        raise ConfigError("output_dir", "required key is missing")
    ray_values = scalars.pop("ray", None) or {}
    if not isinstance(ray_values, dict):
        raise ConfigError("ray", "must be a section")
    ray = _build(RaySettings, ray_values, "ray.")
    settings = _build(RecipeSettings, scalars, "")
    for key in ("batch_size", "epochs", "gradient_accumulation_steps", "log_every_n_steps"):
        if getattr(settings, key) < 1:
            raise ConfigError(key, "must be at least 1")
    if settings.eval_generate_n < 0:
        raise ConfigError("eval_generate_n", "must be at least 0 (0 = no stop share)")
    if settings.eval_max_new_tokens < 1:
        raise ConfigError("eval_max_new_tokens", "must be at least 1")
    for key in (
        "max_steps_per_epoch",
        "max_steps",
        "max_trained_tokens",
        "run_val_every_n_steps",
        "max_validation_steps",
    ):
        if getattr(settings, key) is not None and getattr(settings, key) < 1:
            raise ConfigError(key, "must be at least 1 (or null)")
    if ray.num_workers < 1:
        raise ConfigError("ray.num_workers", "must be at least 1")
    return dataclasses.replace(settings, ray=ray)


def _check_validation_keys(cfg: dict[str, Any], settings: RecipeSettings) -> None:
    if cfg.get("dataset_val") is None:
        for key in ("run_val_every_n_steps", "max_validation_steps"):
            if getattr(settings, key) is not None:
                raise ConfigError(key, "needs a dataset_val section (the validation rows)")
        if settings.eval_generate_n:
            raise ConfigError("eval_generate_n", "needs a dataset_val section (its prompts)")


RESUME_WARNING = (
    "raytune-chat: warning: `resume_from_checkpoint` has no effect: a run resumes from its "
    "latest checkpoint by itself when rerun with the same ray.name and ray.storage_path; "
    "to start afresh, use a new ray.name"
)


def validate_config(cfg: dict[str, Any], *, max_workers: int | None = None) -> RecipeSettings:
    """Bind every `_component_` section to its callable's signature and check the top-level keys.

    Nothing is built or called. Errors name the offending key. Each torchtune key that has
    no effect here (`TORCHTUNE_KEYS_WITHOUT_EFFECT`, and `resume_from_checkpoint: True`) gets
    one warning line on stderr.

    Args:
        cfg: a loaded config (overrides applied, `${...}` resolved).
        max_workers: the most `ray.num_workers` the recipe allows (1 for single device).

    Returns:
        The parsed top-level settings.

    Raises:
        ConfigError: naming the first offending key.

    Example:
        >>> from raytune_chat.config import load_config
        >>> validate_config(load_config("tiny/llama3_lora_cpu")).device
        'cpu'
    """
    settings = parse_settings(cfg)
    for key in cfg:
        if key in TORCHTUNE_KEYS_WITHOUT_EFFECT:
            reason = TORCHTUNE_KEYS_WITHOUT_EFFECT[key]
            print(f"raytune-chat: warning: `{key}` has no effect: {reason}", file=sys.stderr)
    if settings.resume_from_checkpoint:
        print(RESUME_WARNING, file=sys.stderr)
    for name, (required, provided) in SECTIONS.items():
        section = cfg.get(name)
        if section is None and not required:
            continue
        check_section(section, key=name, provided=provided)
    for key in ("adapter_checkpoint", "recipe_checkpoint"):  # torchtune's, accepted as null
        if (cfg.get("checkpointer") or {}).get(key) is not None:
            raise ConfigError(f"checkpointer.{key}", RESUME_HINT)
    _check_validation_keys(cfg, settings)
    if settings.enable_activation_offloading:
        raise ConfigError("enable_activation_offloading", "is not supported yet; set it to False")
    if max_workers is not None and settings.ray.num_workers > max_workers:
        raise ConfigError(
            "ray.num_workers",
            f"this recipe runs at most {max_workers} worker(s); use lora_finetune_distributed",
        )
    return settings
