"""The final outputs of a LoRA run in `output_dir`: the PEFT adapter and optional merged weights.

With a checkpointer the files are written through it (torchtune 0.6.1's layout,
`<checkpointer.output_dir>/epoch_<n>/`). Without one (random init) there are no base weights
to merge, and the adapter is written in PEFT format to `<output_dir>/epoch_<n>/` directly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from raytune_chat.models import convert_weights
from raytune_chat.modules.peft import (
    get_adapter_state_dict,
    get_lora_module_names,
    get_merged_lora_ckpt,
)
from raytune_chat.training.checkpointing import ADAPTER_CONFIG_FNAME, ADAPTER_MODEL_FNAME
from raytune_chat.training.checkpointing._files import write_weights
from raytune_chat.training.recipe_config import RecipeSettings

__all__ = ["adapter_config", "save_final_outputs", "write_peft_adapter"]


def adapter_config(model: nn.Module, model_cfg: dict[str, Any]) -> dict[str, Any]:
    """torchtune's adapter config (`r`, `lora_alpha`, `target_modules`, `peft_type`), plus
    `use_dora` for DoRA adapters (PEFT's flag)."""
    lora = next(m for m in model.modules() if hasattr(m, "lora_a"))
    dora = {"use_dora": True} if hasattr(lora, "magnitude") else {}
    return {
        "r": lora.rank,
        "lora_alpha": lora.alpha,
        "target_modules": get_lora_module_names(
            model_cfg.get("lora_attn_modules", []),
            bool(model_cfg.get("apply_lora_to_mlp", False)),
            bool(model_cfg.get("apply_lora_to_output", False)),
        ),
        "peft_type": "LORA",
        **dora,
    }


def _write_peft(
    model: nn.Module, adapter_sd: dict[str, Any], config: dict[str, Any], out: Path
) -> None:
    attn = model.layers[0].attn
    peft_sd = convert_weights.tune_to_peft_adapter_weights(
        adapter_sd,
        num_heads=attn.num_heads,
        num_kv_heads=attn.num_kv_heads,
        dim=attn.embed_dim,
        head_dim=attn.head_dim,
    )
    out.mkdir(parents=True, exist_ok=True)
    write_weights(peft_sd, out / f"{ADAPTER_MODEL_FNAME}.safetensors")
    peft_config = convert_weights.tune_to_peft_adapter_config(config, base_model_name_or_path=None)
    (out / ADAPTER_CONFIG_FNAME).write_text(json.dumps(peft_config, indent=2))


def write_peft_adapter(
    model: nn.Module,
    model_cfg: dict[str, Any],
    out: Path,
    *,
    state: dict[str, Any] | None = None,
) -> Path:
    """Write the model's LoRA adapter in PEFT format into `out`; return `out`.

    `state`: full tensors to write instead of the model's own (an FSDP model's gathered
    adapter, see `raytune_chat.training._fsdp.full_adapter_state`).
    """
    if state is None:
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    _write_peft(model, get_adapter_state_dict(state), adapter_config(model, model_cfg), out)
    return out


def save_final_outputs(
    model: nn.Module,
    checkpointer: Any,
    cfg: dict[str, Any],
    settings: RecipeSettings,
    *,
    epoch: int,
    state: dict[str, Any] | None = None,
) -> Path:
    """Write the PEFT adapter, plus merged weights unless `save_adapter_weights_only`.

    Args:
        state: the model's full state dict to write instead of ``model.state_dict()`` (an
            FSDP model's, gathered on rank 0 by `full_model_state`).

    Returns:
        The folder holding the adapter.
    """
    if state is None:
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    adapter_sd = get_adapter_state_dict(state)
    config = adapter_config(model, cfg["model"])
    if checkpointer is None:
        out = Path(settings.output_dir) / f"epoch_{epoch}"
        _write_peft(model, adapter_sd, config, out)
        return out
    payload: dict[str, Any] = {"adapter": adapter_sd, "adapter_config": config}
    if not settings.save_adapter_weights_only:
        payload["model"] = get_merged_lora_ckpt(state, rank=config["r"], alpha=config["lora_alpha"])
    checkpointer.save_checkpoint(
        payload, epoch=epoch, adapter_only=settings.save_adapter_weights_only
    )
    return Path(cfg["checkpointer"]["output_dir"]) / f"epoch_{epoch}"
