"""Named Code Llama 2 presets: Llama 2 shapes, vocabulary 32,016, 16K context, RoPE base 1,000,000.

Deliberate difference: torchtune 0.6.1's ``lora_code_llama2_*`` builders leave RoPE at
Llama 2's base 10,000 while its ``code_llama2_*`` use Meta's 1,000,000; here both use
1,000,000, the value Code Llama was trained with (``rope_theta`` of its ``config.json``).

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
    "code_llama2_7b",
    "lora_code_llama2_7b",
    "qlora_code_llama2_7b",
    "code_llama2_13b",
    "lora_code_llama2_13b",
    "qlora_code_llama2_13b",
    "code_llama2_70b",
    "lora_code_llama2_70b",
    "qlora_code_llama2_70b",
]

_CODE_LLAMA2_7B: dict[str, Any] = dict(
    vocab_size=32_016,
    num_layers=32,
    num_heads=32,
    num_kv_heads=32,
    embed_dim=4096,
    max_seq_len=16_384,
    intermediate_dim=11_008,
    norm_eps=1e-5,
    rope_base=1_000_000.0,
)

_CODE_LLAMA2_13B: dict[str, Any] = dict(
    vocab_size=32_016,
    num_layers=40,
    num_heads=40,
    num_kv_heads=40,
    embed_dim=5120,
    max_seq_len=16_384,
    intermediate_dim=13_824,
    norm_eps=1e-5,
    rope_base=1_000_000.0,
)

_CODE_LLAMA2_70B: dict[str, Any] = dict(
    vocab_size=32_016,
    num_layers=80,
    num_heads=64,
    num_kv_heads=8,
    embed_dim=8192,
    max_seq_len=16_384,
    intermediate_dim=28_672,
    norm_eps=1e-5,
    rope_base=1_000_000.0,
)


def code_llama2_7b() -> TransformerDecoder:
    """Code Llama 2 7B (6,738,546,688 parameters).

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     model = code_llama2_7b()
        >>> sum(p.numel() for p in model.parameters())
        6738546688

        In YAML: ``model: {_component_: raytune_chat.models.code_llama2.code_llama2_7b}``
    """
    return llama2(**_CODE_LLAMA2_7B)


def lora_code_llama2_7b(
    lora_attn_modules: Collection[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Code Llama 2 7B with LoRA (or DoRA / QLoRA) on the chosen projections.

    Args:
        lora_attn_modules: Subset of ``{"q_proj", "k_proj", "v_proj", "output_proj"}``.
        apply_lora_to_mlp: Also adapt the MLP projections ``w1``, ``w2``, ``w3``.
        apply_lora_to_output: Also adapt the LM head.
        lora_rank: LoRA rank.
        lora_alpha: LoRA alpha (the update is scaled by ``alpha / rank``).
        lora_dropout: Adapter input dropout.
        use_dora: DoRA adapters (a trained per-row magnitude on top of LoRA).
        quantize_base: QLoRA: frozen base weights in NF4 (see ``qlora_code_llama2_7b``).

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     model = lora_code_llama2_7b(["q_proj", "v_proj"], use_dora=True)
        >>> type(model.layers[0].attn.q_proj).__name__
        'DoRALinear'

        In YAML::

            model:
              _component_: raytune_chat.models.code_llama2.lora_code_llama2_7b
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
        **_CODE_LLAMA2_7B,
    )


qlora_code_llama2_7b = qlora_builder(lora_code_llama2_7b)


def code_llama2_13b() -> TransformerDecoder:
    """Code Llama 2 13B.

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     model = code_llama2_13b()
        >>> model.layers[0].attn.pos_embeddings.base
        1000000.0

        In YAML: ``model: {_component_: raytune_chat.models.code_llama2.code_llama2_13b}``
    """
    return llama2(**_CODE_LLAMA2_13B)


def lora_code_llama2_13b(
    lora_attn_modules: Collection[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Code Llama 2 13B with LoRA (or DoRA / QLoRA) on the chosen projections.

    Arguments as :func:`lora_code_llama2_7b`.

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     model = lora_code_llama2_13b(["q_proj", "v_proj"], use_dora=True)
        >>> type(model.layers[0].attn.q_proj).__name__
        'DoRALinear'

        In YAML::

            model:
              _component_: raytune_chat.models.code_llama2.lora_code_llama2_13b
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
        **_CODE_LLAMA2_13B,
    )


qlora_code_llama2_13b = qlora_builder(lora_code_llama2_13b)


def code_llama2_70b() -> TransformerDecoder:
    """Code Llama 2 70B (8 KV heads).

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     model = code_llama2_70b()
        >>> model.layers[0].attn.num_kv_heads
        8

        In YAML: ``model: {_component_: raytune_chat.models.code_llama2.code_llama2_70b}``
    """
    return llama2(**_CODE_LLAMA2_70B)


def lora_code_llama2_70b(
    lora_attn_modules: Collection[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Code Llama 2 70B with LoRA (or DoRA / QLoRA) on the chosen projections.

    Arguments as :func:`lora_code_llama2_7b`.

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     model = lora_code_llama2_70b(["q_proj", "v_proj"], use_dora=True)
        >>> type(model.layers[0].attn.q_proj).__name__
        'DoRALinear'

        In YAML::

            model:
              _component_: raytune_chat.models.code_llama2.lora_code_llama2_70b
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
        **_CODE_LLAMA2_70B,
    )


qlora_code_llama2_70b = qlora_builder(lora_code_llama2_70b)
