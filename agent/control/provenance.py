"""An artifact's provenance, checked before anything is compiled: its bytes match its digest, and a
trusted key signed the digest (a fused artifact: the control plane signed it over its inputs, and each
input is signed)."""

from __future__ import annotations

from agent.control.artifact_cache import ArtifactCache
from neon.errors import IntegrityError
from neon.model import ComponentAssignment
from neon.observe import log
from neon.security.signing import UNSIGNED_ALLOWED, Signature, verify, verify_fused

_log = log.get("neon.agent")


def check_provenance(label: str, spec: ComponentAssignment, artifacts: ArtifactCache, controlplane_key: str) -> None:
    """Before anything is compiled: the bytes match the digest, and a trusted key signed the digest
    (for a fused artifact: the control plane signed it over its inputs, and each input is signed)."""
    if not artifacts.verified(spec.artifact):
        raise IntegrityError(
            f"{label}: artifact {spec.artifact} is missing or does not match its digest on this node",
            expected=spec.artifact,
        )
    trusted = list(spec.trusted_keys)
    if trusted == [UNSIGNED_ALLOWED]:
        _log.warning(
            "running an artifact without checking its signature (control plane: --allow-unsigned)",
            component=label,
            artifact=spec.artifact,
        )
        return
    signatures = [Signature.from_json(text, f"{label} signature") for text in spec.signatures]
    if spec.inputs:
        own = next((s for s in signatures if s.artifact == spec.artifact), None)
        if controlplane_key:
            verify_fused(label, spec.artifact, list(spec.inputs), own, [controlplane_key])
        for digest in spec.inputs:
            verify(f"{label} (fused input)", digest, signatures, trusted)
        return
    verify(label, spec.artifact, signatures, trusted)
