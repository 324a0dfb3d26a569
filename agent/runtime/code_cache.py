"""The node's compiled cache: native code on disk, each entry sealed by this node so that only code the agent made
or accepted is ever loaded.

Compiled code is native code: whoever can write the cache directory could otherwise run anything in the agent.
Each entry is ``<artifact>.cwasm`` with ``<artifact>.cwasm.seal`` beside it, a small JSON document naming the
artifact, the engine key, the code's sha256 and an HMAC-SHA256 over the three with the node's code key. The key
lives outside the cache directory (by default beside it: ``<cache>.key``, mode 0600), so agents that share a cache
share its key. An entry whose seal is missing or does not match its bytes is refused, removed and counted; the
agent then fetches or compiles the code again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
import tempfile
from pathlib import Path

from neon.errors import InvalidArgument
from neon.observe import log

_log = log.get("neon.agent.runtime")
KEY_BYTES = 32


def code_key(path: Path) -> bytes:
    """The code key at ``path``, made (0600, atomically: agents starting together agree) when missing. A key
    others can read or write is refused: they could seal code of their own."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".code-key-")
        try:
            os.write(fd, secrets.token_bytes(KEY_BYTES))
            os.close(fd)
            try:
                os.link(tmp, path)  # fails when another agent made it first; its key is then the one
            except FileExistsError:
                pass
        finally:
            os.unlink(tmp)
    mode = path.stat().st_mode
    if stat.S_IMODE(mode) & 0o077:
        raise InvalidArgument(
            f"the code key {path} is open to other users (mode {stat.S_IMODE(mode):o}); chmod 600 it, or remove it "
            "and the compiled cache beside it",
            field="code_key",
        )
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise InvalidArgument(
            f"the code key {path} holds {len(key)} bytes, not {KEY_BYTES}; remove it and the compiled cache beside it",
            field="code_key",
        )
    return key


def code_digest(code: bytes | bytearray) -> str:
    return f"sha256:{hashlib.sha256(code).hexdigest()}"


class CodeCache:
    """Sealed native code for one engine key in ``directory``."""

    def __init__(self, directory: Path, engine: str, key: bytes) -> None:
        self.directory, self.engine, self._key = Path(directory), engine, key
        self.directory.mkdir(parents=True, exist_ok=True)
        self.refused = 0  # entries refused because their seal did not hold

    def path(self, artifact: str) -> Path:
        return self.directory / f"{artifact.replace(':', '-')}.cwasm"

    def _seal_path(self, artifact: str) -> Path:
        return self.path(artifact).with_suffix(".cwasm.seal")

    def has(self, artifact: str) -> bool:
        return self.path(artifact).exists() and self._seal_path(artifact).exists()

    def _mac(self, artifact: str, code: str) -> str:
        message = f"neon-grid/sealed-code/v1\n{artifact}\n{self.engine}\n{code}".encode()
        return hmac.new(self._key, message, "sha256").hexdigest()

    def read(self, artifact: str) -> bytes | None:
        """The entry's code when its seal holds; None when there is none, or it was refused (and removed)."""
        path = self.path(artifact)
        if not path.exists():
            return None
        code = path.read_bytes()
        why = self._check(artifact, code)
        if why is None:
            return code
        self.refused += 1
        _log.warning("compiled cache entry refused; it is made again", artifact=artifact, reason=why)
        self.remove(artifact)
        return None

    def _check(self, artifact: str, code: bytes) -> str | None:
        try:
            seal = json.loads(self._seal_path(artifact).read_text())
            sealed = (str(seal["artifact"]), str(seal["engine"]), str(seal["code"]), str(seal["mac"]))
        except (OSError, ValueError, KeyError, TypeError) as err:
            return f"no readable seal ({type(err).__name__})"
        if sealed[:2] != (artifact, self.engine):
            return f"sealed for {sealed[0]} on {sealed[1]}"
        digest = code_digest(code)
        if sealed[2] != digest:
            return f"the code is {digest}, the seal names {sealed[2]} (changed on disk)"
        if not hmac.compare_digest(sealed[3], self._mac(artifact, digest)):
            return "the seal was not made with this node's code key"
        return None

    def write(self, artifact: str, code: bytes | bytearray) -> None:
        """Keep ``code`` (already checked or made here), sealed; the seal lands last, so a crash leaves no entry."""
        digest = code_digest(code)
        seal = {"artifact": artifact, "engine": self.engine, "code": digest, "mac": self._mac(artifact, digest)}
        self._seal_path(artifact).unlink(missing_ok=True)
        for target, data in ((self.path(artifact), code), (self._seal_path(artifact), json.dumps(seal).encode())):
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".cwasm-")
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, target)

    def remove(self, artifact: str) -> None:
        self._seal_path(artifact).unlink(missing_ok=True)
        self.path(artifact).unlink(missing_ok=True)
