"""Backup and restore: the log analyzer deployed, backed up with `neon backup create`; etcd and the control plane
destroyed (its blob directory too); `neon backup restore` into a fresh etcd and blob directory, the artifacts
found again by sha256; the same applications, generations and placements come back, the agents reattach and
serve. Hostile backup files (truncated, foreign, altered, a manifest of the wrong shape) and a non-empty target
are refused, nothing written."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cli.devcluster.guests import EXAMPLES
from neon.errors import NeonGridError
from tests.support.helpers import Cluster, assert_eventually, neon_cli, pair_manifest, wait_running

pytestmark = pytest.mark.e2e
SAMPLE = (EXAMPLES / "log-analyzer" / "sample.log").read_text()
PAIR = ("name: log-analyzer", "name: pair")


def _state(cluster: Cluster) -> dict[str, object]:
    """Every application's generation and where each of its components runs."""
    assert cluster.client is not None
    return {
        app.name: (app.generation, {c.name: sorted(r.node for r in c.replicas) for c in app.components})
        for app in cluster.client.list_apps()
    }


def _restore(cluster: Cluster, backup: Path, target: Path, *extra: str) -> object:
    return neon_cli(
        cluster,
        "backup",
        "restore",
        str(backup),
        "--etcd-data-dir",
        str(target),
        "--etcd-peer-url",
        cluster.etcd.peer_url,
        "--blob-dir",
        str(cluster.workdir / "cp" / "blobs"),
        *extra,
    )


def test_a_backup_restores_into_a_fresh_etcd_and_the_agents_reattach(
    cluster: Cluster, tmp_path: Path, fault_report: list[str]
) -> None:
    client = cluster.client
    assert client is not None
    client.apply_file(EXAMPLES / "log-analyzer" / "app.yaml")
    client.apply_file(pair_manifest(tmp_path, PAIR))
    client.apply_file(pair_manifest(tmp_path, PAIR, ("tier: cloud", "tier: edge")))  # generation 2: both on the edge
    wait_running(client, "log-analyzer")
    wait_running(client, "pair")
    before = _state(cluster)
    assert before["pair"] == (2, {"parser": ["edge-1"], "processor": ["edge-1"]}), before
    assert client.invoke("log-analyzer", "ingestor", "ingest", [SAMPLE])[0] == 5
    assert client.put_secret("archive-creds", {"token": "backed-up-s3cr3t"}).version == 1

    backup = tmp_path / "cluster.backup"
    made = neon_cli(cluster, "backup", "create", str(backup))
    assert made.returncode == 0, made.stderr
    with tarfile.open(backup) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert manifest["applications"] == {name: gen for name, (gen, _) in before.items()}
    assert sorted(manifest["nodes"]) == ["cloud-1", "edge-1"]
    assert manifest["secrets"] == {"archive-creds": 1}  # names and versions; the values stay sealed
    assert "BackedUp" in [e.kind for e in client.events(history=20)]

    # Hostile files and targets are refused before anything is written.
    target = cluster.etcd.data_dir
    refusals = _hostile(cluster, backup, tmp_path)
    assert all(r.returncode != 0 for r in refusals.values()), {k: r.stdout for k, r in refusals.items()}
    assert "is not empty" in refusals["a non-empty target"].stderr
    assert "truncated" in refusals["a truncated file"].stderr
    assert "not a Neon Grid backup" in refusals["a foreign file"].stderr
    assert "truncated or altered" in refusals["an altered snapshot"].stderr
    assert "manifest.json is damaged: artifacts" in refusals["a manifest of the wrong shape"].stderr
    assert not (tmp_path / "never-written").exists(), "a refused restore wrote nothing"
    assert target.exists(), "the live etcd's data was left alone"

    # Disaster: the control plane, etcd's data and the control plane's blobs are gone.
    port = cluster.stop_controlplane()
    cluster.etcd.stop()
    shutil.rmtree(target)
    lost = tmp_path / "offsite-blobs"
    shutil.move(cluster.workdir / "cp" / "blobs", lost)  # what an operator copied elsewhere
    missing = _restore(cluster, backup, tmp_path / "fresh-etcd")
    assert missing.returncode != 0 and "nothing was restored" in missing.stderr, missing.stderr  # type: ignore[attr-defined]
    assert not (tmp_path / "fresh-etcd").exists()

    started = time.monotonic()
    restored = _restore(
        cluster, backup, target, "--blobs-from", str(lost), "--blobs-from", str(cluster.workdir / "agents")
    )
    assert restored.returncode == 0, restored.stderr  # type: ignore[attr-defined]
    cluster.etcd.start()
    cluster.start_controlplane(port)

    def back() -> None:
        assert _state(cluster) == before
        nodes = {n.name: n.state for n in client.list_nodes()}
        assert nodes == {"edge-1": "Ready", "cloud-1": "Ready"}, nodes
        assert all(a.phase == "Running" for a in client.list_apps()), [(a.name, a.phase) for a in client.list_apps()]

    assert_eventually(back, timeout=60)

    # The archiver's counts are in a cluster bucket: read through its agent once that agent is back with the
    # control plane (its restored lease makes it look Ready before that).
    def counts_readable() -> None:
        try:
            client.invoke("log-analyzer", "archiver", "counts", [])
        except NeonGridError as err:
            raise AssertionError(f"the archiver cannot read its bucket yet: {err.message}") from None

    assert_eventually(counts_readable, timeout=60)
    # The restored secrets open with the same PKI (the key that seals them is derived from the CA's).
    restored_secret = cluster.store(lambda s: s.secrets.values("archive-creds"))
    assert restored_secret == ({"token": "backed-up-s3cr3t"}, 1)
    assert client.invoke("log-analyzer", "ingestor", "ingest", [SAMPLE])[0] == 5
    counts, _ = client.invoke("log-analyzer", "archiver", "counts", [])
    assert counts["info"] == "4", counts  # the archiver's volume kept the first ingest
    for digest, info in manifest["artifacts"].items():
        if info["used_by"]:
            assert (cluster.workdir / "cp" / "blobs" / "sha256" / digest.split(":")[1]).is_file(), info
    fault_report.append(
        f"backup/restore: {len(before)} applications, {len(manifest['artifacts'])} artifact digests; etcd and "
        f"the control plane's blobs destroyed, restored and serving again {time.monotonic() - started:.1f}s "
        f"later; {len(refusals)} hostile backups and targets refused, nothing overwritten"
    )


def _hostile(cluster: Cluster, backup: Path, tmp_path: Path) -> dict[str, object]:
    data = backup.read_bytes()
    truncated = tmp_path / "truncated.backup"
    truncated.write_bytes(data[: len(data) // 2])
    foreign = tmp_path / "foreign.backup"
    with tarfile.open(foreign, "w") as tar:
        tar.add(EXAMPLES / "log-analyzer" / "sample.log", arcname="sample.log")
    altered = _altered(
        backup, tmp_path / "altered.backup", "etcd.db", lambda b: b[:100] + bytes([b[100] ^ 0xFF]) + b[101:]
    )
    lying = _altered(
        backup,
        tmp_path / "lying.backup",
        "manifest.json",
        lambda b: json.dumps(json.loads(b) | {"artifacts": "all of them"}).encode(),
    )
    fresh = tmp_path / "never-written"
    return {
        "a non-empty target": _restore(cluster, backup, cluster.etcd.data_dir),
        "a truncated file": _restore(cluster, truncated, fresh),
        "a foreign file": _restore(cluster, foreign, fresh),
        "an altered snapshot": _restore(cluster, altered, fresh),
        "a manifest of the wrong shape": _restore(cluster, lying, fresh),
    }


def _altered(backup: Path, out: Path, name: str, change: Callable[[bytes], bytes]) -> Path:
    """A copy of ``backup`` with member ``name``'s bytes changed."""
    with tarfile.open(backup) as src, tarfile.open(out, "w") as dst:
        for member in src.getmembers():
            body = src.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == name:
                body = change(body)
            member.size = len(body)
            dst.addfile(member, io.BytesIO(body))
    return out
