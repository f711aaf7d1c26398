"""Chat datasets streamed with Ray Data (torchtune's ``torchtune.datasets`` names).

Example:
    >>> from raytune_chat.datasets import chat_dataset  # doctest: +SKIP
    >>> ds = chat_dataset(tokenizer, source="json", data_files="data/my_data.json",
    ...                   split="train", conversation_column="dialogue",
    ...                   conversation_style="sharegpt")  # doctest: +SKIP
    >>> collate = chat_dataset_info(ds).collate_fn()  # doctest: +SKIP
    >>> batches = iter_chat_batches(ds, batch_size=8, collate_fn=collate)  # doctest: +SKIP
    >>> chat_dataset_info(ds).stats().rows_kept  # doctest: +SKIP
"""

from raytune_chat.datasets._batches import iter_chat_batches
from raytune_chat.datasets._chat_dataset import ChatDatasetInfo, chat_dataset, chat_dataset_info
from raytune_chat.datasets._collate_fns import PackedCollateFn, PaddedCollateFn
from raytune_chat.datasets._ledger import ChatDatasetStats
from raytune_chat.datasets._quarantine import TooManyRejectedRows, read_rejects
from raytune_chat.datasets._readers import DataFileUnreadable

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
