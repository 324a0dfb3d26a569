"""Signed components: ed25519 signatures over artifact digests.

A publisher signs what an artifact's digest names (``neon sign``); agents
check the digest of the bytes they hold and a signature by a trusted key before
they compile anything. A fused artifact is made by the control plane, so it is
signed by the control plane's key over its own digest and its inputs' digests;
an agent accepts it only when that signature verifies and every input carries
a trusted publisher's signature too.

Keys are written ``ed25519:<base64 of the 32-byte public key>``. A signature
travels as a small JSON document (``ARTIFACT.sig`` beside the file)::

    {"artifact": "sha256:...", "key": "ed25519:...", "signature": "<base64>"}
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from neon.errors import InvalidArgument, NotFound, Untrusted
from neon.security.keyfiles import write_private

PREFIX = "ed25519:"
UNSIGNED_ALLOWED = "*"  # as the only trusted key: the control plane runs with --allow-unsigned
# Signatures kept per artifact (in ARTIFACT.sig and in the control plane's record); the oldest go first.
MAX_SIGNATURES = 16
_ARTIFACT = b"neon-grid/artifact/v1\n"
_FUSED = b"neon-grid/fused/v1\n"
_CODE = b"neon-grid/native-code/v1\n"


@dataclass(frozen=True)
class Signature:
    """One signature over an artifact digest (or, for a fused artifact, over it and its inputs)."""

    artifact: str
    key: str
    signature: str

    def to_json(self) -> str:
        return json.dumps({"artifact": self.artifact, "key": self.key, "signature": self.signature}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes, where: str = "signature") -> Signature:
        try:
            doc = json.loads(text)
            sig = cls(artifact=str(doc["artifact"]), key=str(doc["key"]), signature=str(doc["signature"]))
        except (ValueError, KeyError, TypeError) as err:
            raise InvalidArgument(
                f"{where} is not a signature document ({{artifact, key, signature}}): {err}", field=where
            ) from None
        parse_public(sig.key, where)
        return sig


def public_text(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PREFIX + base64.b64encode(raw).decode()


def parse_public(text: str, where: str = "key") -> Ed25519PublicKey:
    """``ed25519:<base64>`` to a key; InvalidArgument naming ``where`` otherwise."""
    if not text.startswith(PREFIX):
        raise InvalidArgument(f"{where}: a public key is written 'ed25519:<base64>', got {text[:60]!r}", field=where)
    try:
        raw = base64.b64decode(text[len(PREFIX) :], validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise InvalidArgument(f"{where}: {text[:60]!r} is not a 32-byte ed25519 key in base64", field=where) from None


def create_key(path: Path) -> str:
    """Write a new private key to ``path`` (0600) and its public key to ``path.pub``; returns the public key."""
    if path.exists():
        raise InvalidArgument(f"{path} exists; refusing to overwrite a key", field="key")
    key = Ed25519PrivateKey.generate()
    write_private(
        path,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    public = public_text(key.public_key())
    path.with_suffix(".pub").write_text(public + "\n")
    return public


def load_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), None)
    except FileNotFoundError:
        raise NotFound(
            f"no signing key {path}; create one with `neon keys create {path}`", kind="key", name=str(path)
        ) from None
    except ValueError as err:
        raise InvalidArgument(f"{path} is not a PEM private key: {err}", field="key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidArgument(f"{path} is not an ed25519 key", field="key")
    return key


def read_public(text_or_path: str) -> str:
    """A trusted key given inline (``ed25519:...``) or as a file holding one; returned in text form."""
    text = text_or_path.strip()
    if not text.startswith(PREFIX):
        path = Path(text)
        if not path.is_file():
            raise InvalidArgument(f"trusted key {text!r} is neither 'ed25519:<base64>' nor a file", field="key")
        text = path.read_text().strip()
    parse_public(text, f"trusted key {text_or_path}")
    return text


def sign(key: Ed25519PrivateKey, digest: str) -> Signature:
    raw = key.sign(_ARTIFACT + digest.encode())
    return Signature(digest, public_text(key.public_key()), base64.b64encode(raw).decode())


def signatures_beside(artifact: Path) -> list[str]:
    """The signature documents kept in ``ARTIFACT.sig`` (one per line), or none."""
    sig_file = artifact.with_name(artifact.name + ".sig")
    if not sig_file.is_file():
        return []
    return [line for line in sig_file.read_text().splitlines() if line.strip()]


def file_digest(path: Path) -> str:
    """A file's content address, ``sha256:<hex>``, read a MiB at a time."""
    import hashlib

    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while data := handle.read(1 << 20):
            hasher.update(data)
    return f"sha256:{hasher.hexdigest()}"


def sign_file(artifact: Path, key: Ed25519PrivateKey) -> Signature:
    """Sign a file and keep the signature in ``ARTIFACT.sig`` (one JSON document per line, one per key,
    the newest last; past :data:`MAX_SIGNATURES` the oldest is dropped)."""
    sig = sign(key, file_digest(artifact))
    out = artifact.with_name(artifact.name + ".sig")
    out.write_text("\n".join(with_signature(signatures_beside(artifact), sig, str(out))) + "\n")
    return sig


def with_signature(documents: list[str], sig: Signature, where: str = "") -> list[str]:
    """Signature documents plus ``sig``: one per key, the newest last, at most :data:`MAX_SIGNATURES`
    (the oldest dropped)."""
    kept = [line for line in documents if Signature.from_json(line, where).key != sig.key]
    return [*kept, sig.to_json()][-MAX_SIGNATURES:]


def _fused_message(digest: str, inputs: list[str]) -> bytes:
    return _FUSED + digest.encode() + b"\n" + "\n".join(sorted(inputs)).encode()


def sign_fused(key: Ed25519PrivateKey, digest: str, inputs: list[str]) -> Signature:
    raw = key.sign(_fused_message(digest, inputs))
    return Signature(digest, public_text(key.public_key()), base64.b64encode(raw).decode())


def _code_message(artifact: str, engine: str, code: str) -> bytes:
    return _CODE + f"{artifact}\n{engine}\n{code}".encode()


def sign_code(key: Ed25519PrivateKey, artifact: str, engine: str, code: str) -> Signature:
    """The control plane's signature over native code: the artifact it was compiled from, the engine key it was
    compiled for and the code's own digest (the signature's ``artifact`` is the code's digest)."""
    raw = key.sign(_code_message(artifact, engine, code))
    return Signature(code, public_text(key.public_key()), base64.b64encode(raw).decode())


def verify_code(artifact: str, engine: str, code: str, signature: Signature, trusted: list[str]) -> None:
    """Check native code's signature before anything loads it; raises Untrusted saying what is wrong."""
    label = f"native code {code[:19]}… of {artifact[:19]}… for {engine}"
    if signature.key not in trusted:
        raise Untrusted(f"{label} is refused: signed by a key this agent does not trust ({signature.key[:20]}…)")
    if signature.artifact != code or not _valid(signature, _code_message(artifact, engine, code)):
        raise Untrusted(
            f"{label} is refused: the control plane's signature does not match it (tampered, or made for another "
            "artifact or engine)"
        )


def _valid(sig: Signature, message: bytes) -> bool:
    try:
        parse_public(sig.key).verify(base64.b64decode(sig.signature, validate=True), message)
        return True
    except (InvalidSignature, binascii.Error, ValueError, InvalidArgument):
        return False


def verify(label: str, digest: str, signatures: list[Signature], trusted: list[str]) -> str:
    """The trusted key that signed ``digest``; raises Untrusted naming ``label`` when none did."""
    if not trusted:
        raise Untrusted(
            f"{label} ({digest}) cannot be checked: no signing key is trusted; "
            "name one in the trust policy (neon controlplane --trust-key) or in spec.trustedKeys",
            artifact=digest,
        )
    keys = set(trusted)
    mine = [s for s in signatures if s.artifact == digest]
    for sig in mine:
        if sig.key in keys and _valid(sig, _ARTIFACT + digest.encode()):
            return sig.key
    if not mine:
        why = "it is not signed; sign it with `neon sign`"
    elif any(s.key in keys for s in mine):
        why = "its signature does not match its content (tampered, or signed for other bytes)"
    else:
        names = ", ".join(sorted({s.key[:20] + "…" for s in mine}))
        why = f"it is signed only by keys not trusted here ({names})"
    raise Untrusted(f"{label} ({digest}) is refused: {why}", artifact=digest)


def verify_fused(label: str, digest: str, inputs: list[str], signature: Signature | None, trusted: list[str]) -> None:
    """Check the control plane's signature over a fused artifact and its inputs' digests."""
    if signature is None:
        raise Untrusted(f"{label} ({digest}) is refused: the fused artifact carries no control-plane signature")
    if signature.key not in trusted:
        raise Untrusted(f"{label} ({digest}) is refused: fused by a key this agent does not trust ({signature.key})")
    if signature.artifact != digest or not _valid(signature, _fused_message(digest, inputs)):
        raise Untrusted(
            f"{label} ({digest}) is refused: the control plane's signature does not match it and its inputs"
        )
