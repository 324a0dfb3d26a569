"""``wasi:config/store`` for one component: ``get`` and ``get-all`` over the values its assignment gives (secrets'
values resolved by the agent). A key asked for and not given answers ``none`` and is counted, so a component that
expects configuration it was not given shows it in its status instead of failing."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from agent.runtime.traps import HostFunc

INTERFACE = "wasi:config/store"  # any version: 0.2.0-draft and 0.2.0-draft-2024-09-27 have one shape


class ConfigMisses:
    """Keys a component asked for and was not given: how many asks, and the keys (the first 20)."""

    LIMIT = 20

    def __init__(self, notify: Callable[[], None] | None = None) -> None:
        self.notify = notify  # called (from a worker thread) after each miss: the status should say it
        self.count = 0
        self.keys: list[str] = []
        self._lock = threading.Lock()

    def add(self, key: str) -> None:
        with self._lock:
            self.count += 1
            if key not in self.keys and len(self.keys) < self.LIMIT:
                self.keys.append(key[:256])
        if self.notify is not None:
            self.notify()

    def note(self) -> str:
        """What the status says (empty when nothing was missed)."""
        if not self.count:
            return ""
        return f"asked {self.count} time(s) for config it was not given: {', '.join(self.keys)}"


def config_imports(
    import_names: list[str], values: Mapping[str, str], misses: ConfigMisses
) -> dict[str, dict[str, HostFunc]]:
    """Host functions for every version of ``wasi:config/store`` the component imports (none: nothing)."""
    pairs = sorted(values.items())
    table = dict(values)

    def get(key: str) -> str | None:
        value = table.get(key)
        if value is None:
            misses.add(key)
        return value  # result<option<string>, error>: wasmtime-py lowers a bare value (or None) as ok

    def get_all() -> list[tuple[str, str]]:
        return list(pairs)

    return {name: {"get": get, "get-all": get_all} for name in import_names if name.split("@", 1)[0] == INTERFACE}
