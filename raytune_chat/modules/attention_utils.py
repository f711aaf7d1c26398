"""Attention masks for packed rows and the one function that runs attention on them.

A packed row holds several conversations back to back; ``document_ids`` (b, s) says which
conversation each position belongs to. A query may attend to keys of its own document at
earlier or equal positions: a block-diagonal causal mask.
"""

from __future__ import annotations

import functools
from typing import Any, Union

import torch
from torch.nn import functional as F

try:  # FlexAttention ships with torch >= 2.5.
    from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention
except ImportError:  # pragma: no cover - older torch
    BlockMask = None  # type: ignore[assignment,misc]

__all__ = [
    "AttentionMask",
    "attend",
    "block_causal_block_mask",
    "block_causal_bool_mask",
    "packed_block_causal_mask",
]

AttentionMask = Union[torch.Tensor, "BlockMask"]


def packed_block_causal_mask(document_ids: torch.Tensor) -> AttentionMask:
    """Block-diagonal causal mask for packed rows.

    On CUDA (when FlexAttention is available) this returns a FlexAttention ``BlockMask`` that
    skips whole masked blocks; elsewhere a bool tensor (b, s, s), True where the query (row)
    may attend to the key (column). The model accepts both.

    Args:
        document_ids: (b, s) integer tensor, the document index of each position.

    Returns:
        A ``BlockMask`` on CUDA, else a bool tensor of shape (b, s, s).

    Example:
        >>> mask = packed_block_causal_mask(torch.tensor([[0, 0, 1]]))
        >>> mask[0].int().tolist()
        [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    """
    if document_ids.device.type == "cuda" and BlockMask is not None:
        return block_causal_block_mask(document_ids)
    return block_causal_bool_mask(document_ids)


def block_causal_bool_mask(document_ids: torch.Tensor) -> torch.Tensor:
    """Bool (b, s, s) block-diagonal causal mask; see :func:`packed_block_causal_mask`."""
    s = document_ids.shape[-1]
    same_doc = document_ids[:, :, None] == document_ids[:, None, :]  # (b, s, s)
    causal = torch.ones(s, s, dtype=torch.bool, device=document_ids.device).tril()
    return same_doc & causal


def block_causal_block_mask(document_ids: torch.Tensor) -> BlockMask:
    """FlexAttention ``BlockMask`` for the same mask; works on any device FlexAttention runs on."""
    b, s = document_ids.shape

    def mask_mod(batch: Any, head: Any, q_idx: Any, kv_idx: Any) -> Any:
        same_doc = document_ids[batch, q_idx] == document_ids[batch, kv_idx]
        return same_doc & (q_idx >= kv_idx)

    return create_block_mask(mask_mod, b, None, s, s, device=document_ids.device)


@functools.cache
def _compiled_flex_attention() -> Any:
    return torch.compile(flex_attention, dynamic=False)


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    mask: AttentionMask | None,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Scaled dot-product attention with grouped KV heads.

    Args:
        q: (b, n_heads, s, head_dim) queries.
        k: (b, n_kv_heads, s, head_dim) keys; ``n_heads`` must be a multiple of ``n_kv_heads``.
        v: (b, n_kv_heads, s, head_dim) values.
        mask: None for plain causal attention, a bool (b, s, s) tensor (True = may attend),
            or a FlexAttention ``BlockMask``.
        dropout_p: Attention dropout probability (use 0.0 in eval).

    Returns:
        (b, n_heads, s, head_dim) attention output.

    Example:
        >>> q = torch.randn(1, 4, 3, 8); kv = torch.randn(1, 2, 3, 8)
        >>> attend(q, kv, kv, mask=None).shape
        torch.Size([1, 4, 3, 8])
    """
    if BlockMask is not None and isinstance(mask, BlockMask):
        flex = _compiled_flex_attention() if q.device.type == "cuda" else flex_attention
        return flex(q, k, v, block_mask=mask, enable_gqa=True)
    if mask is None:
        return F.scaled_dot_product_attention(
            q, k, v, dropout_p=dropout_p, is_causal=True, enable_gqa=True
        )
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask[:, None], dropout_p=dropout_p, enable_gqa=True
    )
