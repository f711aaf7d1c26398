"""The step plan of a run: how many optimizer steps, per epoch and in all, and how sure.

No Ray. Training starts before the data is counted, so the plan starts as what is known
cheaply and gets exact as the run learns more (the README's "Training" section tells the
story a user sees in the log):

1. ``rows``: the rows one pass yields, from the pass ledger (:class:`ChatDatasetStats`
   ``output_rows``): exact for a complete token store or a finished pass, otherwise
   estimated from the input files' sizes and what has been read so far (a sample of the
   first file before anything else).
2. ``epoch``: once an epoch has ended, its step count is the steps of every epoch (later
   epochs read the same rows).

Each worker gets ``rows // num_workers`` rows (equal shards), full batches only, and a step
takes ``gradient_accumulation_steps`` batches; ``max_steps_per_epoch`` caps an epoch,
``max_steps`` the run, and ``max_trained_tokens`` ends it once that many tokens have been
in the loss (a budget the plan can only estimate, from the tokens per step so far).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from raytune_chat.config import ConfigError
from raytune_chat.training._train_state import TrainPosition
from raytune_chat.training.lr_schedulers import set_num_training_steps
from raytune_chat.training.recipe_config import RecipeSettings

__all__ = [
    "StepPlan",
    "budget_spent",
    "epoch_over",
    "follow_plan",
    "initial_plan",
    "plan_after_epoch",
    "plan_from_epoch",
    "plan_from_rows",
    "plan_while_training",
    "with_budgets",
]


@dataclass(frozen=True)
class StepPlan:
    """Optimizer steps per epoch and in all; ``exact`` says they are counted, not estimated."""

    steps_per_epoch: int
    total_steps: int
    exact: bool
    basis: str

    def describe(self) -> str:
        """How the log line names the plan, e.g. ``"24 steps (exact: epoch)"``."""
        kind = "exact" if self.exact else "estimate"
        return f"{self.total_steps} steps ({kind}: {self.basis})"


def plan_from_rows(rows: int, settings: RecipeSettings, *, exact: bool, basis: str) -> StepPlan:
    """The plan for ``rows`` rows per pass.

    Raises:
        ValueError: when an exact row count gives not even one step.

    Example:
        >>> from raytune_chat.training.recipe_config import RecipeSettings
        >>> s = RecipeSettings(output_dir="o", batch_size=4, gradient_accumulation_steps=2,
        ...                    epochs=3)
        >>> plan_from_rows(100, s, exact=True, basis="store")
        StepPlan(steps_per_epoch=12, total_steps=36, exact=True, basis='store')
    """
    per_worker = rows // settings.ray.num_workers
    steps = per_worker // settings.batch_size // settings.gradient_accumulation_steps
    if steps < 1 and exact:
        raise ValueError(
            f"{rows} rows give no full optimizer step with batch_size={settings.batch_size}, "
            f"gradient_accumulation_steps={settings.gradient_accumulation_steps}, "
            f"num_workers={settings.ray.num_workers}"
        )
    return plan_from_epoch(max(steps, 1), settings, exact=exact, basis=basis)


def plan_from_epoch(
    steps_per_epoch: int, settings: RecipeSettings, *, exact: bool = True, basis: str = "epoch"
) -> StepPlan:
    """The plan when one epoch takes ``steps_per_epoch`` steps (before the caps)."""
    if settings.max_steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, settings.max_steps_per_epoch)
    total = steps_per_epoch * settings.epochs
    if settings.max_steps is not None:
        total = min(total, settings.max_steps)
    return StepPlan(steps_per_epoch, total, exact, basis)


def with_budgets(
    plan: StepPlan, settings: RecipeSettings, *, steps_done: int, trained_tokens_done: int
) -> StepPlan:
    """``plan`` shortened by the token budget, estimated from the tokens per step so far.

    Example:
        >>> from raytune_chat.training.recipe_config import RecipeSettings
        >>> s = RecipeSettings(output_dir="o", max_trained_tokens=1000)
        >>> with_budgets(StepPlan(50, 100, True, "epoch"), s, steps_done=10,
        ...              trained_tokens_done=200)
        StepPlan(steps_per_epoch=50, total_steps=50, exact=False, basis='token budget')
    """
    budget = settings.max_trained_tokens
    if budget is None or steps_done < 1 or trained_tokens_done < 1:
        return plan
    per_step = trained_tokens_done / steps_done
    steps = steps_done + max(0, math.ceil((budget - trained_tokens_done) / per_step))
    if steps >= plan.total_steps:
        return plan
    return StepPlan(plan.steps_per_epoch, steps, False, "token budget")


def initial_plan(stats: Any, settings: RecipeSettings, *, reads_store: bool) -> StepPlan:
    """The plan the driver starts with, from the pass ledger's `stats` (nothing is counted).

    Raises:
        ConfigError: on `batch_size` when an exact row count gives not even one step.
    """
    basis = "counted" if stats.output_rows_exact else "store" if reads_store else "sample"
    try:
        return plan_from_rows(
            stats.output_rows, settings, exact=stats.output_rows_exact, basis=basis
        )
    except ValueError as exc:
        raise ConfigError("batch_size", str(exc)) from exc


def plan_while_training(position: TrainPosition, settings: RecipeSettings, stats: Any) -> StepPlan:
    """The plan as a step is logged: from the rows the pass ledger (`stats`) counts or still
    estimates in the first epoch; from the first epoch's steps after it; budgets applied."""
    if position.epoch == 0:
        exact = stats.output_rows_exact
        basis = "counted" if exact else "streaming"
        base = plan_from_rows(stats.output_rows, settings, exact=exact, basis=basis)
    else:
        base = plan_from_epoch(position.steps_per_epoch, settings)
    return with_budgets(
        base,
        settings,
        steps_done=position.global_step,
        trained_tokens_done=position.num_trained_tokens,
    )


def plan_after_epoch(position: TrainPosition, settings: RecipeSettings) -> StepPlan:
    """The exact plan once an epoch's data has ended after `position.step_in_epoch` steps.

    Raises:
        ValueError: when the epoch gave not even one full optimizer step.
    """
    if position.step_in_epoch == 0:
        raise ValueError(
            f"epoch {position.epoch} gave no full optimizer step: fewer rows than "
            f"batch_size * gradient_accumulation_steps * num_workers"
        )
    return with_budgets(
        plan_from_epoch(position.step_in_epoch, settings),
        settings,
        steps_done=position.global_step,
        trained_tokens_done=position.num_trained_tokens,
    )


def follow_plan(position: TrainPosition, plan: StepPlan, lr_scheduler: Any) -> TrainPosition:
    """`position` following `plan`; the learning-rate schedule's length follows too."""
    set_num_training_steps(lr_scheduler, plan.total_steps)
    return dataclasses.replace(
        position,
        planned_steps=plan.total_steps,
        steps_per_epoch=plan.steps_per_epoch,
        plan_exact=plan.exact,
        plan_basis=plan.basis,
    )


def budget_spent(position: TrainPosition, settings: RecipeSettings) -> bool:
    """`max_steps` or `max_trained_tokens` reached: the run ends.

    Example:
        >>> budget_spent(TrainPosition(global_step=5), RecipeSettings(output_dir="o", max_steps=5))
        True
    """
    steps, tokens = settings.max_steps, settings.max_trained_tokens
    return (steps is not None and position.global_step >= steps) or (
        tokens is not None and position.num_trained_tokens >= tokens
    )


def epoch_over(position: TrainPosition, settings: RecipeSettings) -> bool:
    """`max_steps_per_epoch` reached in this epoch, or the run's budget spent."""
    cap = settings.max_steps_per_epoch
    return (cap is not None and position.step_in_epoch >= cap) or budget_spent(position, settings)
