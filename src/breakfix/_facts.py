"""Runtime facts some codemods need (worker side; imports torch). Filled in by the opaque-op recipe."""

from __future__ import annotations

from typing import Any, Callable


def collect_facts(fn: Callable, make_inputs: Callable[[], tuple], breaks: list[dict], seed_all: Callable) -> dict:
    return {}
