"""End to end: runtime settings and grants from the manifest reach the guest on a real agent."""

from __future__ import annotations

from pathlib import Path

import pytest

from neon.errors import DeadlineExceeded
from tests.helpers import Cluster, assert_eventually

pytestmark = pytest.mark.e2e

MANIFEST = """
apiVersion: neon-grid.dev/v1
kind: Application
metadata: {{name: probe}}
spec:
  components:
    - name: probe
      artifact: {artifact}
      placement: {{nodeSelector: {{tier: edge}}}}
      runtime: {{mode: per-call, instances: 2, timeout: 300ms, memory: 64Mi}}
      grants:
        env: {{GREETING: hello}}
        volumes: [{{name: spool, path: /spool}}]
"""


def test_limits_grants_and_modes_apply_on_the_agent(cluster: Cluster, probe_wasm: Path, tmp_path: Path) -> None:
    client = cluster.client
    assert client is not None
    path = tmp_path / "probe.yaml"
    path.write_text(MANIFEST.format(artifact=probe_wasm))
    client.apply_file(path)

    def running() -> None:
        app = client.get_app("probe")
        assert app.phase == "Running", f"{app.phase}: {app.reason}"

    assert_eventually(running, timeout=90)
    assert client.invoke("probe", "probe", "get-env", ["GREETING"]) == ("hello", "edge-1")
    assert client.invoke("probe", "probe", "get-env", ["HOME"])[0] is None
    assert client.invoke("probe", "probe", "write-file", ["/spool/x", "data"])[0] == "ok"
    assert client.invoke("probe", "probe", "read-file", ["/spool/x"])[0] == {"ok": "data"}
    denied, _ = client.invoke("probe", "probe", "read-file", ["/etc/passwd"])
    assert "No such file or directory" in denied["err"]
    assert [client.invoke("probe", "probe", "count", [])[0] for _ in range(3)] == [1, 1, 1]  # per-call

    with pytest.raises(DeadlineExceeded) as err:
        client.invoke("probe", "probe", "spin", [10**15])
    assert err.value.message.startswith("probe/probe spin ran past its 0.3s deadline")
    assert client.invoke("probe", "probe", "spin", [10])[0] == 45  # the agent keeps serving
