"""The top-level keys of a LoRA recipe config, with their defaults, and the `ray:` section.

Every key a config may hold is a field here or a `_component_` section checked against its
builder; anything else is an error naming the key. torchtune's keys keep their names.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from raytune_chat.config import ConfigError

__all__ = [
    "SECTIONS",
    "TORCHTUNE_KEYS_WITHOUT_EFFECT",
    "RaySettings",
    "RecipeSettings",
    "parse_settings",
]

# section -> (required, arguments the recipe passes itself)
SECTIONS: dict[str, tuple[bool, tuple[str, ...]]] = {
    "model": (True, ()),
    "tokenizer": (True, ()),
    "dataset": (True, ("tokenizer", "cache_path")),
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
    """

    num_workers: int = 1
    use_gpu: bool | str = "auto"
    resources_per_worker: dict[str, float] | None = None
    strategy: str = "ddp"
    storage_path: str | None = None
    name: str = "lora_finetune"
    max_failures: int = 0
    num_to_keep: int | None = 2


@dataclass(frozen=True)
class RecipeSettings:
    """Top-level scalar keys of the LoRA recipes (torchtune names and defaults).

    Beyond torchtune's: `max_steps` ends the run after that many optimizer steps and
    `max_trained_tokens` once that many tokens (all ranks) have been in the loss, whichever
    comes first, `epochs` still being an upper bound (torchtitan-style budgets);
    `log_row_ids` makes every rank write the row ids of each step to
    `<output_dir>/row_ids/rank_<r>.jsonl`.
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
    gradient_accumulation_steps: int = 1
    clip_grad_norm: float | None = None
    compile: bool = False
    dtype: str = "bf16"
    device: str = "cuda"
    enable_activation_checkpointing: bool = False
    enable_activation_offloading: bool = False
    log_every_n_steps: int = 1
    log_peak_memory_stats: bool = True
    save_every_n_steps: int | None = None
    save_adapter_weights_only: bool = False
    resume_from_checkpoint: bool = False
    ray: RaySettings = field(default_factory=RaySettings)


_CHOICES = {"dtype": ("bf16", "fp32", "fp16"), "device": ("cuda", "cpu")}
_RAY_CHOICES = {"strategy": ("ddp", "fsdp")}


def _check_type(key: str, value: Any, annotation: str) -> None:
    if value is None:
        if "None" not in annotation:
            raise ConfigError(key, "may not be null")
        return
    wants = {"int": int, "float": (int, float), "bool": bool, "str": str, "dict": dict}
    ok = [t for name, t in wants.items() if name in annotation.replace("None", "")]
    if isinstance(value, bool) and "bool" not in annotation:
        ok = []
    if ok and not isinstance(
        value, tuple(x for t in ok for x in (t if isinstance(t, tuple) else (t,)))
    ):
        raise ConfigError(key, f"expects {annotation}, got {type(value).__name__} {value!r}")


def _build(cls: type, values: dict[str, Any], prefix: str, choices: dict[str, tuple]) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"{prefix}{key}", f"unknown key; known keys: {', '.join(fields)}")
        if key != "ray":
            _check_type(f"{prefix}{key}", value, str(fields[key].type))
        if key in choices and value not in choices[key]:
            raise ConfigError(f"{prefix}{key}", f"must be one of {choices[key]}, got {value!r}")
    return cls(**values)


def parse_settings(cfg: dict[str, Any]) -> RecipeSettings:
    """Split a config into `RecipeSettings`; sections are left to `check_section`.

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
    ray = _build(RaySettings, ray_values, "ray.", _RAY_CHOICES)
    settings = _build(RecipeSettings, scalars, "", _CHOICES)
    for key in ("batch_size", "epochs", "gradient_accumulation_steps", "log_every_n_steps"):
        if getattr(settings, key) < 1:
            raise ConfigError(key, "must be at least 1")
    for key in ("max_steps_per_epoch", "max_steps", "max_trained_tokens"):
        if getattr(settings, key) is not None and getattr(settings, key) < 1:
            raise ConfigError(key, "must be at least 1 (or null)")
    if ray.num_workers < 1:
        raise ConfigError("ray.num_workers", "must be at least 1")
    return dataclasses.replace(settings, ray=ray)
