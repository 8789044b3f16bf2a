"""Retry delays: one implementation for every lane.

Delays follow AWS Step Functions' Retry: ``interval * backoff_rate ** (n - 1)`` for the
n-th retry of the matching policy, capped by ``max_delay``. Jitter reuses Prefect's own
helper (`clamped_poisson_interval`, what Prefect's `retry_jitter_factor` uses), and a
platform's ``Retry-After`` is honoured as a floor (when it asks for more than the
policy's ``max_delay``, the error is not retried rather than waited out).
"""
from __future__ import annotations

from typing import Iterable

from engine.errors import ErrorMatcher, StepError
from engine.model import RetryPolicy


def policy_from_json(raw: dict) -> RetryPolicy:
    """One policy from its JSON form, defaults filled in."""
    return RetryPolicy(
        matcher=ErrorMatcher.of(raw.get("errors", ["*"])),
        max_attempts=raw.get("max_attempts", 3),
        interval=raw.get("interval", 1.0),
        backoff_rate=raw.get("backoff_rate", 2.0),
        max_delay=raw.get("max_delay"),
        jitter=raw.get("jitter", 0.0),
    )


def compile_policies(raw: Iterable[dict]) -> tuple[RetryPolicy, ...]:
    """Policies from their JSON form (connector defaults use it)."""
    return tuple(policy_from_json(p) for p in raw)


def policy_delay(policy: RetryPolicy, retry_number: int) -> float:
    """The delay before the `retry_number`-th retry (1-based) under `policy`, jitter included."""
    delay = policy.interval * policy.backoff_rate ** (retry_number - 1)
    if policy.max_delay is not None:
        delay = min(delay, policy.max_delay)
    if policy.jitter and delay > 0:
        # imported here: importing prefect costs ~0.7 s, which flows without jitter need not pay
        from prefect.utilities.math import clamped_poisson_interval

        delay = float(clamped_poisson_interval(delay, clamping_factor=policy.jitter))
        if policy.max_delay is not None:
            delay = min(delay, policy.max_delay)
    return max(0.0, delay)


class RetryState:
    """Counts retries per policy for one step execution.

    The first policy whose patterns match the error decides; when it is used up the
    error is not retried (a later policy is not consulted), as in ASL.
    """

    __slots__ = ("policies", "used")

    def __init__(self, policies: tuple[RetryPolicy, ...]) -> None:
        self.policies = policies
        self.used = [0] * len(policies)

    def next_delay(self, error: StepError) -> float | None:
        """Seconds to wait before retrying `error`, or None when it must not be retried."""
        for index, policy in enumerate(self.policies):
            if policy.matcher.matches(error):
                if self.used[index] + 1 >= policy.max_attempts:
                    return None
                self.used[index] += 1
                delay = policy_delay(policy, self.used[index])
                if error.retry_after is not None:
                    if policy.max_delay is not None and error.retry_after > policy.max_delay:
                        return None  # the platform wants a longer pause than the policy allows
                    delay = max(delay, error.retry_after)
                return delay
        return None
