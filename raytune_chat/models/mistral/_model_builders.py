"""Named Mistral presets: Mistral 7B v0.1 shapes (grouped-query attention, 32K positions).

Build a big preset without allocating memory under ``torch.device("meta")`` (the recipe
loads real weights into it); ``qlora_*`` is ``lora_*`` with ``quantize_base=True``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from raytune_chat.models._builder import qlora_builder
from raytune_chat.models.mistral._component_builders import lora_mistral, mistral
from raytune_chat.modules import TransformerDecoder

__all__ = [
    "mistral_7b",
    "lora_mistral_7b",
    "qlora_mistral_7b",
]

_MISTRAL_7B: dict[str, Any] = dict(
    vocab_size=32_000,
    num_layers=32,
    num_heads=32,
    num_kv_heads=8,
    embed_dim=4096,
    max_seq_len=32_768,
    intermediate_dim=14_336,
    norm_eps=1e-5,
    rope_base=10_000.0,
)


def mistral_7b() -> TransformerDecoder:
    """Mistral 7B (7,241,732,096 parameters).

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     model = mistral_7b()
        >>> sum(p.numel() for p in model.parameters())
        7241732096

        In YAML: ``model: {_component_: raytune_chat.models.mistral.mistral_7b}``
    """
    return mistral(**_MISTRAL_7B)


def lora_mistral_7b(
    lora_attn_modules: Collection[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Mistral 7B with LoRA (or DoRA / QLoRA) on the chosen projections.

    Args:
        lora_attn_modules: Subset of ``{"q_proj", "k_proj", "v_proj", "output_proj"}``.
        apply_lora_to_mlp: Also adapt the MLP projections ``w1``, ``w2``, ``w3``.
        apply_lora_to_output: Also adapt the LM head.
        lora_rank: LoRA rank.
        lora_alpha: LoRA alpha (the update is scaled by ``alpha / rank``).
        lora_dropout: Adapter input dropout.
        use_dora: DoRA adapters (a trained per-row magnitude on top of LoRA).
        quantize_base: QLoRA: frozen base weights in NF4 (see ``qlora_mistral_7b``).

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     model = lora_mistral_7b(["q_proj", "v_proj"], use_dora=True)
        >>> type(model.layers[0].attn.q_proj).__name__
        'DoRALinear'

        In YAML::

            model:
              _component_: raytune_chat.models.mistral.lora_mistral_7b
              lora_attn_modules: [q_proj, v_proj, output_proj]
              apply_lora_to_mlp: True
              lora_rank: 8
              lora_alpha: 16
    """
    return lora_mistral(
        lora_attn_modules=lora_attn_modules,
        apply_lora_to_mlp=apply_lora_to_mlp,
        apply_lora_to_output=apply_lora_to_output,
        lora_rank=lora_rank,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        use_dora=use_dora,
        quantize_base=quantize_base,
        **_MISTRAL_7B,
    )


qlora_mistral_7b = qlora_builder(lora_mistral_7b)
