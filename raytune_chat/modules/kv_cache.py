"""The key/value cache that lets generation feed one new token per step instead of the whole row."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["KVCache"]


class KVCache(nn.Module):
    """Keys and values of the positions seen so far, for one attention layer.

    The buffers are not persistent: a model with caches set up has the same state dict as
    one without, so checkpoints never carry them.

    Args:
        batch_size: Rows generated together.
        max_seq_len: Longest sequence (prompt + generated tokens) the cache holds.
        num_kv_heads: Key/value heads of the layer.
        head_dim: Width of each head.
        dtype: dtype of the cached keys and values (the model's).
        device: Where the cache lives.

    Example:
        >>> cache = KVCache(batch_size=1, max_seq_len=8, num_kv_heads=2, head_dim=4,
        ...                 dtype=torch.float32)
        >>> k, v = cache.update(torch.ones(1, 2, 3, 4), torch.ones(1, 2, 3, 4))
        >>> k.shape, cache.size
        (torch.Size([1, 2, 3, 4]), 3)
        >>> cache.reset(); cache.size
        0
    """

    def __init__(
        self,
        *,
        batch_size: int,
        max_seq_len: int,
        num_kv_heads: int,
        head_dim: int,
        dtype: torch.dtype,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        shape = (batch_size, num_kv_heads, max_seq_len, head_dim)
        self.register_buffer("k_cache", torch.zeros(shape, dtype=dtype, device=device), False)
        self.register_buffer("v_cache", torch.zeros(shape, dtype=dtype, device=device), False)
        self.size = 0

    def reset(self) -> None:
        """Forget every position (the buffers are overwritten, not cleared)."""
        self.size = 0

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append ``k``, ``v`` (b, n_kv_heads, s, head_dim); return all keys and values so far.

        Raises:
            ValueError: If the cache would hold more than its ``max_seq_len`` positions.
        """
        start, s = self.size, k.shape[2]
        if start + s > self.k_cache.shape[2]:
            raise ValueError(
                f"KV cache holds {self.k_cache.shape[2]} positions; {start} + {s} do not fit"
            )
        self.k_cache[:, :, start : start + s] = k
        self.v_cache[:, :, start : start + s] = v
        self.size = start + s
        return self.k_cache[:, :, : self.size], self.v_cache[:, :, : self.size]
