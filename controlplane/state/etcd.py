"""etcd endpoints as gRPC targets, and the aetcd client with its transient errors retried or raised as Unavailable."""

from __future__ import annotations

import asyncio
import inspect
import socket
import time
from typing import Any

import aetcd

from neon.errors import Unavailable


def parse_etcd_url(url: str) -> tuple[str, int]:
    """``http://127.0.0.1:2379`` or ``127.0.0.1:2379`` -> (host, port)."""
    rest = url.strip().split("://", 1)[-1].rstrip("/")
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"etcd endpoint must look like http://HOST:PORT, got {url!r}")
    return host, int(port)


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
    shorter deadline cuts it. Calls that are safe to repeat (reads, lease
    keep-alives, plain puts and deletes: the same write twice is the same write)
    are retried for up to ``retry_for`` seconds; transactions and new leases are
    not, since a lost reply may hide an applied one (a campaign that won): they
    raise at once, and their callers retry with fresh reads.
    """

    SAFE = frozenset(
        {"get", "get_prefix", "get_range", "status", "refresh_lease", "put", "delete", "delete_prefix", "delete_range"}
    )

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
