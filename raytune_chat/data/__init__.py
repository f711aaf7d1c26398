"""Messages, conversation transforms, prompt templates, and row → sample tokenization."""

from typing import TYPE_CHECKING

from raytune_chat._lazy import lazy_exports
from raytune_chat.data._common import (
    CROSS_ENTROPY_IGNORE_IDX,
    DROPPED_KINDS,
    REJECT_REASONS,
    MaskingStrategy,
    RowRejected,
)
from raytune_chat.data._message_transforms import (
    REASONING_MODES,
    OpenAIToMessages,
    ReasoningMode,
    ShareGPTToMessages,
    render_tool_call,
)
from raytune_chat.data._messages import Message, Role, validate_messages
from raytune_chat.data._packing import PackedRows, pack_window
from raytune_chat.data._prompt_templates import (
    ChatMLTemplate,
    GrammarErrorCorrectionTemplate,
    PromptTemplate,
    PromptTemplateInterface,
    QuestionAnswerTemplate,
    SummarizeTemplate,
    resolve_prompt_template,
)
from raytune_chat.data._sample import (
    TRUNCATIONS,
    TokenizedConversation,
    Truncation,
    shifted_labels,
    shifted_labels_flat,
    tokenize_conversation,
    tokenize_row,
)

# Collate code needs torch; imported on first use (tokenizer actors never use it).
if TYPE_CHECKING:
    from raytune_chat.data._collate import (
        PackedCollate,
        PaddedCollate,
        padded_collate_packed,
        padded_collate_sft,
    )

__getattr__ = lazy_exports(__name__, __file__)

__all__ = [
    "CROSS_ENTROPY_IGNORE_IDX",
    "DROPPED_KINDS",
    "REASONING_MODES",
    "REJECT_REASONS",
    "TRUNCATIONS",
    "ChatMLTemplate",
    "GrammarErrorCorrectionTemplate",
    "MaskingStrategy",
    "Message",
    "OpenAIToMessages",
    "PackedCollate",
    "PackedRows",
    "PaddedCollate",
    "PromptTemplate",
    "PromptTemplateInterface",
    "QuestionAnswerTemplate",
    "ReasoningMode",
    "Role",
    "RowRejected",
    "ShareGPTToMessages",
    "SummarizeTemplate",
    "TokenizedConversation",
    "Truncation",
    "render_tool_call",
    "resolve_prompt_template",
    "shifted_labels",
    "shifted_labels_flat",
    "tokenize_conversation",
    "tokenize_row",
    "validate_messages",
    "pack_window",
    "padded_collate_packed",
    "padded_collate_sft",
]
