"""The tokenization map stage: raw records in, tokenized rows out, bad rows quarantined.

Plain Python (numpy/pyarrow), no Ray import: ``chat_dataset`` runs :class:`TokenizeRows` in
a Ray actor pool, so ``__init__`` (which receives the tokenizer once) runs once per actor and
``__call__`` once per batch. Each record is decoded (UTF-8), parsed (JSON), checked to be an
object and handed to :func:`raytune_chat.data.tokenize_conversation` (:class:`RowTokenizer`);
any failure becomes a quarantine record with a reason code instead of an exception.

Per batch, in the same pass, the stage also writes its rows to the token store (when there
is one), its rejects to the quarantine, and its counts to the pass ledger, all keyed by the
batch's first record id, so a batch processed twice overwrites itself everywhere.
"""

from __future__ import annotations

import json
import zlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from raytune_chat.data import (
    CROSS_ENTROPY_IGNORE_IDX,
    DROPPED_KINDS,
    REASONING_MODES,
    TRUNCATIONS,
    RowRejected,
    shifted_labels_flat,
    tokenize_conversation,
)
from raytune_chat.datasets._ledger import BatchCounts, PassLedger, rejected_verdict
from raytune_chat.datasets._quarantine import QuarantineWriter, TooManyRejectedRows, make_reject

__all__ = [
    "DROPPED_COLUMNS",
    "TOKENIZED_SCHEMA",
    "RowTokenizer",
    "TokenizeRows",
    "build_message_transform",
    "check_chat_options",
    "parse_row",
    "tokenized_table",
]

# Per row, what it lost on purpose (reasoning left out, text beside a tool call, messages
# cut by history truncation); summed into the stats.
DROPPED_COLUMNS = tuple(f"dropped_{kind}" for kind in DROPPED_KINDS)
TOKENIZED_SCHEMA = pa.schema(
    [
        ("tokens", pa.list_(pa.int32())),
        ("labels", pa.list_(pa.int32())),
        ("num_tokens", pa.int32()),
        ("num_trained_tokens", pa.int32()),
        ("truncated", pa.bool_()),
        *((name, pa.int32()) for name in DROPPED_COLUMNS),
        ("row_id", pa.int64()),
    ]
)
STYLES = ("sharegpt", "openai")


def build_message_transform(
    conversation_style: str,
    *,
    conversation_column: str,
    train_on_input: bool = False,
    new_system_prompt: str | None = None,
    tools_column: str = "tools",
    reasoning: str = "keep",
) -> Any:
    """The foundation's row -> messages transform for a conversation style.

    Raises:
        ValueError: unknown ``conversation_style``.
    """
    from raytune_chat.data import OpenAIToMessages, ShareGPTToMessages

    if conversation_style == "sharegpt":
        cls, key = ShareGPTToMessages, "conversations"
    elif conversation_style == "openai":
        cls, key = OpenAIToMessages, "messages"
    else:
        raise ValueError(f"conversation_style must be one of {STYLES}, got {conversation_style!r}")
    return cls(
        train_on_input=train_on_input,
        column_map={key: conversation_column},
        new_system_prompt=new_system_prompt,
        tools_column=tools_column,
        reasoning=reasoning,
    )


def check_chat_options(*, reasoning: str, truncation: str) -> None:
    """Fail at once, naming the option, on a bad ``reasoning`` or ``truncation`` value.

    Raises:
        ValueError: an unknown value.
    """
    if reasoning not in REASONING_MODES:
        raise ValueError(f"reasoning must be one of {REASONING_MODES}, got {reasoning!r}")
    if truncation not in TRUNCATIONS:
        raise ValueError(f"truncation must be one of {TRUNCATIONS}, got {truncation!r}")


def parse_row(raw: bytes) -> dict[str, Any]:
    """Decode and parse one raw record into a row mapping.

    Raises:
        RowRejected: with reason ``invalid_utf8``, ``invalid_json`` or ``not_an_object``.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RowRejected("invalid_utf8", f"not valid UTF-8: {exc}") from None
    try:
        row = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RowRejected("invalid_json", f"not valid JSON: {exc}") from None
    if not isinstance(row, dict):
        raise RowRejected("not_an_object", f"a row must be a JSON object, got {type(row).__name__}")
    return row


def _list_array(offsets: np.ndarray, values: np.ndarray) -> pa.ListArray:
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(values))


def tokenized_table(samples: Sequence[tuple], row_ids: Sequence[int] | None = None) -> pa.Table:
    """``(tokens, mask, truncated[, dropped])`` per conversation -> a ``TOKENIZED_SCHEMA`` table.

    ``dropped`` (a `TokenizedConversation`'s counts by kind) fills the ``dropped_*`` columns;
    ``row_ids`` are the conversations' record ids (-1 when not given).

    Example:
        >>> t = tokenized_table([([1, 5, 6], [True, True, False], False)], row_ids=[7])
        >>> t["labels"].to_pylist() == [[CROSS_ENTROPY_IGNORE_IDX, 6, CROSS_ENTROPY_IGNORE_IDX]]
        True
        >>> t["num_trained_tokens"].to_pylist(), t["row_id"][0]
        ([1], <pyarrow.Int64Scalar: 7>)
    """
    lengths = np.fromiter((len(s[0]) for s in samples), dtype=np.int64, count=len(samples))
    offsets = np.zeros(len(samples) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    tokens = np.array([i for s in samples for i in s[0]], dtype=np.int32)
    mask = np.array([m for s in samples for m in s[1]], dtype=bool)
    labels = shifted_labels_flat(tokens, mask, offsets)
    trained = np.zeros(len(labels) + 1, dtype=np.int64)
    np.cumsum(labels != CROSS_ENTROPY_IGNORE_IDX, out=trained[1:])
    truncated = np.fromiter((s[2] for s in samples), dtype=bool, count=len(samples))
    dropped = np.zeros((len(DROPPED_KINDS), len(samples)), dtype=np.int32)
    for row, sample in enumerate(samples):
        if len(sample) > 3 and sample[3]:  # most rows lose nothing
            for k, kind in enumerate(DROPPED_KINDS):
                dropped[k, row] = sample[3].get(kind, 0)
    return pa.Table.from_arrays(
        [
            _list_array(offsets, tokens),
            _list_array(offsets, labels),
            pa.array(lengths.astype(np.int32)),
            pa.array((trained[offsets[1:]] - trained[offsets[:-1]]).astype(np.int32)),
            pa.array(truncated),
            *(pa.array(counts) for counts in dropped),
            pa.array([-1] * len(samples) if row_ids is None else row_ids, pa.int64()),
        ],
        schema=TOKENIZED_SCHEMA,
    )


class RowTokenizer:
    """One raw record -> a ``TokenizedConversation``, None (filtered out), or a reject.

    Args:
        tokenizer: a foundation tokenizer.
        message_transform: row -> ``{"messages": [...]}`` (:func:`build_message_transform`).
        filter_fn: drop parsed rows for which this returns False (before tokenization).
        truncation: ``"right"``, ``"drop"`` or ``"history"`` for over-long conversations.

    Raises:
        RowRejected: from ``__call__``, with the reason code.
    """

    def __init__(
        self,
        tokenizer: Any,
        message_transform: Any,
        filter_fn: Callable[[dict[str, Any]], bool] | None = None,
        truncation: str = "right",
    ) -> None:
        self._tokenizer, self._transform, self._filter_fn = tokenizer, message_transform, filter_fn
        self._truncation = truncation

    def __call__(self, raw: bytes, error: str | None) -> tuple | None:
        if error is not None:
            raise RowRejected("invalid_json_array", error)
        row = parse_row(raw)
        if self._filter_fn is not None and not self._filter_fn(row):
            return None
        try:
            return tokenize_conversation(
                row,
                message_transform=self._transform,
                tokenizer=self._tokenizer,
                truncation=self._truncation,
            )
        except RowRejected:
            raise
        except (TypeError, KeyError, AttributeError, ValueError) as exc:
            raise RowRejected("bad_message", f"{type(exc).__name__}: {exc}") from None


class TokenizeRows:
    """Map-stage callable: a ``RECORD_SCHEMA`` batch -> a ``TOKENIZED_SCHEMA`` table.

    Args:
        tokenizer: a foundation tokenizer (picklable; unpickled once per actor).
        conversation_style: ``"sharegpt"`` or ``"openai"``.
        conversation_column: the column holding the conversation.
        train_on_input: also train on system/user turns.
        new_system_prompt: replace every system turn with this one.
        rejected_path: folder or URI for quarantine files.
        storage_options: fsspec options for ``rejected_path``.
        max_rejected_fraction: stop when more rows than this share are rejected ...
        rejected_check_min_rows: ... once the pass has seen at least this many rows (or
            has seen them all).
        shuffle_seed: when set, rows of each batch are permuted with a seed derived from it
            and from the batch's first record (a reproducible local shuffle).
        filter_fn: drop parsed rows for which this returns False (before tokenization).
        ledger: where the batch counts go (``tokenized(key, counts) -> totals``); the pass
            ledger actor in a pipeline. None: a ledger of this stage's own batches.
        store: a token store (``write_part(key, table)``) for the tokenized rows, or None.
        tools_column: the column holding tool schemas.
        reasoning: ``"keep"``, ``"mask"`` or ``"drop"`` assistant reasoning traces.
        truncation: ``"right"``, ``"drop"`` or ``"history"`` for over-long conversations.
    """

    def __init__(
        self,
        *,
        tokenizer: Any,
        conversation_style: str,
        conversation_column: str,
        train_on_input: bool = False,
        new_system_prompt: str | None = None,
        rejected_path: str,
        storage_options: Mapping[str, Any] | None = None,
        max_rejected_fraction: float = 0.01,
        rejected_check_min_rows: int = 1000,
        shuffle_seed: int | None = None,
        filter_fn: Callable[[dict[str, Any]], bool] | None = None,
        ledger: Any = None,
        store: Any = None,
        tools_column: str = "tools",
        reasoning: str = "keep",
        truncation: str = "right",
    ) -> None:
        transform = build_message_transform(
            conversation_style,
            conversation_column=conversation_column,
            train_on_input=train_on_input,
            new_system_prompt=new_system_prompt,
            tools_column=tools_column,
            reasoning=reasoning,
        )
        self._rows = RowTokenizer(tokenizer, transform, filter_fn, truncation)
        self._writer = QuarantineWriter(rejected_path, storage_options)
        self._max_fraction = max_rejected_fraction
        self._min_rows = rejected_check_min_rows
        self._shuffle_seed = shuffle_seed
        self._ledger = PassLedger() if ledger is None else ledger
        self._store = store

    def __call__(self, batch: pa.Table) -> pa.Table:
        raws = batch["raw"].to_pylist()
        errors = batch["error"]
        errors = errors.to_pylist() if errors.null_count < len(errors) else [None] * len(raws)
        record_ids = batch["record_id"].to_numpy()
        key = int(pc.min(batch["record_id"]).as_py()) if len(raws) else 0
        samples, ids, rejects, filtered = [], [], [], 0
        for i, (raw, error) in enumerate(zip(raws, errors, strict=True)):
            try:
                sample = self._rows(raw, error)
            except RowRejected as exc:
                rejects.append(
                    make_reject(
                        source=batch["source"][i].as_py(),
                        line=batch["line"][i].as_py(),
                        row=batch["row"][i].as_py(),
                        reason=exc.reason,
                        message=str(exc),
                        raw=raw,
                    )
                )
                continue
            if sample is None:
                filtered += 1
                continue
            samples.append(sample)
            ids.append(int(record_ids[i]))
        order = self._order(len(samples), batch)
        table = tokenized_table([samples[i] for i in order], [ids[i] for i in order])
        if self._store is not None and table.num_rows:
            self._store.write_part(key, table)
        self._writer.write(rejects, name=f"rejected-{key:020d}.jsonl")
        self._account(key, len(raws), table, rejects, filtered)
        return table

    def _account(
        self, key: int, records: int, table: pa.Table, rejects: list[dict[str, Any]], filtered: int
    ) -> None:
        counts = BatchCounts(
            records=records,
            kept=table.num_rows,
            rejected=dict(Counter(r["reason"] for r in rejects)),
            filtered=filtered,
            truncated=int(pc.sum(table["truncated"].cast(pa.int64())).as_py() or 0),
            tokens=int(pc.sum(table["num_tokens"]).as_py() or 0),
            trained_tokens=int(pc.sum(table["num_trained_tokens"]).as_py() or 0),
            dropped={
                kind: n
                for kind, column in zip(DROPPED_KINDS, DROPPED_COLUMNS, strict=True)
                if (n := int(pc.sum(table[column]).as_py() or 0))
            },
        )
        totals = self._ledger.tokenized(key, counts)
        verdict = rejected_verdict(
            totals,
            self._max_fraction,
            min_rows=self._min_rows,
            rejected_path=self._writer.rejected_path,
        )
        if verdict:
            raise TooManyRejectedRows(verdict)

    def _order(self, n: int, batch: pa.Table) -> np.ndarray:
        if self._shuffle_seed is None or n < 2:
            return np.arange(n)
        first = [batch[name][0].as_py() for name in ("source", "line", "row")]
        key = ":".join(map(str, first)).encode()
        rng = np.random.default_rng([self._shuffle_seed, zlib.crc32(key)])
        return rng.permutation(n)
