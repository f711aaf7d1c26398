"""DoRA (Liu et al., 2024): LoRA whose merged weight is rescaled row by row to a learned norm."""

from __future__ import annotations

import torch
from torch import nn

from raytune_chat.modules.peft._lora import LoRALinear

__all__ = ["DoRALinear"]


class DoRALinear(LoRALinear):
    """``y = (m / ||W + s B A||) * (x (W + s B A)^T)`` with ``s = alpha / rank``, plus bias.

    The weight is split into a direction (``W + s B A``, through LoRA) and a per-output-row
    magnitude ``m`` (``magnitude``, trained with the adapters). The norm is treated as a
    constant in backward, as the paper (section 4.3), torchtune and PEFT do.
    ``m`` must start as the norm of the loaded base weight, so that a fresh adapter leaves the
    output unchanged: call :meth:`initialize_dora_magnitude` after loading base weights (the
    recipe does). Parameter names match torchtune's, and the PEFT adapter stores ``m`` as
    ``lora_magnitude_vector``.

    Args:
        in_dim: Input features.
        out_dim: Output features.
        rank: LoRA rank ``r``.
        alpha: LoRA ``alpha``.
        dropout: Dropout on the adapter's input.
        use_bias: Give the base layer a bias.
        quantize_base: Store the base weight in NF4 (QDoRA).

    Example:
        >>> layer = DoRALinear(8, 4, rank=2, alpha=4.0)
        >>> x = torch.randn(3, 8)
        >>> torch.allclose(layer(x), x @ layer.weight.T, atol=1e-6)  # m = ||W|| at start
        True
        >>> layer.adapter_params()
        ['lora_a.weight', 'lora_b.weight', 'magnitude']
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
        super().__init__(in_dim, out_dim, rank, alpha, dropout, use_bias, quantize_base)
        self.magnitude = nn.Parameter(torch.empty(out_dim))
        if not self.weight.is_meta:
            self.initialize_dora_magnitude()

    def adapter_params(self) -> list[str]:
        """Names of the trainable parameters: the LoRA pair and the magnitude."""
        return [*super().adapter_params(), "magnitude"]

    def _weight_norm(self, weight: torch.Tensor, lora_weight: torch.Tensor) -> torch.Tensor:
        """Row norms of the merged weight ``W + s B A``, (out_dim,)."""
        return torch.linalg.norm(weight + self.scaling * lora_weight, dim=1).to(weight.dtype)

    @torch.no_grad()
    def initialize_dora_magnitude(self) -> None:
        """Set ``magnitude`` to the row norms of ``W + s B A`` (call after loading weights).

        Raises:
            RuntimeError: While the base or adapter weights are still on the meta device.
        """
        if any(t.is_meta for t in (self.weight, self.lora_a.weight, self.lora_b.weight)):
            raise RuntimeError("load the base and LoRA weights before initializing DoRA")
        dtype = self.lora_a.weight.dtype
        weight = self.weight.to(dtype)
        lora_weight = self.lora_b.weight @ self.lora_a.weight
        self.magnitude.copy_(self._weight_norm(weight, lora_weight))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the rescaled layer to ``x`` (..., in_dim)."""
        base_out = self.base_forward(x)
        if self.disabled:
            return base_out
        lora_out = self.lora_b(self.lora_a(self.dropout(x)))
        lora_weight = (self.lora_b.weight @ self.lora_a.weight).to(x.dtype)
        weight_norm = self._weight_norm(self.weight.to(x.dtype), lora_weight.detach()).detach()
        scale = (self.magnitude / weight_norm).view(1, -1)  # (1, out_dim)
        # m/||.|| * (base + s*lora) written so that base_out is reused, as torchtune does
        return (scale - 1) * base_out + scale * lora_out * self.scaling + base_out
