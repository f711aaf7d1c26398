"""Ray Data collate classes: the plain collates of :mod:`raytune_chat.data` typed for Ray.

``iter_torch_batches(collate_fn=...)`` expects a ``CollateFn`` subclass so that it knows the
input batch format (numpy here); the padding/stacking logic stays in the Ray-free
``raytune_chat.data._collate``.
"""

from __future__ import annotations

from ray.data.collate_fn import NumpyBatchCollateFn

from raytune_chat.data._collate import PackedCollate, PaddedCollate

__all__ = ["PackedCollateFn", "PaddedCollateFn"]


class PaddedCollateFn(PaddedCollate, NumpyBatchCollateFn):
    """:class:`raytune_chat.data.PaddedCollate` for ``iter_torch_batches``.

    Example:
        >>> import numpy as np
        >>> from raytune_chat.data import CROSS_ENTROPY_IGNORE_IDX as IGNORE
        >>> batch = {"tokens": [np.array([1, 2]), np.array([3])],
        ...          "labels": [np.array([2, IGNORE]), np.array([IGNORE])]}
        >>> PaddedCollateFn(pad_id=0)(batch)["tokens"]
        tensor([[1, 2],
                [3, 0]])
    """


class PackedCollateFn(PackedCollate, NumpyBatchCollateFn):
    """:class:`raytune_chat.data.PackedCollate` for ``iter_torch_batches``."""
