"""Hostile input: random, oversized, deeply nested, badly encoded and malicious input to every parser
and server a user or a peer can reach. Every case ends in a clear error (never UNKNOWN, the status
of an unhandled exception), nothing hangs or crashes, and nothing half-written stays in etcd.
"""

from __future__ import annotations

import collections
import hashlib
import json
from pathlib import Path
from typing import Any

import grpc
import pytest
import wasmtime
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from agent.values.codec import Codec, Unsupported
from agent.values.signature import compile_type
from cli.devcluster.guests import EXAMPLES
from controlplane.state.keys import IDENTITIES
from neon import manifest
from neon._proto import calls_pb2, dataplane_pb2, dataplane_pb2_grpc, values_pb2
from neon.errors import InvalidArgument, InvalidManifest
from neon.rpc.servers import CHANNEL_OPTIONS
from neon.security import pki, signing
from neon.security.tls import Credentials, sync_channel
from tests.support.helpers import Cluster, assert_eventually, wait_running, write_pair
from tests.unit.agent.values.test_codec_properties import types, wasmtime_type

TRIED: collections.Counter[str] = collections.Counter()
SETTINGS = settings(
    deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
)

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


def _example_doc() -> dict[str, Any]:
    doc = manifest.load((EXAMPLES / "log-analyzer" / "app.yaml").read_text(), require_digests=False).to_dict()
    return json.loads(json.dumps(doc))


def _set_at(doc: Any, path: list[int], value: Any) -> Any:
    """Replace the node that ``path`` (indexes into each level's keys or items) leads to."""
    if not path or not isinstance(doc, (dict, list)) or not doc:
        return value
    keys = list(doc) if isinstance(doc, dict) else list(range(len(doc)))
    key = keys[path[0] % len(keys)]
    doc[key] = _set_at(doc[key], path[1:], value)
    return doc


@SETTINGS
@given(json_values)
def test_any_document_is_a_manifest_or_a_field_error(doc: Any) -> None:
    TRIED["manifest documents"] += 1
    try:
        manifest.parse(doc, require_digests=False)
    except InvalidManifest as err:
        assert err.message
        assert isinstance(err.attrs.get("field"), str)


@SETTINGS
@given(st.lists(st.integers(min_value=0, max_value=50), max_size=6), json_values)
def test_any_change_to_a_valid_manifest_is_valid_or_names_its_field(path: list[int], value: Any) -> None:
    TRIED["manifest mutations"] += 1
    try:
        spec = manifest.parse(_set_at(_example_doc(), path, value), require_digests=False)
    except InvalidManifest as err:
        assert err.message
        return
    assert manifest.parse(spec.to_dict(), require_digests=False) == spec  # what is accepted round-trips


@SETTINGS
@given(st.text(alphabet=st.sampled_from(list("{}[]:,-&*!|>'\"\n #ab1\t?%@`")), max_size=200))
def test_any_text_is_a_manifest_or_a_yaml_error(text: str) -> None:
    TRIED["manifest texts"] += 1
    try:
        manifest.load(text)
    except InvalidManifest as err:
        assert err.message


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[" * 50_000 + "]" * 50_000, "nests deeper"),
        ("a: " + "{b: " * 50_000 + "c" + "}" * 50_000, "nests deeper"),
        ("x" * (manifest.MAX_MANIFEST + 1), "the limit is"),
        ("\udcff: 1", "the manifest"),
        (  # an alias bomb: 9 levels of 9 references, 387 million leaves if anything expanded it
            "\n".join(
                ["a: &a [x, x, x, x, x, x, x, x, x]"]
                + [f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi", strict=True)]
                + ["apiVersion: neon-grid.dev/v1", "kind: Application", "metadata: {name: x, labels: *i}", "spec: *i"]
            ),
            "the manifest",
        ),
    ],
    ids=["deep-list", "deep-map", "oversized", "bad-utf8", "alias-bomb"],
)
def test_hostile_manifest_texts_are_refused(text: str, words: str) -> None:
    TRIED["manifest texts"] += 1
    with pytest.raises(InvalidManifest) as err:
        manifest.load(text)
    if words != "the manifest":
        assert words in err.value.message


def _codec(tree: Any) -> Codec:
    try:
        return compile_type(wasmtime_type(tree))
    except Unsupported:
        assume(False)  # refused when a component starts (see test_codec_properties): nothing to decode
        raise


@SETTINGS
@given(st.data(), types)
def test_any_json_for_a_wit_type_is_a_value_or_a_codec_error(data: st.DataObject, tree: Any) -> None:
    codec = _codec(tree)
    for _ in range(5):
        doc = data.draw(json_values)
        TRIED["codec values"] += 1
        try:
            value = codec.from_json(doc)
        except InvalidArgument as err:
            assert err.message
            continue
        once = codec.to_json(value)
        assert codec.to_json(codec.from_json(once)) == once  # what is accepted survives JSON unchanged


@SETTINGS
@given(st.data(), types)
def test_any_protobuf_value_for_a_wit_type_is_a_value_or_a_codec_error(data: st.DataObject, tree: Any) -> None:
    from neon._proto import values_pb2

    codec = _codec(tree)
    for _ in range(5):
        raw = data.draw(st.binary(max_size=64))
        try:
            msg = values_pb2.Value.FromString(raw)
        except Exception:  # noqa: BLE001 - protobuf's own parse error: gRPC refuses it before our code
            continue
        TRIED["codec values"] += 1
        try:
            codec.from_proto(msg)
        except InvalidArgument as err:
            assert err.message


def test_strings_that_are_not_unicode_are_refused() -> None:
    codec = compile_type(wasmtime_type("string"))
    with pytest.raises(InvalidArgument, match="not valid Unicode"):
        codec.from_json("ok \ud800")
    assert codec.from_json("ünïcödé") == "ünïcödé"


# --------------------------------------------------------------- servers --

CLEAR = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.FAILED_PRECONDITION,
}


def _status(call: Any, request: Any, **kwargs: Any) -> grpc.StatusCode:
    try:
        call(request, timeout=30, **kwargs)
    except grpc.RpcError as err:
        code: grpc.StatusCode = err.code()  # type: ignore[attr-defined]
        assert code != grpc.StatusCode.UNKNOWN, f"unhandled error in the server: {err.details()}"  # type: ignore[attr-defined]
        return code
    return grpc.StatusCode.OK


@pytest.fixture
def serving(cluster: Cluster, native_guests: dict[str, Path], tmp_path: Path) -> Any:
    """The C pair split over the cluster; yields the edge agent's data plane: a stub as the control plane
    (which relays invokes), and a stub and a raw channel as the agent that forwards the pair's calls."""
    client = cluster.client
    assert client is not None
    path = write_pair(tmp_path, native_guests["parser"], native_guests["processor"])
    client.apply_file(path)
    wait_running(client, "pair")
    address = cluster.agents["edge-1"].address
    # cloud-1 runs the processor, which imports the parser: the one node whose calls edge-1 accepts.
    with cluster.channel(address) as relay, cluster.channel(address, cluster.identity("cloud-1", pki.AGENT)) as peer:
        yield dataplane_pb2_grpc.DataPlaneStub(relay), dataplane_pb2_grpc.DataPlaneStub(peer), peer


@pytest.mark.e2e
def test_the_data_plane_refuses_hostile_calls_clearly_and_keeps_serving(serving: Any, cluster: Cluster) -> None:
    stub, peer, channel = serving

    def invoke(args_json: str, function: str = "parse", app: str = "pair") -> grpc.StatusCode:
        TRIED["data-plane requests"] += 1
        request = calls_pb2.InvokeRequest(app=app, component="parser", function=function, args_json=args_json)
        return _status(stub.Invoke, request)

    assert invoke(json.dumps(["2026-11-24T08:00:00Z INFO a: b"])) == grpc.StatusCode.OK
    assert invoke("[" * 100_000 + "]" * 100_000) == grpc.StatusCode.INVALID_ARGUMENT  # deep nesting
    assert invoke("{") == grpc.StatusCode.INVALID_ARGUMENT  # not JSON
    assert invoke('{"a": 1}') == grpc.StatusCode.INVALID_ARGUMENT  # not a list of arguments
    assert invoke(json.dumps([["x"] * 1_000_000])) == grpc.StatusCode.INVALID_ARGUMENT  # a huge list for a string
    assert invoke('["\\ud800"]') == grpc.StatusCode.INVALID_ARGUMENT  # a lone surrogate: not Unicode
    assert invoke(json.dumps(["x" * (8 << 20)])) == grpc.StatusCode.OK  # 8 MiB of text is still a line
    assert invoke("[]", function="nope") == grpc.StatusCode.NOT_FOUND
    # Not served here (what a stale route meets): UNAVAILABLE, so idempotent callers try elsewhere.
    assert invoke("[]", app="../../etc") == grpc.StatusCode.UNAVAILABLE
    assert invoke(json.dumps(["x" * (65 << 20)])) == grpc.StatusCode.RESOURCE_EXHAUSTED  # over the 64 MiB limit

    # Raw bytes where a request should be: invalid UTF-8 in a string field, and random bytes.
    raw = channel.unary_unary("/neon.v1.DataPlane/Call", request_serializer=None, response_deserializer=None)
    bad_utf8 = b"\x0a\x04\xff\xfe\xfd\xfc"  # field 1 (app), 4 bytes that are not UTF-8
    TRIED["data-plane requests"] += 1
    assert _status(raw, bad_utf8) == grpc.StatusCode.INVALID_ARGUMENT

    @SETTINGS
    @given(st.binary(max_size=256))
    def random_bytes(body: bytes) -> None:
        TRIED["data-plane requests"] += 1
        _status(raw, body)

    random_bytes()

    # Mostly aimed at the parser cloud-1 may call (so the calls get past the caller check), or anywhere.
    @SETTINGS
    @given(
        st.one_of(st.just("pair"), st.text(max_size=30)),
        st.one_of(st.just("parser"), st.text(max_size=30)),
        st.one_of(st.just("cyber-systems:logs/parser@0.1.0"), st.text(max_size=30)),
        st.one_of(st.just("parse"), st.text(max_size=30)),
        st.lists(st.builds(values_pb2.Value, string=st.text(max_size=40)), max_size=3),
    )
    def random_calls(app: str, component: str, interface: str, function: str, args: list[Any]) -> None:
        TRIED["data-plane requests"] += 1
        request = dataplane_pb2.CallRequest(
            app=app, component=component, interface=interface, function=function, caller="cloud-1", args=args
        )
        refused = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.PERMISSION_DENIED}  # not served, or not linked
        assert _status(peer.Call, request) in CLEAR | refused | {grpc.StatusCode.OK}

    random_calls()
    # Still serving, and right.
    reply = stub.Invoke(
        calls_pb2.InvokeRequest(app="pair", component="parser", function="parse", args_json='["bad"]'), timeout=30
    )
    assert json.loads(reply.result_json) == {"err": "expected '<timestamp> <LEVEL> <source>: <message>', got 'bad'"}

    # Relayed by the control plane (which has not loaded the agent's codec): the agent's CodecError reaches
    # the client as itself, INVALID_ARGUMENT with its name and details, not as UNKNOWN.
    assert cluster.client is not None
    with pytest.raises(InvalidArgument) as refused:
        cluster.client.invoke("pair", "parser", "parse", [42])
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT and refused.value.type_name == "CodecError", (
        refused.value.code,
        refused.value.type_name,
        refused.value.message,
    )


@pytest.mark.e2e
def test_the_control_plane_refuses_hostile_manifests_and_artifacts(
    cluster: Cluster, tmp_path: Path, fault_report: list[str]
) -> None:
    from neon._proto import control_pb2, control_pb2_grpc

    assert cluster.cp is not None
    with cluster.channel(cluster.control) as channel:
        stub = control_pb2_grpc.ControlStub(channel)
        texts = [
            "[" * 50_000 + "]" * 50_000,
            "x" * (manifest.MAX_MANIFEST + 10),
            "apiVersion: neon-grid.dev/v1\nkind: Application\nmetadata: {name: x}\nspec: {components: [{name: a, "
            "artifact: 'sha256:" + "0" * 64 + "'}]}",  # an artifact never uploaded
        ]
        for text in texts:
            TRIED["control-plane requests"] += 1
            code = _status(stub.ApplyApplication, control_pb2.ApplyApplicationRequest(manifest_yaml=text))
            assert code in CLEAR, code

        def upload(data: bytes, name: str) -> grpc.StatusCode:
            TRIED["control-plane requests"] += 1
            return _status(stub.UploadArtifact, iter([control_pb2.ArtifactChunk(name=name, data=data)]))

        module = wasmtime.wat2wasm("(module)")  # a core module, not a component
        text_file = (EXAMPLES / "log-analyzer" / "sample.log").read_bytes()
        for data in (b"", b"\x00asm", bytes(module), b"\x00asm\x0d\x00\x01\x00" + b"\xff" * 64, text_file):
            assert upload(data, "bad.wasm") == grpc.StatusCode.INVALID_ARGUMENT
        assert upload(b"\x00asm", "x" * 300) == grpc.StatusCode.INVALID_ARGUMENT
        assert upload(b"\x00asm", "bad\x00name") == grpc.StatusCode.INVALID_ARGUMENT
        # A name is a label: a traversal in it writes nothing outside the blob store.
        outside = tmp_path / "escaped"
        assert upload(bytes(module), f"../../../../{outside}") == grpc.StatusCode.INVALID_ARGUMENT
        assert not outside.exists()

        @settings(parent=SETTINGS, max_examples=25)
        @given(st.binary(min_size=1, max_size=512))
        def random_artifacts(data: bytes) -> None:
            assert upload(b"\x00asm" + data, "fuzz.wasm") == grpc.StatusCode.INVALID_ARGUMENT

        random_artifacts()

        # Signatures that are not documents, name other bytes, or do not verify.
        component = bytes(wasmtime.wat2wasm("(component $signed)"))
        digest = "sha256:" + hashlib.sha256(component).hexdigest()
        key = signing.load_key(cluster.pki / "publisher.key")
        good = signing.sign(key, digest)
        forged = signing.Signature(digest, good.key, signing.sign(key, "sha256:" + "0" * 64).signature)
        documents = ["{", "[]", '{"artifact": 1}', signing.sign(key, "sha256:" + "1" * 64).to_json(), forged.to_json()]

        @settings(parent=SETTINGS, max_examples=25)
        @given(st.one_of(st.sampled_from(documents), st.text(max_size=200)))
        def bad_signatures(document: str) -> None:
            TRIED["control-plane requests"] += 1
            chunk = control_pb2.ArtifactChunk(name="signed.wasm", data=component, signatures=[document])
            assert _status(stub.UploadArtifact, iter([chunk])) == grpc.StatusCode.INVALID_ARGUMENT

        bad_signatures()

    # Nothing half-written: no application, no artifact record, no stray blob.
    assert not cluster.store(lambda s: s.list_apps())
    assert not cluster.store(lambda s: s.artifacts.artifact_digests())
    blobs = cluster.workdir / "cp" / "blobs"
    assert not [p for p in blobs.rglob("*") if p.is_file()], list(blobs.rglob("*"))
    fault_report.append(f"hostile input (this module): {_tried()} tried; each refused with a clear error, none UNKNOWN")


@pytest.mark.e2e
def test_the_secrets_service_refuses_hostile_secrets_and_gives_values_to_no_one_else(
    cluster: Cluster, fault_report: list[str]
) -> None:
    from neon._proto import control_pb2, control_pb2_grpc

    def put(stub: Any, name: str, data: dict[str, str], replace: bool = False) -> grpc.StatusCode:
        TRIED["secret requests"] += 1
        return _status(stub.PutSecret, control_pb2.PutSecretRequest(name=name, data=data, replace=replace))

    with cluster.channel(cluster.control) as channel:
        secrets = control_pb2_grpc.SecretsStub(channel)
        assert put(secrets, "kept", {"token": "v1"}) == grpc.StatusCode.OK
        hostile = [
            ("", {"k": "v"}),
            ("UPPER", {"k": "v"}),
            ("a" * 64, {"k": "v"}),
            ("../etc", {"k": "v"}),
            ("empty", {}),
            ("bad-key", {"": "v"}),
            ("bad-key", {"../x": "v"}),
            ("bad-key", {"k\x00": "v"}),
            ("huge", {"k": "x" * (64 * 1024 + 1)}),
            ("huge", {f"k{i}": "x" * 8000 for i in range(140)}),  # each fits, together over 1 MiB
            ("many", {f"k{i}": "v" for i in range(300)}),
        ]
        for name, data in hostile:
            assert put(secrets, name, data) == grpc.StatusCode.INVALID_ARGUMENT, name
        assert put(secrets, "kept", {"token": "other"}) == grpc.StatusCode.ALREADY_EXISTS  # no --replace

        @settings(parent=SETTINGS, max_examples=40)
        @given(st.text(max_size=70), st.dictionaries(st.text(max_size=30), st.text(max_size=50), max_size=4))
        def random_secrets(name: str, data: dict[str, str]) -> None:
            code = put(secrets, name, data)
            assert code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.ALREADY_EXISTS)
            if code == grpc.StatusCode.OK and name != "kept":
                secrets.DeleteSecret(control_pb2.DeleteSecretRequest(name=name), timeout=30)

        random_secrets()
        listed = secrets.ListSecrets(control_pb2.ListSecretsRequest(), timeout=30).secrets
        assert [(s.name, list(s.keys), s.version) for s in listed] == [("kept", ["token"], 1)], "a secret was disturbed"
        TRIED["secret requests"] += 1
        missing = _status(secrets.DeleteSecret, control_pb2.DeleteSecretRequest(name="nope"))
        assert missing == grpc.StatusCode.NOT_FOUND

    # A viewer may list names, not write; an agent gets no values of components it does not run, nor
    # speaks for another node.
    viewer = cluster.credentials("viewer")
    with cluster.channel(cluster.control, viewer) as channel:
        TRIED["secret requests"] += 1
        assert put(control_pb2_grpc.SecretsStub(channel), "v", {"k": "v"}) == grpc.StatusCode.PERMISSION_DENIED
    agent = cluster.identity("edge-1", pki.AGENT)
    with cluster.channel(cluster.control, agent) as channel:
        control = control_pb2_grpc.AgentControlStub(channel)
        for node in ("edge-1", "cloud-1"):
            TRIED["secret requests"] += 1
            request = control_pb2.FetchSecretsRequest(node=node, app="anything", component="x")
            assert _status(control.FetchSecrets, request) == grpc.StatusCode.PERMISSION_DENIED
        TRIED["secret requests"] += 1
        assert put(control_pb2_grpc.SecretsStub(channel), "v", {"k": "v"}) == grpc.StatusCode.PERMISSION_DENIED
    fault_report.append(f"hostile secrets: {TRIED['secret requests']} tried; refused clearly, nothing disturbed")


def _tried() -> str:
    return ", ".join(f"{n} {what}" for what, n in sorted(TRIED.items()))


@pytest.mark.e2e
def test_the_join_port_refuses_hostile_joins_and_admits_nobody(cluster: Cluster, fault_report: list[str]) -> None:
    from neon._proto import control_pb2, control_pb2_grpc

    assert cluster.cp is not None and cluster.client is not None
    token = cluster.client.create_join_token(300).token
    csr, _ = pki.csr_for("edge-9")
    anonymous = Credentials(ca=cluster.credentials().ca)
    refused = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED}
    with sync_channel(cluster.cp.join_address, anonymous, pki.CONTROLPLANE_NAME, CHANNEL_OPTIONS, False) as channel:
        stub = control_pb2_grpc.JoinStub(channel)

        def join(name: str, token_text: str, csr_pem: bytes) -> grpc.StatusCode:
            TRIED["join requests"] += 1
            return _status(stub.Join, control_pb2.JoinRequest(node_name=name, token=token_text, csr_pem=csr_pem))

        # A good token with a bad name or request, and a good request with bad tokens: all refused,
        # and none of them spends the token.
        assert join("Edge 9", token, csr) == grpc.StatusCode.INVALID_ARGUMENT
        assert join("edge-9", token, b"not a csr") == grpc.StatusCode.INVALID_ARGUMENT
        assert join("edge-8", token, csr) == grpc.StatusCode.INVALID_ARGUMENT  # the CSR names edge-9
        assert join("edge-9", token.upper(), csr) == grpc.StatusCode.UNAUTHENTICATED

        @SETTINGS
        @given(st.text(max_size=70), st.text(max_size=80), st.binary(max_size=300))
        def random_joins(name: str, token_text: str, csr_pem: bytes) -> None:
            assert join(name, token_text, csr_pem) in refused

        random_joins()
        # Other RPCs on the join port: refused without a certificate.
        raw = channel.unary_unary("/neon.v1.AgentControl/Register", request_serializer=None, response_deserializer=None)
        TRIED["join requests"] += 1
        assert _status(raw, b"") == grpc.StatusCode.UNAUTHENTICATED
        assert join("edge-9", token, csr) == grpc.StatusCode.OK  # the token was never spent by the refusals
    # Every refusal was logged, but the events (etcd writes a stranger causes) are one per kind per host per 10 s.
    refusals = [e for e in cluster.client.events(history=1000) if e.kind == "JoinRefused"]
    assert 1 <= len(refusals) <= 3, [e.message for e in refusals]  # Unauthenticated, InvalidArgument, PermissionDenied
    admitted = cluster.store(lambda s: s.client.get_prefix(IDENTITIES))
    assert sorted(kv.key.decode().rsplit("/", 1)[1] for kv in admitted) == ["cloud-1", "edge-1", "edge-9"]
    fault_report.append(f"hostile joins: {TRIED['join requests']} tried; refused clearly, none admitted a node")


@pytest.mark.e2e
def test_the_monitoring_surfaces_refuse_hostile_input(cluster: Cluster, fault_report: list[str]) -> None:
    """The HTTPS port (metrics, dashboard) with random requests, and the agents' metrics reports and
    the log streams with bad fields: clear refusals, and the servers keep answering."""
    import socket
    import ssl

    from neon._proto import control_pb2, control_pb2_grpc
    from neon.observe.metrics import LATENCY_BUCKETS
    from neon.rpc.http import client_context

    assert cluster.cp is not None and cluster.client is not None
    host, _, port = cluster.cp.http_address.rpartition(":")
    viewer = cluster.credentials("viewer")
    ctx = client_context(viewer)

    def raw_http(request: bytes) -> bytes:
        TRIED["http requests"] += 1
        with socket.create_connection((host, int(port)), timeout=15) as sock:
            with ctx.wrap_socket(sock, server_hostname=pki.CONTROLPLANE_NAME) as tls:
                tls.sendall(request)
                chunks = []
                while chunk := tls.recv(65536):
                    chunks.append(chunk)
                return b"".join(chunks)

    assert raw_http(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 200")
    assert raw_http(b"DELETE / HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 405")
    assert raw_http(b"GET /../../etc/passwd HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 404")
    assert raw_http(b"nonsense\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert raw_http(b"GET / HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n") == b""  # too long a head: dropped

    @SETTINGS
    @given(st.binary(max_size=300))
    def random_requests(body: bytes) -> None:
        reply = raw_http(body + b"\r\n\r\n")
        assert reply == b"" or reply[9:12] in (b"200", b"400", b"403", b"404", b"405"), reply[:80]

    random_requests()
    # Plain HTTP on the TLS port: the handshake fails, nothing is served.
    with socket.create_connection((host, int(port)), timeout=15) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
        TRIED["http requests"] += 1
        assert not sock.recv(100).startswith(b"HTTP/1.1 200")
    with pytest.raises(ssl.SSLError):
        with socket.create_connection((host, int(port)), timeout=15) as sock:
            ssl.create_default_context().wrap_socket(sock, server_hostname=pki.CONTROLPLANE_NAME)

    # An agent's metrics report with a histogram of the wrong shape, or too many series; and log requests.
    agent = cluster.identity("edge-1", pki.AGENT)
    with cluster.channel(cluster.control, agent) as channel:
        stub = control_pb2_grpc.AgentControlStub(channel)
        odd = control_pb2.ComponentMetrics(app="a", component="c", latency_buckets=[1, 2, 3])
        TRIED["metrics reports"] += 2
        assert _status(stub.ReportMetrics, control_pb2.MetricsReport(node="edge-1", components=[odd])) == (
            grpc.StatusCode.INVALID_ARGUMENT
        )
        many = [control_pb2.LinkMetrics(app="a", importer=str(i)) for i in range(10_001)]
        assert _status(stub.ReportMetrics, control_pb2.MetricsReport(node="edge-1", link_metrics=many)) == (
            grpc.StatusCode.INVALID_ARGUMENT
        )
        # Another node's name in the series is overwritten with the reporter's: a node speaks for itself.
        lying = control_pb2.ComponentMetrics(
            app="a", component="c", node="cloud-1", latency_buckets=[0] * (len(LATENCY_BUCKETS) + 1)
        )

        def lie_and_read() -> None:
            # The real edge-1 agent reports every 0.5 s, replacing this report: send it again until it is read
            # back before that happens.
            assert _status(stub.ReportMetrics, control_pb2.MetricsReport(node="edge-1", components=[lying])) == (
                grpc.StatusCode.OK
            )
            assert cluster.client is not None
            reported = [(m.node, m.component) for m in cluster.client.metrics("a").components]
            assert reported == [("edge-1", "c")]

        assert_eventually(lie_and_read, timeout=15)
    control = control_pb2_grpc.ControlStub(cluster.channel(cluster.control, viewer))
    for request, code in [
        (calls_pb2.LogsRequest(app="nope", component="x"), grpc.StatusCode.NOT_FOUND),
        (calls_pb2.LogsRequest(app="nope", component="x", tail=-1), grpc.StatusCode.INVALID_ARGUMENT),
    ]:
        TRIED["log requests"] += 1
        with pytest.raises(grpc.RpcError) as err:
            list(control.Logs(request, timeout=15))
        assert err.value.code() == code  # type: ignore[attr-defined]
    assert raw_http(b"GET /metrics HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 200")  # still serving
    fault_report.append(
        f"hostile monitoring input: {TRIED['http requests']} HTTP requests, {TRIED['metrics reports']} metrics "
        f"reports, {TRIED['log requests']} log requests; refused clearly, still serving"
    )


# ------------------------------------------------------------ the front door --

PROBE_HTTP = """\
apiVersion: neon-grid.dev/v1
kind: Application
metadata: {{name: probe-http}}
spec:
  components:
    - name: web
      artifact: {artifact}
      placement: {{nodeSelector: {{tier: edge}}}}
      http:
        routes: ["/..."]
        instances: reuse
        maxBodySize: 4Ki
        maxHeaderSize: 2Ki
        firstByteTimeout: 1s
        requestTimeout: 2s
"""


def _exchange(address: tuple[str, int], data: bytes, timeout: float = 10.0) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes it or answers one response."""
    import socket

    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(data)
        got = b""
        try:
            while chunk := sock.recv(65536):
                got += chunk
                if b"\r\n\r\n" in got:
                    head, _, body = got.partition(b"\r\n\r\n")
                    length = next(
                        (
                            int(v)
                            for k, _, v in (ln.partition(b":") for ln in head.split(b"\r\n"))
                            if k.lower() == b"content-length"
                        ),
                        None,
                    )
                    if length is not None and len(body) >= length:
                        break
        except (ConnectionResetError, TimeoutError):
            pass
        return got


def _code(answer: bytes) -> int:
    parts = answer.split(b"\r\n", 1)[0].split()
    return int(parts[1]) if len(parts) >= 2 and parts[0].startswith(b"HTTP/1.") else 0


def test_the_front_door_refuses_hostile_http_and_keeps_serving(
    cluster: Cluster, tmp_path: Path, fault_report: list[str]
) -> None:
    import random
    import socket
    from urllib.parse import urlsplit

    from cli.devcluster.guests import build_http_guest
    from tests.support.helpers import GUESTS, assert_eventually

    client = cluster.client
    assert client is not None
    root = GUESTS / "http-probe"
    manifest_path = tmp_path / "probe-http.yaml"
    manifest_path.write_text(PROBE_HTTP.format(artifact=build_http_guest(root, "http-probe", root / "app")))
    client.apply_file(manifest_path)
    wait_running(client, "probe-http")
    url = urlsplit(next(n.http_url for n in client.list_nodes() if n.name == "edge-1"))
    address = (url.hostname or "127.0.0.1", url.port or 80)
    ok = b"GET /fine HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    assert _code(_exchange(address, ok)) == 200
    counts: collections.Counter[str] = collections.Counter()
    rng = random.Random(22)

    for _ in range(60):  # request lines and headers that are not HTTP
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        code = _code(_exchange(address, junk + b"\r\n\r\n"))
        assert code in (0, 400), (junk, code)  # answered 400, or the connection closed
        counts["malformed requests"] += 1
    for name, line in (
        ("a header field over the component's limit", b"X-Big: " + b"a" * 3000 + b"\r\n"),
        ("a header field over the parser's limit", b"X-Huge: " + b"a" * 70_000 + b"\r\n"),
    ):
        code = _code(_exchange(address, b"GET / HTTP/1.1\r\nHost: x\r\n" + line + b"\r\n"))
        assert code in (431, 400), (name, code)
        counts["oversized headers"] += 1
    body = b"b" * 5000
    answer = _exchange(address, b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + body)
    assert _code(answer) == 413
    chunked = b"POST /read HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunked += b"".join(b"%x\r\n%s\r\n" % (1000, b"c" * 1000) for _ in range(5)) + b"0\r\n\r\n"
    assert _code(_exchange(address, chunked)) == 413
    counts["oversized bodies"] += 2

    slow = socket.create_connection(address, timeout=10)  # a byte a second, never the whole body
    slow.sendall(b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 4000\r\n\r\n")
    for _ in range(3):
        slow.sendall(b"s")
        slow.settimeout(1.0)
        try:
            answer = slow.recv(65536)
            break
        except TimeoutError:
            continue
    else:
        slow.settimeout(10)
        answer = slow.recv(65536)
    assert _code(answer) == 408, answer[:80]
    slow.close()
    counts["slow clients"] += 1
    for _ in range(5):  # gone mid-body
        with socket.create_connection(address, timeout=10) as sock:
            sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4000\r\n\r\n" + b"d" * 1000)
        counts["disconnects mid-body"] += 1
    assert _code(_exchange(address, b"GET /never HTTP/1.1\r\nHost: x\r\n\r\n")) in (503, 504)
    assert _exchange(address, b"GET /twice HTTP/1.1\r\nHost: x\r\n\r\n").count(b"HTTP/1.1") <= 1
    assert _code(_exchange(address, b"GET /trap HTTP/1.1\r\nHost: x\r\n\r\n")) == 500
    counts["misbehaving guests"] += 3

    # Through cloud-1, which hands each request over to edge-1 (once a heartbeat brought it the route table).
    far = urlsplit(next(n.http_url for n in client.list_nodes() if n.name == "cloud-1"))
    handing = (far.hostname or "127.0.0.1", far.port or 80)
    assert_eventually(lambda: _code(_exchange(handing, ok)) == 200, timeout=30)
    announced = b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + body
    assert _code(_exchange(handing, announced)) == 413  # in the handover's first frame, refused where it runs
    assert _code(_exchange(handing, chunked)) == 413  # streamed over, found too large as it came
    counts["oversized bodies handed over"] += 2
    for _ in range(3):  # gone mid-body while the body streams to edge-1: the call is cancelled, not taken as whole
        with socket.create_connection(handing, timeout=10) as sock:
            sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n" + b"d" * 100_000)
        counts["disconnects mid-body handed over"] += 1
    assert_eventually(lambda: _code(_exchange(handing, ok)) == 200, timeout=20)

    assert_eventually(lambda: _code(_exchange(address, ok)) == 200, timeout=20)  # still serving
    for name in ("edge-1", "cloud-1"):
        agent = cluster.agents[name]
        assert agent.alive(), agent.tail()
    fault_report.append(
        "hostile HTTP at the front door: "
        + ", ".join(f"{n} {what}" for what, n in sorted(counts.items()))
        + "; each answered 400/408/413/431/500/503/504 or cut off, and the agents kept serving"
    )
