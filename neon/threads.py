"""Thread pools started whole.

A :class:`~concurrent.futures.ThreadPoolExecutor` starts its threads one by one, when a task finds none
idle, and keeps them: a long-running process's thread count climbs to each pool's peak concurrency over
hours (after a burst, a reconnect storm, a slow disk) and, to anyone watching it, looks like a leak. The
agent starts its pools whole instead, so its threads are fixed from the start: an idle thread costs a few
pages of stack, and a count that never moves is one a soak (and an operator) can check.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

FILL_TIMEOUT = 30.0  # seconds; starting threads takes microseconds each, this only bounds a broken pool


def default_workers() -> int:
    """asyncio's own size for its default executor: ``min(32, cpus + 4)``."""
    return min(32, (os.cpu_count() or 1) + 4)


def started_pool(workers: int, prefix: str) -> ThreadPoolExecutor:
    """A pool of ``workers`` threads, every one of them already started."""
    pool = ThreadPoolExecutor(workers, thread_name_prefix=prefix)
    fill(pool)
    return pool


def fill(pool: ThreadPoolExecutor) -> None:
    """Start every thread ``pool`` may have: as many tasks as its size, each holding its thread until all
    are held (a thread idle already takes one; the pool starts the rest)."""
    workers = pool._max_workers  # the size it was made with; the class keeps no public copy
    barrier = threading.Barrier(workers + 1)
    for _ in range(workers):
        pool.submit(barrier.wait, FILL_TIMEOUT)
    barrier.wait(FILL_TIMEOUT)
