"""LoRA (Hu et al., 2021): a frozen linear layer plus a trainable low-rank update."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["LoRALinear"]


class LoRALinear(nn.Module):
    """``y = x W^T + b + (alpha / rank) * B(A(dropout(x)))``.

    The base parameters keep ``nn.Linear``'s names (``weight``, ``bias``) so a base checkpoint
    loads unchanged; the adapter lives in ``lora_a`` (Kaiming-uniform) and ``lora_b`` (zeros),
    so a fresh adapter leaves the layer's output unchanged.

    Args:
        in_dim: Input features.
        out_dim: Output features.
        rank: LoRA rank ``r``.
        alpha: LoRA ``alpha``; the update is scaled by ``alpha / rank``.
        dropout: Dropout on the adapter's input.
        use_bias: Give the base layer a bias.

    Example:
        >>> layer = LoRALinear(8, 4, rank=2, alpha=4.0)
        >>> sorted(name for name, _ in layer.named_parameters())
        ['lora_a.weight', 'lora_b.weight', 'weight']
        >>> x = torch.randn(3, 8)
        >>> torch.allclose(layer(x), x @ layer.weight.T)  # lora_b starts at zero
        True
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        rank: int,
        alpha: float,
        dropout: float = 0.0,
        use_bias: bool = False,
    ) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.rank = rank
        self.alpha = alpha
        self.scaling = alpha / rank
        self.disabled = False
        base = nn.Linear(in_dim, out_dim, bias=use_bias)
        self.weight = base.weight
        self.bias = base.bias
        self.dropout = nn.Dropout(p=dropout) if dropout > 0.0 else nn.Identity()
        self.lora_a = nn.Linear(in_dim, rank, bias=False)
        self.lora_b = nn.Linear(rank, out_dim, bias=False)
        self.initialize_parameters()

    def initialize_parameters(self) -> None:
        """Kaiming-uniform ``lora_a``, zero ``lora_b``."""
        nn.init.kaiming_uniform_(self.lora_a.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_b.weight)

    def adapter_params(self) -> list[str]:
        """Names (relative to this module) of the trainable adapter parameters."""
        return ["lora_a.weight", "lora_b.weight"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the base layer plus the scaled low-rank update to ``x`` (..., in_dim)."""
        out = F.linear(x, self.weight, self.bias)
        if self.disabled:
            return out
        return out + self.scaling * self.lora_b(self.lora_a(self.dropout(x)))
