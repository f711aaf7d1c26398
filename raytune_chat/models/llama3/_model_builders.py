"""Named Llama3 presets: published shapes only, each calling the general builder.

Build a big preset without allocating memory under ``torch.device("meta")`` and load real
weights with ``load_state_dict(..., assign=True)``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from raytune_chat.models.llama3._component_builders import llama3, lora_llama3
from raytune_chat.modules import TransformerDecoder

__all__ = [
    "llama3_8b",
    "lora_llama3_8b",
    "llama3_1_8b",
    "lora_llama3_1_8b",
    "llama3_2_1b",
    "lora_llama3_2_1b",
    "llama3_70b",
    "lora_llama3_70b",
    "llama3_1_70b",
    "lora_llama3_1_70b",
]

_LLAMA3_8B: dict[str, Any] = dict(
    vocab_size=128_256,
    num_layers=32,
    num_heads=32,
    num_kv_heads=8,
    embed_dim=4096,
    max_seq_len=8192,
    intermediate_dim=14_336,
    norm_eps=1e-5,
    rope_base=500_000.0,
)
_LLAMA3_1_8B: dict[str, Any] = {**_LLAMA3_8B, "max_seq_len": 131_072, "scale_factor": 8}
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
_LLAMA3_70B: dict[str, Any] = dict(
    vocab_size=128_256,
    num_layers=80,
    num_heads=64,
    num_kv_heads=8,
    embed_dim=8192,
    max_seq_len=8192,
    intermediate_dim=28_672,
    norm_eps=1e-5,
    rope_base=500_000.0,
)
_LLAMA3_1_70B: dict[str, Any] = {**_LLAMA3_70B, "max_seq_len": 131_072, "scale_factor": 8}


def llama3_8b() -> TransformerDecoder:
    """Llama 3 8B (8,030,261,248 parameters, 8K context).

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     model = llama3_8b()
        >>> len(model.layers)
        32

        In YAML: ``model: {_component_: raytune_chat.models.llama3.llama3_8b}``
    """
    return llama3(**_LLAMA3_8B)


def llama3_1_8b() -> TransformerDecoder:
    """Llama 3.1 8B: Llama 3 8B shapes with 128K context and RoPE scaling (factor 8).

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     model = llama3_1_8b()
        >>> model.max_seq_len
        131072

        In YAML: ``model: {_component_: raytune_chat.models.llama3.llama3_1_8b}``
    """
    return llama3(**_LLAMA3_1_8B)


def llama3_2_1b() -> TransformerDecoder:
    """Llama 3.2 1B: tied embeddings, RoPE scaling factor 32 (1,235,814,400 parameters).

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     model = llama3_2_1b()
        >>> "output.weight" in model.state_dict()
        False

        In YAML: ``model: {_component_: raytune_chat.models.llama3.llama3_2_1b}``
    """
    return llama3(**_LLAMA3_2_1B)


def llama3_70b() -> TransformerDecoder:
    """Llama 3 70B (80 layers, 64 query heads, 8 KV heads).

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     model = llama3_70b()
        >>> model.layers[0].attn.num_kv_heads
        8

        In YAML: ``model: {_component_: raytune_chat.models.llama3.llama3_70b}``
    """
    return llama3(**_LLAMA3_70B)


def llama3_1_70b() -> TransformerDecoder:
    """Llama 3.1 70B: Llama 3 70B shapes with 128K context and RoPE scaling (factor 8).

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     model = llama3_1_70b()
        >>> model.layers[0].attn.pos_embeddings.scale_factor
        8

        In YAML: ``model: {_component_: raytune_chat.models.llama3.llama3_1_70b}``
    """
    return llama3(**_LLAMA3_1_70B)


def _lora(
    shape: dict[str, Any],
    lora_attn_modules: Collection[str],
    apply_lora_to_mlp: bool,
    apply_lora_to_output: bool,
    lora_rank: int,
    lora_alpha: float,
    lora_dropout: float,
) -> TransformerDecoder:
    return lora_llama3(
        lora_attn_modules=lora_attn_modules,
        apply_lora_to_mlp=apply_lora_to_mlp,
        apply_lora_to_output=apply_lora_to_output,
        lora_rank=lora_rank,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        **shape,
    )


def lora_llama3_8b(
    lora_attn_modules: Collection[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
) -> TransformerDecoder:
    """Llama 3 8B with LoRA on the chosen projections.

    Args:
        lora_attn_modules: Subset of ``{"q_proj", "k_proj", "v_proj", "output_proj"}``.
        apply_lora_to_mlp: Also adapt the MLP projections.
        apply_lora_to_output: Also adapt the LM head.
        lora_rank: LoRA rank.
        lora_alpha: LoRA alpha.
        lora_dropout: Adapter input dropout.

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     model = lora_llama3_8b(["q_proj", "v_proj"])
        >>> model.layers[0].attn.q_proj.rank
        8

        In YAML::

            model:
              _component_: raytune_chat.models.llama3.lora_llama3_8b
              lora_attn_modules: [q_proj, v_proj, output_proj]
              apply_lora_to_mlp: true
              lora_rank: 8
              lora_alpha: 16
    """
    return _lora(
        _LLAMA3_8B,
        lora_attn_modules,
        apply_lora_to_mlp,
        apply_lora_to_output,
        lora_rank,
        lora_alpha,
        lora_dropout,
    )


def lora_llama3_1_8b(
    lora_attn_modules: Collection[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
) -> TransformerDecoder:
    """Llama 3.1 8B with LoRA; arguments as :func:`lora_llama3_8b`.

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     model = lora_llama3_1_8b(["q_proj"], lora_rank=16, lora_alpha=32)
        >>> model.layers[0].attn.q_proj.scaling
        2.0

        In YAML: ``model: {_component_: raytune_chat.models.llama3.lora_llama3_1_8b,
        lora_attn_modules: [q_proj, v_proj]}``
    """
    return _lora(
        _LLAMA3_1_8B,
        lora_attn_modules,
        apply_lora_to_mlp,
        apply_lora_to_output,
        lora_rank,
        lora_alpha,
        lora_dropout,
    )


def lora_llama3_2_1b(
    lora_attn_modules: Collection[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
) -> TransformerDecoder:
    """Llama 3.2 1B with LoRA (tied embeddings, so ``apply_lora_to_output`` must be False).

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     model = lora_llama3_2_1b(["q_proj", "v_proj"])
        >>> "output.lora_a.weight" in model.state_dict()
        False

        In YAML: ``model: {_component_: raytune_chat.models.llama3.lora_llama3_2_1b,
        lora_attn_modules: [q_proj, v_proj]}``
    """
    return _lora(
        _LLAMA3_2_1B,
        lora_attn_modules,
        apply_lora_to_mlp,
        apply_lora_to_output,
        lora_rank,
        lora_alpha,
        lora_dropout,
    )


def lora_llama3_70b(
    lora_attn_modules: Collection[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
) -> TransformerDecoder:
    """Llama 3 70B with LoRA; arguments as :func:`lora_llama3_8b`.

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     model = lora_llama3_70b(["q_proj", "k_proj"], apply_lora_to_mlp=True)
        >>> type(model.layers[79].mlp.w2).__name__
        'LoRALinear'

        In YAML: ``model: {_component_: raytune_chat.models.llama3.lora_llama3_70b,
        lora_attn_modules: [q_proj, v_proj]}``
    """
    return _lora(
        _LLAMA3_70B,
        lora_attn_modules,
        apply_lora_to_mlp,
        apply_lora_to_output,
        lora_rank,
        lora_alpha,
        lora_dropout,
    )


def lora_llama3_1_70b(
    lora_attn_modules: Collection[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
) -> TransformerDecoder:
    """Llama 3.1 70B with LoRA; arguments as :func:`lora_llama3_8b`.

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     model = lora_llama3_1_70b(["q_proj", "v_proj"])
        >>> model.max_seq_len
        131072

        In YAML: ``model: {_component_: raytune_chat.models.llama3.lora_llama3_1_70b,
        lora_attn_modules: [q_proj, v_proj]}``
    """
    return _lora(
        _LLAMA3_1_70B,
        lora_attn_modules,
        apply_lora_to_mlp,
        apply_lora_to_output,
        lora_rank,
        lora_alpha,
        lora_dropout,
    )
