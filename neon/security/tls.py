"""Transport security for every gRPC hop: mutual TLS with the project CA, or loudly logged plaintext.

A process holds one :class:`Credentials`: the CA it trusts and the certificate
and key it presents. Servers require a client certificate signed by the CA on
their main port; the control plane's join port asks for none (a joining agent
has no certificate yet) and serves nothing but ``Join``. Clients check the
server by its role name (see :mod:`neon.security.pki`), never by the address dialled.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc._cython.cygrpc import auth_context as _core_auth_context  # type: ignore[import-not-found]

from neon.errors import InvalidArgument
from neon.observe import log
from neon.security import pki

_log = log.get("neon.security.tls")


@dataclass(frozen=True)
class Credentials:
    """The CA a process trusts and the identity it presents; ``plaintext`` turns TLS off (opt-in)."""

    ca: bytes = b""
    cert: bytes = b""
    key: bytes = b""
    plaintext: bool = False

    @classmethod
    def insecure(cls) -> Credentials:
        return cls(plaintext=True)

    @classmethod
    def from_dir(cls, directory: Path, stem: str) -> Credentials:
        """``ca.pem`` with ``STEM.pem``/``STEM.key`` from a PKI directory (``neon certs init``)."""
        ca_path = directory / "ca.pem"
        if not ca_path.is_file():
            raise InvalidArgument(
                f"no CA certificate at {ca_path}; create a PKI with `neon certs init --dir {directory}` "
                "(or run with --insecure for plaintext, not recommended)",
                field="pki",
            )
        issued = pki.load(directory, stem)
        return cls(ca=ca_path.read_bytes(), cert=issued.cert, key=issued.key)

    @property
    def identity(self) -> pki.CertInfo | None:
        return pki.describe(self.cert) if self.cert else None

    def server(self, require_client_cert: bool = True) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.key, self.cert)], root_certificates=self.ca, require_client_auth=require_client_cert
        )

    def channel(self, with_identity: bool = True) -> grpc.ChannelCredentials:
        if with_identity:
            return grpc.ssl_channel_credentials(self.ca, self.key, self.cert)
        return grpc.ssl_channel_credentials(self.ca)


class ServerIdentity:
    """The certificate a server presents, replaceable while it runs (a renewed node certificate):
    each new TLS handshake picks up the latest; connections already open keep theirs."""

    def __init__(self, creds: Credentials) -> None:
        self._creds = creds
        self._changed = False
        self._lock = threading.Lock()

    def replace(self, creds: Credentials) -> None:
        with self._lock:
            self._creds, self._changed = creds, True

    def _config(self, creds: Credentials) -> Any:
        return grpc.ssl_server_certificate_configuration([(creds.key, creds.cert)], root_certificates=creds.ca)

    def server(self) -> grpc.ServerCredentials:
        def fetch() -> Any:
            with self._lock:
                if not self._changed:
                    return None
                self._changed = False
                return self._config(self._creds)

        return grpc.dynamic_ssl_server_credentials(self._config(self._creds), fetch, require_client_authentication=True)


def warn_plaintext(what: str) -> None:
    """Say, loudly, that traffic is not encrypted or authenticated."""
    _log.warning(
        "PLAINTEXT: TLS is off; traffic is neither encrypted nor authenticated and every caller is trusted. "
        "Use this only on a machine you alone control.",
        component=what,
    )


def _options(server_name: str, options: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    return [*options, ("grpc.ssl_target_name_override", server_name), ("grpc.default_authority", server_name)]


def aio_channel(
    target: str, creds: Credentials, server_name: str, options: list[tuple[str, Any]], with_identity: bool = True
) -> grpc.aio.Channel:
    """An asyncio channel to ``target`` that accepts only a server certified as ``server_name``."""
    if creds.plaintext:
        return grpc.aio.insecure_channel(target, options=options)
    return grpc.aio.secure_channel(target, creds.channel(with_identity), options=_options(server_name, options))


def sync_channel(
    target: str, creds: Credentials, server_name: str, options: list[tuple[str, Any]], with_identity: bool = True
) -> grpc.Channel:
    """A blocking channel to ``target`` that accepts only a server certified as ``server_name``."""
    if creds.plaintext:
        return grpc.insecure_channel(target, options=options)
    return grpc.secure_channel(target, creds.channel(with_identity), options=_options(server_name, options))


@dataclass(frozen=True)
class Peer:
    """Who is calling: the name and role its certificate states, and its serial (empty on plaintext)."""

    name: str
    role: str
    serial: str = ""
    authenticated: bool = True


ANONYMOUS = Peer("", "", authenticated=False)
PLAINTEXT = Peer("", "*plaintext*", authenticated=False)


@functools.lru_cache(maxsize=1024)
def _peer_of_pem(pem: bytes) -> Peer:
    info = pki.describe(pem)
    return Peer(info.name, info.role, info.serial)


def peer_of(context: Any) -> Peer:
    """The verified identity behind a call (grpc has checked the chain to the CA before the call starts).

    Kept on the call's context once read: the call guard and the handler both ask, on every call.
    """
    known: Peer | None = getattr(context, "_neon_peer", None)
    if known is not None:
        return known
    peer = _peer(*_security(context))
    try:
        context._neon_peer = peer
    except AttributeError:  # an asyncio server's context takes no new attributes
        pass
    return peer


def sync_peer(context: Any) -> Peer:
    """:func:`peer_of` a synchronous server's call, which nothing has read yet (its call guard asks
    first, so there is nothing kept to look for), kept on the context for the handler."""
    peer = _peer(*_security(context))
    context._neon_peer = peer
    return peer


def _peer(security: Any, pem: Any) -> Peer:
    """Who a call's transport security type and client certificate (PEM), each a list of bytes or None, say."""
    if security != [b"ssl"]:
        return PLAINTEXT
    if not pem:
        return ANONYMOUS
    return _peer_of_pem(pem[0])


def _security(context: Any) -> tuple[Any, Any]:
    """A call's transport security type and client certificate (PEM), each a list of bytes or None.

    A synchronous server's context (the agent's data plane, on every forwarded call's path) is read
    through grpc's core directly: its ``auth_context()`` builds the same dict and then decodes every
    property name (a dozen) in Python. Any other context is read through the public API.
    """
    rpc_event = getattr(context, "_rpc_event", None)
    if rpc_event is not None:
        properties = _core_auth_context(rpc_event.call) or {}
        return properties.get(b"transport_security_type"), properties.get(b"x509_pem_cert")
    properties = context.auth_context()
    return properties.get("transport_security_type"), properties.get("x509_pem_cert")
