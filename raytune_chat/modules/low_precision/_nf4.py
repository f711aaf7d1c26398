"""NF4 weights through torchao's ``NF4Tensor`` (the QLoRA format torchtune used).

QLoRA (Dettmers et al., 2023) stores each frozen weight as 4-bit NormalFloat codes in blocks
of 64 values with one scale per block, and quantizes those scales again to 8 bits in blocks of
256 ("double quantization"): about 4.13 bits per weight instead of 16. torchao implements the
format, its dequantizing matmul and its autograd (gradients flow to the input, never to the
frozen weight); this module only fixes the block sizes, names the optional extra when torchao
is missing, and checks shapes with an error that names the problem.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

__all__ = [
    "NF4_BLOCK_SIZE",
    "NF4_SCALER_BLOCK_SIZE",
    "FrozenNF4Linear",
    "dequantize",
    "dequantize_state_dict",
    "is_nf4",
    "linear_nf4",
    "quantize_unless_meta",
    "to_nf4",
]

NF4_BLOCK_SIZE = 64  # weights per absmax scale (QLoRA's and torchtune's block size)
NF4_SCALER_BLOCK_SIZE = 256  # scales per 8-bit double-quantization block


@contextlib.contextmanager
def _quiet(*logger_names: str) -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in logger_names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _torchao_nf4() -> Any:
    try:
        # torchao's import logs a warning per CUDA kernel library a CPU torch cannot load,
        # and torch one about an enum torchao registers; NF4 needs neither.
        with _quiet("torchao", "torch.utils._pytree"):
            from torchao.dtypes import nf4tensor
    except ImportError as exc:
        raise ImportError(
            "QLoRA (quantize_base=True, qlora_* builders) needs torchao: "
            "pip install 'raytune_chat[qlora]'"
        ) from exc
    return nf4tensor


def is_nf4(tensor: Any) -> bool:
    """Whether ``tensor`` is a torchao ``NF4Tensor`` (checked without importing torchao).

    Example:
        >>> is_nf4(torch.zeros(2))
        False
    """
    return type(tensor).__name__ == "NF4Tensor" and hasattr(tensor, "get_original_weight")


def to_nf4(weight: torch.Tensor) -> torch.Tensor:
    """Quantize ``weight`` to NF4 (blocks of 64, double-quantized scales); keeps its dtype.

    Args:
        weight: A floating-point tensor; ``numel`` must be a multiple of 64 * 256 = 16,384.

    Returns:
        An ``NF4Tensor`` whose ``dtype`` is ``weight.dtype`` (what it dequantizes to).

    Raises:
        ValueError: When the size does not divide into whole blocks.
        ImportError: Naming the ``qlora`` extra when torchao is missing.

    Example:
        >>> w = torch.randn(128, 128)
        >>> q = to_nf4(w)
        >>> bool((dequantize(q) - w).abs().max() < 0.5 * w.abs().max())
        True
    """
    block = NF4_BLOCK_SIZE * NF4_SCALER_BLOCK_SIZE
    if weight.numel() % block:
        raise ValueError(
            f"cannot store a {tuple(weight.shape)} weight in NF4: its {weight.numel()} values "
            f"must be a multiple of {block} ({NF4_BLOCK_SIZE}-value blocks, scales "
            f"double-quantized in groups of {NF4_SCALER_BLOCK_SIZE})"
        )
    return _torchao_nf4().to_nf4(
        weight, block_size=NF4_BLOCK_SIZE, scaler_block_size=NF4_SCALER_BLOCK_SIZE
    )


def quantize_unless_meta(weight: torch.Tensor) -> torch.Tensor:
    """:func:`to_nf4` for real tensors; a meta tensor (a model not loaded yet) is kept as is.

    Example:
        >>> quantize_unless_meta(torch.empty(128, 128, device="meta")).is_meta
        True
    """
    return weight if weight.is_meta else to_nf4(weight)


def dequantize(tensor: torch.Tensor) -> torch.Tensor:
    """The full-precision weight an ``NF4Tensor`` stands for; other tensors pass through."""
    return tensor.get_original_weight() if is_nf4(tensor) else tensor


def dequantize_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A copy of ``state_dict`` with every NF4 weight dequantized (for merged outputs).

    Example:
        >>> sd = dequantize_state_dict({"w": to_nf4(torch.ones(128, 128))})
        >>> type(sd["w"]).__name__, sd["w"].dtype
        ('Tensor', torch.float32)
    """
    return {k: dequantize(v) for k, v in state_dict.items()}


def linear_nf4(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``x @ dequantize(weight).T`` in ``x``'s dtype, without keeping the dequantized weight."""
    return _torchao_nf4().linear_nf4(input=x, weight=weight)


class FrozenNF4Linear(nn.Module):
    """A bias-free linear layer whose frozen weight is stored in NF4 (QLoRA's base layers).

    The weight keeps ``nn.Linear``'s name, so base checkpoints load into it; it never trains.
    Built under ``torch.device("meta")`` the weight stays a plain meta tensor (nothing is
    allocated or quantized) and ``quantize_base`` tells the loader to quantize the real
    weight as it arrives.

    Args:
        in_dim: Input features.
        out_dim: Output features.

    Example:
        >>> layer = FrozenNF4Linear(128, 256)
        >>> layer(torch.randn(2, 128)).shape, layer.weight.requires_grad
        (torch.Size([2, 256]), False)
    """

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.quantize_base = True
        weight = nn.Linear(in_dim, out_dim, bias=False).weight.detach()
        self.weight = nn.Parameter(quantize_unless_meta(weight), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Dequantize-and-multiply ``x`` (..., in_dim)."""
        return linear_nf4(x, self.weight)
