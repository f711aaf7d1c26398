"""LoRA (Hu et al., 2021): a frozen linear layer plus a trainable low-rank update."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from raytune_chat.modules.low_precision import is_nf4, linear_nf4, quantize_unless_meta

__all__ = ["LoRALinear"]


class LoRALinear(nn.Module):
    """``y = x W^T + b + (alpha / rank) * B(A(dropout(x)))``.

    The base parameters keep ``nn.Linear``'s names (``weight``, ``bias``) so a base checkpoint
    loads unchanged; the adapter lives in ``lora_a`` (Kaiming-uniform) and ``lora_b`` (zeros),
    so a fresh adapter leaves the layer's output unchanged. With ``quantize_base`` (QLoRA) the
    frozen base weight is stored in NF4 and dequantized in the forward; the adapter stays in
    the run's dtype. On the meta device the weight stays unquantized until it is loaded.

    Args:
        in_dim: Input features.
        out_dim: Output features.
        rank: LoRA rank ``r``.
        alpha: LoRA ``alpha``; the update is scaled by ``alpha / rank``.
        dropout: Dropout on the adapter's input.
        use_bias: Give the base layer a bias.
        quantize_base: Store the base weight in NF4 (needs the ``qlora`` extra, torchao).

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
        quantize_base: bool = False,
    ) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.rank = rank
        self.alpha = alpha
        self.scaling = alpha / rank
        self.disabled = False
        self.quantize_base = quantize_base
        base = nn.Linear(in_dim, out_dim, bias=use_bias)
        self.weight = (
            nn.Parameter(quantize_unless_meta(base.weight.detach()), requires_grad=False)
            if quantize_base
            else base.weight
        )
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

    def base_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The frozen layer alone, ``x W^T + b`` (W dequantized from NF4 with QLoRA)."""
        if not is_nf4(self.weight):
            return F.linear(x, self.weight, self.bias)
        out = linear_nf4(x, self.weight)
        return out if self.bias is None else out + self.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the base layer plus the scaled low-rank update to ``x`` (..., in_dim)."""
        out = self.base_forward(x)
        if self.disabled:
            return out
        return out + self.scaling * self.lora_b(self.lora_a(self.dropout(x)))
