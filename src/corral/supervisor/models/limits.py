"""The manager's terms with the scheduler: limits from settings, refusals as HTTP errors."""

from __future__ import annotations

import psutil

from corral.supervisor.errors import (
    BadGateway,
    CorralError,
    ModelNotFound,
    ServiceUnavailable,
    TooManyRequests,
)
from corral.supervisor.scheduling.types import Limits, Reject
from corral.supervisor.settings import Settings

# What `ModelManager.apply` takes in on a reload (the budget's RAM share is measured at start).
MANAGER_SETTINGS = (
    "max_loaded_models",
    "max_queue",
    "keep_alive",
    "memory_budget",
    "child_hello_timeout",
    "child_load_timeout",
    "child_stop_timeout",
    "first_token_timeout",
    "stall_timeout",
)


def default_memory_budget(settings: Settings) -> int:
    """A share of the RAM available now. Measured once, at start: measured again later, the
    models already loaded would shrink it."""
    return int(psutil.virtual_memory().available * settings.memory_budget_share)


def scheduler_limits(settings: Settings, default_budget: int) -> Limits:
    budget = settings.memory_budget if settings.memory_budget is not None else default_budget
    return Limits(
        max_loaded=settings.max_loaded_models,
        memory_budget=budget,
        max_queue=settings.max_queue,
        default_keep_alive=settings.keep_alive,
    )


def rejection_error(effect: Reject) -> CorralError:
    headers = {}
    if effect.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(effect.retry_after)))
    match effect.code:
        case "queue_full":
            return TooManyRequests(effect.message, code="queue_full", headers=headers)
        case "unknown_model":
            return ModelNotFound(effect.message, param="model")
        case "load_failed":
            return BadGateway(effect.message, code="model_load_failed")
        case "never_fits":
            return ServiceUnavailable(effect.message, code="insufficient_memory")
        case _:
            return ServiceUnavailable(effect.message, code=effect.code, headers=headers)
