"""Cut a tokenized conversation to ``max_seq_len`` (right, torchtune's way, or left)."""

from __future__ import annotations

from typing import Literal

TruncationType = Literal["right", "left"]


def truncate(
    tokens: list[int],
    mask: list[bool],
    max_seq_len: int,
    *,
    end_token: int | None,
    end_masked: bool | None,
    truncation_type: TruncationType = "right",
) -> tuple[list[int], list[bool]]:
    """Keep ``max_seq_len`` tokens.

    ``right`` keeps the first ``max_seq_len`` tokens and, when ``end_token`` is given,
    overwrites the last kept token with it (mask ``end_masked``) — torchtune's ``truncate``,
    which does this even when nothing was cut. ``left`` keeps the first token (bos) and the
    last ``max_seq_len - 1`` tokens, so the conversation's end and its eos survive.

    Example:
        >>> truncate([1, 5, 6, 7, 2], [True, True, False, False, True], 3,
        ...          end_token=2, end_masked=True)
        ([1, 5, 2], [True, True, True])
        >>> truncate([1, 5, 6, 7, 2], [True, True, False, False, True], 3,
        ...          end_token=2, end_masked=True, truncation_type="left")
        ([1, 7, 2], [True, False, True])
    """
    if max_seq_len < 1:
        raise ValueError(f"max_seq_len must be at least 1, got {max_seq_len}")
    if truncation_type == "left":
        if len(tokens) <= max_seq_len:
            return tokens, mask
        if max_seq_len == 1:
            return tokens[:1], mask[:1]
        keep = max_seq_len - 1
        return tokens[:1] + tokens[-keep:], mask[:1] + mask[-keep:]
    if truncation_type != "right":
        raise ValueError(f"truncation_type must be 'right' or 'left', got {truncation_type!r}")
    tokens, mask = tokens[:max_seq_len], mask[:max_seq_len]
    if end_token is not None and tokens and tokens[-1] != end_token:
        tokens[-1] = end_token
    if end_masked is not None and mask and mask[-1] != end_masked:
        mask[-1] = end_masked
    return tokens, mask
