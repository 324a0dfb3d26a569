"""Native code made once per cluster: the control plane compiles an artifact for an engine key, keeps the code as a
blob, signs it and records it in etcd, and every agent of that engine key fetches it instead of compiling.

Compiled code is native code, so agents accept it only with this control plane's signature over (artifact digest,
engine key, code digest) (``neon.security.signing.sign_code``), checked before anything loads it. A replica makes
code only for engine keys its own machine has (the same wasmtime version, target and CPU features); for any other
an agent is told to compile for itself. Compiles run in child processes (``neon.native.compile``), at most one per
core at a time, and one per (artifact, engine key) however many agents ask at once; the record is written only if
no replica wrote one first (etcd transaction), and the other replicas fetch the blob when asked for it.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controlplane.reconcile.events import new_event
from controlplane.state.blobs import BlobStore, parse_digest
from controlplane.state.store import Store
from neon.errors import InvalidArgument
from neon.native.engine_key import EngineKey, local_key
from neon.observe import log
from neon.security.signing import sign_code

_log = log.get("neon.controlplane.compile")


@dataclass(frozen=True)
class Code:
    """Signed native code, or (``code`` empty) why there is none and the agent compiles for itself."""

    code: str = ""
    signature: str = ""
    size: int = 0
    reason: str = ""
    pending: bool = False  # still being compiled: ask again


class CodeMaker:
    """Makes, keeps and hands out native code for agents' engine keys."""

    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        fetch: Callable[[str], Awaitable[bool]],
        signer: Ed25519PrivateKey | None,
        identity: str,
        parallel: int = 0,
    ) -> None:
        """``fetch``: makes a blob present on this replica from its peers (False when none has it)."""
        self.store, self.blobs, self.fetch, self.signer, self.identity = store, blobs, fetch, signer, identity
        self._slots = asyncio.Semaphore(parallel or os.cpu_count() or 1)
        self._making: dict[tuple[str, str], asyncio.Task[Code]] = {}
        self.made = 0  # compiles this replica finished

    async def code_for(self, artifact: str, engine: str, wait: float = 5.0) -> Code:
        """The signed code of ``artifact`` for ``engine``, made now if needed and possible; a compile that takes
        longer than ``wait`` seconds goes on, and this answers pending (so that no call outlives a short deadline,
        and an agent cut off from this replica finds out in seconds)."""
        key = EngineKey.parse(engine)
        if self.signer is None:
            return Code(reason="this control plane signs nothing (plaintext, --insecure): agents compile")
        if key != local_key(key.tier):
            return Code(reason=f"this control plane's machine is {local_key(key.tier)}: agents of {engine} compile")
        record = await self.store.artifacts.get_code(artifact, engine)
        if record is not None:
            if await self.fetch(record["code"]):
                return Code(record["code"], record["signature"], int(record["size"]))
            await self.store.artifacts.forget_code(artifact, engine, record["code"])  # its blob is lost: make it again
        if not self.blobs.exists(artifact) and not await self.fetch(artifact):
            return Code(reason=f"artifact {artifact} is not held by any control-plane replica")
        job = (artifact, engine)
        task = self._making.get(job)
        if task is None:
            task = self._making[job] = asyncio.create_task(self._make(artifact, key))
            task.add_done_callback(lambda done: self._finished(job, done))
        try:  # shielded: an agent that gives up does not cancel the compile the others wait for
            return await asyncio.wait_for(asyncio.shield(task), wait)
        except TimeoutError:
            return Code(reason="being compiled", pending=True)

    def _finished(self, job: tuple[str, str], task: asyncio.Task[Code]) -> None:
        self._making.pop(job, None)
        if not task.cancelled() and (err := task.exception()) is not None:  # retrieved: no waiter may be left
            _log.warning("making native code failed", artifact=job[0], engine=job[1], error=str(err))

    async def _make(self, artifact: str, key: EngineKey) -> Code:
        assert self.signer is not None
        engine = str(key)
        async with self._slots:
            started = time.monotonic()
            with tempfile.TemporaryDirectory(dir=self.blobs.root.parent, prefix=".compile-") as tmp:
                out = Path(tmp) / "code"
                why = await _compile(key.tier, self.blobs.path(artifact), out)
                if why:
                    _log.warning("artifact did not compile; agents compile it", artifact=artifact, error=why)
                    return Code(reason=f"it did not compile here: {why}")
                code, size = await asyncio.to_thread(self.blobs.store_file, out)
        signature = sign_code(self.signer, artifact, engine, code).to_json()
        doc: dict[str, Any] = {"code": code, "size": size, "signature": signature}
        held = await self.store.artifacts.put_code(
            artifact, engine, doc | {"made_by": self.identity, "made_at": time.time()}
        )
        self.made += 1
        took = time.monotonic() - started
        _log.info("native code made", artifact=artifact, engine=engine, code=code, size=size, seconds=round(took, 2))
        return Code(held["code"], held["signature"], int(held["size"]))

    async def refused(self, node: str, artifact: str, engine: str, code: str, reason: str) -> None:
        """An agent refused the code it was given: forget it (the next ask makes it again) and say so."""
        try:
            parse_digest(code)
        except InvalidArgument:
            raise InvalidArgument(f"refused_code must be a sha256 digest, got {code!r}", field="refused_code") from None
        forgot = await self.store.artifacts.forget_code(artifact, engine, code)
        if forgot:
            self.blobs.remove(code)
        message = f"node {node} refused native code {code[:19]}… of {artifact[:19]}… for {engine}: {reason}"
        await self.store.events.record(new_event("CompiledCodeRefused", message, node=node))


async def _compile(tier: str, artifact: Path, out: Path) -> str:
    """Compile in a child process; "" when it did, else why not."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "neon.native.compile",
        tier,
        str(artifact),
        str(out),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, err = await child.communicate()
    except asyncio.CancelledError:
        child.kill()
        await child.wait()
        raise
    if child.returncode == 0 and out.is_file():
        return ""
    return err.decode(errors="replace").strip() or f"the compiler exited with status {child.returncode}"
