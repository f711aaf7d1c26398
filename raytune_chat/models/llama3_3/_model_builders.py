"""Named Llama 3.3 presets: 3.3 70B has exactly Llama 3.1 70B's shapes (as in torchtune).

Build a big preset without allocating memory under ``torch.device("meta")`` (the recipe
loads real weights into it); ``qlora_*`` is ``lora_*`` with ``quantize_base=True``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from raytune_chat.models._builder import qlora_builder
from raytune_chat.models.llama3._component_builders import llama3, lora_llama3
from raytune_chat.modules import TransformerDecoder

__all__ = [
    "llama3_3_70b",
    "lora_llama3_3_70b",
    "qlora_llama3_3_70b",
]

_LLAMA3_3_70B: dict[str, Any] = dict(
    vocab_size=128_256,
    num_layers=80,
    num_heads=64,
    num_kv_heads=8,
    embed_dim=8192,
    max_seq_len=131_072,
    intermediate_dim=28_672,
    norm_eps=1e-5,
    rope_base=500_000.0,
    scale_factor=8,
)


def llama3_3_70b() -> TransformerDecoder:
    """Llama 3.3 70B: Llama 3.1 70B shapes (70,553,706,496 parameters).

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     model = llama3_3_70b()
        >>> sum(p.numel() for p in model.parameters())
        70553706496

        In YAML: ``model: {_component_: raytune_chat.models.llama3_3.llama3_3_70b}``
    """
    return llama3(**_LLAMA3_3_70B)


def lora_llama3_3_70b(
    lora_attn_modules: Collection[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Llama 3.3 70B with LoRA (or DoRA / QLoRA) on the chosen projections.

    Args:
        lora_attn_modules: Subset of ``{"q_proj", "k_proj", "v_proj", "output_proj"}``.
        apply_lora_to_mlp: Also adapt the MLP projections ``w1``, ``w2``, ``w3``.
        apply_lora_to_output: Also adapt the LM head.
        lora_rank: LoRA rank.
        lora_alpha: LoRA alpha (the update is scaled by ``alpha / rank``).
        lora_dropout: Adapter input dropout.
        use_dora: DoRA adapters (a trained per-row magnitude on top of LoRA).
        quantize_base: QLoRA: frozen base weights in NF4 (see ``qlora_llama3_3_70b``).

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     model = lora_llama3_3_70b(["q_proj", "v_proj"], use_dora=True)
        >>> type(model.layers[0].attn.q_proj).__name__
        'DoRALinear'

        In YAML::

            model:
              _component_: raytune_chat.models.llama3_3.lora_llama3_3_70b
              lora_attn_modules: [q_proj, v_proj, output_proj]
              apply_lora_to_mlp: True
              lora_rank: 8
              lora_alpha: 16
    """
    return lora_llama3(
        lora_attn_modules=lora_attn_modules,
        apply_lora_to_mlp=apply_lora_to_mlp,
        apply_lora_to_output=apply_lora_to_output,
        lora_rank=lora_rank,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        use_dora=use_dora,
        quantize_base=quantize_base,
        **_LLAMA3_3_70B,
    )


qlora_llama3_3_70b = qlora_builder(lora_llama3_3_70b)
