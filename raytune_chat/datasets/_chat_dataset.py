"""``chat_dataset``: the Ray Data pipeline from chat files to tokenized (or packed) rows.

storage -> raw records (one read task per file, many blocks per file) -> tokenize (actor
pool; quarantine, token store and pass ledger written on the way) -> [pack (window
best-fit)] -> rows. When the token store of exactly this data and these options is
complete, the pipeline reads it instead and tokenizes nothing. This module and the recipe
are the only places that import ``ray``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import random
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.data import ActorPoolStrategy, Dataset, ExecutionResources

from raytune_chat.config import ConfigError
from raytune_chat.data import RowRejected
from raytune_chat.datasets._datasource import ChatFilesDatasource, TokenStoreDatasource
from raytune_chat.datasets._files import DataFile, resolve_data_files, storage_options_for
from raytune_chat.datasets._ledger import ChatDatasetStats, Prior, rejected_verdict
from raytune_chat.datasets._ledger_actor import LedgerClient, start_ledger
from raytune_chat.datasets._pack import PackRows
from raytune_chat.datasets._quarantine import TooManyRejectedRows
from raytune_chat.datasets._readers import (
    STORAGE_ERRORS,
    DataFileUnreadable,
    FileSample,
    sample_file,
)
from raytune_chat.datasets._split import SplitPart, parse_split
from raytune_chat.datasets._token_store import (
    TokenStore,
    find_store,
    store_key,
    tokenizer_fingerprint,
)
from raytune_chat.datasets._tokenize import (
    STYLES,
    RowTokenizer,
    TokenizeRows,
    build_message_transform,
    check_chat_options,
    parse_row,
)
from raytune_chat.datasets._warmup import start_ray_data_actors

__all__ = ["ChatDatasetInfo", "chat_dataset", "chat_dataset_info"]

logger = logging.getLogger(__name__)

_READ_CPUS = 0.25
_PACK_CPUS = 0.25
_BLOCK_BYTES = 1 << 20
_STORE_READ_TASKS = 8
_INFO_KEY = "raytune_chat.chat_dataset"
# Packed rows are assumed this full before the pass has packed any (best-fit over 2,048-row
# windows fills 95% or more of the rows on chat data).
_ASSUMED_FILL = 0.95
# chat_dataset arguments that do not change the tokens (left out of the token store key).
_NOT_IN_KEY = frozenset(
    {
        "tokenizer",
        "source",
        "data_files",
        "packed",
        "packing_window",
        "rejected_path",
        "max_rejected_fraction",
        "rejected_check_min_rows",
        "storage_options",
        "num_workers",
        "num_cpus_per_worker",
        "max_buffer_bytes",
        "cache_path",
    }
)


@dataclass(frozen=True)
class ChatDatasetInfo:
    """What ``chat_dataset`` decided, carried by the dataset (``chat_dataset_info(ds)``).

    Attributes:
        packed: rows are packed (use :class:`PackedCollateFn`).
        max_seq_len: the tokenizer's ``max_seq_len``.
        pad_id: the tokenizer's padding id.
        rejected_path: where rejected rows go.
        max_rejected_fraction: the share of rejected rows that stops a run.
        ledger: the pass ledger (``stats()``).
        store: the token store these rows are written to or read from (None: no store).
        reads_store: the rows come from a complete store: nothing is tokenized.
        packing_window: rows per packing window.
        max_buffer_bytes: the object-store bytes the pipeline may hold in flight.
        storage_options: fsspec options for data, quarantine and store.
    """

    packed: bool
    max_seq_len: int | None
    pad_id: int
    rejected_path: str | None
    max_rejected_fraction: float
    ledger: LedgerClient
    store: TokenStore | None = None
    reads_store: bool = False
    packing_window: int = 2048
    max_buffer_bytes: int | None = 512 << 20
    storage_options: Mapping[str, Any] = field(default_factory=dict)

    def collate_fn(self, *, pad_to_multiple_of: int | None = None) -> Any:
        """The collate class instance for ``iter_torch_batches(collate_fn=...)``."""
        from raytune_chat.datasets._collate_fns import PackedCollateFn, PaddedCollateFn

        if self.packed:
            return PackedCollateFn()
        return PaddedCollateFn(pad_id=self.pad_id, pad_to_multiple_of=pad_to_multiple_of)

    def stats(self) -> ChatDatasetStats:
        """The counts of the passes over this dataset so far (exact once ``complete``)."""
        return self.ledger.snapshot()

    def check_rejected(self, stats: ChatDatasetStats) -> None:
        """Raise :class:`TooManyRejectedRows` when a complete pass rejected too many rows."""
        verdict = rejected_verdict(  # a min_rows no pass reaches: only a complete pass counts
            stats, self.max_rejected_fraction, min_rows=1 << 62, rejected_path=self.rejected_path
        )
        if verdict:
            raise TooManyRejectedRows(verdict)

    def store_dataset(self) -> Dataset | None:
        """The same rows read back from the token store (once complete), packed as these are.

        The recipe hands it to Ray Train next to the raw pipeline and trains on it from the
        first epoch that starts after the store is complete. None when there is no store.
        """
        if self.store is None:
            return None
        return _finish(_read_store(self.store), dataclasses.replace(self, reads_store=True))


def chat_dataset_info(ds: Dataset) -> ChatDatasetInfo:
    """The :class:`ChatDatasetInfo` of a dataset returned by ``chat_dataset``.

    Datasets derived from it (``ds.limit(5)``) carry the same info.

    Raises:
        KeyError: ``ds`` did not come from ``chat_dataset``.
    """
    info = ds.context.get_config(_INFO_KEY)
    if info is None:
        raise KeyError("this Dataset was not returned by raytune_chat.datasets.chat_dataset")
    return info


def _check_column(file: DataFile, sample: FileSample, column: str) -> None:
    """Fail fast when none of the sampled rows of the first file has ``column``."""
    columns: set[str] = set()
    for raw in sample.records:
        try:
            row = parse_row(raw)
        except RowRejected:
            continue
        if column in row:
            return
        columns.update(row)
    if columns:
        raise ConfigError(
            "conversation_column",
            f"{column!r} is not a column of {file.path}; its rows have columns {sorted(columns)}",
        )


def _list_files(source: str, data_files: Any, **kwargs: Any) -> list[DataFile]:
    """:func:`resolve_data_files`; a path or URL that cannot be listed stops the run, named."""
    try:
        return resolve_data_files(source, data_files, **kwargs)
    except STORAGE_ERRORS as exc:
        raise DataFileUnreadable(
            f"data_files {data_files!r}: cannot list it: {type(exc).__name__}: {exc}"
        ) from exc


def _uris(source: str, data_files: Any) -> list[str]:
    """Every string among ``source`` and ``data_files`` (a path, list or split mapping)."""
    if isinstance(data_files, Mapping):
        return [u for v in data_files.values() for u in _uris(source, v)]
    items = [data_files] if isinstance(data_files, str) else list(data_files or [])
    return [str(u) for u in [source, *items] if isinstance(u, str)]


def _pool_size(num_workers: int | None) -> int:
    if num_workers is not None:
        return max(1, num_workers)
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def _fingerprint(value: Any) -> Any:
    """A JSON-able value that changes when ``value`` does (callables: their pickled bytes)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [_fingerprint(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _fingerprint(v) for k, v in value.items()}
    import cloudpickle

    return hashlib.sha256(cloudpickle.dumps(value)).hexdigest()


def _store_inputs(
    tokenizer: Any, files: Sequence[DataFile], arguments: Mapping[str, Any]
) -> dict[str, Any]:
    """Everything that decides the tokenized rows of a pass (the token store key's inputs)."""
    return {
        "tokenizer": f"{type(tokenizer).__module__}.{type(tokenizer).__qualname__}",
        "tokenizer_fingerprint": tokenizer_fingerprint(tokenizer),
        "files": [[f.path, f.size, f.version] for f in files],
        "block_bytes": _BLOCK_BYTES,
        "options": {k: _fingerprint(v) for k, v in arguments.items() if k not in _NOT_IN_KEY},
    }


def _prior(
    sample: FileSample, rows: RowTokenizer, max_seq_len: int | None, part: SplitPart
) -> Prior:
    """The rows, kept share and packing density that the sampled records predict (of the
    split's `part` of the records)."""
    kept = []
    for raw in sample.records:
        try:
            got = rows(raw, None)
        except RowRejected:
            continue
        if got is not None:
            kept.append(len(got[0]))
    share = len(kept) / len(sample.records) if sample.records else 1.0
    per_pack = None
    if max_seq_len and kept:
        mean = sum(min(n, max_seq_len) for n in kept) / len(kept)
        per_pack = max(1.0, _ASSUMED_FILL * max_seq_len / mean)
    per_byte = sample.records_per_byte
    return Prior(None if per_byte is None else per_byte * part.fraction, share, per_pack)


def _read_store(store: TokenStore) -> Dataset:
    tasks = min(_STORE_READ_TASKS, _pool_size(None))
    return ray.data.read_datasource(
        TokenStoreDatasource(store, tasks), num_cpus=_READ_CPUS, override_num_blocks=tasks
    )


def _finish(ds: Dataset, info: ChatDatasetInfo) -> Dataset:
    """Pack if asked, set the execution options, and attach ``info`` to the dataset."""
    if info.packed:
        ds = ds.map_batches(
            PackRows(max_seq_len=info.max_seq_len, pad_id=info.pad_id, ledger=info.ledger),
            batch_size=info.packing_window,
            batch_format="pyarrow",
            num_cpus=_PACK_CPUS,
        )
    # Blocks of about one read block: the first batch comes early and every actor gets work.
    ds.context.target_max_block_size = _BLOCK_BYTES
    # A seeded, reproducible order: resume skips exactly the consumed batches, a token store
    # is written (and read back) in the pipeline's order.
    ds.context.execution_options.preserve_order = True
    if info.max_buffer_bytes is not None:
        ds.context.execution_options.resource_limits = ExecutionResources.for_limits(
            object_store_memory=info.max_buffer_bytes
        )
    ds.context.set_config(_INFO_KEY, info)
    return ds


def chat_dataset(
    tokenizer: Any,
    *,
    source: str,
    conversation_column: str,
    conversation_style: str,
    data_files: str | Sequence[str] | Mapping[str, Any] | None = None,
    split: str = "train",
    train_on_input: bool = False,
    new_system_prompt: str | None = None,
    packed: bool = False,
    rejected_path: str | None = None,
    max_rejected_fraction: float = 0.01,
    storage_options: Mapping[str, Any] | None = None,
    shuffle: bool = False,
    seed: int = 0,
    num_workers: int | None = None,
    num_cpus_per_worker: float = 0.5,
    batch_size: int = 256,
    packing_window: int = 2048,
    rejected_check_min_rows: int = 1000,
    filter_fn: Callable[[dict[str, Any]], bool] | None = None,
    max_buffer_bytes: int | None = 512 << 20,
    cache_path: str | None = None,
    tools_column: str = "tools",
    reasoning: str = "keep",
    truncation: str = "right",
) -> Dataset:
    """Stream chat conversations from files into tokenized (optionally packed) Ray Data rows.

    The torchtune tutorial's call works unchanged::

        ds = chat_dataset(tokenizer, source="json", data_files="data/my_data.json",
                          split="train", conversation_column="dialogue",
                          conversation_style="sharegpt")

    Rows hold ``tokens`` and ``labels`` (int32 lists, labels shifted per conversation and
    ``CROSS_ENTROPY_IGNORE_IDX`` where masked) plus ``num_tokens``, ``num_trained_tokens``,
    ``truncated`` and ``row_id`` (the record's ``file_index * 2**40 + line_or_row``). With
    ``packed=True`` rows are ``max_seq_len`` long and hold ``input_pos`` and ``document_ids``
    (see :func:`raytune_chat.data.pack_window`) instead of ``row_id``. Get the matching collate
    class with ``chat_dataset_info(ds).collate_fn()``, and the counts of what was read, kept and
    rejected, growing as the data streams, with ``chat_dataset_info(ds).stats()``.

    YAML::

        dataset:
          _component_: raytune_chat.datasets.chat_dataset
          source: json
          data_files: data/my_data.json
          conversation_column: dialogue
          conversation_style: sharegpt

    Args:
        tokenizer: a foundation tokenizer (``tokenize_messages``, ``pad_id``, ``max_seq_len``).
        source: ``"json"`` (JSON array or JSON Lines, detected per file), ``"jsonl"``,
            ``"parquet"``, ``"tokenized"`` (a token store, e.g. written by ``raytune-chat
            prepare``; skips tokenization), or a path/URI.
        conversation_column: the column holding the list of messages.
        conversation_style: ``"sharegpt"`` or ``"openai"``.
        data_files: a path, glob, directory, list of them, or ``{split: files}``; local or
            any fsspec URI, optionally ``.gz`` / ``.zst`` / ``.bz2``.
        split: which split of ``data_files``, or a percent part of it (``"train[:90%]"``,
            ``"train[90%:]"``: disjoint parts of the same files, e.g. for ``dataset_val``;
            row ``k`` of a file is in percent bucket ``(k * 61) % 100``, see
            ``raytune_chat.datasets._split``).
        train_on_input: also train on system and user turns.
        new_system_prompt: replace the data's system turns with this one.
        packed: pack conversations into rows of ``tokenizer.max_seq_len``.
        rejected_path: folder or URI for the quarantine JSONL files (a temporary folder,
            logged, when None).
        max_rejected_fraction: stop when more than this share of rows is rejected.
        storage_options: fsspec options (credentials, endpoint) for data and quarantine.
        shuffle: shuffle the file order and, within each batch, the rows (seeded).
        seed: the shuffle seed.
        num_workers: tokenizer actors (default: the cluster's CPU count).
        num_cpus_per_worker: fractional CPUs reserved per actor, so read tasks never starve.
        batch_size: rows per tokenization batch (also the local shuffle window).
        packing_window: rows per best-fit packing window.
        rejected_check_min_rows: rows the pass must have seen before the rejected share is
            checked (a complete pass is always checked).
        filter_fn: keep only raw rows (dicts) for which this returns True, before
            tokenization, as torchtune's; dropped rows are neither kept nor rejected.
        max_buffer_bytes: object-store bytes the pipeline may hold in flight, so memory
            stays flat however large the input (None: Ray Data's default share).
        cache_path: folder or URI of token stores. The tokenized rows are written to
            ``<cache_path>/<key>/`` during the first full pass, ``key`` hashing everything
            that decides them (tokenizer, files, options); when that store is complete the
            dataset reads it and tokenizes nothing. The recipe sets it.
        tools_column: the column holding each row's tool schemas (a list, or a JSON string
            of one); rendered into the first user message, masked (spec §5).
        reasoning: an assistant's ``reasoning_content``/``reasoning``: ``"keep"`` (default,
            trained with the answer), ``"mask"`` (rendered, not trained) or ``"drop"`` (left
            out, counted in the stats).
        truncation: a conversation longer than ``max_seq_len``: ``"right"`` (default, the
            tokenizer cuts it as torchtune does), ``"drop"`` (rejected as ``too_long``) or
            ``"history"`` (the oldest exchanges are dropped, system message and tool
            schemas kept; ``too_long`` if the last exchange alone does not fit).

    Returns:
        A lazy ``ray.data.Dataset``.

    Raises:
        ValueError: unknown style/source, or no ``max_seq_len`` with ``packed=True``.
        ConfigError: a ``conversation_column`` that the data does not have (the message
            lists the columns that exist).
        DataFileUnreadable: ``data_files`` cannot be listed (no such path, an unreachable
            URL or bucket), or the first file cannot be read.
    """
    arguments = dict(locals())
    if conversation_style not in STYLES and source != "tokenized":
        raise ValueError(f"conversation_style must be one of {STYLES}, got {conversation_style!r}")
    check_chat_options(reasoning=reasoning, truncation=truncation)
    max_seq_len = getattr(tokenizer, "max_seq_len", None)
    if packed and not max_seq_len:
        raise ValueError("packed=True needs a tokenizer with max_seq_len set")
    # Resolve endpoints from this process's environment: workers may not share it.
    options = dict(storage_options or {})
    for uri in [*_uris(source, data_files), *filter(None, [rejected_path, cache_path])]:
        options = storage_options_for(uri, options)
    common = dict(
        packed=packed,
        max_seq_len=max_seq_len,
        pad_id=tokenizer.pad_id,
        max_rejected_fraction=max_rejected_fraction,
        packing_window=packing_window,
        max_buffer_bytes=max_buffer_bytes,
        storage_options=options,
    )
    capacity = max_seq_len if packed else None
    part = parse_split(split)
    if source == "tokenized":
        if not part.whole:
            raise ValueError(f"split {split!r}: a token store is read whole, not in parts")
        store = _tokenized_store(data_files, split, options)
        return _from_store(store, common, capacity, rejected_path)
    files = _list_files(source, data_files, split=part.name, storage_options=options)
    sample = sample_file(files[0], storage_options=options)
    _check_column(files[0], sample, conversation_column)
    if not ray.is_initialized():
        ray.init()
    start_ray_data_actors()
    if shuffle:
        random.Random(seed).shuffle(files)  # the read order; rows keep it (preserve_order)
    store = None
    if cache_path is not None:
        inputs = _store_inputs(tokenizer, files, arguments)
        key = store_key(inputs)
        store = TokenStore(f"{cache_path.rstrip('/')}/{key}", options, key, inputs)
        if store.complete():
            return _from_store(store, common, capacity, rejected_path)
    if rejected_path is None:
        rejected_path = tempfile.mkdtemp(prefix="raytune_chat_rejected_")
        logger.warning("rejected rows go to %s (set rejected_path to choose)", rejected_path)
    transform = build_message_transform(
        conversation_style,
        conversation_column=conversation_column,
        train_on_input=train_on_input,
        new_system_prompt=new_system_prompt,
        tools_column=tools_column,
        reasoning=reasoning,
    )
    rows = RowTokenizer(tokenizer, transform, filter_fn, truncation)
    ledger = start_ledger(
        file_sizes=[f.size for f in files],
        prior=_prior(sample, rows, max_seq_len, part),
        pack_capacity=capacity,
        store=store,
    )
    datasource = ChatFilesDatasource(
        files, storage_options=options, block_bytes=_BLOCK_BYTES, ledger=ledger, part=part
    )
    # One read task per file already yields many small blocks: no further splitting.
    ds = ray.data.read_datasource(datasource, num_cpus=_READ_CPUS, override_num_blocks=len(files))
    ds = ds.map_batches(
        TokenizeRows,
        fn_constructor_kwargs={
            "tokenizer": tokenizer,
            "conversation_style": conversation_style,
            "conversation_column": conversation_column,
            "train_on_input": train_on_input,
            "new_system_prompt": new_system_prompt,
            "rejected_path": rejected_path,
            "storage_options": options,
            "max_rejected_fraction": max_rejected_fraction,
            "rejected_check_min_rows": rejected_check_min_rows,
            "shuffle_seed": seed if shuffle else None,
            "filter_fn": filter_fn,
            "ledger": ledger,
            "store": store,
            "tools_column": tools_column,
            "reasoning": reasoning,
            "truncation": truncation,
        },
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=ActorPoolStrategy(min_size=1, max_size=_pool_size(num_workers)),
        num_cpus=num_cpus_per_worker,
    )
    return _finish(
        ds, ChatDatasetInfo(**common, rejected_path=rejected_path, ledger=ledger, store=store)
    )


def _tokenized_store(data_files: Any, split: str, options: Mapping[str, Any]) -> TokenStore:
    """The token store that ``source="tokenized"`` names: one folder, or Parquet files."""
    if isinstance(data_files, Mapping):
        if split not in data_files:
            raise ValueError(f"split {split!r} not in data_files (splits: {sorted(data_files)})")
        data_files = data_files[split]
    if isinstance(data_files, str) and not data_files.endswith(".parquet"):
        return find_store(data_files, options)
    files = _list_files("parquet", data_files, storage_options=options)
    return TokenStore(files[0].path, options, part_paths=tuple(f.path for f in files))


def _from_store(
    store: TokenStore, common: dict[str, Any], capacity: int | None, rejected_path: str | None
) -> Dataset:
    """A dataset over a complete token store: its counts are known before it is read."""
    if not ray.is_initialized():
        ray.init()
    start_ray_data_actors()
    manifest = None if store.part_paths else store.manifest()
    if manifest is not None:
        stats = ChatDatasetStats(**{**manifest["stats"], "rows_tokenized": 0})
    else:
        rows = sum(p.rows for p in store.parts())
        stats = ChatDatasetStats(rows_read=rows, rows_kept=rows, complete=True)
    per_pack = None
    if capacity and stats.rows_kept and stats.num_tokens:
        mean = stats.num_tokens / stats.rows_kept
        per_pack = max(1.0, _ASSUMED_FILL * capacity / min(mean, capacity))
    ledger = start_ledger(
        prior=Prior(None, 1.0, per_pack),
        pack_capacity=capacity,
        finished=stats,
    )
    full = ChatDatasetInfo(
        **common, rejected_path=rejected_path, ledger=ledger, store=store, reads_store=True
    )
    return _finish(_read_store(store), full)
