"""``neon controlplane``: run a control plane until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio

from controlplane.config import ControlPlaneConfig
from controlplane.process import ControlPlane
from neon.rpc.serve import serve_until_signal


def run(config: ControlPlaneConfig, ready_file: str = "") -> None:
    asyncio.run(serve_until_signal(ControlPlane(config), "neon.controlplane", ready_file))
