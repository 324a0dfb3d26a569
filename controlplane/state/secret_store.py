"""Secrets in etcd, encrypted at rest.

Each secret's values are sealed (AES-256-GCM, :mod:`neon.security.sealing`) with a data key, bound to the
secret's name and version; data keys are kept beside them, each sealed with the key-encryption key, which
every replica derives from the cluster CA's private key (so nothing more is made, copied or backed up, and a
snapshot of etcd alone opens nothing). The newest data key seals; rotating makes a new one, seals every
secret again with it, and drops the old keys once no secret uses them (a replica that dies half way leaves
every secret readable under the key that sealed it).

    /neon/secrets/<name>       {"version", "keys", "updated_at", "key_id", "sealed", "deleting"}
    /neon/secret-keys/<id>     {"wrapped", "created_at"}: a data key sealed with the key-encryption key
"""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass
from typing import Any

from controlplane.state.etcd import EtcdCalls
from controlplane.state.keys import SECRET_KEYS, SECRETS, dump, etcd_key
from neon._validate import NAME
from neon.config_spec import MAX_KEYS, MAX_VALUE, SECRET_KEY
from neon.errors import AlreadyExists, Conflict, FailedPrecondition, InvalidArgument, NotFound
from neon.security import sealing

KEK_PURPOSE = "neon-grid secrets key-encryption key v1"
MAX_SECRET = 1 << 20  # bytes of one secret's keys and values together


@dataclass(frozen=True)
class SecretInfo:
    """What may be shown of a secret: never a value."""

    name: str
    keys: tuple[str, ...]
    version: int
    updated_at: float
    revision: int = 0  # etcd mod_revision of its key
    deleting: bool = False


def _info(name: str, doc: dict[str, Any], revision: int) -> SecretInfo:
    return SecretInfo(
        name, tuple(doc["keys"]), int(doc["version"]), float(doc["updated_at"]), revision, bool(doc.get("deleting"))
    )


def _context(name: str, version: int) -> str:
    """What a secret's sealed values are bound to: its name and version."""
    return f"secret:{name}:{version}"


def check_secret(name: str, data: dict[str, str]) -> None:
    """InvalidArgument naming what is wrong with a secret a user sends."""
    if not NAME.match(name):
        raise InvalidArgument(
            f"secret name must be a lowercase DNS label (a-z, 0-9, '-', at most 63 characters), got {name!r}",
            field="name",
        )
    if not data:
        raise InvalidArgument(f"secret {name} has no keys: give at least one (--from-literal KEY=VALUE)", field="data")
    if len(data) > MAX_KEYS:
        raise InvalidArgument(f"secret {name} has {len(data)} keys; the limit is {MAX_KEYS}", field="data")
    total = 0
    for key, value in data.items():
        if not SECRET_KEY.match(key):
            raise InvalidArgument(
                f"secret {name}: {key!r} is not a valid key (letters, digits, '_', '.', '-', at most 253 characters, "
                "not . or ..)",
                field=f"data.{key}",
            )
        size = len(value.encode())
        if size > MAX_VALUE:
            raise InvalidArgument(
                f"secret {name}: the value of {key} is {size} bytes; the limit is {MAX_VALUE}", field=f"data.{key}"
            )
        total += size + len(key)
    if total > MAX_SECRET:
        raise InvalidArgument(f"secret {name} is {total} bytes; the limit is {MAX_SECRET}", field="data")


class SecretStore:
    """The secrets' keys in etcd; ``kek``: the key-encryption key (None: this replica cannot hold secrets)."""

    def __init__(self, client: EtcdCalls, kek: bytes | None, why_not: str = "") -> None:
        self.client = client
        self._kek = kek
        self._why_not = why_not or "this control plane has no key to encrypt secrets with"

    @property
    def kek(self) -> bytes:
        if self._kek is None:
            raise FailedPrecondition(self._why_not)
        return self._kek

    # ------------------------------------------------------------ reads --

    async def get(self, name: str) -> SecretInfo | None:
        got = await self.client.get(etcd_key(SECRETS, name))
        return _info(name, json.loads(got.value), got.mod_revision) if got else None

    async def list(self) -> list[SecretInfo]:
        return [
            _info(kv.key[len(SECRETS) :].decode(), json.loads(kv.value), kv.mod_revision)
            for kv in await self.client.get_prefix(SECRETS)
        ]

    async def versions(self) -> dict[str, int]:
        """Every secret's version (a deleting one's too)."""
        return {info.name: info.version for info in await self.list()}

    async def values(self, name: str) -> tuple[dict[str, str], int]:
        """A secret's keys and values, and its version; NotFound if there is no such secret."""
        got = await self.client.get(etcd_key(SECRETS, name))
        if not got:
            raise NotFound(f"secret {name!r} does not exist; create it with `neon secret create {name}`", kind="secret")
        doc = json.loads(got.value)
        return await self._open(name, doc), int(doc["version"])

    async def _open(self, name: str, doc: dict[str, Any]) -> dict[str, str]:
        """The keys and values a stored secret's document seals."""
        dek = await self._data_key(doc["key_id"])
        plain: dict[str, str] = json.loads(
            sealing.unseal(dek, base64.b64decode(doc["sealed"]), _context(name, doc["version"]))
        )
        return plain

    # ----------------------------------------------------------- writes --

    async def put(self, name: str, data: dict[str, str], replace: bool) -> SecretInfo:
        """Create the secret, or (``replace``) give an existing one these keys and values as its next version."""
        check_secret(name, data)
        key = etcd_key(SECRETS, name)
        tx = self.client.transactions
        for _ in range(10):
            got = await self.client.get(key)
            if got and not replace:
                raise AlreadyExists(
                    f"secret {name} exists; replace its values with `neon secret create {name} --replace ...`",
                    secret=name,
                )
            old = json.loads(got.value) if got else None
            if old and old.get("deleting"):
                raise Conflict(f"secret {name} is being deleted; try again in a moment", secret=name)
            version = int(old["version"]) + 1 if old else 1
            key_id, dek = await self._current_key()
            doc = self._sealed(name, version, data, key_id, dek)
            compare = [tx.mod(key) == got.mod_revision] if got else [tx.version(key) == 0]
            ok, _ = await self.client.transaction(compare=compare, success=[tx.put(key, dump(doc))], failure=[])
            if ok:
                return _info(name, doc, 0)
        raise Conflict(f"secret {name} kept changing while it was written; retry", secret=name)

    async def mark_deleting(self, name: str) -> int:
        """Mark the secret as being deleted (an apply that read it before fails its transaction); its revision."""
        key = etcd_key(SECRETS, name)
        got = await self.client.get(key)
        if not got:
            raise NotFound(f"secret {name!r} does not exist", kind="secret", name=name)
        doc = json.loads(got.value) | {"deleting": True}
        tx = self.client.transactions
        ok, _ = await self.client.transaction(
            compare=[tx.mod(key) == got.mod_revision], success=[tx.put(key, dump(doc))], failure=[]
        )
        if not ok:
            raise Conflict(f"secret {name} changed while it was being deleted; retry", secret=name)
        return int((await self.client.get(key)).mod_revision)

    async def finish_delete(self, name: str, revision: int, keep: bool) -> None:
        """Delete the marked secret if it is unchanged since ``revision``, or (``keep``) take the mark off."""
        key = etcd_key(SECRETS, name)
        tx = self.client.transactions
        if keep:
            got = await self.client.get(key)
            if got and got.mod_revision == revision:
                doc = {k: v for k, v in json.loads(got.value).items() if k != "deleting"}
                await self.client.transaction(
                    compare=[tx.mod(key) == revision], success=[tx.put(key, dump(doc))], failure=[]
                )
            return
        ok, _ = await self.client.transaction(compare=[tx.mod(key) == revision], success=[tx.delete(key)], failure=[])
        if not ok:
            raise Conflict(f"secret {name} changed while it was being deleted; retry", secret=name)

    async def rotate(self) -> tuple[str, int]:
        """A new data key; every secret sealed again with it; keys no secret uses any more dropped."""
        key_id, dek = await self._new_key()
        tx = self.client.transactions
        count = 0
        for kv in await self.client.get_prefix(SECRETS):
            name = kv.key[len(SECRETS) :].decode()
            for _ in range(10):  # a secret written meanwhile is read again
                got = await self.client.get(kv.key)
                if not got:
                    break
                doc = json.loads(got.value)
                if doc["key_id"] == key_id:
                    break
                data = await self._open(name, doc)
                resealed = self._sealed(name, int(doc["version"]), data, key_id, dek) | (
                    {"deleting": True} if doc.get("deleting") else {}
                )
                resealed["updated_at"] = doc["updated_at"]
                ok, _ = await self.client.transaction(
                    compare=[tx.mod(kv.key) == got.mod_revision], success=[tx.put(kv.key, dump(resealed))], failure=[]
                )
                if ok:
                    count += 1
                    break
            else:
                raise Conflict(f"secret {name} kept changing while the key was rotated; rotate again", secret=name)
        used = {json.loads(kv.value)["key_id"] for kv in await self.client.get_prefix(SECRETS)}
        for kv in await self.client.get_prefix(SECRET_KEYS, keys_only=True):
            old = kv.key[len(SECRET_KEYS) :].decode()
            if old != key_id and old not in used:
                await self.client.delete(kv.key)
        return key_id, count

    # -------------------------------------------------------- data keys --

    def _sealed(self, name: str, version: int, data: dict[str, str], key_id: str, dek: bytes) -> dict[str, Any]:
        plain = json.dumps(data, sort_keys=True).encode()
        return {
            "version": version,
            "keys": sorted(data),
            "updated_at": time.time(),
            "key_id": key_id,
            "sealed": base64.b64encode(sealing.seal(dek, plain, _context(name, version))).decode(),
        }

    async def _data_key(self, key_id: str) -> bytes:
        got = await self.client.get(etcd_key(SECRET_KEYS, key_id))
        if not got:
            raise NotFound(f"the data key {key_id} that sealed a secret is gone", kind="secret key", name=key_id)
        wrapped = base64.b64decode(json.loads(got.value)["wrapped"])
        return sealing.unseal(self.kek, wrapped, f"secret-key:{key_id}")

    async def _current_key(self) -> tuple[str, bytes]:
        """The newest data key (ids sort by creation), made when there is none."""
        got = await self.client.get_prefix(SECRET_KEYS, keys_only=True)
        ids = sorted(kv.key[len(SECRET_KEYS) :].decode() for kv in got)
        if not ids:
            return await self._new_key()
        return ids[-1], await self._data_key(ids[-1])

    async def _new_key(self) -> tuple[str, bytes]:
        key_id = f"{time.time_ns():020d}-{os.urandom(4).hex()}"
        dek = sealing.new_key()
        wrapped = sealing.seal(self.kek, dek, f"secret-key:{key_id}")
        doc = {"wrapped": base64.b64encode(wrapped).decode(), "created_at": time.time()}
        await self.client.put(etcd_key(SECRET_KEYS, key_id), dump(doc))
        return key_id, dek
