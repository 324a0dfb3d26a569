"""Components in OCI registries, through the ``oras`` client: push in the CNCF Wasm layout (a config of type
``application/vnd.wasm.config.v0+json`` and one ``application/wasm`` layer), resolve a tag to the manifest's
digest, pull the layer checked against its sha256, and keep Neon Grid's ed25519 signatures beside a manifest as
OCI referrers.

Referrers: a registry with the OCI 1.1 referrers API lists them; one without (distribution 2.x) is read and
written through the spec's fallback, an image index under the tag ``sha256-<digest of the subject>``.

Credentials come from a docker-style ``config.json`` (the given one, then ``~/.docker/config.json``); a
registry with a private CA is trusted through ``ca``. A registry on loopback may speak plain HTTP, as Docker
allows; any other must speak TLS. Every failure names the reference and what to do.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import oras.provider
import requests

from neon.errors import IntegrityError, InvalidArgument, NeonGridError, NotFound, PermissionDenied, Unavailable
from neon.oci.reference import Reference
from neon.security.signing import file_digest

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
WASM_CONFIG = "application/vnd.wasm.config.v0+json"
WASM_LAYER = "application/wasm"
EMPTY = "application/vnd.oci.empty.v1+json"
SIGNATURE = "application/vnd.neon-grid.signature.v1+json"
MAX_MANIFEST = 4 << 20  # bytes; a manifest or index larger than this is refused unread
LOOPBACK = ("127.", "localhost", "[::1]")


@dataclass(frozen=True)
class Artifact:
    """What a reference resolved to: the manifest (by digest) and its one wasm layer."""

    reference: Reference  # pinned to the manifest's digest
    manifest_digest: str
    manifest_size: int
    layer_digest: str
    layer_size: int


class _Oras(oras.provider.Registry):  # type: ignore[misc]
    """oras' client with one attempt per request: a failure is reported at once, not slept on and retried."""

    def do_request(self, *args: Any, **kwargs: Any) -> requests.Response:
        return oras.provider.Registry.do_request.__wrapped__(self, *args, **kwargs)  # type: ignore[no-any-return]


class RegistryClient:
    def __init__(self, config: Path | None = None, ca: Path | None = None, timeout: float = 60.0) -> None:
        self.config = config
        self.ca = ca
        self.timeout = timeout
        self._clients: dict[str, tuple[_Oras, str]] = {}
        self._anonymous: set[str] = set()  # registries we have no credentials for

    # ------------------------------------------------------------- push --

    def push(self, wasm: Path, ref: Reference, signature: str = "") -> Artifact:
        """Push ``wasm`` to ``ref`` (a tag); with ``signature`` (a signature document over the layer's digest)
        attach it as a referrer. Returns the pushed manifest, pinned."""
        client, _ = self._client(ref)
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "config.json"
            layer = file_digest(wasm)
            config.write_text(json.dumps({"architecture": "wasm", "os": "wasip2", "layerDigests": [layer]}))
            response = self._call(
                ref,
                "push",
                lambda: client.push(
                    ref.target,
                    config_path=str(self.config) if self.config else None,
                    files=[f"{wasm}:{WASM_LAYER}"],
                    manifest_config=f"{config}:{WASM_CONFIG}",
                    disable_path_validation=True,
                    quiet=True,
                ),
            )
        self._check(ref, "push", response)
        artifact = self.resolve(ref)
        if signature:
            self.attach_signature(artifact, signature)
        return artifact

    def attach_signature(self, artifact: Artifact, document: str) -> None:
        """Push ``document`` as a referrer of ``artifact`` and list it in the referrers fallback index."""
        ref = artifact.reference
        body = document.encode()
        empty = b"{}"
        for blob in (body, empty):
            self._put_blob(ref, blob)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "artifactType": SIGNATURE,
            "config": {"mediaType": EMPTY, "digest": _digest(empty), "size": len(empty)},
            "layers": [{"mediaType": SIGNATURE, "digest": _digest(body), "size": len(body)}],
            "subject": {"mediaType": MANIFEST, "digest": artifact.manifest_digest, "size": artifact.manifest_size},
        }
        raw = json.dumps(manifest, separators=(",", ":")).encode()
        pushed = self._put_manifest(ref, _digest(raw), raw, MANIFEST)
        if pushed.headers.get("OCI-Subject") == artifact.manifest_digest:
            return  # the registry keeps the referrers list itself
        tag = _fallback_tag(artifact.manifest_digest)
        index = self._index(ref, tag) or {"schemaVersion": 2, "mediaType": INDEX, "manifests": []}
        entry = {"mediaType": MANIFEST, "digest": _digest(raw), "size": len(raw), "artifactType": SIGNATURE}
        if all(m.get("digest") != entry["digest"] for m in index["manifests"]):
            index["manifests"].append(entry)
        self._put_manifest(ref, tag, json.dumps(index, separators=(",", ":")).encode(), INDEX)

    # ------------------------------------------------------- resolve, pull --

    def resolve(self, ref: Reference) -> Artifact:
        """The manifest ``ref`` names, checked to be a wasm component's; a pinned ``ref`` must match its digest."""
        raw, digest = self._manifest(ref, ref.digest or ref.tag, MANIFEST)
        if ref.digest and digest != ref.digest:
            raise IntegrityError(
                f"{ref}: the registry answered a manifest with digest {digest}; the reference pins {ref.digest}",
                artifact=str(ref),
            )
        manifest = _json(ref, raw)
        layers = manifest.get("layers") if isinstance(manifest, dict) else None
        wasm = [layer for layer in layers or [] if isinstance(layer, dict) and layer.get("mediaType") == WASM_LAYER]
        config = manifest.get("config") if isinstance(manifest, dict) else None
        if len(wasm) != 1 or not isinstance(config, dict) or config.get("mediaType") != WASM_CONFIG:
            kinds = sorted({str(layer.get("mediaType")) for layer in layers or [] if isinstance(layer, dict)})
            raise InvalidArgument(
                f"{ref} is not a wasm component in the CNCF layout (config {WASM_CONFIG}, one {WASM_LAYER} layer); "
                f"it has layers {kinds or 'none'}: push it with `neon push`",
                field="artifact",
            )
        layer = wasm[0]
        if not isinstance(layer.get("digest"), str) or not isinstance(layer.get("size"), int):
            raise InvalidArgument(f"{ref}: its wasm layer has no digest or size", field="artifact")
        return Artifact(ref.pinned(digest), digest, len(raw), layer["digest"], layer["size"])

    def pull(self, artifact: Artifact, into: Path) -> Path:
        """Download the wasm layer to ``into`` (a file written only once whole and checked by size and sha256)."""
        ref = artifact.reference
        client, scheme = self._client(ref)
        url = f"{scheme}://{ref.registry}/v2/{ref.repository}/blobs/{artifact.layer_digest}"
        into.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=into.parent, prefix=f".{into.name}.")
        try:
            digest, size = hashlib.sha256(), 0
            with os.fdopen(fd, "wb") as out:
                response = self._call(ref, "pull", lambda: client.do_request(url, "GET", stream=True))
                with response:
                    self._check(ref, f"pull the layer {artifact.layer_digest} of", response)
                    try:
                        for chunk in _chunks(response, artifact.layer_size):
                            digest.update(chunk)
                            out.write(chunk)
                            size += len(chunk)
                    except (requests.exceptions.RequestException, OSError) as err:
                        raise Unavailable(
                            f"{ref}: {ref.registry} broke off the layer after {size} of {artifact.layer_size} "
                            f"bytes ({_reason(err)}); nothing was kept, try again",
                            artifact=str(ref),
                        ) from None
            got = "sha256:" + digest.hexdigest()
            if size != artifact.layer_size or got != artifact.layer_digest:
                raise IntegrityError(
                    f"{ref}: the layer arrived as {size} bytes with digest {got}; its manifest says "
                    f"{artifact.layer_size} bytes, {artifact.layer_digest}; nothing was kept",
                    artifact=str(ref),
                )
            os.replace(tmp, into)
            return into
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def signatures(self, artifact: Artifact) -> list[str]:
        """The signature documents attached to ``artifact`` as referrers (none is an empty list)."""
        ref = artifact.reference
        client, scheme = self._client(ref)
        url = f"{scheme}://{ref.registry}/v2/{ref.repository}/referrers/{artifact.manifest_digest}"
        response = self._call(ref, "list referrers of", lambda: client.do_request(url, "GET"))
        if response.status_code == 200 and response.headers.get("Content-Type", "").startswith(INDEX):
            index: dict[str, Any] | None = _json(ref, response.content[:MAX_MANIFEST])
        else:
            index = self._index(ref, _fallback_tag(artifact.manifest_digest))
        documents = []
        for entry in (index or {}).get("manifests", [])[:16]:
            if not isinstance(entry, dict) or entry.get("artifactType") != SIGNATURE:
                continue
            raw, _ = self._manifest(ref, str(entry.get("digest")), MANIFEST)
            for layer in _json(ref, raw).get("layers", [])[:1]:
                if layer.get("mediaType") == SIGNATURE and 0 < int(layer.get("size", 0)) <= 64 << 10:
                    documents.append(self._blob(ref, str(layer["digest"]), int(layer["size"])).decode())
        return documents

    # ------------------------------------------------------------ requests --

    def _client(self, ref: Reference) -> tuple[_Oras, str]:
        """One oras client per registry, and the scheme it speaks (https, or http on loopback when it has no TLS)."""
        if ref.registry in self._clients:
            return self._clients[ref.registry]
        if self.config is not None and not self.config.is_file():
            raise InvalidArgument(f"no registry credentials file {self.config} (--registry-config)", field="config")
        if self.ca is not None and not self.ca.is_file():
            raise InvalidArgument(f"no registry CA file {self.ca} (--registry-ca)", field="ca")
        verify: bool | str = str(self.ca) if self.ca else True
        client = _Oras(hostname=ref.registry, tls_verify=verify, auth_backend="basic")
        scheme = "https"
        try:
            probe = client.session.get(f"https://{ref.registry}/v2/", verify=verify, timeout=self.timeout)
        except requests.exceptions.SSLError as err:
            if not ref.registry.startswith(LOOPBACK) or "WRONG_VERSION_NUMBER" not in str(err).upper():
                raise Unavailable(
                    f"{ref}: TLS with {ref.registry} failed ({_reason(err)}); give its CA with --registry-ca",
                    artifact=str(ref),
                ) from None
            scheme, client = "http", _Oras(hostname=ref.registry, insecure=True, auth_backend="basic")
            probe = self._call(ref, "reach", lambda: client.session.get(f"http://{ref.registry}/v2/", timeout=10))
        except requests.exceptions.RequestException as err:
            raise Unavailable(f"{ref}: cannot reach {ref.registry}: {_reason(err)}", artifact=str(ref)) from None
        if probe.headers.get("WWW-Authenticate", "").lower().startswith("bearer"):
            client = _Oras(hostname=ref.registry, insecure=scheme == "http", tls_verify=verify, auth_backend="token")
        client.auth.load_configs(client.get_container(ref.target), configs=[str(self.config)] if self.config else None)
        basic = getattr(client.auth, "_basic_auth", None)  # what oras found for this registry in config.json
        if client.auth.__class__.__name__ == "BasicAuth":
            client.auth._basic_auth = basic or ""  # none: asked for, the registry refuses, and we say so
            if basic:  # sent with every request: an upload is not cut short by a 401 that asks for it
                client.session.headers["Authorization"] = f"Basic {basic}"
        if not basic:
            self._anonymous.add(ref.registry)
        self._clients[ref.registry] = (client, scheme)
        return client, scheme

    def _check(self, ref: Reference, what: str, response: requests.Response) -> None:
        _check(ref, what, response, ref.registry in self._anonymous)

    def _call(self, ref: Reference, what: str, fn: Any) -> Any:
        try:
            return fn()
        except NeonGridError:
            raise
        except (requests.exceptions.RequestException, OSError) as err:
            raise Unavailable(
                f"{ref}: the registry {ref.registry} failed while we {what} it: {_reason(err)}", artifact=str(ref)
            ) from None
        except ValueError as err:  # oras: "Cannot respond to request for authentication."
            raise PermissionDenied(
                f"{ref}: {ref.registry} wants credentials we do not have ({err}); log in to it in a docker "
                "config.json and give it with --registry-config",
                artifact=str(ref),
            ) from None

    def _manifest(self, ref: Reference, name: str, accept: str) -> tuple[bytes, str]:
        client, scheme = self._client(ref)
        url = f"{scheme}://{ref.registry}/v2/{ref.repository}/manifests/{name}"
        response = self._call(ref, "read", lambda: client.do_request(url, "GET", headers={"Accept": accept}))
        self._check(ref, "read", response)
        raw = response.content
        if len(raw) > MAX_MANIFEST:
            raise InvalidArgument(f"{ref}: its manifest is {len(raw)} bytes, over {MAX_MANIFEST}", field="artifact")
        return raw, _digest(raw)

    def _index(self, ref: Reference, tag: str) -> dict[str, Any] | None:
        client, scheme = self._client(ref)
        url = f"{scheme}://{ref.registry}/v2/{ref.repository}/manifests/{tag}"
        response = self._call(ref, "read", lambda: client.do_request(url, "GET", headers={"Accept": INDEX}))
        if response.status_code == 404:
            return None
        self._check(ref, "read the referrers of", response)
        index = _json(ref, response.content[:MAX_MANIFEST])
        return index if isinstance(index.get("manifests"), list) else None

    def _blob(self, ref: Reference, digest: str, size: int) -> bytes:
        client, scheme = self._client(ref)
        url = f"{scheme}://{ref.registry}/v2/{ref.repository}/blobs/{digest}"
        response = self._call(ref, "read", lambda: client.do_request(url, "GET"))
        self._check(ref, f"read the blob {digest} of", response)
        if len(response.content) != size or _digest(response.content) != digest:
            raise IntegrityError(f"{ref}: the blob {digest} arrived altered", artifact=str(ref))
        return bytes(response.content)

    def _put_blob(self, ref: Reference, body: bytes) -> None:
        client, scheme = self._client(ref)
        base = f"{scheme}://{ref.registry}/v2/{ref.repository}/blobs"
        digest = _digest(body)
        if self._call(ref, "push", lambda: client.do_request(f"{base}/{digest}", "HEAD")).status_code == 200:
            return
        started = self._call(ref, "push", lambda: client.do_request(f"{base}/uploads/", "POST"))
        self._check(ref, "push", started)
        location = client._get_location(started, client.get_container(ref.target))
        joiner = "&" if "?" in location else "?"
        put = self._call(
            ref,
            "push",
            lambda: client.do_request(
                f"{location}{joiner}digest={digest}",
                "PUT",
                data=body,
                headers={"Content-Type": "application/octet-stream"},
            ),
        )
        self._check(ref, "push", put)

    def _put_manifest(self, ref: Reference, name: str, raw: bytes, media_type: str) -> requests.Response:
        client, scheme = self._client(ref)
        url = f"{scheme}://{ref.registry}/v2/{ref.repository}/manifests/{name}"
        response = self._call(
            ref, "push", lambda: client.do_request(url, "PUT", data=raw, headers={"Content-Type": media_type})
        )
        self._check(ref, "push", response)
        return response  # type: ignore[no-any-return]


def _check(ref: Reference, what: str, response: requests.Response, anonymous: bool = False) -> None:
    if response.status_code < 300:
        return
    detail = _registry_errors(response)
    if response.status_code in (401, 403):
        fix = (
            "we have no credentials for it: `docker login` (or write its auths entry in a docker config.json) "
            "and give that file with --registry-config"
            if anonymous
            else "check its credentials in the docker config.json given with --registry-config"
        )
        raise PermissionDenied(
            f"{ref}: {ref.registry} refused to let us {what} it ({response.status_code}{detail}); {fix}",
            artifact=str(ref),
        )
    if response.status_code == 404:
        raise NotFound(
            f"{ref}: not in {ref.registry} ({what}: 404{detail}); push it first (`neon push FILE {ref}`)",
            kind="artifact",
            name=str(ref),
        )
    raise Unavailable(f"{ref}: {ref.registry} answered {response.status_code}{detail} when asked to {what} it")


def _registry_errors(response: requests.Response) -> str:
    try:
        errors = response.json().get("errors", [])
        return "".join(f"; {e.get('code')}: {e.get('message')}" for e in errors[:3] if isinstance(e, dict))
    except (ValueError, AttributeError):
        return ""


def _reason(err: Exception) -> str:
    """The cause in a few words (the OS's or TLS's own), not urllib3's whole chain."""
    text = str(err)
    found = re.search(r"\[Errno [^\]]+\] [^'\")]+|\[SSL[^\]]*\] [^(]+|Read timed out|Connection broken: [^\"']+", text)
    if found:
        return found.group(0).strip()
    return text if len(text) < 300 else text[:300] + "..."


def _json(ref: Reference, raw: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except ValueError:
        raise InvalidArgument(f"{ref}: the registry answered something that is not JSON", field="artifact") from None
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{ref}: the registry answered JSON that is not an object", field="artifact")
    return doc


def _chunks(response: requests.Response, expected: int) -> Any:
    """The body in pieces, stopping a registry that sends more than the manifest announced."""
    received = 0
    for chunk in response.iter_content(chunk_size=1 << 20):
        received += len(chunk)
        if received > expected:
            raise OSError(f"the layer is longer than the {expected} bytes its manifest announces")
        yield chunk


def _fallback_tag(digest: str) -> str:
    return digest.replace(":", "-")


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
