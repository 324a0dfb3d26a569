"""Native code from the control plane, for the agent's runtimes (an ``agent.runtime.engine.CodeSource``).

The runtime asks from the thread that starts a component; the request runs on the agent's event loop and the thread
waits for it. The code is accepted only when its bytes hash to the digest the control plane named and the control
plane's signature over (artifact, engine key, code digest) verifies with the key the agent learnt when it joined;
anything else is refused, reported to the control plane (which forgets it and records a CompiledCodeRefused event)
and the runtime compiles for itself. Over plaintext nothing is signed, so agents compile for themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import grpc

from agent.control.session import COMPILE_WAIT, ControlSession
from agent.runtime.code_cache import code_digest
from neon.errors import IntegrityError, NeonGridError, Unavailable, Untrusted
from neon.observe import log
from neon.security.signing import Signature, verify_code

_log = log.get("neon.agent.code")
T = TypeVar("T")


class ControlCodeSource:
    def __init__(self, session: ControlSession, loop: asyncio.AbstractEventLoop, key: Callable[[], str]) -> None:
        """``key``: the control plane's signing key as the agent knows it now ("" over plaintext)."""
        self.session, self.loop, self.key = session, loop, key
        self._served: dict[tuple[str, str], str] = {}  # (artifact, engine) -> the code digest last given

    def fetch(self, artifact: str, engine: str) -> bytes | None:
        key = self.key()
        if not key:
            return None
        return self._wait(self._fetch(artifact, engine, key))

    def refused(self, artifact: str, engine: str, reason: str) -> None:
        code = self._served.get((artifact, engine), "")
        if code:
            self._wait(self._report(artifact, engine, code, reason))

    def _wait(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(COMPILE_WAIT + 60)

    async def _fetch(self, artifact: str, engine: str, key: str) -> bytes | None:
        try:
            given = await self.session.compiled_code(artifact, engine)
            if not given.code:
                _log.info("the control plane has no code for this engine; compiling here", reason=given.reason)
                return None
            self._served[(artifact, engine)] = given.code
            code = bytearray()
            async for chunk in self.session.fetch(given.code):
                code += chunk
        except grpc.aio.AioRpcError as err:
            raise Unavailable(f"native code could not be got from the control plane: {err.details()}") from None
        try:
            actual = code_digest(code)
            if actual != given.code:
                raise IntegrityError(
                    f"native code {given.code} arrived as {actual}", expected=given.code, actual=actual
                )
            signature = Signature.from_json(given.signature, "the native code's signature")
            verify_code(artifact, engine, given.code, signature, [key])
        except NeonGridError as err:
            await self._report(artifact, engine, given.code, err.message)
            raise Untrusted(f"{err.message}; compiling here instead") from None
        return bytes(code)

    async def _report(self, artifact: str, engine: str, code: str, reason: str) -> None:
        _log.warning("native code from the control plane refused", artifact=artifact, code=code, reason=reason)
        try:
            await self.session.compiled_code(artifact, engine, refused=(code, reason))
        except grpc.aio.AioRpcError as err:
            _log.warning("could not report refused native code", error=err.details())
