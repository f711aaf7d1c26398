"""Named Llama 2 presets: MHA (grouped KV at 70B only), RoPE base 10,000, vocabulary 32,000.

Build a big preset without allocating memory under ``torch.device("meta")`` (the recipe
loads real weights into it); ``qlora_*`` is ``lora_*`` with ``quantize_base=True``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from raytune_chat.models._builder import qlora_builder
from raytune_chat.models.llama2._component_builders import llama2, lora_llama2
from raytune_chat.modules import TransformerDecoder

__all__ = [
    "llama2_7b",
    "lora_llama2_7b",
    "qlora_llama2_7b",
    "llama2_13b",
    "lora_llama2_13b",
    "qlora_llama2_13b",
    "llama2_70b",
    "lora_llama2_70b",
    "qlora_llama2_70b",
]

_LLAMA2_7B: dict[str, Any] = dict(
    vocab_size=32_000,
    num_layers=32,
    num_heads=32,
    num_kv_heads=32,
    embed_dim=4096,
    max_seq_len=4096,
    intermediate_dim=11_008,
    norm_eps=1e-5,
)

_LLAMA2_13B: dict[str, Any] = dict(
    vocab_size=32_000,
    num_layers=40,
    num_heads=40,
    num_kv_heads=40,
    embed_dim=5120,
    max_seq_len=4096,
    intermediate_dim=13_824,
    norm_eps=1e-5,
)

_LLAMA2_70B: dict[str, Any] = dict(
    vocab_size=32_000,
    num_layers=80,
    num_heads=64,
    num_kv_heads=8,
    embed_dim=8192,
    max_seq_len=4096,
    intermediate_dim=28_672,
    norm_eps=1e-5,
)


def llama2_7b() -> TransformerDecoder:
    """Llama 2 7B (6,738,415,616 parameters, 4K context).

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     model = llama2_7b()
        >>> sum(p.numel() for p in model.parameters())
        6738415616

        In YAML: ``model: {_component_: raytune_chat.models.llama2.llama2_7b}``
    """
    return llama2(**_LLAMA2_7B)


def lora_llama2_7b(
    lora_attn_modules: Collection[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Llama 2 7B with LoRA (or DoRA / QLoRA) on the chosen projections.

    Args:
        lora_attn_modules: Subset of ``{"q_proj", "k_proj", "v_proj", "output_proj"}``.
        apply_lora_to_mlp: Also adapt the MLP projections ``w1``, ``w2``, ``w3``.
        apply_lora_to_output: Also adapt the LM head.
        lora_rank: LoRA rank.
        lora_alpha: LoRA alpha (the update is scaled by ``alpha / rank``).
        lora_dropout: Adapter input dropout.
        use_dora: DoRA adapters (a trained per-row magnitude on top of LoRA).
        quantize_base: QLoRA: frozen base weights in NF4 (see ``qlora_llama2_7b``).

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     model = lora_llama2_7b(["q_proj", "v_proj"], use_dora=True)
        >>> type(model.layers[0].attn.q_proj).__name__
        'DoRALinear'

        In YAML::

            model:
              _component_: raytune_chat.models.llama2.lora_llama2_7b
              lora_attn_modules: [q_proj, v_proj, output_proj]
              apply_lora_to_mlp: True
              lora_rank: 8
              lora_alpha: 16
    """
    return lora_llama2(
        lora_attn_modules=lora_attn_modules,
        apply_lora_to_mlp=apply_lora_to_mlp,
        apply_lora_to_output=apply_lora_to_output,
        lora_rank=lora_rank,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        use_dora=use_dora,
        quantize_base=quantize_base,
        **_LLAMA2_7B,
    )


qlora_llama2_7b = qlora_builder(lora_llama2_7b)


def llama2_13b() -> TransformerDecoder:
    """Llama 2 13B (13,015,864,320 parameters).

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     model = llama2_13b()
        >>> sum(p.numel() for p in model.parameters())
        13015864320

        In YAML: ``model: {_component_: raytune_chat.models.llama2.llama2_13b}``
    """
    return llama2(**_LLAMA2_13B)


def lora_llama2_13b(
    lora_attn_modules: Collection[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Llama 2 13B with LoRA (or DoRA / QLoRA) on the chosen projections.

    Arguments as :func:`lora_llama2_7b`.

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     model = lora_llama2_13b(["q_proj", "v_proj"], use_dora=True)
        >>> type(model.layers[0].attn.q_proj).__name__
        'DoRALinear'

        In YAML::

            model:
              _component_: raytune_chat.models.llama2.lora_llama2_13b
              lora_attn_modules: [q_proj, v_proj, output_proj]
              apply_lora_to_mlp: True
              lora_rank: 8
              lora_alpha: 16
    """
    return lora_llama2(
        lora_attn_modules=lora_attn_modules,
        apply_lora_to_mlp=apply_lora_to_mlp,
        apply_lora_to_output=apply_lora_to_output,
        lora_rank=lora_rank,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        use_dora=use_dora,
        quantize_base=quantize_base,
        **_LLAMA2_13B,
    )


qlora_llama2_13b = qlora_builder(lora_llama2_13b)


def llama2_70b() -> TransformerDecoder:
    """Llama 2 70B (68,976,648,192 parameters, 8 KV heads).

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     model = llama2_70b()
        >>> sum(p.numel() for p in model.parameters())
        68976648192

        In YAML: ``model: {_component_: raytune_chat.models.llama2.llama2_70b}``
    """
    return llama2(**_LLAMA2_70B)


def lora_llama2_70b(
    lora_attn_modules: Collection[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Llama 2 70B with LoRA (or DoRA / QLoRA) on the chosen projections.

    Arguments as :func:`lora_llama2_7b`.

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     model = lora_llama2_70b(["q_proj", "v_proj"], use_dora=True)
        >>> type(model.layers[0].attn.q_proj).__name__
        'DoRALinear'

        In YAML::

            model:
              _component_: raytune_chat.models.llama2.lora_llama2_70b
              lora_attn_modules: [q_proj, v_proj, output_proj]
              apply_lora_to_mlp: True
              lora_rank: 8
              lora_alpha: 16
    """
    return lora_llama2(
        lora_attn_modules=lora_attn_modules,
        apply_lora_to_mlp=apply_lora_to_mlp,
        apply_lora_to_output=apply_lora_to_output,
        lora_rank=lora_rank,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        use_dora=use_dora,
        quantize_base=quantize_base,
        **_LLAMA2_70B,
    )


qlora_llama2_70b = qlora_builder(lora_llama2_70b)
