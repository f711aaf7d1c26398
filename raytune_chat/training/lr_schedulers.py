"""Learning-rate schedules named by configs (`torchtune.training.lr_schedulers.*`).

The run's length may be an estimate when training starts (the data is not counted first),
so a schedule's `num_training_steps` can be changed while it runs: `set_num_training_steps`.
The schedule lives in a callable object whose attributes `LambdaLR.state_dict()` saves, so a
checkpoint restores the length the run had planned when it was written.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

__all__ = ["CosineWithWarmup", "get_cosine_schedule_with_warmup", "set_num_training_steps"]


class CosineWithWarmup:
    """The lr multiplier of step `step`: linear warmup, then cosine decay to 0 at the end.

    Past `num_training_steps` (the plan was short) the multiplier stays at its final value.

    Example:
        >>> f = CosineWithWarmup(num_warmup_steps=2, num_training_steps=10)
        >>> [round(f(step), 2) for step in (1, 2, 6, 10, 12)]
        [0.5, 1.0, 0.5, 0.0, 0.0]
    """

    def __init__(self, num_warmup_steps: int, num_training_steps: int, num_cycles: float = 0.5):
        self.num_warmup_steps = num_warmup_steps
        self.num_training_steps = num_training_steps
        self.num_cycles = num_cycles

    def __call__(self, step: int) -> float:
        if step < self.num_warmup_steps:
            return step / max(1, self.num_warmup_steps)
        span = max(1, self.num_training_steps - self.num_warmup_steps)
        progress = min(1.0, (step - self.num_warmup_steps) / span)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * self.num_cycles * 2.0 * progress)))


def get_cosine_schedule_with_warmup(
    optimizer: Optimizer,
    num_warmup_steps: int,
    num_training_steps: int,
    num_cycles: float = 0.5,
    last_epoch: int = -1,
) -> LambdaLR:
    """Linear warmup from 0 to the optimizer's lr, then cosine decay towards 0.

    The recipe passes `optimizer` and `num_training_steps` (and updates the latter as its
    step plan gets exact); a config sets the rest:

    .. code-block:: yaml

        lr_scheduler:
          _component_: raytune_chat.training.lr_schedulers.get_cosine_schedule_with_warmup
          num_warmup_steps: 100

    Args:
        optimizer: the optimizer whose lr is scheduled.
        num_warmup_steps: steps of linear warmup.
        num_training_steps: total optimizer steps of the run.
        num_cycles: cosine cycles after warmup (0.5 = decay to 0 once).
        last_epoch: index of the last step when resuming (-1 = fresh).

    Returns:
        A `LambdaLR` stepped once per optimizer step.

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        >>> sched = get_cosine_schedule_with_warmup(opt, 2, 10)
        >>> [round(sched.lr_lambdas[0](step), 2) for step in (1, 2, 6, 10)]
        [0.5, 1.0, 0.5, 0.0]
        >>> set_num_training_steps(sched, 18)
        True
        >>> round(sched.lr_lambdas[0](10), 2)
        0.5
    """
    schedule = CosineWithWarmup(num_warmup_steps, num_training_steps, num_cycles)
    return LambdaLR(optimizer, schedule, last_epoch)


def set_num_training_steps(scheduler: LRScheduler, num_training_steps: int) -> bool:
    """Give a running schedule a new total length; True when it has one to change.

    The new length applies from the next `scheduler.step()` on.
    """
    changed = False
    for fn in getattr(scheduler, "lr_lambdas", []):
        if hasattr(fn, "num_training_steps"):
            fn.num_training_steps = int(num_training_steps)
            changed = True
    return changed
