"""Agent admission: one-time join tokens, node certificates, and the record of who was admitted.

An admin creates a token (``neon token create --ttl 1h``). An agent without a
certificate calls ``Join`` on the join port with the token and a certificate
request; the control plane checks the token, signs a certificate naming the
node, and in one etcd transaction marks the token used and records the node's
certificate serial. Later the agent registers over mutual TLS, and its
certificate must carry the serial recorded for its node: a deleted node's
certificate, or one replaced by a new join, is refused.

Tokens are ``<id>.<secret>``; etcd holds only the secret's sha256, under a
lease that removes the token when it expires.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from controlplane.state.keys import IDENTITIES, TOKENS
from controlplane.state.store import Store
from neon._validate import NAME as NAME_PATTERN
from neon.errors import InvalidArgument, PermissionDenied, Unauthenticated
from neon.security import pki

MAX_TTL = 7 * 24 * 3600.0
_TOKEN = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{32})$")
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def _random(n: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Token:
    token: str
    expires_at: float
    node: str


class Admission:
    """Tokens and admitted identities in etcd; signs node certificates with the CA."""

    def __init__(self, store: Store, ca: pki.Issued | None, cert_ttl: float = pki.LEAF_DAYS * 86400.0) -> None:
        self.store = store
        self.ca = ca
        self.cert_ttl = cert_ttl

    async def create_token(self, ttl: float, node: str = "", created_by: str = "") -> Token:
        if not 0 < ttl <= MAX_TTL:
            raise InvalidArgument(f"--ttl must be between 1s and 7 days, got {ttl:g}s", field="ttl_seconds")
        if node and not NAME_PATTERN.match(node):
            raise InvalidArgument(f"node name must be a lowercase DNS label, got {node!r}", field="node")
        token_id, secret = _random(6), _random(32)
        expires = time.time() + ttl
        doc = {"hash": _hash(secret), "expires_at": expires, "node": node, "created_by": created_by}
        lease = await self.store.client.lease(int(ttl) + 1)
        await self.store.client.put(TOKENS + token_id.encode(), json.dumps(doc).encode(), lease=lease.id)
        return Token(f"{token_id}.{secret}", expires, node)

    async def join(self, node: str, token: str, csr_pem: bytes) -> bytes:
        """Check the token, sign the node's certificate, mark the token used: all or nothing."""
        if self.ca is None:
            raise PermissionDenied("this control plane runs without TLS (--insecure); agents register without joining")
        if not NAME_PATTERN.match(node):
            raise InvalidArgument(f"node name must be a lowercase DNS label, got {node!r}", field="node_name")
        match = _TOKEN.match(token)
        if not match:
            raise Unauthenticated(
                "the join token is malformed (expected '<6 chars>.<32 chars>' from neon token create)"
            )
        token_id, secret = match.groups()
        key = TOKENS + token_id.encode()
        got = await self.store.client.get(key)
        expired = Unauthenticated(
            f"join token {token_id} is unknown or expired; create one with `neon token create --ttl 1h`"
        )
        if got is None:
            raise expired
        doc: dict[str, Any] = json.loads(got.value)
        if not hmac.compare_digest(doc["hash"], _hash(secret)):
            raise Unauthenticated(f"join token {token_id}: the secret does not match")
        if doc.get("used_by"):
            raise Unauthenticated(
                f"join token {token_id} was already used (by node {doc['used_by']}); tokens admit one agent once"
            )
        if doc["expires_at"] < time.time():
            raise expired  # its lease has not run out yet
        if doc.get("node") and doc["node"] != node:
            raise PermissionDenied(f"join token {token_id} admits node {doc['node']!r} only, not {node!r}")
        identity_key = IDENTITIES + node.encode()
        existing = await self.store.client.get(identity_key)
        if existing is not None and doc.get("node") != node:
            raise PermissionDenied(
                f"node {node!r} is already admitted; an agent may not take another node's identity. "
                f"To admit a rebuilt machine under this name: `neon delete node {node}`, or a token made "
                f"with `neon token create --node {node}`"
            )
        cert = self._issue(node, csr_pem)
        serial = pki.describe(cert).serial
        tx = self.store.client.transactions
        used = {**doc, "used_by": node, "used_at": time.time()}
        identity_cmp = (
            tx.version(identity_key) == 0 if existing is None else tx.mod(identity_key) == existing.mod_revision
        )
        ok, _ = await self.store.client.transaction(
            compare=[tx.mod(key) == got.mod_revision, identity_cmp],
            success=[
                tx.put(key, json.dumps(used).encode(), got.lease),
                tx.put(identity_key, json.dumps({"serial": serial, "joined_at": time.time()}).encode()),
            ],
            failure=[],
        )
        if not ok:
            raise Unauthenticated(f"join token {token_id} was used by another agent at the same moment")
        return cert

    async def renew(self, node: str, serial: str, csr_pem: bytes) -> bytes:
        """A new certificate for ``node``'s new key; the one presented must be the one admitted,
        and it stops being admitted in the same transaction."""
        if self.ca is None:
            raise PermissionDenied("this control plane runs without TLS (--insecure); there is nothing to renew")
        key = IDENTITIES + node.encode()
        got = await self.store.client.get(key)
        _check_admitted(node, serial, got)
        assert got is not None
        cert = self._issue(node, csr_pem)
        doc = {**json.loads(got.value), "serial": pki.describe(cert).serial, "renewed_at": time.time()}
        tx = self.store.client.transactions
        ok, _ = await self.store.client.transaction(
            compare=[tx.mod(key) == got.mod_revision], success=[tx.put(key, json.dumps(doc).encode())], failure=[]
        )
        if not ok:
            raise PermissionDenied(f"node {node!r}'s admission changed while it renewed; join or renew again")
        return cert

    def _issue(self, node: str, csr_pem: bytes) -> bytes:
        """A node certificate for the key the request proves it holds."""
        assert self.ca is not None
        public_key = pki.public_key_of_csr(csr_pem, node)
        return pki.issue(self.ca, node, pki.AGENT, public_key=public_key, lifetime=self.cert_ttl).cert

    async def check_registered(self, node: str, serial: str) -> None:
        """Refuse a certificate that is not the one admitted for ``node`` (revoked, replaced or never admitted)."""
        _check_admitted(node, serial, await self.store.client.get(IDENTITIES + node.encode()))


def _check_admitted(node: str, serial: str, got: Any) -> None:
    """``got`` is the node's identity record (or None); the serial must be the one it holds."""
    if got is None:
        raise PermissionDenied(
            f"node {node!r} is not admitted (never joined, or deleted); join with a token: "
            "neon agent --join-token TOKEN ...",
            node=node,
        )
    admitted = json.loads(got.value)["serial"]
    if admitted != serial:
        raise PermissionDenied(
            f"node {node!r} presented certificate {serial}, but {admitted} is the one admitted; "
            "this certificate was replaced or revoked",
            node=node,
        )
