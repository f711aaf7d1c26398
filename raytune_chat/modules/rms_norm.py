"""Root-mean-square layer norm (Zhang & Sennrich, 2019) as used by Llama."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["RMSNorm"]


class RMSNorm(nn.Module):
    """Scale ``x`` by the reciprocal of its root mean square, computed in fp32.

    The learned gain is called ``scale`` (torchtune's name, so checkpoints load unchanged).

    Args:
        dim: Size of the last dimension of the input.
        eps: Added to the mean square before the square root.

    Example:
        >>> norm = RMSNorm(4)
        >>> norm(torch.ones(2, 4)).shape
        torch.Size([2, 4])
    """

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``x`` (..., dim) and apply the gain; returns ``x``'s dtype."""
        x_fp32 = x.float()
        normed = x_fp32 * torch.rsqrt(x_fp32.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.scale
