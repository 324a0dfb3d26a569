import threading
from concurrent.futures import ThreadPoolExecutor

from neon.threads import fill, started_pool


def _named(prefix: str) -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith(prefix))


def test_a_started_pool_has_every_thread_before_its_first_task_and_never_more():
    pool = started_pool(5, "whole-a")
    try:
        assert _named("whole-a") == 5
        gate = threading.Event()
        held = [pool.submit(gate.wait, 10) for _ in range(5)]  # a burst as wide as the pool
        queued = [pool.submit(lambda: 1) for _ in range(20)]
        gate.set()
        assert all(f.result(10) for f in held)
        assert [f.result(10) for f in queued] == [1] * 20
        assert _named("whole-a") == 5
    finally:
        pool.shutdown(wait=True)
    assert _named("whole-a") == 0


def test_filling_a_pool_that_already_runs_some_threads_starts_only_the_rest():
    pool = ThreadPoolExecutor(4, thread_name_prefix="whole-b")
    try:
        pool.submit(lambda: None).result(10)
        assert _named("whole-b") == 1
        fill(pool)
        assert _named("whole-b") == 4
        assert pool.submit(lambda: "still serves").result(10) == "still serves"
    finally:
        pool.shutdown(wait=True)
