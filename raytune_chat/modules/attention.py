"""Multi-head self-attention with grouped-query KV heads and rotary positions."""

from __future__ import annotations

import torch
from torch import nn

from raytune_chat.modules.attention_utils import AttentionMask, attend
from raytune_chat.modules.kv_cache import KVCache
from raytune_chat.modules.position_embeddings import RotaryPositionalEmbeddings

__all__ = ["MultiHeadAttention"]


class MultiHeadAttention(nn.Module):
    """Grouped-query self-attention (GQA); ``num_kv_heads == num_heads`` gives plain MHA.

    The projections are passed in, so a builder decides whether each is an ``nn.Linear`` or
    a ``LoRALinear``; their attribute names (``q_proj``, ``k_proj``, ``v_proj``,
    ``output_proj``) match torchtune's. After :meth:`setup_cache` (generation) each call
    appends its keys and values to a :class:`KVCache` and attends over all cached positions.

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
        self.kv_cache: KVCache | None = None

    def setup_cache(self, batch_size: int, dtype: torch.dtype, max_seq_len: int) -> None:
        """Give the layer a KV cache of `max_seq_len` positions on its weights' device."""
        self.kv_cache = KVCache(
            batch_size=batch_size,
            max_seq_len=max_seq_len,
            num_kv_heads=self.num_kv_heads,
            head_dim=self.head_dim,
            dtype=dtype,
            device=self.output_proj.weight.device,
        )

    def reset_cache(self) -> None:
        """Empty the KV cache (it keeps its buffers)."""
        if self.kv_cache is not None:
            self.kv_cache.reset()

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
        if self.kv_cache is not None:
            start = self.kv_cache.size
            k, v = self.kv_cache.update(k, v)  # (b, n_kv_heads, start + s, head_dim)
            if start and mask is None:
                # Causal over the cache: the query at position start + i sees keys 0..start + i
                # (SDPA's is_causal would align the query block with the cache's first keys).
                mask = _causal_after(start, s, b, x.device)
        dropout_p = self.attn_dropout if self.training else 0.0
        out = attend(q, k, v, mask=mask, dropout_p=dropout_p)  # (b, n_heads, s, head_dim)
        return self.output_proj(out.transpose(1, 2).reshape(b, s, -1))


def _causal_after(start: int, s: int, b: int, device: torch.device) -> torch.Tensor:
    """Bool (b, s, start + s) mask: query i (at position start + i) sees keys up to it."""
    keys = torch.arange(start + s, device=device)
    queries = torch.arange(start, start + s, device=device)
    return (keys[None, :] <= queries[:, None]).expand(b, s, start + s)
