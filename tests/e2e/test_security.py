"""End to end, zero trust on a real cluster: mutual TLS on every hop, roles checked on every RPC,
agents admitted by one-time tokens, signed components, and capabilities absent unless granted."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
import wasmtime

from cli.client import ControlClient
from neon._proto import calls_pb2, control_pb2, control_pb2_grpc, dataplane_pb2, dataplane_pb2_grpc
from neon.errors import CapabilityDenied, InvalidArgument, NeonGridError, PermissionDenied, Untrusted
from neon.rpc.servers import CHANNEL_OPTIONS
from neon.security import pki, signing
from neon.security.tls import Credentials, sync_channel
from tests.support.helpers import Cluster, assert_eventually, wait_running, write_pair

pytestmark = pytest.mark.e2e

READS = {
    "GetApplication",
    "ListApplications",
    "ListNodes",
    "ListControlPlanes",
    "WatchEvents",
    "ExplainPlacement",
    "GetMetrics",
    "Logs",
    "DescribeComponent",
}


def _code(call: object) -> grpc.StatusCode:
    try:
        call()  # type: ignore[operator]
    except grpc.RpcError as err:
        return err.code()  # type: ignore[attr-defined, no-any-return]
    return grpc.StatusCode.OK


def _raw(channel: grpc.Channel, method: str, streaming: tuple[bool, bool]) -> object:
    """Call ``method`` with an empty request, whatever its shape."""
    ident = lambda b: b  # noqa: E731 - raw bytes both ways
    client_stream, server_stream = streaming
    if client_stream:
        return lambda: channel.stream_unary(method, ident, ident)(iter([b""]), timeout=5)
    if server_stream:
        return lambda: list(channel.unary_stream(method, ident, ident)(b"", timeout=5))
    return lambda: channel.unary_unary(method, ident, ident)(b"", timeout=5)


def test_every_hop_is_mutual_tls_and_every_rpc_checks_the_callers_role(
    cluster: Cluster, tmp_path: Path, fault_report: list[str]
) -> None:
    control = cluster.control
    service = control_pb2.DESCRIPTOR.services_by_name["Control"]
    methods = {m.name: (m.client_streaming, m.server_streaming) for m in service.methods}
    viewer = cluster.channel(control, cluster.credentials("viewer"))
    for name, shape in sorted(methods.items()):
        code = _code(_raw(viewer, f"/neon.v1.Control/{name}", shape))
        if name in READS:
            assert code not in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED), (name, code)
        else:
            assert code == grpc.StatusCode.PERMISSION_DENIED, (name, code)
    as_agent = cluster.channel(control, cluster.identity("edge-1", pki.AGENT))
    assert _code(_raw(as_agent, "/neon.v1.Control/ListNodes", (False, False))) == grpc.StatusCode.PERMISSION_DENIED

    with ControlClient(control, cluster.credentials("viewer")) as client:
        assert {n.name for n in client.list_nodes()} == {"edge-1", "cloud-1"}
        with pytest.raises(PermissionDenied, match=r"viewer \(viewer\) may not call /neon.v1.Control/DeleteNode"):
            client.delete_node("edge-1")

    # No certificate, or one from another CA: the handshake fails before any RPC.
    with grpc.insecure_channel(control, options=CHANNEL_OPTIONS) as plain:
        assert _code(_raw(plain, "/neon.v1.Control/ListNodes", (False, False))) == grpc.StatusCode.UNAVAILABLE
    stranger_ca = pki.create_ca("another CA")
    stranger = pki.issue(stranger_ca, "admin", pki.ADMIN)
    foreign = Credentials(cluster.credentials().ca, stranger.cert, stranger.key)
    with sync_channel(control, foreign, pki.CONTROLPLANE_NAME, CHANNEL_OPTIONS) as channel:
        assert _code(_raw(channel, "/neon.v1.Control/ListNodes", (False, False))) == grpc.StatusCode.UNAVAILABLE
    # The join port serves Join only.
    assert cluster.cp is not None
    anonymous = Credentials(ca=cluster.credentials().ca)
    with sync_channel(cluster.cp.join_address, anonymous, pki.CONTROLPLANE_NAME, CHANNEL_OPTIONS, False) as channel:
        code = _code(_raw(channel, "/neon.v1.Control/ListNodes", (False, False)))
        assert code == grpc.StatusCode.UNAUTHENTICATED

    # Agents' data planes: the control plane may relay invokes, an admin may not call them directly,
    # and plaintext gets nothing.
    edge = cluster.agents["edge-1"].address
    invoke = calls_pb2.InvokeRequest(app="x", component="y", function="z", args_json="[]")
    with cluster.channel(edge, cluster.credentials("admin")) as channel:
        with pytest.raises(grpc.RpcError) as err:
            dataplane_pb2_grpc.DataPlaneStub(channel).Invoke(invoke, timeout=5)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
    with cluster.channel(edge) as channel:  # as the control plane
        with pytest.raises(grpc.RpcError) as err:
            dataplane_pb2_grpc.DataPlaneStub(channel).Invoke(invoke, timeout=5)
        assert "x/y is not running on node edge-1" in err.value.details()  # type: ignore[attr-defined]
    with grpc.insecure_channel(edge) as plain:
        with pytest.raises(grpc.RpcError) as err:
            dataplane_pb2_grpc.DataPlaneStub(plain).Invoke(invoke, timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    writes = len(methods) - len(READS)
    fault_report.append(
        f"zero trust: {len(methods)} Control RPCs called as a viewer ({writes} writes refused, "
        f"{len(READS)} reads served); no certificate, another CA's, the join port and a plaintext agent call "
        "all refused"
    )


def _neon(cluster: Cluster, *args: str, user: str = "admin") -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "neon", "--pki", str(cluster.pki), "--user", user, "--control", cluster.control]
    return subprocess.run([*argv, *args], capture_output=True, text=True, timeout=60)


def _refused_agent(
    cluster: Cluster, name: str, token: str, reason: str, data_dir: Path | None = None, via_file: bool = False
) -> None:
    """An agent that must exit at start, saying ``reason``; the token in the environment, or in a file."""
    assert cluster.cp is not None
    argv = [sys.executable, "-m", "neon", "--control", cluster.control, "agent", "--name", name]
    argv += ["--ca", str(cluster.pki / "ca.pem"), "--join", cluster.cp.join_address]
    argv += ["--data-dir", str(data_dir or cluster.workdir / "refused" / name)]
    env = {"NEON_JOIN_TOKEN": token}
    if via_file:
        token_file = cluster.workdir / "refused" / f"{name}.token"
        token_file.parent.mkdir(parents=True, exist_ok=True)
        token_file.write_text(token + "\n")
        argv += ["--join-token-file", str(token_file)]
        env = {}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 1, done.stderr
    assert reason in done.stderr, done.stderr


def test_agents_join_once_with_a_token_and_speak_only_for_their_own_node(cluster: Cluster, tmp_path: Path) -> None:
    assert _neon(cluster, "token", "create", user="viewer").returncode == 1
    made = _neon(cluster, "token", "create", "--ttl", "10m")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert "# on the node: NEON_JOIN_TOKEN=" in made.stderr

    _refused_agent(cluster, "edge-2", "not-a-token", "the join token is malformed")
    _refused_agent(cluster, "edge-2", "not-a-token", "the join token is malformed", via_file=True)
    _refused_agent(cluster, "edge-2", token[:7] + "x" * 32, "the secret does not match")
    _refused_agent(cluster, "edge-1", token, "node 'edge-1' is already admitted; an agent may not take another")
    cluster.add_agent("edge-2", {"tier": "edge"}, wait=False)  # the helper's own bound token
    joined = cluster.agents["edge-2"]
    # The unbound token admits one new node, once.
    assert cluster.cp is not None
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "neon",
            "--control",
            cluster.control,
            "agent",
            "--name",
            "edge-3",
            "--ca",
            str(cluster.pki / "ca.pem"),
            "--join",
            cluster.cp.join_address,
            "--data-dir",
            str(tmp_path / "edge-3"),
            "--label",
            "tier=edge",
        ],
        env={"NEON_JOIN_TOKEN": token},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert cluster.client is not None
        client = cluster.client

        def both_registered() -> None:
            names = {n.name for n in client.list_nodes()}
            assert {"edge-2", "edge-3"} <= names, names

        assert_eventually(both_registered, timeout=30)
        _refused_agent(cluster, "edge-4", token, f"join token {token[:6]} was already used (by node edge-3)")
        short = client.create_join_token(1.0).token
        time.sleep(2.5)
        _refused_agent(cluster, "edge-5", short, "is unknown or expired")

        # A copy of edge-2's identity cannot serve as another node: the agent refuses it, and so
        # does the control plane when the certificate is presented for another name.
        stolen = tmp_path / "thief"
        shutil.copytree(cluster.workdir / "agents" / "edge-2" / "identity", stolen / "identity")
        _refused_agent(cluster, "cloud-9", "", "node.pem is node 'edge-2'", data_dir=stolen)
        creds = Credentials.from_dir(stolen / "identity", "node")
        with sync_channel(cluster.control, creds, pki.CONTROLPLANE_NAME, CHANNEL_OPTIONS) as channel:
            stub = control_pb2_grpc.AgentControlStub(channel)
            register = control_pb2.RegisterRequest(name="cloud-1", dataplane_address="127.0.0.1:1")
            with pytest.raises(grpc.RpcError) as err:
                stub.Register(register, timeout=5)
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
            assert "node edge-2 may not act as node 'cloud-1'" in err.value.details()  # type: ignore[attr-defined]
        # A certificate the CA signed but no join admitted is refused too (unknown agent).
        ghost = cluster.identity("ghost", pki.AGENT)
        with sync_channel(cluster.control, ghost, pki.CONTROLPLANE_NAME, CHANNEL_OPTIONS) as channel:
            stub = control_pb2_grpc.AgentControlStub(channel)
            register = control_pb2.RegisterRequest(name="ghost", dataplane_address="127.0.0.1:1")
            with pytest.raises(grpc.RpcError) as err:
                stub.Register(register, timeout=5)
            assert "node 'ghost' is not admitted" in err.value.details()  # type: ignore[attr-defined]
        kinds = [e.kind for e in client.events(history=200)]
        # Every refusal is logged; as events, one of a kind per host per 10 s (the join port is open to anyone).
        assert kinds.count("JoinRefused") >= 2 and "RegisterRefused" in kinds and "NodeAdmitted" in kinds
        assert {n.name for n in client.list_nodes()} == {"edge-1", "edge-2", "edge-3", "cloud-1"}
    finally:
        first.terminate()
        first.wait(15)
        joined.stop()


def test_only_signed_components_run(cluster: Cluster, tmp_path: Path, native_guests: dict[str, Path]) -> None:
    parser, processor = tmp_path / "parser.wasm", tmp_path / "processor.wasm"
    shutil.copyfile(native_guests["parser"], parser)
    shutil.copyfile(native_guests["processor"], processor)
    manifest = write_pair(tmp_path, parser, processor)
    unsigned = ControlClient(cluster.control, cluster.credentials())
    with unsigned as client:
        with pytest.raises(Untrusted, match=r"spec.components\[0\] parser: artifact \(sha256:\w+\) is refused: it is"):
            client.apply_file(manifest)
        assert client.list_apps() == []

        # Signed with `neon sign` (the PKI's publisher key, which the control plane trusts): it runs.
        for path in (parser, processor):
            signed = subprocess.run(
                [sys.executable, "-m", "neon", "sign", str(path), "--key", str(cluster.pki / "publisher.key")],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert signed.returncode == 0, signed.stderr
        client.apply_file(manifest)
        wait_running(client, "pair")

        # On the data plane, only the node linked to the parser (cloud-1, the processor's) may call it.
        call = dataplane_pb2.CallRequest(
            app="pair", component="parser", interface="cyber-systems:logs/parser@0.1.0", function="parse"
        )
        call.args.add().string = "2026-11-24T08:00:00Z INFO a: b"
        edge = cluster.agents["edge-1"].address
        with cluster.channel(edge, cluster.identity("cloud-1", pki.AGENT)) as channel:
            assert dataplane_pb2_grpc.DataPlaneStub(channel).Call(call, timeout=10).HasField("result")
        with cluster.channel(edge, cluster.identity("edge-7", pki.AGENT)) as channel:
            with pytest.raises(grpc.RpcError) as err:
                dataplane_pb2_grpc.DataPlaneStub(channel).Call(call, timeout=10)
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
            assert "node edge-7 is not linked to pair/parser on node edge-1" in err.value.details()  # type: ignore[attr-defined]

        # Tampered after signing: the signature names other bytes.
        processor.write_bytes(processor.read_bytes() + b"\0")
        with pytest.raises(InvalidArgument, match="signature 1 is for sha256:.*but the upload is sha256:"):
            client.apply_file(manifest)

        # Signed by a key the cluster does not trust, unless the application names it.
        other = tmp_path / "other.key"
        other_pub = signing.create_key(other)
        lone = tmp_path / "lone.wasm"
        lone.write_bytes(wasmtime.wat2wasm("(component $lone)"))
        signing.sign_file(lone, signing.load_key(other))
        text = LONE.format(artifact=lone)
        with pytest.raises(Untrusted, match=r"lone: artifact \(sha256:\w+\) is refused: it is signed only by keys not"):
            client.apply_file(_write(tmp_path / "lone.yaml", text))
        trusting = text.replace("spec:\n", f"spec:\n  trustedKeys: [{json.dumps(other_pub)}]\n", 1)
        client.apply_file(_write(tmp_path / "trusting.yaml", trusting))
        wait_running(client, "lone")
        # An application's own list replaces the cluster's: the publisher's signature no longer admits the pair.
        shutil.copyfile(native_guests["processor"], processor)  # untampered again
        own_list = manifest.read_text().replace("spec:\n", f"spec:\n  trustedKeys: [{json.dumps(other_pub)}]\n", 1)
        with pytest.raises(Untrusted, match=r"parser: artifact .* signed only by keys not trusted here"):
            client.apply_file(_write(tmp_path / "own-list.yaml", own_list))


LONE = """
apiVersion: neon-grid.dev/v1
kind: Application
metadata: {{name: lone}}
spec:
  components:
    - {{name: lone, artifact: {artifact}}}
"""


def test_a_fused_artifact_carries_the_control_planes_signature_over_its_inputs(cluster: Cluster) -> None:
    from tests.support.helpers import EXAMPLE

    assert cluster.client is not None and cluster.cp is not None
    cluster.client.apply_file(EXAMPLE / "app.yaml")
    wait_running(cluster.client, "log-analyzer")
    app = cluster.client.get_app("log-analyzer")
    fused = [g for g in app.fusion if g.artifact]
    assert fused, app.fusion
    record = cluster.store(lambda s: s.artifacts.get_artifact(fused[0].artifact))
    members = {c.name: c.artifact for c in app.components}
    assert sorted(record["inputs"]) == sorted({members[m] for m in fused[0].members})
    key = (cluster.pki / "signing.pub").read_text().strip()
    sig = signing.Signature.from_json(record["signatures"][0])
    signing.verify_fused("fused", fused[0].artifact, record["inputs"], sig, [key])
    assert sig.key == key


PEEKER = """
(component
  (import "neon-test:secret/vault" (instance $vault (export "get" (func (result u32)))))
  (core module $m
    (import "vault" "get" (func $get (result i32)))
    (func (export "peek") (result i32) call $get))
  (core func $get (canon lower (func $vault "get")))
  (core instance $i (instantiate $m (with "vault" (instance (export "get" (func $get))))))
  (func (export "peek") (result u32) (canon lift (core func $i "peek"))))
"""

CONTRACT = """
apiVersion: neon-grid.dev/v1
kind: Application
metadata: {{name: contract}}
spec:
  components:
    - name: probe
      artifact: {probe}
      placement: {{nodeSelector: {{tier: edge}}}}
      grants: {{env: {{GREETING: hello}}}}
    - name: peeker
      artifact: {peeker}
      placement: {{nodeSelector: {{tier: edge}}}}
      grants: {{interfaces: []}}
"""


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_what_is_not_granted_is_absent_traps_and_is_reported(
    cluster: Cluster, probe_wasm: Path, tmp_path: Path, fault_report: list[str]
) -> None:
    peeker = tmp_path / "peeker.wasm"
    peeker.write_bytes(wasmtime.wat2wasm(PEEKER))
    client = cluster.client
    assert client is not None
    client.apply_file(_write(tmp_path / "contract.yaml", CONTRACT.format(probe=probe_wasm, peeker=peeker)))
    wait_running(client, "contract")
    attempts = [
        ("probe", "read-file", ["/etc/passwd"], "contract/probe used the filesystem (no volume is granted)"),
        ("probe", "connect", ["127.0.0.1", 9], "contract/probe used the network (sockets cannot be granted)"),
        ("peeker", "peek", [], "contract/peeker used neon-test:secret/vault (not in grants.interfaces)"),
    ]
    for component, function, args, message in attempts:
        with pytest.raises(CapabilityDenied) as err:
            client.invoke("contract", component, function, args)
        assert err.value.message.startswith(message), err.value.message
        assert err.value.message.endswith("which it was not granted; the instance was killed")
    assert client.invoke("contract", "probe", "get-env", ["GREETING"]) == ("hello", "edge-1")  # a fresh instance

    def reported() -> None:
        # Denials reported together become one event that counts them: the last per component says how many.
        denied = [e for e in client.events(history=200, app="contract") if e.kind == "CapabilityDenied"]
        last = {e.component: e.message for e in denied}
        assert last.keys() == {"probe", "peeker"} and {e.node for e in denied} == {"edge-1"}, last
        assert last["probe"].endswith("(on edge-1; 2 so far)") and last["peeker"].endswith("(on edge-1; 1 so far)")

    started = time.monotonic()
    assert_eventually(reported, timeout=20)
    fault_report.append(
        f"capability contract: file, socket and unlinked interface each denied, instance killed; "
        f"all 3 denials in CapabilityDenied events within {time.monotonic() - started:.1f}s of the last call"
    )
    reports = {r.component: r for r in cluster.store(lambda s: s.reports.get_status("edge-1")) if r.app == "contract"}
    assert (reports["probe"].denials, reports["peeker"].denials) == (2, 1)

    # A link on an interface the grants leave out is refused at apply, naming both.
    with pytest.raises(NeonGridError, match="grants.interfaces names neon-test:other/x, which peeker does not import"):
        client.apply_file(
            _write(
                tmp_path / "bad.yaml",
                CONTRACT.format(probe=probe_wasm, peeker=peeker).replace(
                    "interfaces: []", "interfaces: [neon-test:other/x]"
                ),
            )
        )


def test_node_certificates_renew_before_they_expire_and_the_old_ones_stop_working(
    tmp_path: Path, compiled_cache: Path, native_guests: dict[str, Path], fault_report: list[str]
) -> None:
    ttl = 12.0
    cluster = Cluster(tmp_path, compiled_cache, node_cert_ttl=ttl)
    try:
        cluster.start()
        client = cluster.client
        assert client is not None
        client.apply_file(write_pair(tmp_path, native_guests["parser"], native_guests["processor"]))
        wait_running(client, "pair")
        first = Credentials.from_dir(cluster.workdir / "agents" / "edge-1" / "identity", "node")
        first_serial = pki.describe(first.cert).serial

        def serials() -> dict[str, str]:
            got = cluster.store(lambda s: s.client.get_prefix(b"/neon/identities/"))
            return {kv.key.decode().rsplit("/", 1)[1]: json.loads(kv.value)["serial"] for kv in got}

        seen: dict[str, set[str]] = {"edge-1": set(), "cloud-1": set()}
        line = "2026-11-24T08:00:00Z INFO a: b"
        started = time.monotonic()
        calls = 0
        replaced = ""  # what registering with the first certificate says once it is replaced, before it expires
        while time.monotonic() - started < 2.5 * ttl:  # past the first certificates' end, more than once
            for node, serial in serials().items():
                seen[node].add(serial)
            if not replaced and len(seen["edge-1"]) > 1 and time.time() < pki.describe(first.cert).not_after - 1:
                replaced = _register_refusal(cluster, first)
            assert client.invoke("pair", "processor", "process-batch", [[line]])[0] == 1  # forwarded edge <- cloud
            calls += 1
            time.sleep(0.25)
        assert all(len(s) >= 3 for s in seen.values()), seen  # renewed at least twice each
        assert serials()["edge-1"] != first_serial

        # Once replaced, the first certificate was refused though still valid; now it has expired as well.
        assert "is the one admitted; this certificate was replaced or revoked" in replaced, replaced
        assert "failed to connect" in _register_refusal(cluster, first)  # the TLS handshake refuses it

        # A restart picks up the renewed certificate from disk.
        assert cluster.agents["edge-1"].stop() == 0
        cluster.add_agent("edge-1", {"tier": "edge"})
        wait_running(client, "pair")

        def serves_again() -> None:  # the restarted agent listens on a new port: the routes follow
            try:
                assert client.invoke("pair", "processor", "process-batch", [[line]])[0] == 1
            except NeonGridError as err:
                raise AssertionError(err.message) from None

        assert_eventually(serves_again, timeout=30, interval=0.2)
        fault_report.append(
            f"certificate renewal (node certificates valid {ttl:.0f}s): edge-1 had {len(seen['edge-1'])} and "
            f"cloud-1 {len(seen['cloud-1'])} certificates in {2.5 * ttl:.0f}s; {calls} forwarded batches, none "
            "failed; the first certificate refused once replaced (before it expired), and after"
        )
    finally:
        cluster.stop()


def _register_refusal(cluster: Cluster, creds: Credentials) -> str:
    """Why registering as edge-1 with ``creds`` is refused."""
    from neon.errors import from_rpc_error

    with sync_channel(cluster.control, creds, pki.CONTROLPLANE_NAME, CHANNEL_OPTIONS) as channel:
        register = control_pb2.RegisterRequest(name="edge-1", dataplane_address="127.0.0.1:1")
        with pytest.raises(grpc.RpcError) as err:
            control_pb2_grpc.AgentControlStub(channel).Register(register, timeout=5)
    return from_rpc_error(err.value).message
