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

from aetcd.utils import prefix_range_end

from controlplane.state.keys import APPS, ARTIFACTS, HISTORY, MEMBERS, PLACEMENTS, SECRETS, TOKENS
from controlplane.state.store import Store
from controlplane.state.world import placed_nodes

FORMAT = "neon-grid-backup/v1"


async def take(store: Store, snapshot: Path, identity: str) -> dict[str, Any]:
    """Write etcd's snapshot to ``snapshot``; returns the manifest (with the snapshot's size and sha256)."""
    tx = store.client.transactions
    prefixes = (APPS, MEMBERS, PLACEMENTS, TOKENS, ARTIFACTS, HISTORY, SECRETS)
    _, ranges = await store.client.transaction(
        compare=[], success=[tx.get(p, prefix_range_end(p)) for p in prefixes], failure=[]
    )
    # Each table by name (the key after its prefix), its values parsed (tokens are only counted).
    apps, members, placements, tokens, artifacts, history, secrets = (
        {bytes(m.key)[len(p) :].decode(): v for v, m in r} for p, r in zip(prefixes, ranges, strict=True)
    )
    apps, placements, artifacts = ({k: json.loads(v) for k, v in t.items()} for t in (apps, placements, artifacts))
    revision = await store.revision()  # the snapshot, taken next, holds every change up to it
    used: dict[str, set[str]] = {}
    kept = [json.loads(v) for v in history.values()]  # each a manifest; an app record holds its own
    for spec in [*(doc["spec"] for doc in apps.values()), *kept]:
        name = spec["metadata"]["name"]
        for comp in spec["spec"]["components"]:
            used.setdefault(comp["artifact"], set()).add(f"{name}/{comp['name']}")
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "created_at": time.time(),
        "controlplane": identity,
        "etcd_revision": int(revision),
        "applications": {name: int(doc["generation"]) for name, doc in apps.items()},
        "placements": {app: placed_nodes(doc) for app, doc in placements.items()},
        "nodes": sorted(members),
        "join_tokens": len(tokens),
        # Names and versions only: the values are sealed with a key derived from the CA's, so a restore
        # opens them with the same PKI.
        "secrets": {name: int(json.loads(doc)["version"]) for name, doc in secrets.items()},
        "artifacts": {
            digest: {
                "name": doc.get("name", ""),
                "size": int(doc.get("size", 0)),
                "used_by": sorted(used.get(digest, ())),
            }
            for digest, doc in artifacts.items()
        },
    }
    hasher = hashlib.sha256()
    with snapshot.open("wb") as out:
        await store.client.snapshot(_Hashing(out, hasher))
        size = out.tell()
    manifest["snapshot"] = {"size": size, "sha256": hasher.hexdigest()}
    return manifest


class _Hashing:
    """A file that hashes what is written to it."""

    def __init__(self, out: Any, digest: Any) -> None:
        self.out = out
        self.digest = digest

    def write(self, data: bytes) -> None:
        self.digest.update(data)
        self.out.write(data)
