"""Training building blocks the recipes share: the step, its parts, the plan, logs, state, outputs.

All plain torch but `raytune_chat.training.ray_train`, the Ray Train wiring (trainer
configs, fit, report, restore), which is imported by its own name and not re-exported here.
`recipe_config` reads a recipe's config, `step_plan` plans its optimizer steps.
"""

from raytune_chat.training._activations import peak_memory_gib, set_activation_checkpointing
from raytune_chat.training._base_weights import (
    initialize_adapters,
    initialize_dora_magnitudes,
    load_base_weights,
)
from raytune_chat.training._builders import (
    build_loss,
    build_lr_scheduler,
    build_metric_loggers,
    build_model,
    build_optimizer,
    build_profiler,
    load_base,
)
from raytune_chat.training._distributed import all_ranks_have, from_rank_zero
from raytune_chat.training._fsdp import build_sharded_model, final_output_state
from raytune_chat.training._loop import (
    MetricWindow,
    RowIdCollate,
    RowIdLog,
    WorkerParts,
    data_fields,
    optimizer_steps,
    step_record,
)
from raytune_chat.training._loss_plot import plot_loss
from raytune_chat.training._outputs import adapter_config, save_final_outputs, write_peft_adapter
from raytune_chat.training._precision import get_dtype
from raytune_chat.training._storage import copy_outputs_to_storage
from raytune_chat.training._summary import print_start, print_summary, write_summary
from raytune_chat.training._train_state import (
    TrainPosition,
    load_train_state,
    save_train_state,
    train_state,
    trainable_state_dict,
    unwrap_model,
    write_train_state,
)
from raytune_chat.training._train_step import StepStats, micro_batch_loss, scale_grads, train_step
from raytune_chat.training._validation import (
    ValStats,
    val_record,
    validation_due,
    validation_loss,
    validation_step,
)
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
from raytune_chat.training.recipe_config import (
    RaySettings,
    RecipeSettings,
    parse_settings,
    validate_config,
)
from raytune_chat.training.step_plan import (
    StepPlan,
    budget_spent,
    epoch_over,
    follow_plan,
    initial_plan,
    plan_after_epoch,
    plan_while_training,
)

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
    "MetricWindow",
    "RaySettings",
    "RecipeSettings",
    "RowIdCollate",
    "RowIdLog",
    "StepPlan",
    "StepStats",
    "TrainPosition",
    "ValStats",
    "WorkerParts",
    "adapter_config",
    "all_ranks_have",
    "budget_spent",
    "build_loss",
    "build_lr_scheduler",
    "build_metric_loggers",
    "build_model",
    "build_optimizer",
    "build_profiler",
    "build_sharded_model",
    "copy_outputs_to_storage",
    "data_fields",
    "epoch_over",
    "final_output_state",
    "follow_plan",
    "from_rank_zero",
    "get_cosine_schedule_with_warmup",
    "get_dtype",
    "initial_plan",
    "initialize_adapters",
    "initialize_dora_magnitudes",
    "load_base",
    "load_base_weights",
    "load_train_state",
    "micro_batch_loss",
    "optimizer_steps",
    "parse_settings",
    "peak_memory_gib",
    "plan_after_epoch",
    "plan_while_training",
    "plot_loss",
    "print_start",
    "print_summary",
    "save_final_outputs",
    "save_train_state",
    "scale_grads",
    "set_activation_checkpointing",
    "setup_torch_profiler",
    "step_record",
    "train_state",
    "train_step",
    "trainable_state_dict",
    "unwrap_model",
    "val_record",
    "validate_config",
    "validation_due",
    "validation_loss",
    "validation_step",
    "write_peft_adapter",
    "write_train_state",
    "write_summary",
]
