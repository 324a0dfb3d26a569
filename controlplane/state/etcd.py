"""etcd endpoints as gRPC targets, the aetcd client (over mutual TLS for https endpoints) with its transient
errors retried or raised as Unavailable."""

from __future__ import annotations

import asyncio
import inspect
import socket
import time
from typing import Any

import aetcd
import grpc
from aetcd import rpc as aetcd_rpc
from aetcd import watcher as aetcd_watcher

from neon.errors import InvalidArgument, Unavailable
from neon.security import pki
from neon.security.tls import Credentials


def parse_etcd_url(url: str) -> tuple[str, int]:
    """``http://127.0.0.1:2379`` or ``127.0.0.1:2379`` -> (host, port)."""
    rest = url.strip().split("://", 1)[-1].rstrip("/")
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"etcd endpoint must look like http://HOST:PORT, got {url!r}")
    return host, int(port)


def etcd_scheme(urls: str) -> str:
    """``https`` when the endpoints are reached over TLS, ``http`` when in plaintext (a bare ``HOST:PORT`` is
    plaintext); every endpoint of a cluster must say the same."""
    schemes = {u.strip().split("://", 1)[0].lower() if "://" in u else "http" for u in urls.split(",") if u.strip()}
    if not schemes <= {"http", "https"} or len(schemes) != 1:
        raise ValueError(f"etcd endpoints must all be http:// or all https://, got {urls!r}")
    return schemes.pop()


def etcd_client(url: str, timeout: float, tls: Credentials | None) -> aetcd.Client:
    """An aetcd client for ``url``: over TLS with ``tls``' certificate when the URL says https."""
    host, _, port = grpc_target(url).rpartition(":")
    if etcd_scheme(url) == "http":
        return aetcd.Client(host=host, port=int(port), timeout=timeout)
    if tls is None or tls.plaintext or not tls.cert:
        raise InvalidArgument(
            f"etcd at {url} is served over TLS: the control plane needs its certificate (drop --insecure)",
            field="etcd",
        )
    return _TlsClient(host, int(port), timeout, tls)


class _TlsClient(aetcd.Client):  # type: ignore[misc]  # aetcd has no type hints
    """aetcd's client over mutual TLS: aetcd dials only in plaintext, so this opens the channel itself and
    hangs aetcd's stubs on it (as aetcd's ``connect`` does with its own channel). The etcd members' certificate
    answers to ``etcd.neon-grid`` whatever address they are reached at."""

    def __init__(self, host: str, port: int, timeout: float, tls: Credentials) -> None:
        super().__init__(host=host, port=port, timeout=timeout)
        self._tls = tls

    async def connect(self) -> None:
        if self._connected.is_set():
            return
        if self._is_connecting:  # type: ignore[has-type]  # another task opens it: wait for that
            await asyncio.wait_for(self._connected.wait(), self._connect_wait_timeout)
            return
        self._is_connecting = True
        try:
            options = [("grpc.ssl_target_name_override", pki.ETCD_NAME)]
            self.channel = grpc.aio.secure_channel(f"{self._host}:{self._port}", self._tls.channel(), options)
            self.kvstub = aetcd_rpc.KVStub(self.channel)
            self.clusterstub = aetcd_rpc.ClusterStub(self.channel)
            self.leasestub = aetcd_rpc.LeaseStub(self.channel)
            self.maintenancestub = aetcd_rpc.MaintenanceStub(self.channel)
            self._watcher = aetcd_watcher.Watcher(aetcd_rpc.WatchStub(self.channel), timeout=self._timeout)
            self._connected.set()
        finally:
            self._is_connecting = False


def grpc_target(urls: str) -> str:
    """The gRPC target for one etcd endpoint or a comma-separated list of a cluster's members.

    One endpoint is dialled by name, so a DNS name with a record per member
    (a Kubernetes headless service) fails over among them. Several endpoints
    become a static address list (``ipv4:h1:p1,h2:p2``; names are resolved
    once, here): gRPC's ``pick_first`` policy keeps one connection and moves to
    the next member when it fails, as etcd's own Go client does.
    """
    endpoints = [parse_etcd_url(u) for u in urls.split(",") if u.strip()]
    if not endpoints:
        raise ValueError("no etcd endpoint given; use http://HOST:PORT[,http://HOST:PORT...]")
    if len(endpoints) == 1:
        host, port = endpoints[0]
        return f"{host}:{port}"
    addresses = []
    for host, port in endpoints:
        try:
            ip = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
        except OSError as err:
            raise ValueError(f"etcd endpoint {host}:{port} does not resolve to an IPv4 address: {err}") from None
        addresses.append(f"{ip}:{port}")
    return "ipv4:" + ",".join(addresses)


# What etcd says while a member is lost or a leader is elected (some arrive as UNKNOWN).
_TRANSIENT = ("deadline exceeded", "leader changed", "no leader", "timed out", "stream removed", "socket closed")


def _transient(err: Exception) -> bool:
    if isinstance(err, (aetcd.ConnectionFailedError, aetcd.ConnectionTimeoutError)):
        return True
    return any(text in str(err).lower() for text in _TRANSIENT)


class EtcdCalls:
    """The aetcd client, with its connection errors raised as :class:`Unavailable`.

    While an etcd member is lost or a new etcd leader is elected, requests fail
    with UNAVAILABLE for a second or two, and one caught in the old leader's
    death hangs until etcd's own request timeout (7 s) unless the client's
    shorter deadline cuts it. Calls that are safe to repeat (reads, plain puts
    and deletes: the same write twice is the same write; lease keep-alives go
    through :mod:`controlplane.state.lease_keeper`, which resends them itself)
    are retried for up to ``retry_for`` seconds; transactions and new leases are
    not, since a lost reply may hide an applied one (a campaign that won): they
    raise at once, and their callers retry with fresh reads.
    """

    SAFE = frozenset({"get", "get_prefix", "get_range", "status", "put", "delete", "delete_prefix", "delete_range"})

    def __init__(self, client: Any, url: str, retry_for: float = 8.0) -> None:
        self._client = client
        self._url = url
        self._retry_for = retry_for

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            deadline = time.monotonic() + (self._retry_for if name in self.SAFE else 0.0)
            while True:
                try:
                    return await attr(*args, **kwargs)
                except aetcd.ClientError as err:
                    if not _transient(err):
                        raise
                    if time.monotonic() >= deadline:
                        raise Unavailable(f"etcd ({self._url}) did not answer {name}: {err}; retry") from None
                    await asyncio.sleep(0.1)

        return call
