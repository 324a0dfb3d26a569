"""End to end: runtime settings and grants from the manifest reach the guest on a real agent."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from cli.client import ControlClient
from neon.errors import DeadlineExceeded
from tests.support.helpers import Cluster, assert_eventually, wait_running, write_pair

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


def _deploy_probe(cluster: Cluster, probe_wasm: Path, tmp_path: Path) -> ControlClient:
    client = cluster.client
    assert client is not None
    path = tmp_path / "probe.yaml"
    path.write_text(MANIFEST.format(artifact=probe_wasm))
    client.apply_file(path)
    wait_running(client, "probe")
    return client


def test_limits_grants_and_modes_apply_on_the_agent(cluster: Cluster, probe_wasm: Path, tmp_path: Path) -> None:
    client = _deploy_probe(cluster, probe_wasm, tmp_path)
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
    assert client.invoke("probe", "probe", "spin", [10])[0] == "45"  # the agent keeps serving (a u64: a JSON string)

    # While one instance computes until its deadline, the other serves and the agent answers.
    errors: list[BaseException] = []

    def burn() -> None:
        try:
            client.invoke("probe", "probe", "spin", [10**15])
        except DeadlineExceeded:
            pass
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    burner = threading.Thread(target=burn)
    burner.start()
    time.sleep(0.05)
    assert client.invoke("probe", "probe", "get-env", ["GREETING"]) == ("hello", "edge-1")
    assert {n.name for n in client.list_nodes()} == {"edge-1", "cloud-1"}
    burner.join()
    assert errors == []


def test_a_restarted_agent_starts_from_the_compiled_cache(cluster: Cluster, probe_wasm: Path, tmp_path: Path) -> None:
    client = _deploy_probe(cluster, probe_wasm, tmp_path)
    old = cluster.agents["edge-1"]
    assert old.stop() == 0
    restarted = cluster.add_agent("edge-1", {"tier": "edge"})
    wait_running(client, "probe", timeout=60)
    assert client.invoke("probe", "probe", "get-env", ["GREETING"]) == ("hello", "edge-1")
    log = restarted.log_path.read_text()
    started = log.rindex("agent started")  # the log file is shared with the first run
    assert '"compiled artifact"' not in log[started:]


RESOURCE_IMPORTER = """
(component
  (import "test:res/files" (instance
    (export "handle" (type $h (sub resource)))
    (export "open" (func (param "path" string) (result (own $h))))
  ))
)
"""

SPLIT_RESOURCE = """
apiVersion: neon-grid.dev/v1
kind: Application
metadata: {{name: res}}
spec:
  components:
    - {{name: files, artifact: {exporter}, placement: {{nodeSelector: {{tier: edge}}}}}}
    - {{name: user, artifact: {importer}, placement: {{nodeSelector: {{tier: cloud}}}}}}
  links:
    - {{importer: user, import: "test:res/files", exporter: files}}
"""


def test_a_resource_link_is_refused_at_apply_with_the_function_named(
    cluster: Cluster, probe_wasm: Path, tmp_path: Path
) -> None:
    import wasmtime

    from neon.errors import InvalidManifest

    client = cluster.client
    assert client is not None
    importer = tmp_path / "importer.wasm"
    importer.write_bytes(wasmtime.wat2wasm(RESOURCE_IMPORTER))
    path = tmp_path / "res.yaml"
    path.write_text(SPLIT_RESOURCE.format(exporter=probe_wasm, importer=importer))
    with pytest.raises(InvalidManifest) as err:
        client.apply_file(path)
    assert err.value.field == "spec.links[0].import"
    assert err.value.message.startswith(
        "spec.links[0]: test:res/files#open uses a resource (func(path: string) -> own<"
    )
    assert client.list_apps() == []


def test_a_tiered_agent_serves_on_winchs_code_then_moves_to_cranelifts_without_a_failed_call(
    tmp_path: Path, log_analyzer: dict[str, Path]
) -> None:
    """``--compiler tiered``: the first start compiles with Winch; Cranelift compiles in the background and the
    component moves to its code while calls keep coming; restarted, the agent starts on Cranelift's code."""
    cluster = Cluster(tmp_path, tmp_path / "compiled", agents={})  # a cache of its own: nothing compiled yet
    cluster.start()
    try:
        edge = cluster.add_agent("edge-1", {"tier": "edge"}, extra=["--compiler", "tiered"])
        cluster.add_agent("cloud-1", {"tier": "cloud"}, extra=["--compiler", "tiered"])
        client = cluster.client
        assert client is not None
        client.apply_file(write_pair(tmp_path, log_analyzer["parser"], log_analyzer["processor"]))
        wait_running(client, "pair", timeout=120)
        line = "2026-11-24T08:00:02Z ERROR auth: login failed for user bob"
        failures: list[str] = []
        calls = [0]
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                try:
                    assert client.invoke("pair", "processor", "process-batch", [[line] * 5])[0]
                    calls[0] += 1
                except Exception as err:  # noqa: BLE001 - counted: the test fails on any
                    failures.append(f"{type(err).__name__}: {err}")

        caller = threading.Thread(target=load, daemon=True)
        caller.start()
        moved = cluster.agents
        try:
            # Cranelift compiles each 18 MB guest in about 5 s here; both agents move within a few times that.
            assert_eventually(
                lambda: all("moved to optimized code" in a.log_path.read_text() for a in moved.values()), timeout=180
            )
        finally:
            stop.set()
            caller.join(30)
        assert not failures and calls[0] > 0, (failures[:3], calls[0])
        assert (tmp_path / "compiled" / "wasmtime-51.0.0-winch").is_dir()
        assert edge.stop() == 0
        restarted = cluster.add_agent("edge-1", {"tier": "edge"}, extra=["--compiler", "tiered"])
        wait_running(client, "pair", timeout=60)
        assert client.invoke("pair", "processor", "process-batch", [[line]])[0]
        log = restarted.log_path.read_text()
        after = log[log.rindex("agent started") :]  # the log file is shared with the first run
        assert '"compiled artifact"' not in after and "moved to optimized code" not in after, after[-2000:]
    finally:
        cluster.stop()
