"""``neon agent``: run an agent until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from agent.config import AgentConfig
from agent.shell import Agent
from neon.rpc.serve import serve_until_signal


def run(config: AgentConfig, ready_file: str = "") -> None:
    asyncio.run(serve_until_signal(Agent(config), "neon.agent", ready_file))
    # The agent has stopped in order: instances closed, state on disk, logs written. What remains are
    # wasmtime's own tokio worker threads, which call back into Python (guests' stdout and stderr).
    # Interpreter finalization ends a thread that asks for the GIL with pthread_exit, and Rust turns
    # that unwinding through its frames into an abort (SIGABRT, "panic in a function that cannot
    # unwind"; seen once in CI at shutdown). So the process ends here, without finalizing.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
