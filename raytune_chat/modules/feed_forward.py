"""SwiGLU feed-forward block."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["FeedForward"]


class FeedForward(nn.Module):
    """``w2(silu(w1(x)) * w3(x))``, the Llama MLP.

    Names follow torchtune: ``w1`` is the gate projection, ``w3`` the up projection and
    ``w2`` the down projection. Each may be an ``nn.Linear`` or a ``LoRALinear``.

    Args:
        gate_proj: ``embed_dim -> hidden_dim`` projection passed through SiLU.
        down_proj: ``hidden_dim -> embed_dim`` projection.
        up_proj: ``embed_dim -> hidden_dim`` projection multiplied with the gate.

    Example:
        >>> mlp = FeedForward(
        ...     gate_proj=nn.Linear(4, 8), down_proj=nn.Linear(8, 4), up_proj=nn.Linear(4, 8)
        ... )
        >>> mlp(torch.zeros(1, 3, 4)).shape
        torch.Size([1, 3, 4])
    """

    def __init__(self, *, gate_proj: nn.Module, down_proj: nn.Module, up_proj: nn.Module) -> None:
        super().__init__()
        self.w1 = gate_proj
        self.w2 = down_proj
        self.w3 = up_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block to ``x`` of shape (b, s, embed_dim)."""
        return self.w2(nn.functional.silu(self.w1(x)) * self.w3(x))
