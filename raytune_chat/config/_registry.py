"""The explicit registry of components a YAML `_component_` may name.

Every entry maps a public dotted name to the `module:attribute` that implements it. Our own
builders are listed under `raytune_chat.*`; the names torchtune's LoRA/QLoRA/DoRA configs use
(`torchtune.*`) are aliases of the same targets, so a torchtune YAML resolves unchanged. Targets
are imported only when a config names them. Nothing outside this table is importable from a
config; `register_component` adds user builders explicitly.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from raytune_chat.config._errors import ConfigError

__all__ = ["component_names", "register_component", "resolve_component", "translate_alias"]

# public suffix (after "raytune_chat.") -> "module:attribute"
_OURS: dict[str, str] = {
    # models: tokenizers, chat templates, general builders, presets (lora_*, qlora_*)
    "models.llama2.llama2": "raytune_chat.models.llama2:llama2",
    "models.llama2.llama2_13b": "raytune_chat.models.llama2:llama2_13b",
    "models.llama2.llama2_70b": "raytune_chat.models.llama2:llama2_70b",
    "models.llama2.llama2_7b": "raytune_chat.models.llama2:llama2_7b",
    "models.llama2.llama2_tokenizer": "raytune_chat.models.llama2:llama2_tokenizer",
    "models.llama2.lora_llama2": "raytune_chat.models.llama2:lora_llama2",
    "models.llama2.lora_llama2_13b": "raytune_chat.models.llama2:lora_llama2_13b",
    "models.llama2.lora_llama2_70b": "raytune_chat.models.llama2:lora_llama2_70b",
    "models.llama2.lora_llama2_7b": "raytune_chat.models.llama2:lora_llama2_7b",
    "models.llama2.qlora_llama2_13b": "raytune_chat.models.llama2:qlora_llama2_13b",
    "models.llama2.qlora_llama2_70b": "raytune_chat.models.llama2:qlora_llama2_70b",
    "models.llama2.qlora_llama2_7b": "raytune_chat.models.llama2:qlora_llama2_7b",
    "models.code_llama2.code_llama2_13b": "raytune_chat.models.code_llama2:code_llama2_13b",
    "models.code_llama2.code_llama2_70b": "raytune_chat.models.code_llama2:code_llama2_70b",
    "models.code_llama2.code_llama2_7b": "raytune_chat.models.code_llama2:code_llama2_7b",
    "models.code_llama2.lora_code_llama2_13b": (
        "raytune_chat.models.code_llama2:lora_code_llama2_13b"
    ),
    "models.code_llama2.lora_code_llama2_70b": (
        "raytune_chat.models.code_llama2:lora_code_llama2_70b"
    ),
    "models.code_llama2.lora_code_llama2_7b": "raytune_chat.models.code_llama2:lora_code_llama2_7b",
    "models.code_llama2.qlora_code_llama2_13b": (
        "raytune_chat.models.code_llama2:qlora_code_llama2_13b"
    ),
    "models.code_llama2.qlora_code_llama2_70b": (
        "raytune_chat.models.code_llama2:qlora_code_llama2_70b"
    ),
    "models.code_llama2.qlora_code_llama2_7b": (
        "raytune_chat.models.code_llama2:qlora_code_llama2_7b"
    ),
    "models.llama3.llama3": "raytune_chat.models.llama3:llama3",
    "models.llama3.llama3_70b": "raytune_chat.models.llama3:llama3_70b",
    "models.llama3.llama3_8b": "raytune_chat.models.llama3:llama3_8b",
    "models.llama3.llama3_tokenizer": "raytune_chat.models.llama3:llama3_tokenizer",
    "models.llama3.lora_llama3": "raytune_chat.models.llama3:lora_llama3",
    "models.llama3.lora_llama3_70b": "raytune_chat.models.llama3:lora_llama3_70b",
    "models.llama3.lora_llama3_8b": "raytune_chat.models.llama3:lora_llama3_8b",
    "models.llama3.qlora_llama3_70b": "raytune_chat.models.llama3:qlora_llama3_70b",
    "models.llama3.qlora_llama3_8b": "raytune_chat.models.llama3:qlora_llama3_8b",
    "models.llama3_1.llama3_1_405b": "raytune_chat.models.llama3_1:llama3_1_405b",
    "models.llama3_1.llama3_1_70b": "raytune_chat.models.llama3_1:llama3_1_70b",
    "models.llama3_1.llama3_1_8b": "raytune_chat.models.llama3_1:llama3_1_8b",
    "models.llama3_1.lora_llama3_1_405b": "raytune_chat.models.llama3_1:lora_llama3_1_405b",
    "models.llama3_1.lora_llama3_1_70b": "raytune_chat.models.llama3_1:lora_llama3_1_70b",
    "models.llama3_1.lora_llama3_1_8b": "raytune_chat.models.llama3_1:lora_llama3_1_8b",
    "models.llama3_1.qlora_llama3_1_405b": "raytune_chat.models.llama3_1:qlora_llama3_1_405b",
    "models.llama3_1.qlora_llama3_1_70b": "raytune_chat.models.llama3_1:qlora_llama3_1_70b",
    "models.llama3_1.qlora_llama3_1_8b": "raytune_chat.models.llama3_1:qlora_llama3_1_8b",
    "models.llama3_2.llama3_2_1b": "raytune_chat.models.llama3_2:llama3_2_1b",
    "models.llama3_2.llama3_2_3b": "raytune_chat.models.llama3_2:llama3_2_3b",
    "models.llama3_2.lora_llama3_2_1b": "raytune_chat.models.llama3_2:lora_llama3_2_1b",
    "models.llama3_2.lora_llama3_2_3b": "raytune_chat.models.llama3_2:lora_llama3_2_3b",
    "models.llama3_2.qlora_llama3_2_1b": "raytune_chat.models.llama3_2:qlora_llama3_2_1b",
    "models.llama3_2.qlora_llama3_2_3b": "raytune_chat.models.llama3_2:qlora_llama3_2_3b",
    "models.llama3_3.llama3_3_70b": "raytune_chat.models.llama3_3:llama3_3_70b",
    "models.llama3_3.lora_llama3_3_70b": "raytune_chat.models.llama3_3:lora_llama3_3_70b",
    "models.llama3_3.qlora_llama3_3_70b": "raytune_chat.models.llama3_3:qlora_llama3_3_70b",
    "models.mistral.lora_mistral": "raytune_chat.models.mistral:lora_mistral",
    "models.mistral.lora_mistral_7b": "raytune_chat.models.mistral:lora_mistral_7b",
    "models.mistral.mistral": "raytune_chat.models.mistral:mistral",
    "models.mistral.mistral_7b": "raytune_chat.models.mistral:mistral_7b",
    "models.mistral.mistral_tokenizer": "raytune_chat.models.mistral:mistral_tokenizer",
    "models.mistral.qlora_mistral_7b": "raytune_chat.models.mistral:qlora_mistral_7b",
    # datasets (C)
    "datasets.chat_dataset": "raytune_chat.datasets:chat_dataset",
    # checkpointers (B)
    "training.FullModelMetaCheckpointer": "raytune_chat.training:FullModelMetaCheckpointer",
    "training.FullModelHFCheckpointer": "raytune_chat.training:FullModelHFCheckpointer",
    "training.FullModelTorchTuneCheckpointer": (
        "raytune_chat.training:FullModelTorchTuneCheckpointer"
    ),
    # loss (B)
    "modules.loss.CEWithChunkedOutputLoss": "raytune_chat.modules.loss:CEWithChunkedOutputLoss",
    # schedules, logging, profiling (D)
    "training.lr_schedulers.get_cosine_schedule_with_warmup": (
        "raytune_chat.training.lr_schedulers:get_cosine_schedule_with_warmup"
    ),
    "modules.get_cosine_schedule_with_warmup": (
        "raytune_chat.training.lr_schedulers:get_cosine_schedule_with_warmup"
    ),
    "training.metric_logging.DiskLogger": "raytune_chat.training.metric_logging:DiskLogger",
    "training.metric_logging.StdoutLogger": "raytune_chat.training.metric_logging:StdoutLogger",
    "training.metric_logging.TensorBoardLogger": (
        "raytune_chat.training.metric_logging:TensorBoardLogger"
    ),
    "training.metric_logging.WandBLogger": "raytune_chat.training.metric_logging:WandBLogger",
    "training.metric_logging.MLFlowLogger": "raytune_chat.training.metric_logging:MLFlowLogger",
    "training.metric_logging.CometLogger": "raytune_chat.training.metric_logging:CometLogger",
    "training.setup_torch_profiler": "raytune_chat.training.profiler:setup_torch_profiler",
    # prompt templates (A); named as strings in tokenizer sections
    "data.ChatMLTemplate": "raytune_chat.data:ChatMLTemplate",
    "data.SummarizeTemplate": "raytune_chat.data:SummarizeTemplate",
    "data.GrammarErrorCorrectionTemplate": "raytune_chat.data:GrammarErrorCorrectionTemplate",
    "data.QuestionAnswerTemplate": "raytune_chat.data:QuestionAnswerTemplate",
    "models.llama2.Llama2ChatTemplate": "raytune_chat.models.llama2:Llama2ChatTemplate",
    "models.mistral.MistralChatTemplate": "raytune_chat.models.mistral:MistralChatTemplate",
}

_THIRD_PARTY: dict[str, str] = {
    "torch.optim.AdamW": "torch.optim:AdamW",
    "torch.optim.Adam": "torch.optim:Adam",
    "torch.optim.SGD": "torch.optim:SGD",
    "torch.nn.CrossEntropyLoss": "torch.nn:CrossEntropyLoss",
}


def _build_table() -> dict[str, str]:
    table = dict(_THIRD_PARTY)
    for suffix, target in _OURS.items():
        table[f"raytune_chat.{suffix}"] = target
        table[f"torchtune.{suffix}"] = target
    return table


_TABLE: dict[str, str] = _build_table()
_EXTRA: dict[str, Callable[..., Any]] = {}


def component_names() -> list[str]:
    """All names a `_component_` may take, sorted.

    Example:
        >>> "torchtune.models.llama3.lora_llama3_8b" in component_names()
        True
    """
    return sorted(set(_TABLE) | set(_EXTRA))


def register_component(name: str, fn: Callable[..., Any]) -> None:
    """Make a user builder nameable from YAML as `_component_: <name>`.

    Example:
        >>> register_component("my.builders.double", lambda *, x: 2 * x)
        >>> resolve_component("my.builders.double", key="dataset")(x=2)
        4
    """
    _EXTRA[name] = fn


def translate_alias(value: str) -> str:
    """Map a torchtune dotted name to ours; other strings come back unchanged.

    Example:
        >>> translate_alias("torchtune.data.SummarizeTemplate")
        'raytune_chat.data.SummarizeTemplate'
    """
    if value.startswith("torchtune.") and value in _TABLE:
        return "raytune_chat." + value[len("torchtune.") :]
    return value


def resolve_component(name: str, *, key: str) -> Callable[..., Any]:
    """Return the callable registered under `name`.

    Args:
        name: the `_component_` value.
        key: dotted config key holding it, for the error message.

    Raises:
        ConfigError: naming `key` when `name` is not registered or its module lacks it.
    """
    if name in _EXTRA:
        return _EXTRA[name]
    target = _TABLE.get(name)
    if target is None:
        raise ConfigError(
            key,
            f"unknown component {name!r}; `raytune-chat validate` accepts the names in "
            "raytune_chat.config.component_names() (or register_component() your own)",
        )
    module_name, attr = target.split(":")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(key, f"component {name!r} is not available in this build: {exc}") from exc
