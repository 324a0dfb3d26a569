"""``neon agent``: run an agent until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio

from agent.agent import Agent
from agent.config import AgentConfig
from neon.serve import serve_until_signal


def run(config: AgentConfig, ready_file: str = "") -> None:
    asyncio.run(serve_until_signal(Agent(config), "neon.agent", ready_file))
