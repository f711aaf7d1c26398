"""General Llama 2 builders (also Code Llama 2's): every shape is an argument."""

from __future__ import annotations

from collections.abc import Collection

from raytune_chat.models._builder import LoRASpec, decoder, lora_spec
from raytune_chat.modules import TransformerDecoder

__all__ = ["llama2", "lora_llama2"]


def llama2(
    *,
    vocab_size: int,
    num_layers: int,
    num_heads: int,
    num_kv_heads: int,
    embed_dim: int,
    max_seq_len: int,
    attn_dropout: float = 0.0,
    intermediate_dim: int | None = None,
    norm_eps: float = 1e-5,
    rope_base: float = 10_000.0,
) -> TransformerDecoder:
    """Build a Llama 2 decoder with torchtune's parameter names.

    The architecture is Llama 3's (pre-norm RMSNorm, RoPE in Meta's interleaved layout,
    SwiGLU); Llama 2 differs in its numbers: RoPE base 10,000, a 32,000-token SentencePiece
    vocabulary, and multi-head attention below 70B (``num_kv_heads == num_heads``).

    Args:
        vocab_size: Vocabulary size.
        num_layers: Number of transformer blocks.
        num_heads: Query heads.
        num_kv_heads: Key/value heads.
        embed_dim: Model width.
        max_seq_len: Longest sequence the model accepts.
        attn_dropout: Attention dropout while training.
        intermediate_dim: MLP width; default ``2/3 * 4 * embed_dim`` rounded up to 256.
        norm_eps: RMSNorm epsilon.
        rope_base: RoPE theta (1,000,000 for Code Llama).

    Example:
        >>> import torch
        >>> model = llama2(vocab_size=64, num_layers=1, num_heads=4, num_kv_heads=4,
        ...                embed_dim=32, max_seq_len=128)
        >>> model(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 64])

        In YAML::

            model:
              _component_: raytune_chat.models.llama2.llama2
              vocab_size: 32000
              num_layers: 2
              num_heads: 4
              num_kv_heads: 4
              embed_dim: 64
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


def lora_llama2(
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
    intermediate_dim: int | None = None,
    attn_dropout: float = 0.0,
    norm_eps: float = 1e-5,
    rope_base: float = 10_000.0,
    lora_rank: int,
    lora_alpha: float,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Build a Llama 2 decoder whose chosen projections carry LoRA, DoRA or QLoRA adapters.

    Args:
        lora_attn_modules: Subset of ``{"q_proj", "k_proj", "v_proj", "output_proj"}``.
        apply_lora_to_mlp: Also adapt ``w1``, ``w2``, ``w3``.
        apply_lora_to_output: Also adapt the LM head.
        vocab_size: See :func:`llama2` for this and the other shape arguments.
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
        >>> model = lora_llama2(["q_proj", "v_proj"], vocab_size=64, num_layers=1,
        ...                     num_heads=4, num_kv_heads=4, embed_dim=32, max_seq_len=128,
        ...                     lora_rank=4, lora_alpha=8)
        >>> type(model.layers[0].attn.v_proj).__name__
        'LoRALinear'

        In YAML::

            model:
              _component_: raytune_chat.models.llama2.lora_llama2
              lora_attn_modules: [q_proj, v_proj]
              lora_rank: 8
              lora_alpha: 16
              vocab_size: 32000
              num_layers: 2
              num_heads: 4
              num_kv_heads: 4
              embed_dim: 64
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
