"""The control plane's side of signed components.

It keeps the signatures uploaded with each artifact (in the artifact's etcd
record), refuses at apply an application whose artifacts no trusted key
signed, and hands agents what they need to check for themselves: the
signatures and the keys to trust. The agent's check is the one that counts;
the apply-time one gives the user the same error before anything is written.
"""

from __future__ import annotations

from typing import Any

from controlplane.security.identity import Security
from controlplane.state.store import Store
from neon.errors import InvalidArgument, Untrusted
from neon.manifest import AppSpec
from neon.security import signing
from neon.security.signing import UNSIGNED_ALLOWED, Signature


def checked_signatures(digest: str, documents: list[str], name: str) -> list[Signature]:
    """Parse uploaded signature documents; each must be over ``digest`` and verify with its own key."""
    if len(documents) > signing.MAX_SIGNATURES:
        raise InvalidArgument(
            f"{name} comes with {len(documents)} signatures; at most {signing.MAX_SIGNATURES} are kept per "
            f"artifact: remove the old ones from {name}.sig (one per line) and upload again",
            field="signatures",
        )
    out = []
    for i, text in enumerate(documents):
        sig = Signature.from_json(text, f"signature {i + 1} of {name}")
        if sig.artifact != digest:
            raise InvalidArgument(
                f"{name}: signature {i + 1} is for {sig.artifact}, but the upload is {digest}; sign this file again",
                field="signatures",
            )
        signing.verify(name, digest, [sig], [sig.key])  # a signature that does not verify is refused now
        out.append(sig)
    return out


def merged(record: dict[str, Any] | None, new: list[Signature]) -> list[str]:
    """The signatures to keep for an artifact: the ones it had, then the new ones (one per key, a key
    signing again moves to the end); at most :data:`~neon.security.signing.MAX_SIGNATURES`, the oldest dropped."""
    kept = {Signature.from_json(t).key: t for t in (record or {}).get("signatures", [])}
    for sig in new:
        kept.pop(sig.key, None)
        kept[sig.key] = sig.to_json()
    return list(kept.values())[-signing.MAX_SIGNATURES :]


def trusted_for(spec: AppSpec | None, security: Security) -> list[str]:
    """The keys an application's artifacts must be signed by: its own list, else the cluster's."""
    if security.allow_unsigned:
        return [UNSIGNED_ALLOWED]
    return list((spec.trusted_keys if spec is not None else ()) or security.trusted_keys)


def check_app(spec: AppSpec, records: dict[str, dict[str, Any]], security: Security) -> None:
    """Refuse, naming the component, an application with an artifact no trusted key signed.

    ``records`` are the artifacts' records (by digest), as apply has just read them.
    """
    trusted = trusted_for(spec, security)
    if trusted == [UNSIGNED_ALLOWED]:
        return
    for i, comp in enumerate(spec.components):
        sigs = [Signature.from_json(t) for t in records[comp.artifact].get("signatures", [])]
        try:
            signing.verify(f"spec.components[{i}] {comp.name}: artifact", comp.artifact, sigs, trusted)
        except Untrusted as err:
            raise Untrusted(err.message, artifact=comp.artifact, component=comp.name) from None


async def for_assignment(doc: dict[str, Any], spec: AppSpec | None, store: Store, security: Security) -> dict[str, Any]:
    """A component assignment with what its agent checks before compiling: signatures, inputs, trusted keys."""
    record = await store.artifacts.get_artifact(doc["artifact"]) or {}
    signatures = list(record.get("signatures", []))
    inputs = list(record.get("inputs", []))
    for digest in inputs:
        signatures += (await store.artifacts.get_artifact(digest) or {}).get("signatures", [])
    trusted = trusted_for(spec, security)
    source = str(record.get("name", ""))
    pulled = {"source": source} if source.startswith("oci://") else {}
    return {**doc, "signatures": signatures, "inputs": inputs, "trusted_keys": trusted} | pulled
