"""The control plane's secrets and trust policy, loaded once from its PKI directory and flags."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controlplane.config import ControlPlaneConfig
from controlplane.state.etcd import etcd_scheme
from controlplane.state.secret_store import KEK_PURPOSE
from neon.errors import InvalidArgument
from neon.observe import log
from neon.security import pki, sealing, signing
from neon.security.tls import Credentials, warn_plaintext

_log = log.get("neon.controlplane")


@dataclass(frozen=True)
class Security:
    """What this replica presents (``creds``), signs with (the CA, the fused-artifact key) and trusts."""

    creds: Credentials
    ca: pki.Issued | None = None
    signing_key: Ed25519PrivateKey | None = None
    trusted_keys: tuple[str, ...] = ()
    allow_unsigned: bool = False
    secrets_kek: bytes | None = None  # seals the secrets' data keys; derived from the CA's key

    @classmethod
    def load(cls, config: ControlPlaneConfig) -> Security:
        trusted = [signing.read_public(k) for k in config.trusted_keys]
        if config.allow_unsigned:
            _log.warning(
                "UNSIGNED ARTIFACTS ALLOWED: agents run artifacts without checking who signed them (--allow-unsigned)"
            )
        if config.insecure:
            warn_plaintext("controlplane")
            return cls(Credentials.insecure(), trusted_keys=tuple(trusted), allow_unsigned=config.allow_unsigned)
        if etcd_scheme(config.etcd) != "https":
            raise InvalidArgument(
                f"etcd at {config.etcd} would be reached in plaintext: serve it over TLS with the cluster's "
                "certificates (`neon certs init` makes etcd.pem; deploy/README.md shows the flags) and give its "
                "https:// URL, or run with --insecure",
                field="etcd",
            )
        creds = Credentials.from_dir(config.pki_dir, pki.CONTROLPLANE)
        info = creds.identity
        if info is None or info.role != pki.CONTROLPLANE:
            raise InvalidArgument(
                f"{config.pki_dir}/controlplane.pem is not a control-plane certificate "
                f"(role {info.role if info else ''!r})",
                field="pki",
            )
        publisher = config.pki_dir / "publisher.pub"
        if publisher.is_file():
            trusted.append(signing.read_public(str(publisher)))
        ca = pki.load(config.pki_dir, "ca")
        return cls(
            creds=creds,
            ca=ca,
            secrets_kek=sealing.derive_key(ca.key, KEK_PURPOSE),
            signing_key=signing.load_key(config.pki_dir / "signing.key"),
            trusted_keys=tuple(dict.fromkeys(trusted)),
            allow_unsigned=config.allow_unsigned,
        )

    @property
    def no_secrets(self) -> str:
        """Why this replica cannot hold secrets (empty: it can)."""
        if self.secrets_kek is not None:
            return ""
        return (
            "secrets need mutual TLS and the cluster CA's key, and this control plane runs --insecure: "
            "run it with --pki (neon certs init makes one)"
        )

    @property
    def signing_public(self) -> str:
        return signing.public_text(self.signing_key.public_key()) if self.signing_key is not None else ""
