"""`setup_torch_profiler`, the profiler section of torchtune configs."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch

__all__ = ["setup_torch_profiler"]


class _NoProfiler(contextlib.AbstractContextManager):
    def __exit__(self, *exc: object) -> None:
        return None

    def step(self) -> None:
        pass


def setup_torch_profiler(
    enabled: bool = False,
    cpu: bool = True,
    cuda: bool = True,
    profile_memory: bool = False,
    with_stack: bool = False,
    record_shapes: bool = True,
    with_flops: bool = False,
    wait_steps: int = 5,
    warmup_steps: int = 3,
    active_steps: int = 2,
    num_cycles: int = 1,
    output_dir: str | None = None,
) -> Any:
    """Build a `torch.profiler.profile` (or a no-op when disabled) stepped once per step.

    Traces go to `output_dir` as Chrome traces. The keys match torchtune's profiler section.

    Example:
        >>> with setup_torch_profiler(enabled=False) as prof:
        ...     prof.step()
    """
    if not enabled:
        return _NoProfiler()
    activities = [torch.profiler.ProfilerActivity.CPU] if cpu else []
    if cuda and torch.cuda.is_available():
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    out = Path(output_dir or "profiling_outputs")
    return torch.profiler.profile(
        activities=activities,
        schedule=torch.profiler.schedule(
            wait=wait_steps, warmup=warmup_steps, active=active_steps, repeat=num_cycles
        ),
        on_trace_ready=torch.profiler.tensorboard_trace_handler(str(out)),
        profile_memory=profile_memory,
        with_stack=with_stack,
        record_shapes=record_shapes,
        with_flops=with_flops,
    )
