"""Training building blocks in plain torch: the step, schedules, logging, state, checkpointers.

Nothing here imports Ray; the recipes wire these into Ray Train.
"""

from raytune_chat.training._activations import peak_memory_gib, set_activation_checkpointing
from raytune_chat.training._base_weights import (
    initialize_adapters,
    initialize_dora_magnitudes,
    load_base_weights,
)
from raytune_chat.training._loss_plot import plot_loss
from raytune_chat.training._precision import get_dtype
from raytune_chat.training._train_state import (
    TrainPosition,
    load_train_state,
    save_train_state,
    trainable_state_dict,
)
from raytune_chat.training._train_step import StepStats, micro_batch_loss, scale_grads, train_step
from raytune_chat.training.checkpointing import (
    ADAPTER_CONFIG,
    ADAPTER_KEY,
    MODEL_KEY,
    FullModelHFCheckpointer,
    FullModelMetaCheckpointer,
    FullModelTorchTuneCheckpointer,
    ModelType,
)
from raytune_chat.training.lr_schedulers import get_cosine_schedule_with_warmup
from raytune_chat.training.metric_logging import (
    CometLogger,
    DiskLogger,
    MLFlowLogger,
    StdoutLogger,
    TensorBoardLogger,
    WandBLogger,
)
from raytune_chat.training.profiler import setup_torch_profiler

__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_KEY",
    "MODEL_KEY",
    "FullModelHFCheckpointer",
    "FullModelMetaCheckpointer",
    "FullModelTorchTuneCheckpointer",
    "ModelType",
    "CometLogger",
    "DiskLogger",
    "MLFlowLogger",
    "StdoutLogger",
    "TensorBoardLogger",
    "WandBLogger",
    "StepStats",
    "TrainPosition",
    "get_cosine_schedule_with_warmup",
    "get_dtype",
    "initialize_adapters",
    "initialize_dora_magnitudes",
    "load_base_weights",
    "load_train_state",
    "micro_batch_loss",
    "peak_memory_gib",
    "plot_loss",
    "save_train_state",
    "scale_grads",
    "set_activation_checkpointing",
    "setup_torch_profiler",
    "train_step",
    "trainable_state_dict",
]
