"""Budgets: requests and tokens per caller per window, in memory and in Redis."""

from __future__ import annotations

import uuid

import pytest

from opsloop.guard.budget import Limits, MemoryBudget, RedisBudget, estimate_tokens


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_requests_per_caller_per_window() -> None:
    clock = Clock()
    budget = MemoryBudget(Limits(requests=2, window=60), clock)
    assert budget.admit("a").allowed and budget.admit("a").allowed
    refused = budget.admit("a")
    assert not refused.allowed and refused.limit == "requests"
    assert refused.retry_after == pytest.approx(20.0)  # 1000 s is 40 s into its window
    assert budget.admit("b").allowed  # another caller
    clock.now += 20
    assert budget.admit("a").allowed  # a new window


def test_tokens_count_prompt_and_completion() -> None:
    clock = Clock()
    budget = MemoryBudget(Limits(tokens=100, window=60), clock)
    assert budget.admit("a", 30).allowed
    budget.charge("a", 60)  # the completion
    refused = budget.admit("a", 20)
    assert not refused.allowed and refused.limit == "tokens" and refused.used_tokens == 110
    assert budget.admit("a", 10).allowed  # 100: still fits
    assert estimate_tokens("x" * 10) == 3


def _redis_url() -> str:
    redis = pytest.importorskip("redis")
    url = "redis://127.0.0.1:6379/15"
    redis.Redis.from_url(url, socket_connect_timeout=2).ping()  # fails loudly if Redis is down
    return url


def test_redis_budget_is_shared_between_instances() -> None:
    url = _redis_url()
    prefix = f"opsloop:test:{uuid.uuid4().hex}"
    one = RedisBudget(Limits(requests=3, tokens=50, window=3600), url, prefix=prefix)
    two = RedisBudget(Limits(requests=3, tokens=50, window=3600), url, prefix=prefix)
    assert one.admit("a", 10).allowed
    assert two.admit("a", 10).allowed  # the same budget, seen from another replica
    two.charge("a", 25)
    refused = one.admit("a", 10)
    assert not refused.allowed and refused.limit == "tokens"
    assert one.admit("a", 5).allowed  # the refused request spent nothing: 50 fits
    assert not two.admit("a").allowed  # the fourth request
    assert one.admit("b").allowed
    one.client.delete(*one.client.keys(prefix + ":*"))
