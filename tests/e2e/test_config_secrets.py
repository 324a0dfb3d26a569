"""Configuration and secrets end to end, agents as separate processes: Python and JavaScript guests read their
config through wasi:config/store; a changed value is a new generation swapped in with no failed call; a secret
replaced is re-delivered; a key asked for and not given is counted and reported; a secret in use cannot be deleted;
and a secret's value appears nowhere it must not (desired.json, the agents' and the control plane's logs, events,
metrics, status, the dashboard, etcd)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from cli.client import ControlClient
from neon.errors import InvalidManifest
from neon.security.pki import AGENT_NAME, CONTROLPLANE_NAME
from tests.support.helpers import Cluster, assert_eventually, https_get, neon_cli, wait_running

FIRST, SECOND = "first-s3cr3t-0d5b1c", "second-s3cr3t-7f3e2a"


def _manifest(directory: Path, guests: dict[str, Path], retention: str) -> Path:
    path = directory / "settings.yaml"
    path.write_text(
        f"""\
apiVersion: neon-grid.dev/v1
kind: Application
metadata:
  name: settings
spec:
  components:
    - name: py
      artifact: {guests["python"]}
      placement: {{nodeSelector: {{tier: edge}}}}
      config:
        retention: "{retention}"
        token: {{valueFrom: {{secret: creds, key: token}}}}
    - name: js
      artifact: {guests["js"]}
      placement: {{nodeSelector: {{tier: cloud}}}}
      config: {{mode: fast}}
"""
    )
    return path


def _get(client: ControlClient, component: str, key: str) -> object:
    return client.invoke("settings", component, "get", [key])[0]


def test_config_and_secrets_reach_the_guests_roll_out_and_never_leak(
    cluster: Cluster, tmp_path: Path, settings_guests: dict[str, Path], capfd: pytest.CaptureFixture[str]
) -> None:
    client = cluster.client
    assert client is not None
    manifest = _manifest(tmp_path, settings_guests, "500")

    # A manifest naming a secret that does not exist is refused, saying how to make it.
    with pytest.raises(InvalidManifest, match="neon secret create creds"):
        client.apply_file(manifest)
    made = neon_cli(cluster, "secret", "create", "creds", "--from-literal", f"token={FIRST}")
    assert made.returncode == 0 and "secret/creds created: keys token" in made.stdout, made.stderr
    again = neon_cli(cluster, "secret", "create", "creds", "--from-literal", "token=x")
    assert again.returncode == 1 and "--replace" in again.stderr

    client.apply_file(manifest)
    wait_running(client, "settings")
    assert _get(client, "py", "token") == FIRST
    assert _get(client, "py", "retention") == "500"
    assert client.invoke("settings", "js", "get-all", [])[0] == [["mode", "fast"]]

    # A key asked for and not given: none, counted, and reported as an event.
    assert _get(client, "py", "colour") is None
    assert _get(client, "js", "colour") is None

    def reported() -> None:
        kinds = {(e.kind, e.component) for e in client.events(history=200)}
        assert {("ConfigMissing", "py"), ("ConfigMissing", "js")} <= kinds, kinds

    assert_eventually(reported, timeout=30)

    # A changed value is a new generation, swapped in while calls keep coming: none fails.
    failures: list[str] = []
    seen: list[object] = []
    stop = threading.Event()

    def call() -> None:
        with ControlClient(cluster.control, cluster.credentials()) as caller:
            while not stop.is_set():
                try:
                    seen.append(_get(caller, "py", "retention"))
                except Exception as err:  # noqa: BLE001 - every failure is the test's finding
                    failures.append(str(err))

    caller = threading.Thread(target=call)
    caller.start()
    try:
        assert client.apply_file(_manifest(tmp_path, settings_guests, "900")).generation == 2
        assert_eventually(lambda: _check(seen and seen[-1] == "900", f"still {seen[-1:]}"), timeout=120)
    finally:
        stop.set()
        caller.join(timeout=60)
    assert not failures, f"calls failed during the config roll: {failures[:3]}"
    assert set(seen) == {"500", "900"}

    # A replaced secret is re-delivered to the component that uses it.
    replaced = neon_cli(cluster, "secret", "create", "creds", "--from-literal", f"token={SECOND}", "--replace")
    assert replaced.returncode == 0 and "replaced (version 2)" in replaced.stdout, replaced.stderr
    assert_eventually(lambda: _check(_get(client, "py", "token") == SECOND, "not re-delivered yet"), timeout=120)

    # A new data key: everything is sealed again, and still served and readable.
    rotated = neon_cli(cluster, "secret", "rotate-key")
    assert rotated.returncode == 0 and "1 secret(s) encrypted again" in rotated.stdout, rotated.stderr
    listed = neon_cli(cluster, "secret", "get")
    assert listed.returncode == 0 and "creds" in listed.stdout and "settings/py" in listed.stdout, listed.stderr
    assert FIRST not in listed.stdout and SECOND not in listed.stdout
    refused = neon_cli(cluster, "secret", "delete", "creds")
    assert refused.returncode == 1 and "used by settings/py" in refused.stderr, refused.stderr
    assert _get(client, "py", "token") == SECOND

    _assert_nowhere(cluster, capfd, (FIRST, SECOND))

    client.delete_app("settings")
    assert_eventually(lambda: _check(not _running_anywhere(cluster), "the app still runs"), timeout=60)
    deleted = neon_cli(cluster, "secret", "delete", "creds")
    assert deleted.returncode == 0, deleted.stderr
    assert "creds" not in neon_cli(cluster, "secret", "get").stdout


def _check(ok: object, why: str) -> None:
    assert ok, why


def _running_anywhere(cluster: Cluster) -> bool:
    return any(
        doc["app"] == "settings"
        for docs in cluster.store(lambda s: s.read_world()).assigned.values()
        for doc in docs.values()
    )


def _assert_nowhere(cluster: Cluster, capfd: pytest.CaptureFixture[str], values: tuple[str, ...]) -> None:
    """No secret value in any place a user or an operator reads, nor in what etcd stores."""
    client = cluster.client
    assert client is not None and cluster.cp is not None
    viewer = cluster.credentials("viewer")
    places: dict[str, bytes] = {}
    for name, child in cluster.agents.items():
        places[f"{name}'s log"] = child.log_path.read_bytes()
        data = cluster.workdir / "agents" / name
        places[f"{name}'s desired.json"] = (data / "desired.json").read_bytes()
        for path in data.rglob("*"):
            if path.is_file() and path.suffix not in (".wasm",):
                places[f"{path}"] = path.read_bytes()
        node = next(n for n in client.list_nodes() if n.name == name)
        places[f"{name}'s metrics"] = https_get(node.metrics_address, "/metrics", viewer, AGENT_NAME)[1].encode()
    places["events"] = b"".join(e.SerializeToString() for e in client.events(history=1000))
    places["status"] = client.get_app("settings").SerializeToString() + b"".join(
        a.SerializeToString() for a in client.list_apps()
    )
    places["metrics API"] = client.metrics().SerializeToString()
    for path in ("/", "/api/v1/overview", "/metrics"):
        places[f"control plane {path}"] = https_get(cluster.cp.http_address, path, viewer, CONTROLPLANE_NAME)[
            1
        ].encode()
    places["etcd"] = cluster.store(_everything)
    places["control plane's log"] = capfd.readouterr().out.encode()
    assert all(places.values()), [name for name, body in places.items() if not body]
    leaks = [name for name, body in places.items() for value in values if value.encode() in body]
    assert not leaks, f"a secret's value appears in: {leaks}"


async def _everything(store: object) -> bytes:
    got = await store.client.get_prefix(b"/")  # type: ignore[attr-defined]
    return b"".join(kv.key + kv.value for kv in got)


def test_an_agent_restarted_offline_runs_only_what_persists_its_secrets(
    cluster: Cluster, tmp_path: Path, settings_guests: dict[str, Path]
) -> None:
    import grpc

    from cli.devcluster.etcd_launcher import stable_port
    from neon._proto import calls_pb2, dataplane_pb2_grpc

    client = cluster.client
    assert client is not None
    listen = ["--listen", f"127.0.0.1:{stable_port()}"]  # peers find a restarted agent where it was
    assert cluster.agents.pop("edge-1").stop() == 0
    cluster.add_agent("edge-1", {"tier": "edge"}, extra=listen)
    assert client.put_secret("creds", {"token": FIRST}).version == 1
    path = tmp_path / "offline.yaml"
    token = "{valueFrom: {secret: creds, key: token}}"
    path.write_text(
        f"""\
apiVersion: neon-grid.dev/v1
kind: Application
metadata: {{name: settings}}
spec:
  components:
    - {{name: kept, artifact: {settings_guests["python"]}, placement: {{nodeSelector: {{tier: edge}}}},
       config: {{token: {token}}}, secrets: {{persist: true}}}}
    - {{name: waits, artifact: {settings_guests["python"]}, placement: {{nodeSelector: {{tier: edge}}}},
       config: {{token: {token}}}}}
"""
    )
    client.apply_file(path)
    wait_running(client, "settings")
    assert _get(client, "kept", "token") == FIRST and _get(client, "waits", "token") == FIRST

    port = cluster.stop_controlplane()
    cluster.agents["edge-1"].kill()
    edge = cluster.add_agent("edge-1", {"tier": "edge"}, wait=False, extra=listen)
    edge.wait_ready()

    def invoke(component: str) -> str:
        request = calls_pb2.InvokeRequest(app="settings", component=component, function="get", args_json='["token"]')
        with cluster.channel(edge.address) as channel:
            try:
                return str(dataplane_pb2_grpc.DataPlaneStub(channel).Invoke(request, timeout=10).result_json)
            except grpc.RpcError as err:
                return f"{err.code().name}: {err.details()}"  # type: ignore[attr-defined]

    # The persisted one runs with the values sealed on the node; the other waits, and says for what.
    assert_eventually(lambda: _check(invoke("kept") == f'"{FIRST}"', invoke("kept")), timeout=60, interval=0.2)
    assert invoke("waits").startswith("UNAVAILABLE"), invoke("waits")
    assert_eventually(
        lambda: _check("waiting for secrets creds" in edge.log_path.read_text(), "no word of what waits"), timeout=30
    )
    sealed = b"".join(p.read_bytes() for p in (cluster.workdir / "agents" / "edge-1" / "secrets").iterdir())
    assert sealed and FIRST.encode() not in sealed

    cluster.start_controlplane(port)  # back: the waiting one gets its secrets and runs
    assert_eventually(lambda: _check(invoke("waits") == f'"{FIRST}"', invoke("waits")), timeout=90, interval=0.3)
    wait_running(client, "settings")
