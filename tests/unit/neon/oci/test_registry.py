"""The registry client against a real registry (Debian's docker-registry, TLS and htpasswd) and against a
hostile one (a small server on loopback that cuts a layer short, lies about digests or serves something that is
not a component): every failure names the reference and the fix, and nothing half-written is kept."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli.devcluster.registry_launcher import RegistryServer
from neon.errors import IntegrityError, InvalidArgument, NotFound, PermissionDenied, Unavailable
from neon.oci.reference import parse
from neon.oci.registry import WASM_CONFIG, WASM_LAYER, RegistryClient
from neon.security import signing

WASM = b"\0asm\x0d\0\x01\0" + bytes(range(256)) * 40  # the bytes only travel; nothing compiles them


@pytest.fixture
def wasm(tmp_path: Path) -> Path:
    path = tmp_path / "hello.wasm"
    path.write_bytes(WASM)
    return path


def _client(registry: RegistryServer, tmp_path: Path, password: str | None = None) -> RegistryClient:
    return RegistryClient(registry.docker_config(tmp_path / "docker" / "config.json", password), registry.ca)


def test_push_resolve_pull_and_signatures_round_trip(registry: RegistryServer, wasm: Path, tmp_path: Path) -> None:
    key = signing.load_key(_key(tmp_path))
    layer = "sha256:" + hashlib.sha256(WASM).hexdigest()
    document = signing.sign(key, layer).to_json()
    ref = parse(f"oci://{registry.host}/unit/hello:0.1.0")
    pushed = _client(registry, tmp_path).push(wasm, ref, document)
    assert (pushed.layer_digest, pushed.layer_size) == (layer, len(WASM))

    fresh = _client(registry, tmp_path)  # another process's view: nothing cached
    found = fresh.resolve(ref)
    assert found == pushed and found.reference.digest == found.manifest_digest
    assert fresh.resolve(parse(str(found.reference))) == found  # by digest
    out = fresh.pull(found, tmp_path / "pulled" / "hello.wasm")
    assert out.read_bytes() == WASM
    assert fresh.signatures(found) == [document]
    # A second signature joins the first in the referrers index; an unsigned artifact has none.
    other = signing.sign(signing.load_key(_key(tmp_path, "other")), layer).to_json()
    fresh.attach_signature(found, other)
    assert sorted(fresh.signatures(found)) == sorted([document, other])
    unsigned = fresh.push(wasm, parse(f"oci://{registry.host}/unit/unsigned:1"))
    assert fresh.signatures(unsigned) == []


def _key(tmp_path: Path, name: str = "publisher") -> Path:
    path = tmp_path / f"{name}.key"
    if not path.exists():
        signing.create_key(path)
    return path


def test_registry_refusals_name_the_reference_and_the_fix(registry: RegistryServer, wasm: Path, tmp_path: Path) -> None:
    ref = parse(f"oci://{registry.host}/unit/refusals:1")
    _client(registry, tmp_path).push(wasm, ref)
    with pytest.raises(NotFound, match=r"unit/missing:1: not in .*push it first"):
        _client(registry, tmp_path).resolve(parse(f"oci://{registry.host}/unit/missing:1"))
    with pytest.raises(NotFound, match="unit/refusals@sha256:0000"):
        _client(registry, tmp_path).resolve(parse(f"oci://{registry.host}/unit/refusals@sha256:" + "0" * 64))
    with pytest.raises(PermissionDenied, match="refused to let us read it .*check its credentials"):
        _client(registry, tmp_path, password="wrong").resolve(ref)
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    with pytest.raises(PermissionDenied, match="we have no credentials for it"):
        RegistryClient(empty, registry.ca).resolve(ref)
    with pytest.raises(Unavailable, match="CERTIFICATE_VERIFY_FAILED.*--registry-ca"):
        RegistryClient(registry.docker_config(tmp_path / "c.json")).resolve(ref)
    with pytest.raises(InvalidArgument, match="no registry credentials file"):
        RegistryClient(tmp_path / "nowhere.json", registry.ca).resolve(ref)


def test_a_plain_http_registry_is_used_on_loopback(tmp_path: Path, wasm: Path) -> None:
    with RegistryServer(tmp_path / "plain") as plain:
        ref = parse(f"oci://{plain.host}/dev/hello:0.1.0")
        pushed = RegistryClient().push(wasm, ref)
        assert RegistryClient().pull(RegistryClient().resolve(ref), tmp_path / "x.wasm").read_bytes() == WASM
        assert pushed.reference.digest.startswith("sha256:")


# ------------------------------------------------------------------------------------------- hostile --


def _manifest(layer: bytes, layer_type: str = WASM_LAYER, size: int | None = None) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": WASM_CONFIG, "digest": "sha256:" + "0" * 64, "size": 2},
            "layers": [
                {
                    "mediaType": layer_type,
                    "digest": "sha256:" + hashlib.sha256(layer).hexdigest(),
                    "size": len(layer) if size is None else size,
                }
            ],
        }
    ).encode()


class _Hostile(http.server.BaseHTTPRequestHandler):
    """Repositories that misbehave, each one way (``blobs`` maps a repository to the bytes its layer sends)."""

    manifests: dict[str, bytes] = {}
    blobs: dict[str, tuple[bytes, int]] = {}  # repository -> (bytes sent, Content-Length announced)

    def do_GET(self) -> None:  # noqa: N802 - the server's hook
        parts = self.path.split("/")
        if self.path == "/v2/":
            return self._send(200, b"{}")
        repo, kind = parts[2], parts[3]
        if kind == "manifests" and repo in self.manifests:
            return self._send(200, self.manifests[repo], "application/vnd.oci.image.manifest.v1+json")
        if kind == "blobs" and repo in self.blobs:
            body, length = self.blobs[repo]
            self.send_response(200)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True
            return None
        return self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}')

    def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def hostile() -> Iterator[str]:
    layer = WASM
    other = bytes(reversed(WASM))
    _Hostile.manifests = {
        "cut": _manifest(layer),
        "liar": _manifest(layer),
        "long": _manifest(layer),
        "tarball": _manifest(layer, "application/vnd.oci.image.layer.v1.tar+gzip"),
        "pinned": _manifest(layer),
    }
    _Hostile.blobs = {
        "cut": (layer[: len(layer) // 3], len(layer)),  # the connection drops a third of the way in
        "liar": (other, len(other)),  # other bytes of the same length
        "long": (layer + b"more", len(layer) + 4),
    }
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    "repo, error, words",
    [
        ("cut", Unavailable, "broke off the layer after"),
        ("liar", IntegrityError, "the layer arrived as .* its manifest says"),
        ("long", Unavailable, "longer than the"),
    ],
)
def test_a_hostile_registry_leaves_nothing_half_stored(
    hostile: str, tmp_path: Path, repo: str, error: type[Exception], words: str
) -> None:
    client = RegistryClient()
    found = client.resolve(parse(f"oci://{hostile}/{repo}:1"))
    target = tmp_path / "blobs" / "layer"
    with pytest.raises(error, match=words):
        client.pull(found, target)
    assert list((tmp_path / "blobs").iterdir()) == [], "no partial or temporary file is left"


def test_a_hostile_registry_cannot_pass_off_other_content(hostile: str) -> None:
    client = RegistryClient()
    with pytest.raises(InvalidArgument, match="is not a wasm component in the CNCF layout"):
        client.resolve(parse(f"oci://{hostile}/tarball:1"))
    with pytest.raises(IntegrityError, match="the reference pins sha256:1111"):
        client.resolve(parse(f"oci://{hostile}/pinned@sha256:" + "1" * 64))
    with pytest.raises(NotFound):
        client.resolve(parse(f"oci://{hostile}/nothing:1"))
