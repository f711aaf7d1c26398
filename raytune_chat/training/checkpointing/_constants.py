"""Names shared by checkpointers and the recipe: state-dict keys, file names, model types."""

from __future__ import annotations

from enum import Enum

__all__ = [
    "MODEL_KEY",
    "ADAPTER_KEY",
    "ADAPTER_CONFIG",
    "MODEL_DIRNAME",
    "ADAPTER_MODEL_FNAME",
    "ADAPTER_CONFIG_FNAME",
    "ModelType",
]

MODEL_KEY = "model"
ADAPTER_KEY = "adapter"
ADAPTER_CONFIG = "adapter_config"

MODEL_DIRNAME = "model"  # epoch_{n}/model/: full weights, apart from the PEFT adapter
ADAPTER_MODEL_FNAME = "adapter_model"
ADAPTER_CONFIG_FNAME = "adapter_config.json"


class ModelType(str, Enum):
    """Model families the checkpointers convert (torchtune's ``model_type`` strings).

    ``LLAMA3_2`` marks tied input/output embeddings: ``output.weight`` is dropped on load
    and, for Meta files, written back as a copy of ``tok_embeddings.weight``.

    Example:
        >>> ModelType["LLAMA3"].ties_embeddings, ModelType["LLAMA3_2"].ties_embeddings
        (False, True)
    """

    LLAMA2 = "llama2"
    LLAMA3 = "llama3"
    LLAMA3_2 = "llama3_2"
    MISTRAL = "mistral"

    @property
    def ties_embeddings(self) -> bool:
        """Whether the LM head shares the token embedding."""
        return self is ModelType.LLAMA3_2
