"""``neon controlplane``: run a control plane until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import signal

from controlplane.config import ControlPlaneConfig
from controlplane.server import ControlPlane
from neon import log


async def serve(config: ControlPlaneConfig, ready_file: str = "") -> None:
    cp = ControlPlane(config)
    await cp.start()
    if ready_file:
        with open(ready_file, "w") as handle:
            handle.write(cp.address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.get("neon.controlplane").info("shutting down")
    await cp.stop()


def run(config: ControlPlaneConfig, ready_file: str = "") -> None:
    asyncio.run(serve(config, ready_file))
