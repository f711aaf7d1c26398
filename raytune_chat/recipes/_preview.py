"""`raytune-chat preview` and `prepare`: look at or save the tokenized rows of a config."""

from __future__ import annotations

import sys
from typing import Any

from raytune_chat.config import instantiate
from raytune_chat.datasets import dataset_stats, save_tokenized
from raytune_chat.recipes._driver import ensure_ray

__all__ = ["prepare_dataset", "preview_dataset", "render_sample"]

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


def preview_dataset(cfg: dict[str, Any], n: int = 3, *, color: bool | None = None) -> list[dict]:
    """Print `n` tokenized samples of the config's dataset (unpacked); return the rows."""
    color = sys.stdout.isatty() if color is None else color
    ensure_ray()
    tokenizer, ds = _unpacked_dataset(cfg)
    rows = ds.take(n)

    def decode(ids: list[int]) -> str:
        return tokenizer.decode(ids, truncate_at_eos=False, skip_special_tokens=False)

    for i, row in enumerate(rows):
        tokens = [int(t) for t in row["tokens"]]
        labels = [int(t) for t in row["labels"]]
        trained = sum(label != IGNORE_INDEX for label in labels)
        print(f"--- sample {i}: {len(tokens)} tokens, {trained} trained ---")
        print("ids:", tokens)
        print(render_sample(tokens, labels, decode, color=color))
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
