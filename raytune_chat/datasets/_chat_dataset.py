"""``chat_dataset``: the Ray Data pipeline from chat files to tokenized (or packed) rows.

storage -> raw records (one read task per file, many blocks) -> tokenize (actor pool,
quarantine) -> [pack (window best-fit)] -> rows. This module and the recipe are the only
places that import ``ray``.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import fsspec
import ray
from pyarrow.fs import FSSpecHandler, PyFileSystem
from ray.data import ActorPoolStrategy, Dataset, ExecutionResources

from raytune_chat.datasets._datasource import ChatFilesDatasource
from raytune_chat.datasets._files import DataFile, resolve_data_files, storage_options_for
from raytune_chat.datasets._pack import PackRows
from raytune_chat.datasets._readers import peek_records
from raytune_chat.datasets._stats import ChatDatasetInfo, chat_dataset_info, register_info
from raytune_chat.datasets._tokenize import (
    STYLES,
    TOKENIZED_SCHEMA,
    TokenizeRows,
    check_chat_options,
)
from raytune_chat.datasets._warmup import start_ray_data_actors

__all__ = ["chat_dataset", "save_tokenized"]

logger = logging.getLogger(__name__)

_READ_CPUS = 0.25
_PACK_CPUS = 0.25
_BLOCK_BYTES = 1 << 20


def _check_column(
    files: Sequence[DataFile], column: str, storage_options: Mapping[str, Any] | None
) -> None:
    """Fail fast when none of the first rows of the first file has ``column``."""
    columns: set[str] = set()
    for raw in peek_records(files[0], storage_options=storage_options):
        try:
            row = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(row, dict):
            if column in row:
                return
            columns.update(row)
    if columns:
        raise ValueError(
            f"conversation_column {column!r} is not a column of {files[0].path}; "
            f"its rows have columns {sorted(columns)}"
        )


def _uris(source: str, data_files: Any) -> list[str]:
    """Every string among ``source`` and ``data_files`` (a path, list or split mapping)."""
    if isinstance(data_files, Mapping):
        return [u for v in data_files.values() for u in _uris(source, v)]
    items = [data_files] if isinstance(data_files, str) else list(data_files or [])
    return [str(u) for u in [source, *items] if isinstance(u, str)]


def _pool_size(num_workers: int | None) -> int:
    if num_workers is not None:
        return max(1, num_workers)
    if not ray.is_initialized():
        ray.init()
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def _read_tokenized(
    files: Sequence[DataFile], storage_options: Mapping[str, Any] | None
) -> Dataset:
    """Parquet written by :func:`save_tokenized`, through fsspec (same endpoints as JSON)."""
    fs, _ = fsspec.core.url_to_fs(
        files[0].path, **storage_options_for(files[0].path, storage_options)
    )
    return ray.data.read_parquet(
        [fs._strip_protocol(f.path) for f in files],
        filesystem=PyFileSystem(FSSpecHandler(fs)),
        num_cpus=_READ_CPUS,
    )


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
    -100 where masked) plus ``num_tokens``, ``num_trained_tokens`` and ``truncated``. With
    ``packed=True`` rows are ``max_seq_len`` long and also hold ``input_pos`` and
    ``document_ids`` (see :func:`raytune_chat.data.pack_window`). Get the matching collate
    class with ``chat_dataset_info(ds).collate_fn()`` and pass statistics with
    ``dataset_stats(ds)``.

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
            ``"parquet"``, ``"tokenized"`` (Parquet written by :func:`save_tokenized`; skips
            tokenization), or a path/URI.
        conversation_column: the column holding the list of messages.
        conversation_style: ``"sharegpt"`` or ``"openai"``.
        data_files: a path, glob, directory, list of them, or ``{split: files}``; local or
            any fsspec URI, optionally ``.gz`` / ``.zst`` / ``.bz2``.
        split: which split of ``data_files``.
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
        rejected_check_min_rows: rows an actor must see before it checks the rejected share.
        filter_fn: keep only raw rows (dicts) for which this returns True, before
            tokenization, as torchtune's; dropped rows are neither kept nor rejected.
        max_buffer_bytes: object-store bytes the pipeline may hold in flight, so memory
            stays flat however large the input (None: Ray Data's default share).
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
        ValueError: unknown style/source, no ``max_seq_len`` with ``packed=True``, or a
            ``conversation_column`` that the data does not have (the message lists the
            columns that exist).
    """
    if conversation_style not in STYLES and source != "tokenized":
        raise ValueError(f"conversation_style must be one of {STYLES}, got {conversation_style!r}")
    check_chat_options(reasoning=reasoning, truncation=truncation)
    max_seq_len = getattr(tokenizer, "max_seq_len", None)
    if packed and not max_seq_len:
        raise ValueError("packed=True needs a tokenizer with max_seq_len set")
    # Resolve endpoints from this process's environment: workers may not share it.
    options = dict(storage_options or {})
    for uri in _uris(source, data_files):
        options = storage_options_for(uri, options)
    if rejected_path is not None:
        options = storage_options_for(rejected_path, options)
    start_ray_data_actors()
    if source == "tokenized":
        files = resolve_data_files("parquet", data_files, split=split, storage_options=options)
        ds = _read_tokenized(files, options)
    else:
        files = resolve_data_files(source, data_files, split=split, storage_options=options)
        _check_column(files, conversation_column, options)
        if rejected_path is None:
            rejected_path = tempfile.mkdtemp(prefix="raytune_chat_rejected_")
            logger.warning("rejected rows go to %s (set rejected_path to choose)", rejected_path)
        datasource = ChatFilesDatasource(
            files,
            storage_options=options,
            shuffle_files=shuffle,
            seed=seed,
            block_bytes=_BLOCK_BYTES,
        )
        # One read task per file already yields many small blocks: no further splitting.
        ds = ray.data.read_datasource(
            datasource, num_cpus=_READ_CPUS, override_num_blocks=len(files)
        )
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
                "tools_column": tools_column,
                "reasoning": reasoning,
                "truncation": truncation,
            },
            batch_size=batch_size,
            batch_format="pyarrow",
            compute=ActorPoolStrategy(min_size=1, max_size=_pool_size(num_workers)),
            num_cpus=num_cpus_per_worker,
        )
    if packed:
        ds = ds.map_batches(
            PackRows(max_seq_len=max_seq_len, pad_id=tokenizer.pad_id),
            batch_size=packing_window,
            batch_format="pyarrow",
            num_cpus=_PACK_CPUS,
        )
    # Blocks of about one read block: the first batch comes early and every actor gets work.
    ds.context.target_max_block_size = _BLOCK_BYTES
    options_out = ds.context.execution_options
    options_out.preserve_order = True
    if max_buffer_bytes is not None:
        options_out.resource_limits = ExecutionResources.for_limits(
            object_store_memory=max_buffer_bytes
        )
    info = ChatDatasetInfo(
        packed=packed,
        max_seq_len=max_seq_len,
        pad_id=tokenizer.pad_id,
        rejected_path=rejected_path,
        max_rejected_fraction=max_rejected_fraction,
        storage_options=options,
        execution_options=options_out,
    )
    register_info(ds, info)
    return ds


def save_tokenized(
    ds: Dataset, path: str, *, storage_options: Mapping[str, Any] | None = None
) -> None:
    """Write the tokenized rows of ``chat_dataset(..., packed=False)`` to Parquet at ``path``.

    ``path`` is a folder or any fsspec URI (``s3://`` honours ``AWS_ENDPOINT_URL``). Read the
    rows back, without tokenizing again, with
    ``chat_dataset(tokenizer, source="tokenized", data_files=path, ...)`` (which can pack).
    """
    columns = TOKENIZED_SCHEMA.names
    if storage_options is None:
        try:
            storage_options = chat_dataset_info(ds).storage_options
        except KeyError:
            storage_options = None
    fs, root = fsspec.core.url_to_fs(path, **storage_options_for(path, storage_options))
    ds.select_columns(columns).write_parquet(root, filesystem=PyFileSystem(FSSpecHandler(fs)))
