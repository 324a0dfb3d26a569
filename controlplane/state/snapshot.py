"""A backup of the cluster's state: etcd's own snapshot (every key, leases and revisions, restorable into a fresh
etcd with ``etcdutl snapshot restore``), and a manifest of what it holds, for a restore to check against.

The manifest is read in one transaction just before the snapshot is taken, so the snapshot holds at least
what it lists (an apply in between only adds a generation). Artifacts themselves are not in etcd: the manifest
lists their digests, each with the components whose current or kept generations use it, so that a restore
can find them (the control plane's blob directory, an agent's cache) and check them by sha256.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from controlplane.state.keys import APPS, ARTIFACTS, HISTORY, MEMBERS, PLACEMENTS, TOKENS
from controlplane.state.store import Store

FORMAT = "neon-grid-backup/v1"


async def take(store: Store, snapshot: Path, identity: str) -> dict[str, Any]:
    """Write etcd's snapshot to ``snapshot``; returns the manifest (with the snapshot's size and sha256)."""
    tx = store.client.transactions
    prefixes = (APPS, MEMBERS, PLACEMENTS, TOKENS, ARTIFACTS, HISTORY)
    ok, ranges = await store.client.transaction(
        compare=[], success=[tx.get(p, _prefix_end(p)) for p in prefixes], failure=[]
    )
    apps, members, placements, tokens, artifacts, history = ({bytes(m.key): v for v, m in r} for r in ranges)
    revision = await store.revision()  # the snapshot, taken next, holds every change up to it
    used: dict[str, set[str]] = {}
    for value in [*apps.values(), *history.values()]:
        doc = json.loads(value)
        spec = doc["spec"] if "generation" in doc else doc  # an app record holds its manifest; history is one
        name = spec["metadata"]["name"]
        for comp in spec["spec"]["components"]:
            used.setdefault(comp["artifact"], set()).add(f"{name}/{comp['name']}")
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "created_at": time.time(),
        "controlplane": identity,
        "etcd_revision": int(revision),
        "applications": {
            json.loads(v)["spec"]["metadata"]["name"]: int(json.loads(v)["generation"]) for v in apps.values()
        },
        "placements": {
            k[len(PLACEMENTS) :].decode(): {c: d["nodes"] for c, d in json.loads(v)["components"].items()}
            for k, v in placements.items()
        },
        "nodes": sorted(k[len(MEMBERS) :].decode() for k in members),
        "join_tokens": len(tokens),
        "artifacts": {
            k[len(ARTIFACTS) :].decode(): {
                "name": json.loads(v).get("name", ""),
                "size": int(json.loads(v).get("size", 0)),
                "used_by": sorted(used.get(k[len(ARTIFACTS) :].decode(), ())),
            }
            for k, v in artifacts.items()
        },
    }
    digest, size = hashlib.sha256(), 0
    with snapshot.open("wb") as out:
        await store.client.snapshot(_Hashing(out, digest))
        size = out.tell()
    manifest["snapshot"] = {"size": size, "sha256": digest.hexdigest()}
    return manifest


def _prefix_end(prefix: bytes) -> bytes:
    return prefix[:-1] + bytes([prefix[-1] + 1])


class _Hashing:
    """A file that hashes what is written to it."""

    def __init__(self, out: Any, digest: Any) -> None:
        self.out = out
        self.digest = digest

    def write(self, data: bytes) -> None:
        self.digest.update(data)
        self.out.write(data)
