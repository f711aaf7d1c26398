"""General Llama3 builders: every shape is an argument; presets live in ``_model_builders``."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from torch import nn

from raytune_chat.modules import (
    FeedForward,
    Llama3ScaledRoPE,
    MultiHeadAttention,
    RMSNorm,
    RotaryPositionalEmbeddings,
    TiedLinear,
    TransformerDecoder,
    TransformerSelfAttentionLayer,
)
from raytune_chat.modules.peft import LoRALinear

__all__ = ["llama3", "lora_llama3"]

_LORA_ATTN_CHOICES = frozenset({"q_proj", "k_proj", "v_proj", "output_proj"})


@dataclass(frozen=True)
class _LoRASpec:
    """Which projections carry LoRA and with which hyper-parameters."""

    modules: frozenset[str] = frozenset()
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0

    def linear(self, name: str, in_dim: int, out_dim: int) -> nn.Module:
        """Projection ``name``: ``LoRALinear`` if it carries LoRA, else ``nn.Linear``."""
        if name in self.modules:
            return LoRALinear(
                in_dim, out_dim, rank=self.rank, alpha=self.alpha, dropout=self.dropout
            )
        return nn.Linear(in_dim, out_dim, bias=False)


def scale_hidden_dim_for_mlp(dim: int, multiple_of: int = 256) -> int:
    """Llama's default MLP width: ``2/3 * 4 * dim`` rounded up to ``multiple_of``.

    Example:
        >>> scale_hidden_dim_for_mlp(4096)
        11008
    """
    hidden_dim = int(2 * (4 * dim) / 3)
    return multiple_of * ((hidden_dim + multiple_of - 1) // multiple_of)


def _rope(*, head_dim: int, max_seq_len: int, rope_base: float, scale_factor: float | None):
    if scale_factor is None:
        return RotaryPositionalEmbeddings(dim=head_dim, max_seq_len=max_seq_len, base=rope_base)
    return Llama3ScaledRoPE(
        dim=head_dim, max_seq_len=max_seq_len, base=rope_base, scale_factor=scale_factor
    )


def _layer(
    *,
    embed_dim: int,
    num_heads: int,
    num_kv_heads: int,
    head_dim: int,
    hidden_dim: int,
    attn_dropout: float,
    norm_eps: float,
    rope: RotaryPositionalEmbeddings,
    lora: _LoRASpec,
) -> TransformerSelfAttentionLayer:
    attn = MultiHeadAttention(
        embed_dim=embed_dim,
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        head_dim=head_dim,
        q_proj=lora.linear("q_proj", embed_dim, num_heads * head_dim),
        k_proj=lora.linear("k_proj", embed_dim, num_kv_heads * head_dim),
        v_proj=lora.linear("v_proj", embed_dim, num_kv_heads * head_dim),
        output_proj=lora.linear("output_proj", num_heads * head_dim, embed_dim),
        pos_embeddings=rope,
        attn_dropout=attn_dropout,
    )
    mlp = FeedForward(
        gate_proj=lora.linear("w1", embed_dim, hidden_dim),
        down_proj=lora.linear("w2", hidden_dim, embed_dim),
        up_proj=lora.linear("w3", embed_dim, hidden_dim),
    )
    return TransformerSelfAttentionLayer(
        attn=attn,
        mlp=mlp,
        sa_norm=RMSNorm(embed_dim, eps=norm_eps),
        mlp_norm=RMSNorm(embed_dim, eps=norm_eps),
    )


def _decoder(
    *,
    vocab_size: int,
    num_layers: int,
    num_heads: int,
    num_kv_heads: int,
    embed_dim: int,
    max_seq_len: int,
    intermediate_dim: int | None,
    attn_dropout: float,
    norm_eps: float,
    rope_base: float,
    scale_factor: float | None,
    tie_word_embeddings: bool,
    lora: _LoRASpec,
) -> TransformerDecoder:
    head_dim = embed_dim // num_heads
    rope = _rope(
        head_dim=head_dim, max_seq_len=max_seq_len, rope_base=rope_base, scale_factor=scale_factor
    )
    layers = [
        _layer(
            embed_dim=embed_dim,
            num_heads=num_heads,
            num_kv_heads=num_kv_heads,
            head_dim=head_dim,
            hidden_dim=intermediate_dim or scale_hidden_dim_for_mlp(embed_dim),
            attn_dropout=attn_dropout,
            norm_eps=norm_eps,
            rope=rope,
            lora=lora,
        )
        for _ in range(num_layers)
    ]
    tok_embeddings = nn.Embedding(vocab_size, embed_dim)
    if tie_word_embeddings:
        if "output" in lora.modules:
            raise ValueError("apply_lora_to_output is not supported with tied embeddings")
        output: nn.Module | TiedLinear = TiedLinear(tok_embeddings)
    else:
        output = lora.linear("output", embed_dim, vocab_size)
    return TransformerDecoder(
        tok_embeddings=tok_embeddings,
        layers=layers,
        max_seq_len=max_seq_len,
        num_heads=num_heads,
        head_dim=head_dim,
        norm=RMSNorm(embed_dim, eps=norm_eps),
        output=output,
    )


def llama3(
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
    rope_base: float = 500_000.0,
    scale_factor: float | None = None,
    tie_word_embeddings: bool = False,
) -> TransformerDecoder:
    """Build a Llama3-family decoder with torchtune's parameter names.

    Args:
        vocab_size: Vocabulary size.
        num_layers: Number of transformer blocks.
        num_heads: Query heads.
        num_kv_heads: Key/value heads (grouped-query attention when < ``num_heads``).
        embed_dim: Model width; the head width is ``embed_dim // num_heads``.
        max_seq_len: Longest sequence the model accepts.
        intermediate_dim: MLP width; default ``scale_hidden_dim_for_mlp(embed_dim)``.
        attn_dropout: Attention dropout while training.
        norm_eps: RMSNorm epsilon.
        rope_base: RoPE theta.
        scale_factor: Llama 3.1 RoPE scaling factor (8 for 3.1, 32 for 3.2); None = plain RoPE.
        tie_word_embeddings: Share the LM head with the token embedding (Llama 3.2 1B/3B).

    Returns:
        The model; call it as ``model(tokens, mask=None, input_pos=None)``.

    Example:
        >>> import torch
        >>> model = llama3(vocab_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
        ...                embed_dim=32, max_seq_len=128)
        >>> model(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 64])

        In YAML::

            model:
              _component_: raytune_chat.models.llama3.llama3
              vocab_size: 128256
              num_layers: 2
              num_heads: 4
              num_kv_heads: 2
              embed_dim: 64
              max_seq_len: 512
    """
    return _decoder(
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
        scale_factor=scale_factor,
        tie_word_embeddings=tie_word_embeddings,
        lora=_LoRASpec(),
    )


def lora_llama3(
    *,
    lora_attn_modules: Collection[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    vocab_size: int,
    num_layers: int,
    num_heads: int,
    num_kv_heads: int,
    embed_dim: int,
    max_seq_len: int,
    intermediate_dim: int | None = None,
    attn_dropout: float = 0.0,
    norm_eps: float = 1e-5,
    rope_base: float = 500_000.0,
    scale_factor: float | None = None,
    tie_word_embeddings: bool = False,
    lora_rank: int,
    lora_alpha: float,
    lora_dropout: float = 0.0,
) -> TransformerDecoder:
    """Build a Llama3 decoder whose chosen projections are ``LoRALinear``.

    Base parameter names are those of :func:`llama3`, so base checkpoints load unchanged;
    adapters add ``<proj>.lora_a.weight`` / ``<proj>.lora_b.weight``.

    Args:
        lora_attn_modules: Subset of ``{"q_proj", "k_proj", "v_proj", "output_proj"}``.
        apply_lora_to_mlp: Also adapt ``w1``, ``w2``, ``w3``.
        apply_lora_to_output: Also adapt the LM head (not with tied embeddings).
        vocab_size: See :func:`llama3` for this and the other shape arguments.
        num_layers: Number of transformer blocks.
        num_heads: Query heads.
        num_kv_heads: Key/value heads.
        embed_dim: Model width.
        max_seq_len: Longest sequence the model accepts.
        intermediate_dim: MLP width.
        attn_dropout: Attention dropout while training.
        norm_eps: RMSNorm epsilon.
        rope_base: RoPE theta.
        scale_factor: Llama 3.1 RoPE scaling factor, or None.
        tie_word_embeddings: Share the LM head with the token embedding.
        lora_rank: LoRA rank.
        lora_alpha: LoRA alpha (update scaled by ``alpha / rank``).
        lora_dropout: Dropout on the adapters' input.

    Returns:
        The model; freeze the base with ``set_trainable_params(model, get_adapter_params(model))``.

    Raises:
        ValueError: For an unknown entry in ``lora_attn_modules``.

    Example:
        >>> model = lora_llama3(lora_attn_modules=["q_proj", "v_proj"], vocab_size=64,
        ...                     num_layers=1, num_heads=4, num_kv_heads=2, embed_dim=32,
        ...                     max_seq_len=128, lora_rank=4, lora_alpha=8)
        >>> type(model.layers[0].attn.q_proj).__name__
        'LoRALinear'

        In YAML::

            model:
              _component_: raytune_chat.models.llama3.lora_llama3
              lora_attn_modules: [q_proj, v_proj, output_proj]
              lora_rank: 8
              lora_alpha: 16
              vocab_size: 128256
              num_layers: 2
              num_heads: 4
              num_kv_heads: 2
              embed_dim: 64
              max_seq_len: 512
    """
    unknown = set(lora_attn_modules) - _LORA_ATTN_CHOICES
    if unknown:
        raise ValueError(
            f"unknown lora_attn_modules {sorted(unknown)}; choose from {sorted(_LORA_ATTN_CHOICES)}"
        )
    modules = set(lora_attn_modules)
    if apply_lora_to_mlp:
        modules |= {"w1", "w2", "w3"}
    if apply_lora_to_output:
        modules.add("output")
    return _decoder(
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
        scale_factor=scale_factor,
        tie_word_embeddings=tie_word_embeddings,
        lora=_LoRASpec(frozenset(modules), lora_rank, lora_alpha, lora_dropout),
    )
