"""Named Llama 3.2 (text) presets: tied embeddings, RoPE scaling factor 32, 128K context.

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
    "llama3_2_1b",
    "lora_llama3_2_1b",
    "qlora_llama3_2_1b",
    "llama3_2_3b",
    "lora_llama3_2_3b",
    "qlora_llama3_2_3b",
]

_LLAMA3_2_1B: dict[str, Any] = dict(
    vocab_size=128_256,
    num_layers=16,
    num_heads=32,
    num_kv_heads=8,
    embed_dim=2048,
    max_seq_len=131_072,
    intermediate_dim=8192,
    norm_eps=1e-5,
    rope_base=500_000.0,
    scale_factor=32,
    tie_word_embeddings=True,
)

_LLAMA3_2_3B: dict[str, Any] = dict(
    vocab_size=128_256,
    num_layers=28,
    num_heads=24,
    num_kv_heads=8,
    embed_dim=3072,
    max_seq_len=131_072,
    intermediate_dim=8192,
    norm_eps=1e-5,
    rope_base=500_000.0,
    scale_factor=32,
    tie_word_embeddings=True,
)


def llama3_2_1b() -> TransformerDecoder:
    """Llama 3.2 1B: tied embeddings, RoPE scaling factor 32 (1,235,814,400 parameters).

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     model = llama3_2_1b()
        >>> "output.weight" in model.state_dict()
        False

        In YAML: ``model: {_component_: raytune_chat.models.llama3_2.llama3_2_1b}``
    """
    return llama3(**_LLAMA3_2_1B)


def lora_llama3_2_1b(
    lora_attn_modules: Collection[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Llama 3.2 1B with LoRA (or DoRA / QLoRA) on the chosen projections.

    Args:
        lora_attn_modules: Subset of ``{"q_proj", "k_proj", "v_proj", "output_proj"}``.
        apply_lora_to_mlp: Also adapt the MLP projections ``w1``, ``w2``, ``w3``.
        apply_lora_to_output: Also adapt the LM head (must stay False: it is the tied embedding).
        lora_rank: LoRA rank.
        lora_alpha: LoRA alpha (the update is scaled by ``alpha / rank``).
        lora_dropout: Adapter input dropout.
        use_dora: DoRA adapters (a trained per-row magnitude on top of LoRA).
        quantize_base: QLoRA: frozen base weights in NF4 (see ``qlora_llama3_2_1b``).

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     model = lora_llama3_2_1b(["q_proj", "v_proj"], use_dora=True)
        >>> type(model.layers[0].attn.q_proj).__name__
        'DoRALinear'

        In YAML::

            model:
              _component_: raytune_chat.models.llama3_2.lora_llama3_2_1b
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
        **_LLAMA3_2_1B,
    )


qlora_llama3_2_1b = qlora_builder(lora_llama3_2_1b)


def llama3_2_3b() -> TransformerDecoder:
    """Llama 3.2 3B: tied embeddings, RoPE scaling factor 32 (3,212,749,824 parameters).

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     model = llama3_2_3b()
        >>> sum(p.numel() for p in model.parameters())
        3212749824

        In YAML: ``model: {_component_: raytune_chat.models.llama3_2.llama3_2_3b}``
    """
    return llama3(**_LLAMA3_2_3B)


def lora_llama3_2_3b(
    lora_attn_modules: Collection[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Llama 3.2 3B with LoRA (or DoRA / QLoRA) on the chosen projections.

    Arguments as :func:`lora_llama3_2_1b`.

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     model = lora_llama3_2_3b(["q_proj", "v_proj"], use_dora=True)
        >>> type(model.layers[0].attn.q_proj).__name__
        'DoRALinear'

        In YAML::

            model:
              _component_: raytune_chat.models.llama3_2.lora_llama3_2_3b
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
        **_LLAMA3_2_3B,
    )


qlora_llama3_2_3b = qlora_builder(lora_llama3_2_3b)
