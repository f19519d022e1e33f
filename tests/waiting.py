"""Waiting for what another process does after it has answered: poll, with a deadline, never a fixed sleep.

A server's answer can arrive before the server is done: nginx writes a request's access-log line after it has
answered, Label Studio goes on with an import whose client has been killed. A test that reads such state right
after the answer races the server; ``wait_for`` polls until the state is there, and fails naming what it waited
for when the deadline passes (the deadline bounds a hang; it asserts nothing about speed).
"""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float, what: str | Callable[[], str], interval: float = 0.05) -> T:
    """Call ``predicate`` until it returns something truthy, and return that; after ``timeout`` seconds, raise
    AssertionError naming ``what`` was waited for (a callable ``what`` is called then, to describe the state seen)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            described = what() if callable(what) else what
            raise AssertionError(f"waited {timeout:g} s for {described}")
        time.sleep(interval)
