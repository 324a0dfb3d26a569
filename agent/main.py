"""``neon agent``: run an agent until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import signal

from agent.agent import Agent
from agent.config import AgentConfig
from neon import log


async def serve(config: AgentConfig, ready_file: str = "") -> None:
    node = Agent(config)
    await node.start()
    if ready_file:
        with open(ready_file, "w") as handle:
            handle.write(node.address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.get("neon.agent").info("shutting down")
    await node.stop()


def run(config: AgentConfig, ready_file: str = "") -> None:
    asyncio.run(serve(config, ready_file))
