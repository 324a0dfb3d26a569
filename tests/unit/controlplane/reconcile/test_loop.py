"""The reconcile loop's pace: a pass follows a change, but never sooner after the last pass than twice the
event loop's time that pass took (with thousands of agents registering, back-to-back passes over every node
left the loop no time for heartbeats); a pass that only waited (on etcd, on a composition) holds nothing up."""

from __future__ import annotations

import asyncio
import time

from controlplane.reconcile.loop import ReconcileLoop


def test_the_next_pass_waits_twice_the_loop_time_the_last_one_took() -> None:
    async def main() -> tuple[list[tuple[float, float, float]], list[float]]:
        passes: list[tuple[float, float, float]] = []  # (started, ended, loop time used)
        told: list[float] = []
        loop = ReconcileLoop(None, None, None, resync_interval=60.0, on_pass=told.append)  # type: ignore[arg-type]

        async def reconcile_once() -> None:
            started, cpu = time.monotonic(), time.thread_time()
            if len(passes) % 2 == 0:
                while time.monotonic() - started < 0.3:  # a pass that holds the loop
                    pass
            else:
                await asyncio.sleep(0.3)  # a pass that waits on others
            passes.append((started, time.monotonic(), time.thread_time() - cpu))
            loop.mark_dirty()  # changes keep coming

        loop.reconcile_once = reconcile_once  # type: ignore[method-assign]
        loop.mark_dirty()
        task = asyncio.create_task(loop.run())
        while len(passes) < 3:
            await asyncio.sleep(0.02)
        task.cancel()
        return passes, told

    passes, told = asyncio.run(main())
    (_, busy_end, busy_cpu), (waiting_start, waiting_end, _), (next_start, _, _) = passes[:3]
    after_busy, after_waiting = waiting_start - busy_end, next_start - waiting_end
    assert after_busy >= 2 * busy_cpu - 0.01, f"{after_busy:.3f}s after a pass that held the loop {busy_cpu:.3f}s"
    assert after_waiting < after_busy, f"a pass that only waited held the next one up {after_waiting:.3f}s"
    assert len(told) >= 3 and min(told) >= 0.3, "on_pass is told the wall-clock time of each pass"
