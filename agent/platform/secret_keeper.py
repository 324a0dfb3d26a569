"""The values of the secrets a component's config references: fetched from the control plane when the component
starts (over mutual TLS), held in memory, and written to disk only when the manifest says so
(``secrets: {persist: true}``), sealed with a key of the node's own (``<data_dir>/identity/seal.key``), so an
agent restarted while the control plane is away runs the component with them. Without that, the component
waits, and its status says for what."""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc

from neon.errors import IntegrityError, NeonGridError, Unavailable
from neon.model import ComponentAssignment
from neon.observe import log
from neon.security import sealing
from neon.security.keyfiles import write_private

_log = log.get("neon.agent.secrets")

Key = tuple[str, str]
Fetch = Callable[[str, str], Awaitable[tuple[dict[str, str], dict[str, int]]]]  # (app, component) -> values, versions


class SecretKeeper:
    """Secrets' values per component on this node.

    Args:
        directory: Where persisted secrets are kept, sealed (``<data_dir>/secrets``).
        key_file: The node's sealing key, made on first use.
        fetch: Asks the control plane for a component's values.
    """

    def __init__(self, directory: Path, key_file: Path, fetch: Fetch) -> None:
        self.directory = directory
        self.key_file = key_file
        self.fetch = fetch
        self._held: dict[Key, tuple[dict[str, int], dict[str, str]]] = {}

    async def config_for(self, key: Key, spec: ComponentAssignment) -> dict[str, str]:
        """What ``wasi:config/store`` gives the component: its values and its secrets' (Unavailable: it waits)."""
        values = dict(spec.config.values)
        if not spec.config.secrets:
            return values
        want = dict(spec.secret_versions)
        held = self._held.get(key)
        if held is None or held[0] != want:
            held = (want, (await self._obtain(key, spec))[1])  # held for the versions asked for
            self._held[key] = held
        return values | held[1]

    def forget(self, key: Key) -> None:
        """The component no longer runs here: its values leave memory and disk."""
        self._held.pop(key, None)
        self._path(key).unlink(missing_ok=True)

    async def _obtain(self, key: Key, spec: ComponentAssignment) -> tuple[dict[str, int], dict[str, str]]:
        app, name = key
        try:
            values, versions = await self.fetch(app, name)
        except (grpc.aio.AioRpcError, NeonGridError) as err:
            why = err.details() if isinstance(err, grpc.aio.AioRpcError) else err.message
            if spec.config.persist_secrets:
                kept = self._load(key)
                if kept is not None:
                    _log.warning(
                        "secrets from the node's disk: the control plane could not give them",
                        app=app,
                        component=name,
                        error=why,
                    )
                    return kept
            names = ", ".join(spec.config.secret_names())
            hint = "" if spec.config.persist_secrets else " (secrets: {persist: true} keeps them on the node)"
            raise Unavailable(
                f"waiting for secrets {names}: the control plane could not give them: {why}{hint}"
            ) from None
        if spec.config.persist_secrets:
            self._save(key, versions, values)
        _log.info("secrets obtained", app=app, component=name, secrets=sorted(versions))
        return versions, values

    # ------------------------------------------------------------ disk --

    def _path(self, key: Key) -> Path:
        return self.directory / f"{key[0]}--{key[1]}.sealed"

    def _context(self, key: Key) -> str:
        return f"node-secrets:{key[0]}/{key[1]}"

    def _seal_key(self) -> bytes:
        if self.key_file.is_file():
            return base64.b64decode(self.key_file.read_bytes())
        key = sealing.new_key()
        write_private(self.key_file, base64.b64encode(key))
        return key

    def _save(self, key: Key, versions: dict[str, int], values: dict[str, str]) -> None:
        plain = json.dumps({"versions": versions, "values": values}, sort_keys=True).encode()
        write_private(self._path(key), sealing.seal(self._seal_key(), plain, self._context(key)))

    def _load(self, key: Key) -> tuple[dict[str, int], dict[str, str]] | None:
        path = self._path(key)
        if not path.is_file() or not self.key_file.is_file():
            return None
        try:
            doc = json.loads(sealing.unseal(self._seal_key(), path.read_bytes(), self._context(key)))
        except IntegrityError as err:
            _log.warning("persisted secrets do not open; ignored", path=str(path), error=err.message)
            return None
        return {k: int(v) for k, v in doc["versions"].items()}, dict(doc["values"])
