"""General Mistral builders: every shape is an argument."""

from __future__ import annotations

from collections.abc import Collection

from raytune_chat.models._builder import LoRASpec, decoder, lora_spec
from raytune_chat.modules import TransformerDecoder

__all__ = ["mistral", "lora_mistral"]


def mistral(
    *,
    vocab_size: int,
    num_layers: int,
    num_heads: int,
    num_kv_heads: int,
    embed_dim: int,
    max_seq_len: int,
    intermediate_dim: int,
    attn_dropout: float = 0.0,
    norm_eps: float = 1e-5,
    rope_base: float = 10_000.0,
) -> TransformerDecoder:
    """Build a Mistral decoder with torchtune's parameter names.

    Mistral 7B is a Llama-architecture decoder with grouped-query attention (8 KV heads),
    RoPE base 10,000 and a 32,000-token SentencePiece vocabulary. Its sliding-window attention
    (4,096 tokens in v0.1) is ignored, as torchtune does: every token attends to all earlier
    ones, which equals the sliding window for sequences up to 4,096 tokens.

    Args:
        vocab_size: Vocabulary size.
        num_layers: Number of transformer blocks.
        num_heads: Query heads.
        num_kv_heads: Key/value heads.
        embed_dim: Model width.
        max_seq_len: Longest sequence the model accepts.
        intermediate_dim: MLP width.
        attn_dropout: Attention dropout while training.
        norm_eps: RMSNorm epsilon.
        rope_base: RoPE theta.

    Example:
        >>> import torch
        >>> model = mistral(vocab_size=64, num_layers=1, num_heads=4, num_kv_heads=2,
        ...                 embed_dim=32, intermediate_dim=64, max_seq_len=128)
        >>> model(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 64])

        In YAML::

            model:
              _component_: raytune_chat.models.mistral.mistral
              vocab_size: 32000
              num_layers: 2
              num_heads: 4
              num_kv_heads: 2
              embed_dim: 64
              intermediate_dim: 128
              max_seq_len: 512
    """
    return decoder(
        vocab_size=vocab_size,
        num_layers=num_layers,
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        embed_dim=embed_dim,
        max_seq_len=max_seq_len,
        intermediate_dim=intermediate_dim,
        attn_dropout=attn_dropout,
        norm_eps=norm_eps,
        rope_base=rope_base,
        lora=LoRASpec(),
    )


def lora_mistral(
    lora_attn_modules: Collection[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    *,
    vocab_size: int,
    num_layers: int,
    num_heads: int,
    num_kv_heads: int,
    embed_dim: int,
    max_seq_len: int,
    intermediate_dim: int,
    attn_dropout: float = 0.0,
    norm_eps: float = 1e-5,
    rope_base: float = 10_000.0,
    lora_rank: int,
    lora_alpha: float,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Build a Mistral decoder whose chosen projections carry LoRA, DoRA or QLoRA adapters.

    Args:
        lora_attn_modules: Subset of ``{"q_proj", "k_proj", "v_proj", "output_proj"}``.
        apply_lora_to_mlp: Also adapt ``w1``, ``w2``, ``w3``.
        apply_lora_to_output: Also adapt the LM head.
        vocab_size: See :func:`mistral` for this and the other shape arguments.
        num_layers: Number of transformer blocks.
        num_heads: Query heads.
        num_kv_heads: Key/value heads.
        embed_dim: Model width.
        max_seq_len: Longest sequence the model accepts.
        intermediate_dim: MLP width.
        attn_dropout: Attention dropout while training.
        norm_eps: RMSNorm epsilon.
        rope_base: RoPE theta.
        lora_rank: LoRA rank.
        lora_alpha: LoRA alpha.
        lora_dropout: Dropout on the adapters' input.
        use_dora: DoRA adapters (a per-row magnitude, initialised after loading).
        quantize_base: QLoRA: attention and MLP base weights in NF4.

    Raises:
        ValueError: For an unknown entry in ``lora_attn_modules``.

    Example:
        >>> model = lora_mistral(["q_proj", "v_proj"], vocab_size=64, num_layers=1,
        ...                      num_heads=4, num_kv_heads=2, embed_dim=32, max_seq_len=128,
        ...                      intermediate_dim=64, lora_rank=4, lora_alpha=8)
        >>> type(model.layers[0].attn.v_proj).__name__
        'LoRALinear'

        In YAML::

            model:
              _component_: raytune_chat.models.mistral.lora_mistral
              lora_attn_modules: [q_proj, v_proj]
              lora_rank: 8
              lora_alpha: 16
              vocab_size: 32000
              num_layers: 2
              num_heads: 4
              num_kv_heads: 2
              embed_dim: 64
              intermediate_dim: 128
              max_seq_len: 512
    """
    return decoder(
        vocab_size=vocab_size,
        num_layers=num_layers,
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        embed_dim=embed_dim,
        max_seq_len=max_seq_len,
        intermediate_dim=intermediate_dim,
        attn_dropout=attn_dropout,
        norm_eps=norm_eps,
        rope_base=rope_base,
        lora=lora_spec(
            lora_attn_modules,
            apply_lora_to_mlp,
            apply_lora_to_output,
            lora_rank,
            lora_alpha,
            lora_dropout,
            use_dora,
            quantize_base,
        ),
    )
