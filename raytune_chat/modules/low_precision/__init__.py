"""Frozen 4-bit NormalFloat (NF4) base weights for QLoRA, stored and computed by torchao."""

from raytune_chat.modules.low_precision._nf4 import (
    NF4_BLOCK_SIZE,
    NF4_SCALER_BLOCK_SIZE,
    FrozenNF4Linear,
    dequantize,
    dequantize_state_dict,
    is_nf4,
    linear_nf4,
    quantize_unless_meta,
    to_nf4,
)

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
