"""`raytune-chat preview` and `prepare`: look at or save the tokenized rows of a config."""

from __future__ import annotations

import sys
from typing import Any

import pyarrow as pa

from raytune_chat.config import instantiate
from raytune_chat.data import CROSS_ENTROPY_IGNORE_IDX
from raytune_chat.datasets import ChatDatasetStats, chat_dataset_info
from raytune_chat.training.ray_train import ensure_ray

__all__ = ["describe_cuts", "prepare_dataset", "preview_dataset", "render_sample"]

_TRAINED, _MASKED, _RESET = "\033[1;32m", "\033[2m", "\033[0m"


def _unpacked_dataset(cfg: dict[str, Any], cache_path: str | None = None) -> tuple[Any, Any]:
    tokenizer = instantiate(cfg["tokenizer"], key="tokenizer")
    section = dict(cfg["dataset"])
    if "packed" in section:
        section["packed"] = False
    ds = instantiate(section, tokenizer=tokenizer, cache_path=cache_path, key="dataset")
    return tokenizer, ds


def render_sample(tokens: list[int], labels: list[int], decode: Any, *, color: bool) -> str:
    """Show each token, trained ones highlighted and masked ones dimmed.

    Labels are shifted per sample, so token `i` is trained when `labels[i - 1]` is not
    `CROSS_ENTROPY_IGNORE_IDX`.
    Without color, trained tokens are wrapped in `[[...]]`.

    Example:
        >>> from raytune_chat.data import CROSS_ENTROPY_IGNORE_IDX as IGNORE
        >>> render_sample([1, 2, 3], [IGNORE, 3, IGNORE], lambda ids: f"<{ids[0]}>", color=False)
        '<1><2>[[<3>]]'
    """
    out = []
    for i, token in enumerate(tokens):
        text = decode([token])
        trained = i > 0 and labels[i - 1] != CROSS_ENTROPY_IGNORE_IDX
        if color:
            out.append(f"{_TRAINED if trained else _MASKED}{text}{_RESET}")
        else:
            out.append(f"[[{text}]]" if trained else text)
    return "".join(out)


def describe_cuts(row: dict[str, Any], max_seq_len: int | None) -> list[str]:
    """Say what a tokenized row lost: cut messages or tokens, left-out reasoning or call text.

    Example:
        >>> for line in describe_cuts({"truncated": True, "dropped_messages": 4,
        ...                            "dropped_reasoning": 1, "dropped_call_text": 0}, 2048):
        ...     print(line)
        cut: the 4 oldest messages, to fit max_seq_len=2048 (truncation=history)
        left out: 1 reasoning trace (reasoning=drop)
        >>> describe_cuts({"truncated": True}, 512)
        ['cut: the end of the conversation, at max_seq_len=512']
    """
    lines = []
    messages = int(row.get("dropped_messages", 0))
    if messages:
        lines.append(
            f"cut: the {messages} oldest messages, to fit max_seq_len={max_seq_len} "
            "(truncation=history)"
        )
    elif row.get("truncated"):
        lines.append(f"cut: the end of the conversation, at max_seq_len={max_seq_len}")
    reasoning = int(row.get("dropped_reasoning", 0))
    if reasoning:
        plural = "s" if reasoning > 1 else ""
        lines.append(f"left out: {reasoning} reasoning trace{plural} (reasoning=drop)")
    call_text = int(row.get("dropped_call_text", 0))
    if call_text:
        plural = "s" if call_text > 1 else ""
        lines.append(f"left out: the text beside {call_text} tool call{plural}")
    return lines


def preview_dataset(cfg: dict[str, Any], n: int = 3, *, color: bool | None = None) -> list[dict]:
    """Print `n` tokenized samples of the config's dataset (unpacked); return the rows.

    Tool calls, tool results and reasoning show in the colour of their mask like any text;
    a line after each sample says what truncation cut or what was left out.
    """
    color = sys.stdout.isatty() if color is None else color
    ensure_ray()
    tokenizer, ds = _unpacked_dataset(cfg)
    rows = ds.take(n)
    legend = (
        f"{_TRAINED}trained{_RESET} / {_MASKED}masked{_RESET}" if color else "[[trained]] / masked"
    )
    print(f"legend: {legend}")

    def decode(ids: list[int]) -> str:
        return tokenizer.decode(ids, truncate_at_eos=False, skip_special_tokens=False)

    for i, row in enumerate(rows):
        tokens = [int(t) for t in row["tokens"]]
        labels = [int(t) for t in row["labels"]]
        trained = sum(label != CROSS_ENTROPY_IGNORE_IDX for label in labels)
        print(f"--- sample {i}: {len(tokens)} tokens, {trained} trained ---")
        print("ids:", tokens)
        print(render_sample(tokens, labels, decode, color=color))
        for line in describe_cuts(row, tokenizer.max_seq_len):
            print(line)
        print("decoded:", tokenizer.decode(tokens))
    return rows


def _no_rows(batch: pa.Table) -> pa.Table:
    return batch.slice(0, 0)


def prepare_dataset(cfg: dict[str, Any], out: str) -> ChatDatasetStats:
    """Tokenize the config's dataset once into a token store under `out` (folder or s3:// URI).

    Exactly one pass: the tokenize stage writes the rows as it goes and the pass ledger
    writes the store's manifest when the last row is in. The store lands in
    ``<out>/<key>/``; train from it with ``dataset.source=tokenized dataset.data_files=<out>``.
    If that store is already complete, nothing is tokenized again.
    """
    ensure_ray()
    _, ds = _unpacked_dataset(cfg, cache_path=out)
    info = chat_dataset_info(ds)
    if not info.reads_store:
        # Run the pipeline to its end; the rows stay in storage, none travel to this process.
        for _ in ds.map_batches(_no_rows, batch_format="pyarrow", num_cpus=0.1).iter_batches():
            pass
    stats = info.stats()
    if not info.store.complete():
        raise RuntimeError(f"the pass ended but the token store {info.store.path} is incomplete")
    done = "found" if info.reads_store else "wrote"
    print(
        f"{done} {stats.rows_kept} tokenized conversations in {info.store.path} "
        f"({stats.rows_rejected} rejected: {stats.rejected_by_reason}); train from it with "
        f"dataset.source=tokenized dataset.data_files={out}"
    )
    return stats
