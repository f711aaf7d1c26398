"""Chat datasets streamed with Ray Data (torchtune's ``torchtune.datasets`` names).

Example (streams the 800 bundled conversations through a local Ray cluster):
    >>> from raytune_chat.config import asset_path
    >>> from raytune_chat.datasets import chat_dataset, chat_dataset_info, iter_chat_batches
    >>> from raytune_chat.models.llama3 import llama3_tokenizer
    >>> tokenizer = llama3_tokenizer(str(asset_path("cl100k_base")), max_seq_len=256)
    >>> ds = chat_dataset(tokenizer, source="json", data_files=str(asset_path("sample_chat")),
    ...                   conversation_column="dialogue", conversation_style="sharegpt")
    >>> collate = chat_dataset_info(ds).collate_fn()
    >>> sum(len(b["tokens"]) for b in iter_chat_batches(ds, batch_size=8, collate_fn=collate))
    800
    >>> stats = chat_dataset_info(ds).stats()
    >>> stats.rows_read == stats.rows_kept + stats.rows_rejected
    True
"""

from typing import TYPE_CHECKING

from raytune_chat._lazy import lazy_exports
from raytune_chat.datasets._batches import iter_chat_batches
from raytune_chat.datasets._chat_dataset import ChatDatasetInfo, chat_dataset, chat_dataset_info
from raytune_chat.datasets._ledger import ChatDatasetStats
from raytune_chat.datasets._quarantine import TooManyRejectedRows, read_rejects
from raytune_chat.datasets._readers import DataFileUnreadable

# The collate classes need torch: imported on first use, not in every Ray Data actor.
if TYPE_CHECKING:
    from raytune_chat.datasets._collate_fns import (
        PackedCollateFn,
        PaddedCollateFn,
    )

__getattr__ = lazy_exports(__name__, __file__)

__all__ = [
    "ChatDatasetInfo",
    "ChatDatasetStats",
    "DataFileUnreadable",
    "PackedCollateFn",
    "PaddedCollateFn",
    "TooManyRejectedRows",
    "chat_dataset",
    "chat_dataset_info",
    "iter_chat_batches",
    "read_rejects",
]
