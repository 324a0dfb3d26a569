"""Capabilities a component was not granted are absent: calling one traps, kills the instance, is reported.

WASI's filesystem without a granted volume and its sockets (never granted: the
runtime cannot limit where a socket goes) are replaced by stubs, and so is
every import the manifest's ``grants.interfaces`` leaves out. A stub counts the
denial, logs it, asks for a status report (the control plane turns a growing
count into a ``CapabilityDenied`` event) and raises, which traps the guest; an
instance that trapped is never used again.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable

from neon.errors import CapabilityDenied
from neon.observe import log

_log = log.get("neon.agent.denials")

# CPython guests also reach for files to print a traceback after an uncaught error: their stderr tells.
FILESYSTEM = "the filesystem (no volume is granted)"
NETWORK = "the network (sockets cannot be granted)"
# WASI interface (without version) -> the functions that open the capability.
WASI_GATES: dict[str, tuple[str, tuple[str, ...]]] = {
    "wasi:filesystem/preopens": (FILESYSTEM, ("get-directories",)),
    "wasi:sockets/instance-network": (NETWORK, ("instance-network",)),
    "wasi:sockets/tcp-create-socket": (NETWORK, ("create-tcp-socket",)),
    "wasi:sockets/udp-create-socket": (NETWORK, ("create-udp-socket",)),
}


class Incidents:
    """Incidents of one component on this node that killed an instance (traps, denials): how many, the
    last one, and the id its log line carries; ``notify`` is called (from a worker thread) after each."""

    def __init__(self, notify: Callable[[], None] | None = None) -> None:
        self.notify = notify
        self.count = 0
        self.last = ""
        self.last_id = ""
        self._lock = threading.Lock()

    def add(self, message: str) -> str:
        """Count one; returns the incident id to log it with (it becomes the event's id suffix)."""
        incident = os.urandom(4).hex()
        with self._lock:
            self.count += 1
            self.last, self.last_id = message, incident
        if self.notify is not None:
            self.notify()
        return incident


class DenialLog(Incidents):
    """Denials of one component on this node, and the stubs that deny."""

    def __init__(self, label: str, notify: Callable[[], None] | None = None) -> None:
        super().__init__(notify)
        self.label = label

    def stub(self, capability: str) -> Callable[..., Any]:
        def deny(*_args: Any) -> Any:
            message = f"{self.label} used {capability}, which it was not granted; the instance was killed"
            _log.warning("capability denied", component=self.label, capability=capability)
            self.add(message)
            raise CapabilityDenied(message, component=self.label, capability=capability)

        return deny


def wasi_gates(import_names: list[str], volumes_granted: bool) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Versioned WASI interface -> (capability, functions) to replace with stubs for this component."""
    out = {}
    for name in import_names:
        base = name.split("@", 1)[0]
        gate = WASI_GATES.get(base)
        if gate is None or (gate[0] == FILESYSTEM and volumes_granted):
            continue
        out[name] = gate
    return out
