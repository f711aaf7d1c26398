"""Rotary position embeddings (RoPE), plain and with Llama 3.1's frequency scaling."""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["RotaryPositionalEmbeddings", "Llama3ScaledRoPE"]


class RotaryPositionalEmbeddings(nn.Module):
    """Rotate adjacent pairs ``(x[2i], x[2i+1])`` of each head by ``pos * base**(-2i/dim)``.

    This is Meta's (and torchtune's) interleaved layout; Hugging Face checkpoints use the
    half-split layout and are permuted on load by the HF checkpointer. The cos/sin table is
    kept in fp32 outside the module's buffers, so ``model.to(torch.bfloat16)`` never rounds it.

    Args:
        dim: Head dimension (even).
        max_seq_len: Largest position + 1 that may be requested.
        base: The RoPE base (theta).

    Example:
        >>> rope = RotaryPositionalEmbeddings(dim=8, max_seq_len=16)
        >>> x = torch.randn(1, 4, 2, 8)  # (b, s, n_heads, head_dim)
        >>> torch.equal(rope(x)[:, 0], x[:, 0])  # position 0 is not rotated
        True
    """

    def __init__(self, dim: int, max_seq_len: int = 4096, base: float = 10_000.0) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"RoPE needs an even head dimension, got {dim}")
        self.dim = dim
        self.max_seq_len = max_seq_len
        self.base = base
        self._tables: dict[torch.device, torch.Tensor] = {}

    def inverse_frequencies(self) -> torch.Tensor:
        """The ``dim // 2`` rotation frequencies, fp32 on CPU."""
        exponents = torch.arange(0, self.dim, 2, dtype=torch.float64)[: self.dim // 2] / self.dim
        return (1.0 / (self.base**exponents)).float()

    def _table(self, device: torch.device) -> torch.Tensor:
        """(max_seq_len, dim // 2, 2) table of (cos, sin), built once per device."""
        if device not in self._tables:
            positions = torch.arange(self.max_seq_len, dtype=torch.float32)
            angles = torch.outer(positions, self.inverse_frequencies())
            table = torch.stack([angles.cos(), angles.sin()], dim=-1)
            self._tables[device] = table.to(device)
        return self._tables[device]

    def forward(self, x: torch.Tensor, *, input_pos: torch.Tensor | None = None) -> torch.Tensor:
        """Rotate ``x`` (b, s, n_heads, head_dim) at ``input_pos`` (b, s), default ``0..s-1``."""
        b, s, _, _ = x.shape
        table = self._table(x.device)
        if input_pos is None:
            rope = table[:s].view(1, s, 1, self.dim // 2, 2)
        else:
            rope = table[input_pos].view(b, s, 1, self.dim // 2, 2)
        pairs = x.float().reshape(b, s, -1, self.dim // 2, 2)  # (b, s, h, dim/2, 2)
        cos, sin = rope[..., 0], rope[..., 1]
        rotated = torch.stack(
            [
                pairs[..., 0] * cos - pairs[..., 1] * sin,
                pairs[..., 1] * cos + pairs[..., 0] * sin,
            ],
            dim=-1,
        )
        return rotated.flatten(3).type_as(x)


class Llama3ScaledRoPE(RotaryPositionalEmbeddings):
    """RoPE with Llama 3.1's long-context frequency scaling.

    Wavelengths shorter than ``old_context_len / high_freq_factor`` keep their frequency,
    those longer than ``old_context_len / low_freq_factor`` are divided by ``scale_factor``,
    and the band in between is interpolated smoothly (Hugging Face ``rope_type="llama3"``).

    Args:
        dim: Head dimension (even).
        max_seq_len: Largest position + 1 that may be requested.
        base: The RoPE base (theta).
        scale_factor: Divisor for low frequencies (8 for Llama 3.1, 32 for Llama 3.2).
        low_freq_factor: Lower edge of the interpolation band.
        high_freq_factor: Upper edge of the interpolation band.
        old_context_len: Context length of the unscaled model.

    Example:
        >>> plain = RotaryPositionalEmbeddings(dim=64, base=500_000.0)
        >>> scaled = Llama3ScaledRoPE(dim=64, base=500_000.0, scale_factor=8)
        >>> bool(scaled.inverse_frequencies()[-1] < plain.inverse_frequencies()[-1])
        True
    """

    def __init__(
        self,
        dim: int,
        max_seq_len: int = 131_072,
        base: float = 500_000.0,
        scale_factor: float = 8.0,
        low_freq_factor: float = 1.0,
        high_freq_factor: float = 4.0,
        old_context_len: int = 8192,
    ) -> None:
        super().__init__(dim, max_seq_len, base)
        self.scale_factor = scale_factor
        self.low_freq_factor = low_freq_factor
        self.high_freq_factor = high_freq_factor
        self.old_context_len = old_context_len

    def inverse_frequencies(self) -> torch.Tensor:
        """The scaled ``dim // 2`` rotation frequencies, fp32 on CPU."""
        freqs = super().inverse_frequencies()
        wavelen = 2 * math.pi / freqs
        high_freq_wavelen = self.old_context_len / self.high_freq_factor
        low_freq_wavelen = self.old_context_len / self.low_freq_factor
        smooth = (self.old_context_len / wavelen - self.low_freq_factor) / (
            self.high_freq_factor - self.low_freq_factor
        )
        blended = (1 - smooth) * freqs / self.scale_factor + smooth * freqs
        scaled = torch.where(wavelen > low_freq_wavelen, freqs / self.scale_factor, blended)
        return torch.where(wavelen < high_freq_wavelen, freqs, scaled)
