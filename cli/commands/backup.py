"""``neon backup create FILE`` (from a running control plane) and ``neon backup restore FILE`` (offline, into a
fresh etcd data directory and the control plane's blob directory)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cli import backup_archive
from cli.client import ControlClient
from cli.devcluster.etcd_launcher import etcd_binary
from cli.options import control_client
from controlplane.state.blobs import BlobStore
from neon.errors import IntegrityError, InvalidArgument


def run(args: argparse.Namespace) -> int:
    if args.action == "create":
        with control_client(args) as client:
            return create(client, args.file)
    return restore(args)


def create(client: ControlClient, path: Path) -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=path.parent if path.parent.exists() else None) as tmp:
        snapshot = Path(tmp) / backup_archive.SNAPSHOT
        manifest: dict[str, Any] | None = None
        with snapshot.open("wb") as out:
            for chunk in client.backup():
                out.write(chunk.data)
                if chunk.manifest_json:
                    manifest = json.loads(chunk.manifest_json)
        if manifest is None:
            raise IntegrityError("the control plane ended the backup without its manifest; nothing was written")
        backup_archive.write(path, snapshot, manifest)
        # Read back what was written, with every check a restore makes.
        backup_archive.read(path, Path(tmp))
    apps = manifest["applications"]
    print(
        f"{path}: etcd revision {manifest['etcd_revision']}, {len(apps)} application(s) "
        f"({', '.join(f'{a} gen {g}' for a, g in sorted(apps.items())) or 'none'}), {len(manifest['nodes'])} "
        f"node(s), {len(manifest['artifacts'])} artifact digest(s), snapshot {manifest['snapshot']['size']} bytes "
        f"({time.monotonic() - started:.1f}s)"
    )
    print("# artifacts are not in the file: keep the control plane's blob directory, or restore from agents' caches")
    return 0


def restore(args: argparse.Namespace) -> int:
    """Check everything first, then write: the etcd data directory, then the artifacts into the blob directory."""
    target: Path = args.etcd_data_dir
    if target.exists() and any(target.iterdir()):
        raise InvalidArgument(
            f"{target} is not empty: a restore makes a fresh etcd data directory and overwrites nothing; "
            "give a new --etcd-data-dir (or remove that one first)",
            field="etcd-data-dir",
        )
    with tempfile.TemporaryDirectory() as tmp:
        manifest, snapshot = backup_archive.read(args.file, Path(tmp))
        etcdutl = str(etcd_binary().with_name("etcdutl"))
        status = subprocess.run(
            [etcdutl, "snapshot", "status", str(snapshot), "-w", "json"], capture_output=True, text=True, timeout=120
        )
        if status.returncode != 0:
            raise InvalidArgument(f"{args.file}: etcd cannot read its snapshot: {status.stderr.strip()}", field="file")
        blobs = BlobStore(args.blob_dir)
        needed = {d: int(a["size"]) for d, a in manifest["artifacts"].items() if a["used_by"] and not blobs.exists(d)}
        found = backup_archive.find_blobs(needed, list(args.blobs_from))
        missing = sorted(set(needed) - set(found))
        if missing and not args.allow_missing_artifacts:
            lines = [f"  {d} ({', '.join(manifest['artifacts'][d]['used_by'])})" for d in missing]
            raise InvalidArgument(
                f"{len(missing)} artifact(s) the applications use are in neither {args.blob_dir} nor "
                f"{', '.join(map(str, args.blobs_from)) or 'any --blobs-from'}; nothing was restored:\n"
                + "\n".join(lines)
                + "\npoint --blobs-from at a directory holding them (an old blob directory, an agent's data "
                "directory), or --allow-missing-artifacts",
                field="blobs-from",
            )
        peer = args.etcd_peer_url
        made = subprocess.run(
            [
                etcdutl,
                "snapshot",
                "restore",
                str(snapshot),
                "--data-dir",
                str(target),
                "--name",
                args.etcd_name,
                "--initial-cluster",
                f"{args.etcd_name}={peer}",
                "--initial-advertise-peer-urls",
                peer,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if made.returncode != 0:
            raise InvalidArgument(f"etcdutl could not restore the snapshot: {made.stderr.strip()}", field="file")
    for digest in sorted(found):
        stored, _ = blobs.store_file(found[digest])
        if stored != digest:  # the file changed since it was hashed
            raise IntegrityError(f"{found[digest]} changed while it was copied ({stored}, not {digest})")
    apps = manifest["applications"]
    print(
        f"restored etcd revision {manifest['etcd_revision']} into {target}: {len(apps)} application(s) "
        f"({', '.join(f'{a} gen {g}' for a, g in sorted(apps.items())) or 'none'}), {len(manifest['nodes'])} node(s); "
        f"{len(found)} artifact(s) copied into {args.blob_dir}"
        + (f"; MISSING {len(missing)}: {', '.join(missing)}" if missing else "")
    )
    print(
        f"# start etcd on {target} (member {args.etcd_name}), then the control plane on it; agents re-register "
        "on their next heartbeat",
        file=sys.stderr,
    )
    return 0
