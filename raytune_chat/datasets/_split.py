"""Which rows a ``split`` names: a split of ``data_files``, or a percent part of one.

Plain Python and numpy, no Ray. ``split`` takes Hugging Face's slicing syntax for percent
parts, so a validation set can be another part of the training files::

    dataset:      {split: "train[:90%]", ...}
    dataset_val:  {split: "train[90%:]", ...}

A stream does not know how many rows its files hold, so a part cannot be a contiguous slice
as in ``load_dataset``. Instead row ``k`` of a file (its line in JSON Lines, its index in a
JSON array or Parquet file) falls in percent bucket ``(k * 61) % 100``, and ``train[a%:b%]``
keeps the rows with ``a <= bucket < b``. Every 100 consecutive rows of a file hold each
bucket once, so the share is exact to one row in a hundred per file; the parts are disjoint,
together cover every row, and spread through each file (61/100 is close to the golden ratio,
so even the first rows of a file split about evenly).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

__all__ = ["SplitPart", "parse_split"]

_BUCKETS = 100
_STRIDE = 61  # coprime with 100: a bijection on every 100 consecutive row numbers
_SLICE = re.compile(r"^(?P<name>[^\[\]]+)\[(?P<lo>-?\d+%)?:(?P<hi>-?\d+%)?\]$")


@dataclass(frozen=True)
class SplitPart:
    """The split's name and its percent part ``[lo, hi)`` (``0, 100``: all of it)."""

    name: str
    lo: int = 0
    hi: int = _BUCKETS

    @property
    def whole(self) -> bool:
        return (self.lo, self.hi) == (0, _BUCKETS)

    @property
    def fraction(self) -> float:
        return (self.hi - self.lo) / _BUCKETS

    def keep(self, numbers: np.ndarray) -> np.ndarray:
        """Which of the rows numbered `numbers` (line or index in their file) are in the part.

        Example:
            >>> part = parse_split("train[:50%]")
            >>> int(part.keep(np.arange(100)).sum()), part.keep(np.arange(4)).tolist()
            (50, [True, False, True, False])
        """
        buckets = (np.asarray(numbers, dtype=np.int64) * _STRIDE) % _BUCKETS
        return (buckets >= self.lo) & (buckets < self.hi)


def _percent(text: str | None, default: int) -> int:
    if text is None:
        return default
    value = int(text.rstrip("%"))
    return value + _BUCKETS if value < 0 else value


def parse_split(split: str) -> SplitPart:
    """``"train"``, ``"train[:90%]"``, ``"train[90%:]"``, ``"train[-10%:]"``, ``"train[5%:15%]"``.

    Raises:
        ValueError: a slice that is not of percentages (a stream cannot count rows ahead),
            or percentages out of order or outside 0..100.

    Example:
        >>> parse_split("train[-10%:]")
        SplitPart(name='train', lo=90, hi=100)
        >>> parse_split("validation")
        SplitPart(name='validation', lo=0, hi=100)
    """
    if "[" not in split:
        return SplitPart(split)
    match = _SLICE.match(split)
    if match is None:
        raise ValueError(
            f"split {split!r}: a part of a split is given in percent, as 'train[:90%]' or "
            "'train[90%:]' (row counts cannot be known before the stream has read the files)"
        )
    lo, hi = _percent(match["lo"], 0), _percent(match["hi"], _BUCKETS)
    if not 0 <= lo < hi <= _BUCKETS:
        raise ValueError(f"split {split!r}: needs 0 <= start < end <= 100 (percent)")
    return SplitPart(match["name"], lo, hi)
