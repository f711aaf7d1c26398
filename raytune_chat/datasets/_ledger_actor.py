"""The pass ledger as a Ray actor, and the small client every stage and the trainer hold.

One actor per ``chat_dataset`` call, with no CPU reserved: it only adds up counts. Calls
wait for the answer (a round trip of about a millisecond, once per batch of rows), which
orders them: a read task's "file read to its end" lands before the tokenization of that
file's last block is counted. Ray stops the actor once no dataset or task holds its handle.
"""

from __future__ import annotations

from typing import Any

import ray

from raytune_chat.datasets._ledger import BatchCounts, ChatDatasetStats, PassLedger

__all__ = ["LedgerClient", "start_ledger"]


class LedgerClient:
    """Picklable handle on a :class:`PassLedger` actor, with the ledger's methods."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def file_read(self, file_index: int, records: int) -> None:
        ray.get(self._handle.file_read.remote(file_index, records))

    def tokenized(self, key: int, counts: BatchCounts) -> ChatDatasetStats:
        return ray.get(self._handle.tokenized.remote(key, counts))

    def packed(self, key: int, rows: int, conversations: int, tokens: int) -> None:
        ray.get(self._handle.packed.remote(key, rows, conversations, tokens))

    def snapshot(self) -> ChatDatasetStats:
        return ray.get(self._handle.snapshot.remote())


def start_ledger(**kwargs: Any) -> LedgerClient:
    """Start a ledger actor (``PassLedger(**kwargs)``) and return its client."""
    actor = ray.remote(num_cpus=0, max_restarts=0)(PassLedger)
    return LedgerClient(actor.remote(**kwargs))
