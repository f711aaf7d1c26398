"""Start Ray Data's per-cluster helper actors early, while the caller is still busy.

Ray Data (2.60) gives a pipeline no CPU budget until its autoscaling-coordinator actor has
answered, and each actor pool registers with an actor-location tracker; these actors, like
the stats actor, are only created when the first dataset starts executing, and on a small
machine each new worker process costs seconds. Creating them (named, detached,
get-if-exists: the same calls Ray Data makes) when a chat dataset is built overlaps that
start-up with the caller's own (importing torch, building the model).

These are private Ray APIs (``ray.data._internal``): Ray Data has no public call that starts
them. Kept for a measured benefit (benchmarks/bench_warmup.py, RESULTS.md "Ray Data's
helper actors"): seconds from the end of the caller's work to the first batch, five
interleaved pairs on 2 shared cores, were 3.4-8.3 s with the head start and 3.2-20.2 s
without (medians 6.5 s and 8.1 s); it saved 10-12 s in the two pairs run at load 20-30 and
nothing in two others. Fallback: every failure (a moved module, a changed signature) is
caught and only means no head start, as if this function were not called.
"""

from __future__ import annotations

import logging

import ray

__all__ = ["start_ray_data_actors"]

logger = logging.getLogger(__name__)


def start_ray_data_actors() -> bool:
    """Create Ray Data's coordinator, stats and location actors if missing; True when asked for.

    Example:
        >>> import ray
        >>> _ = ray.init(num_cpus=1, ignore_reinit_error=True)
        >>> start_ray_data_actors()
        True
    """
    if not ray.is_initialized():
        return False
    try:
        from ray.data._internal.cluster_autoscaler import get_or_create_autoscaling_coordinator
        from ray.data._internal.execution.node_trackers import (
            get_or_create_actor_location_tracker,
        )
        from ray.data._internal.stats import get_or_create_stats_actor

        get_or_create_autoscaling_coordinator()
        get_or_create_stats_actor()
        get_or_create_actor_location_tracker()
    except Exception as exc:  # noqa: BLE001 - an optimisation must never fail a run
        logger.debug("no head start for Ray Data's actors: %s", exc)
        return False
    return True
