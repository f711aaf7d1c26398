"""Agreement between data-parallel ranks, in plain `torch.distributed` (no-ops on one rank).

Every rank must take the same optimizer steps: a rank that enters a collective (DDP's
gradient all-reduce) which another rank skips waits forever. So before each step the ranks
agree that every one of them has a full step of data, and values that decide what a run
does next (the step plan, which dataset an epoch reads) are decided on rank 0 and sent to
all.
"""

from __future__ import annotations

from typing import Any, TypeVar

import torch

__all__ = ["all_ranks_have", "from_rank_zero"]

_T = TypeVar("_T")


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def all_ranks_have(flag: bool, device: torch.device) -> bool:
    """True when `flag` is true on every rank (an all-reduce of one number).

    Example:
        >>> all_ranks_have(True, torch.device("cpu"))  # a single process: its own flag
        True
    """
    if not _distributed():
        return flag
    backend = torch.distributed.get_backend()
    where = device if backend == "nccl" else torch.device("cpu")
    value = torch.tensor([1 if flag else 0], dtype=torch.int32, device=where)
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MIN)
    return bool(value.item())


def from_rank_zero(value: _T) -> _T:
    """Rank 0's `value` on every rank (any picklable object).

    Example:
        >>> from_rank_zero({"steps": 3})
        {'steps': 3}
    """
    if not _distributed():
        return value
    box: list[Any] = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]
