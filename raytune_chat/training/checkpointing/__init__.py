"""Checkpointers for Meta, Hugging Face and torchtune formats (torchtune 0.6.1 names)."""

from raytune_chat.training.checkpointing._checkpointer import (
    FullModelHFCheckpointer,
    FullModelMetaCheckpointer,
    FullModelTorchTuneCheckpointer,
)
from raytune_chat.training.checkpointing._constants import (
    ADAPTER_CONFIG,
    ADAPTER_CONFIG_FNAME,
    ADAPTER_KEY,
    ADAPTER_MODEL_FNAME,
    MODEL_DIRNAME,
    MODEL_KEY,
    ModelType,
)

__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_CONFIG_FNAME",
    "ADAPTER_KEY",
    "ADAPTER_MODEL_FNAME",
    "MODEL_DIRNAME",
    "MODEL_KEY",
    "FullModelHFCheckpointer",
    "FullModelMetaCheckpointer",
    "FullModelTorchTuneCheckpointer",
    "ModelType",
]
