"""Multi-head self-attention with grouped-query KV heads and rotary positions."""

from __future__ import annotations

import torch
from torch import nn

from raytune_chat.modules.attention_utils import AttentionMask, attend
from raytune_chat.modules.position_embeddings import RotaryPositionalEmbeddings

__all__ = ["MultiHeadAttention"]


class MultiHeadAttention(nn.Module):
    """Grouped-query self-attention (GQA); ``num_kv_heads == num_heads`` gives plain MHA.

    The projections are passed in, so a builder decides whether each is an ``nn.Linear`` or
    a ``LoRALinear``; their attribute names (``q_proj``, ``k_proj``, ``v_proj``,
    ``output_proj``) match torchtune's.

    Args:
        embed_dim: Model width.
        num_heads: Number of query heads.
        num_kv_heads: Number of key/value heads (divides ``num_heads``).
        head_dim: Width of each head.
        q_proj: ``embed_dim -> num_heads * head_dim``.
        k_proj: ``embed_dim -> num_kv_heads * head_dim``.
        v_proj: ``embed_dim -> num_kv_heads * head_dim``.
        output_proj: ``num_heads * head_dim -> embed_dim``.
        pos_embeddings: Rotary embedding applied to queries and keys.
        attn_dropout: Dropout on attention probabilities while training.

    Example:
        >>> attn = MultiHeadAttention(
        ...     embed_dim=16, num_heads=4, num_kv_heads=2, head_dim=4,
        ...     q_proj=nn.Linear(16, 16), k_proj=nn.Linear(16, 8), v_proj=nn.Linear(16, 8),
        ...     output_proj=nn.Linear(16, 16),
        ...     pos_embeddings=RotaryPositionalEmbeddings(dim=4, max_seq_len=32),
        ... )
        >>> attn(torch.randn(2, 5, 16)).shape
        torch.Size([2, 5, 16])
    """

    def __init__(
        self,
        *,
        embed_dim: int,
        num_heads: int,
        num_kv_heads: int,
        head_dim: int,
        q_proj: nn.Module,
        k_proj: nn.Module,
        v_proj: nn.Module,
        output_proj: nn.Module,
        pos_embeddings: RotaryPositionalEmbeddings,
        attn_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if num_heads % num_kv_heads:
            raise ValueError(f"num_heads={num_heads} is not a multiple of {num_kv_heads=}")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = head_dim
        self.attn_dropout = attn_dropout
        self.q_proj = q_proj
        self.k_proj = k_proj
        self.v_proj = v_proj
        self.output_proj = output_proj
        self.pos_embeddings = pos_embeddings

    def forward(
        self,
        x: torch.Tensor,
        *,
        mask: AttentionMask | None = None,
        input_pos: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Attend over ``x`` (b, s, embed_dim); see :func:`attend` for ``mask``."""
        b, s, _ = x.shape
        q = self.q_proj(x).view(b, s, self.num_heads, self.head_dim)
        k = self.k_proj(x).view(b, s, self.num_kv_heads, self.head_dim)
        v = self.v_proj(x).view(b, s, self.num_kv_heads, self.head_dim)
        q = self.pos_embeddings(q, input_pos=input_pos)
        k = self.pos_embeddings(k, input_pos=input_pos)
        # (b, heads, s, head_dim) for attention
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        dropout_p = self.attn_dropout if self.training else 0.0
        out = attend(q, k, v, mask=mask, dropout_p=dropout_p)  # (b, n_heads, s, head_dim)
        return self.output_proj(out.transpose(1, 2).reshape(b, s, -1))
