"""The Join service: an agent without a certificate trades a one-time token for one."""

from __future__ import annotations

import time

from controlplane.api.plane import Plane
from controlplane.reconcile.events import new_event
from neon._proto import control_pb2, control_pb2_grpc
from neon.errors import NeonGridError
from neon.observe import log
from neon.rpc.servers import Context, edge

_log = log.get("neon.controlplane.join")


# The same kind of refusal from the same host is recorded as an event at most this often (the port is open
# to anyone: each refusal is logged, but must not let a stranger fill etcd with events).
EVENT_EVERY = 10.0


class JoinServicer(control_pb2_grpc.JoinServicer):
    def __init__(self, cp: Plane) -> None:
        self.cp = cp
        self._recorded: dict[tuple[str, str], float] = {}

    def _worth_an_event(self, peer: str, reason: str) -> bool:
        host = peer.rsplit(":", 1)[0]
        now = time.monotonic()
        if len(self._recorded) > 4096:
            self._recorded = {k: t for k, t in self._recorded.items() if now - t < EVENT_EVERY}
        if now - self._recorded.get((host, reason), -EVENT_EVERY) < EVENT_EVERY:
            return False
        self._recorded[(host, reason)] = now
        return True

    @edge
    async def Join(self, request: control_pb2.JoinRequest, context: Context) -> control_pb2.JoinResponse:
        node = request.node_name
        try:
            cert = await self.cp.admission.join(node, request.token, request.csr_pem)
        except NeonGridError as err:
            _log.warning("join refused", node=node[:80], peer=context.peer(), reason=err.message)
            if self._worth_an_event(context.peer(), type(err).__name__):
                msg = f"{node[:80] or '?'} from {context.peer()}: {err.message}"
                await self.cp.store.events.record(new_event("JoinRefused", msg))
            raise
        _log.info("node admitted", node=node, peer=context.peer())
        await self.cp.store.events.record(
            new_event("NodeAdmitted", f"node {node} joined with a token and got its certificate")
        )
        security = self.cp.security
        return control_pb2.JoinResponse(cert_pem=cert, ca_pem=security.creds.ca, signing_key=security.signing_public)
