"""Run a server object until SIGINT or SIGTERM (the control plane's and the agent's entry points)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Protocol

from neon.observe import log


class Server(Protocol):
    @property
    def address(self) -> str: ...

    async def start(self) -> None: ...

    async def stop(self, grace: float = 2.0) -> None: ...


async def serve_until_signal(server: Server, name: str, ready_file: str = "") -> None:
    """Start ``server``, write its address to ``ready_file`` if given, stop it on SIGINT/SIGTERM."""
    await server.start()
    if ready_file:
        Path(ready_file).write_text(getattr(server, "ready_text", server.address))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.get(name).info("shutting down")
    await server.stop()
