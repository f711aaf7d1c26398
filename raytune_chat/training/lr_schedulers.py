"""Learning-rate schedules named by configs (`torchtune.training.lr_schedulers.*`)."""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["get_cosine_schedule_with_warmup"]


def get_cosine_schedule_with_warmup(
    optimizer: Optimizer,
    num_warmup_steps: int,
    num_training_steps: int,
    num_cycles: float = 0.5,
    last_epoch: int = -1,
) -> LambdaLR:
    """Linear warmup from 0 to the optimizer's lr, then cosine decay towards 0.

    The recipe passes `optimizer` and `num_training_steps`; a config sets the rest:

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
    """

    def lr_lambda(step: int) -> float:
        if step < num_warmup_steps:
            return step / max(1, num_warmup_steps)
        progress = (step - num_warmup_steps) / max(1, num_training_steps - num_warmup_steps)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * num_cycles * 2.0 * progress)))

    return LambdaLR(optimizer, lr_lambda, last_epoch)
