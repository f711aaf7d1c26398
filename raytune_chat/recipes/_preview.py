"""`raytune-chat preview` and `prepare`: look at or save the tokenized rows of a config."""

from __future__ import annotations

import sys
from typing import Any

from raytune_chat.config import instantiate
from raytune_chat.datasets import dataset_stats, save_tokenized
from raytune_chat.recipes._driver import ensure_ray

__all__ = ["describe_cuts", "prepare_dataset", "preview_dataset", "render_sample"]

IGNORE_INDEX = -100
_TRAINED, _MASKED, _RESET = "\033[1;32m", "\033[2m", "\033[0m"


def _unpacked_dataset(cfg: dict[str, Any]) -> tuple[Any, Any]:
    tokenizer = instantiate(cfg["tokenizer"], key="tokenizer")
    section = dict(cfg["dataset"])
    if "packed" in section:
        section["packed"] = False
    return tokenizer, instantiate(section, tokenizer=tokenizer, key="dataset")


def render_sample(tokens: list[int], labels: list[int], decode: Any, *, color: bool) -> str:
    """Show each token, trained ones highlighted and masked ones dimmed.

    Labels are shifted per sample, so token `i` is trained when `labels[i - 1]` is not -100.
    Without color, trained tokens are wrapped in `[[...]]`.

    Example:
        >>> render_sample([1, 2, 3], [-100, 3, -100], lambda ids: f"<{ids[0]}>", color=False)
        '<1><2>[[<3>]]'
    """
    out = []
    for i, token in enumerate(tokens):
        text = decode([token])
        trained = i > 0 and labels[i - 1] != IGNORE_INDEX
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
        trained = sum(label != IGNORE_INDEX for label in labels)
        print(f"--- sample {i}: {len(tokens)} tokens, {trained} trained ---")
        print("ids:", tokens)
        print(render_sample(tokens, labels, decode, color=color))
        for line in describe_cuts(row, tokenizer.max_seq_len):
            print(line)
        print("decoded:", tokenizer.decode(tokens))
    return rows


def prepare_dataset(cfg: dict[str, Any], out: str) -> Any:
    """Tokenize the config's dataset once into Parquet at `out` (a folder or s3:// URI).

    Train from it with ``dataset.source=tokenized dataset.data_files=<out>``.
    """
    ensure_ray()
    _, ds = _unpacked_dataset(cfg)
    save_tokenized(ds, out)
    stats = dataset_stats(ds, check=False)
    print(
        f"wrote {stats.rows_kept} tokenized conversations to {out} "
        f"({stats.rows_rejected} rejected: {stats.rejected_by_reason})"
    )
    return stats
