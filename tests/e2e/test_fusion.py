"""End to end: a group wasm-tools compose refuses on its own is fused, runs, and splits alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.helpers import Cluster, assert_eventually, wait_running

pytestmark = pytest.mark.e2e

LEDGER = "neon-test:wallet/ledger@0.1.0"
TELLER = "neon-test:wallet/teller@0.1.0"


def _manifest(tmp_path: Path, guests: dict[str, Path], teller_tier: str) -> Path:
    path = tmp_path / f"wallet-{teller_tier}.yaml"
    path.write_text(
        f"""
apiVersion: neon-grid.dev/v1
kind: Application
metadata:
  name: wallet
spec:
  components:
    - name: ledger
      artifact: {guests["ledger"]}
      placement:
        nodeSelector:
          tier: edge
    - name: teller
      artifact: {guests["teller"]}
      placement:
        nodeSelector:
          tier: {teller_tier}
  links:
    - importer: teller
      import: {LEDGER}
      exporter: ledger
"""
    )
    return path


def test_export_using_inside_types_is_fused_and_gives_the_split_result(
    cluster: Cluster, wallet_guests: dict[str, Path], tmp_path: Path
) -> None:
    client = cluster.client
    assert client is not None
    client.apply_file(_manifest(tmp_path, wallet_guests, "edge"))
    wait_running(client, "wallet")

    app = client.get_app("wallet")
    (group,) = app.fusion
    assert (group.node, list(group.members), group.root, group.reason) == ("edge-1", ["ledger", "teller"], "teller", "")
    assert group.artifact.startswith("sha256:")
    assert group.note == f"also exports {LEDGER} (its types are used by {TELLER})"
    assert [(r.node, r.mode) for r in app.links[0].routes] == [("edge-1", "fused")]
    fused = [e.message for e in client.events(app="wallet") if e.kind == "Fused"]
    assert fused and group.note in fused[-1]

    savings = {"savings": {"cents": 100}}
    assert client.invoke("wallet", "teller", "pay-all", [savings, [1, 2, 3]]) == (
        {"savings": {"cents": "106"}},  # u64: a JSON string
        "edge-1",
    )
    assert client.invoke("wallet", "teller", "pay-all", [{"checking": {"cents": 0}}, []]) == (
        {"checking": {"cents": "0"}},
        "edge-1",
    )

    # Split: the teller moves to the cloud, the wallet crosses nodes through the forwarder; same answers.
    client.apply_file(_manifest(tmp_path, wallet_guests, "cloud"))

    def split() -> None:
        now = client.get_app("wallet")
        assert now.generation == 2 and now.phase == "Running", f"{now.phase}: {now.reason}"
        assert [(r.node, r.mode) for r in now.links[0].routes] == [("cloud-1", "remote")]
        assert not now.fusion

    assert_eventually(split, timeout=60)
    assert client.invoke("wallet", "teller", "pay-all", [savings, [1, 2, 3]]) == (
        {"savings": {"cents": "106"}},  # u64: a JSON string
        "cloud-1",
    )
