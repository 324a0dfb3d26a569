"""Zero trust, piece by piece: the PKI, the authorisation policy, signatures, and the agent's check
before it compiles anything."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest
import wasmtime

from agent.config import AgentConfig
from agent.control.identity import Identity
from agent.shell import Agent
from controlplane.security import trust
from neon._proto import control_pb2, dataplane_pb2
from neon.errors import IntegrityError, InvalidArgument, PermissionDenied, Unauthenticated, Untrusted
from neon.grants import GrantSpec
from neon.model import ComponentAssignment
from neon.security import authz, pki, signing
from neon.security.tls import ANONYMOUS, PLAINTEXT, Credentials, Peer

WAT = "(component)"


def test_certs_init_lays_out_a_pki_with_private_keys_readable_by_the_owner_only(tmp_path: Path) -> None:
    files = {p.name for p in pki.init(tmp_path / "pki")}
    assert files == {
        "ca.pem",
        "ca.key",
        "controlplane.pem",
        "controlplane.key",
        "admin.pem",
        "admin.key",
        "viewer.pem",
        "viewer.key",
        "etcd.pem",
        "etcd.key",
        "signing.key",
        "signing.pub",
        "publisher.key",
        "publisher.pub",
    }
    for name in files:
        mode = stat.S_IMODE((tmp_path / "pki" / name).stat().st_mode)
        assert (mode == 0o600) == name.endswith(".key"), (name, oct(mode))
    roles = {
        stem: pki.describe((tmp_path / "pki" / f"{stem}.pem").read_bytes()) for stem in ("admin", "viewer", "etcd")
    }
    assert [(i.name, i.role) for i in roles.values()] == [("admin", "admin"), ("viewer", "viewer"), ("etcd", "etcd")]
    with pytest.raises(InvalidArgument, match="already holds a CA"):
        pki.init(tmp_path / "pki")
    (tmp_path / "pki" / "admin.key").write_bytes((tmp_path / "pki" / "viewer.key").read_bytes())
    with pytest.raises(InvalidArgument, match="admin.pem and .*admin.key do not belong together"):
        pki.load(tmp_path / "pki", "admin")  # e.g. a crash between writing a renewed pair's two files


def test_a_csr_is_signed_only_for_its_own_name_and_key(tmp_path: Path) -> None:
    ca = pki.create_ca()
    csr, _ = pki.csr_for("edge-1")
    cert = pki.issue(ca, "edge-1", pki.AGENT, public_key=pki.public_key_of_csr(csr, "edge-1"))
    info = pki.describe(cert.cert)
    assert (info.name, info.role) == ("edge-1", "agent") and cert.key == b""
    with pytest.raises(InvalidArgument, match=r"names \['edge-1'\], not node 'edge-2'"):
        pki.public_key_of_csr(csr, "edge-2")
    with pytest.raises(InvalidArgument, match="not a PEM CSR"):
        pki.public_key_of_csr(b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", "x")
    with pytest.raises(InvalidArgument, match="role must be one of"):
        pki.issue(ca, "root", "superuser")


def test_the_policy_checks_role_per_rpc_and_node_per_request() -> None:
    admin, viewer = Peer("admin", "admin"), Peer("viewer", "viewer")
    edge = Peer("edge-1", "agent", "ab")
    authz.check("/neon.v1.Control/ListApplications", viewer)
    authz.check("/neon.v1.Control/ApplyApplication", admin)
    for method in ("ApplyApplication", "DeleteApplication", "UploadArtifact", "Invoke", "CreateJoinToken"):
        with pytest.raises(PermissionDenied, match=rf"viewer \(viewer\) may not call /neon.v1.Control/{method}"):
            authz.check(f"/neon.v1.Control/{method}", viewer)
    with pytest.raises(PermissionDenied, match="needs agent"):
        authz.check("/neon.v1.AgentControl/Register", admin)  # an admin cannot pose as a node
    authz.check("/neon.v1.AgentControl/Register", edge, SimpleNamespace(name="edge-1"))
    with pytest.raises(PermissionDenied, match="node edge-1 may not act as node 'cloud-1'"):
        authz.check("/neon.v1.AgentControl/Heartbeat", edge, SimpleNamespace(name="cloud-1", lease_id=1))
    with pytest.raises(PermissionDenied, match="may not act as node 'cloud-1'"):
        authz.check("/neon.v1.DataPlane/Call", edge, SimpleNamespace(caller="cloud-1", app="a"))
    # The same rule on real messages (their fields are looked up once per message type).
    for _ in range(2):
        authz.check("/neon.v1.AgentControl/Register", edge, control_pb2.RegisterRequest(name="edge-1"))
        authz.check("/neon.v1.DataPlane/Call", edge, dataplane_pb2.CallRequest(app="a"))  # no caller named
        with pytest.raises(PermissionDenied, match="node edge-1 may not act as node 'cloud-1'"):
            authz.check("/neon.v1.AgentControl/Heartbeat", edge, control_pb2.HeartbeatRequest(name="cloud-1"))
        with pytest.raises(PermissionDenied, match="may not act as node 'cloud-1' \\(/neon.v1.DataPlane/CallBatch"):
            authz.check("/neon.v1.DataPlane/CallBatch", edge, dataplane_pb2.CallBatchRequest(caller="cloud-1"))
    with pytest.raises(PermissionDenied, match="needs controlplane"):
        authz.check("/neon.v1.DataPlane/Invoke", edge)  # users' invokes come through the control plane
    with pytest.raises(Unauthenticated, match="needs a client certificate"):
        authz.check("/neon.v1.Control/ListNodes", ANONYMOUS)
    authz.check("/neon.v1.Join/Join", ANONYMOUS)
    with pytest.raises(PermissionDenied, match="a role no certificate has"):
        authz.check("/neon.v1.Control/SomethingNew", admin)  # not in the table: refused
    authz.check("/neon.v1.Control/ApplyApplication", PLAINTEXT)  # --insecure trusts everyone


def test_every_rpc_of_every_service_is_in_the_policy() -> None:
    from neon._proto import control_pb2, dataplane_pb2

    methods = {
        f"/{service.full_name}/{method.name}"
        for module in (control_pb2, dataplane_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    assert methods - authz.POLICY.keys() - authz.OPEN == set()


def test_signatures_admit_only_the_signed_bytes_and_trusted_keys(tmp_path: Path) -> None:
    key = signing.load_key(_key(tmp_path, "publisher"))
    other = signing.load_key(_key(tmp_path, "other"))
    trusted = [signing.public_text(key.public_key())]
    digest = "sha256:" + "a" * 64
    sig = signing.sign(key, digest)
    assert signing.verify("parser", digest, [sig], trusted) == trusted[0]
    assert signing.Signature.from_json(sig.to_json()) == sig
    with pytest.raises(Untrusted, match=r"parser \(sha256:b+\) is refused: it is not signed; sign it with"):
        signing.verify("parser", "sha256:" + "b" * 64, [], trusted)
    with pytest.raises(Untrusted, match="does not match its content"):
        signing.verify(
            "parser", digest, [signing.Signature(digest, sig.key, signing.sign(key, "x").signature)], trusted
        )
    with pytest.raises(Untrusted, match="signed only by keys not trusted here"):
        signing.verify("parser", digest, [signing.sign(other, digest)], trusted)
    with pytest.raises(Untrusted, match="no signing key is trusted"):
        signing.verify("parser", digest, [sig], [])
    with pytest.raises(InvalidArgument, match="is not a 32-byte ed25519 key"):
        signing.parse_public("ed25519:AAAA")

    inputs = ["sha256:" + "1" * 64, "sha256:" + "2" * 64]
    fused = signing.sign_fused(key, digest, inputs)
    signing.verify_fused("fused", digest, list(reversed(inputs)), fused, trusted)
    with pytest.raises(Untrusted, match="does not match it and its inputs"):
        signing.verify_fused("fused", digest, [inputs[0], "sha256:" + "3" * 64], fused, trusted)


def test_signatures_per_artifact_are_capped_the_oldest_dropped_and_more_refused_clearly(tmp_path: Path) -> None:
    artifact = tmp_path / "parser.wasm"
    artifact.write_bytes(b"\0asm")
    keys = [signing.load_key(_key(tmp_path, f"k{i}")) for i in range(signing.MAX_SIGNATURES + 3)]
    sigs = [signing.sign_file(artifact, key) for key in keys]
    beside = [signing.Signature.from_json(t) for t in signing.signatures_beside(artifact)]
    assert beside == sigs[-signing.MAX_SIGNATURES :]  # the newest kept, in order; the newest is last
    signing.sign_file(artifact, keys[5])  # a key signing again moves to the end, once
    beside = [signing.Signature.from_json(t) for t in signing.signatures_beside(artifact)]
    assert beside[-1].key == sigs[5].key and len({s.key for s in beside}) == len(beside) == signing.MAX_SIGNATURES

    digest = sigs[0].artifact
    record = {"signatures": [s.to_json() for s in sigs[:10]]}
    kept = [signing.Signature.from_json(t) for t in trust.merged(record, [sigs[3], *sigs[10:]])]
    assert len(kept) == signing.MAX_SIGNATURES and kept[-1] == sigs[-1] and sigs[3] in kept and sigs[0] not in kept
    documents = [s.to_json() for s in sigs]
    assert trust.checked_signatures(digest, documents[: signing.MAX_SIGNATURES], "parser.wasm")
    with pytest.raises(InvalidArgument, match=r"parser.wasm comes with 19 signatures; at most 16 .* parser.wasm.sig"):
        trust.checked_signatures(digest, documents, "parser.wasm")


def _key(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.key"
    signing.create_key(path)
    return path


def _agent_with(tmp_path: Path, data: bytes, controlplane_key: str = "") -> tuple[Agent, str]:
    agent = Agent(AgentConfig(name="edge-1", data_dir=tmp_path / "agent", insecure=True))
    agent.identity = Identity(Credentials.insecure(), controlplane_key)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    agent.artifacts.path(digest).write_bytes(data)
    return agent, digest


def test_the_agent_checks_digest_and_signature_before_compiling(tmp_path: Path) -> None:
    key = signing.load_key(_key(tmp_path, "publisher"))
    trusted = (signing.public_text(key.public_key()),)
    data = wasmtime.wat2wasm(WAT)
    agent, digest = _agent_with(tmp_path, data)
    signed = ComponentAssignment(
        "parser", digest, signatures=(signing.sign(key, digest).to_json(),), trusted_keys=trusted
    )
    agent.starter.check_provenance("app/parser", signed)
    with pytest.raises(Untrusted, match=r"app/parser \(sha256:[0-9a-f]+\) is refused: it is not signed"):
        agent.starter.check_provenance("app/parser", ComponentAssignment("parser", digest, trusted_keys=trusted))
    agent.starter.check_provenance("app/parser", ComponentAssignment("parser", digest, trusted_keys=("*",)))
    agent.artifacts.path(digest).write_bytes(data + b"\0")  # tampered on the node's disk
    with pytest.raises(IntegrityError, match="missing or does not match its digest"):
        agent.starter.check_provenance("app/parser", signed)


def test_a_fused_artifact_needs_the_control_planes_signature_and_signed_inputs(tmp_path: Path) -> None:
    publisher = signing.load_key(_key(tmp_path, "publisher"))
    controlplane = signing.load_key(_key(tmp_path, "signing"))
    trusted = (signing.public_text(publisher.public_key()),)
    inputs = ("sha256:" + "1" * 64, "sha256:" + "2" * 64)
    agent, digest = _agent_with(
        tmp_path, wasmtime.wat2wasm(WAT), controlplane_key=signing.public_text(controlplane.public_key())
    )
    own = signing.sign_fused(controlplane, digest, list(inputs)).to_json()
    signed_inputs = tuple(signing.sign(publisher, d).to_json() for d in inputs)
    fused = ComponentAssignment(
        "root", digest, signatures=(own, *signed_inputs), trusted_keys=trusted, inputs=inputs, grants=GrantSpec()
    )
    agent.starter.check_provenance("app/root", fused)
    with pytest.raises(Untrusted, match=r"\(fused input\) \(sha256:2+\) is refused: it is not signed"):
        agent.starter.check_provenance(
            "app/root", ComponentAssignment(**{**fused.__dict__, "signatures": (own, signed_inputs[0])})
        )
    forged = signing.sign_fused(publisher, digest, list(inputs)).to_json()  # not the control plane's key
    with pytest.raises(Untrusted, match="fused by a key this agent does not trust"):
        agent.starter.check_provenance(
            "app/root", ComponentAssignment(**{**fused.__dict__, "signatures": (forged, *signed_inputs)})
        )


def test_native_code_is_accepted_only_with_the_control_planes_signature_over_artifact_engine_and_code(
    tmp_path: Path,
) -> None:
    controlplane = signing.load_key(_key(tmp_path, "signing"))
    other = signing.load_key(_key(tmp_path, "other"))
    trusted = [signing.public_text(controlplane.public_key())]
    artifact, code = "sha256:" + "a" * 64, "sha256:" + "c" * 64
    engine = "wasmtime-50.0.0/x86_64-linux/cranelift+epoch/0123456789ab"
    sig = signing.sign_code(controlplane, artifact, engine, code)
    signing.verify_code(artifact, engine, code, sig, trusted)
    for changed in (
        ("sha256:" + "b" * 64, engine, code),  # made of another artifact
        (artifact, engine.replace("cranelift", "winch"), code),  # for another engine
        (artifact, engine, "sha256:" + "d" * 64),  # other code
    ):
        with pytest.raises(Untrusted, match="does not match it"):
            signing.verify_code(*changed, sig, trusted)
    with pytest.raises(Untrusted, match="a key this agent does not trust"):
        signing.verify_code(artifact, engine, code, signing.sign_code(other, artifact, engine, code), trusted)
    # an artifact's publisher signature over the code digest is no code signature
    with pytest.raises(Untrusted, match="does not match it"):
        signing.verify_code(artifact, engine, code, signing.sign(controlplane, code), trusted)
