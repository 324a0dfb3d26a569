"""The project's certificate authority: creating it, issuing identities, reading them back.

Every process proves who it is with an X.509 certificate signed by the project
CA. The certificate's common name is the identity (a node name, a user name)
and its organisation is the role, as Kubernetes puts groups there:

- ``controlplane``: control-plane replicas (server name ``controlplane.neon-grid``);
- ``agent``: one per node, issued when the node joins (server names
  ``agent.neon-grid`` and ``NODE.node.neon-grid``);
- ``admin`` and ``viewer``: users of the control API (read-write and read-only);
- ``etcd``: the etcd members (server name ``etcd.neon-grid``), which admit as clients only certificates that
  answer to ``controlplane.neon-grid`` (etcd's ``--client-cert-allowed-hostname``), and as peers only each other.

Clients check servers by these role names rather than by host or IP, so an
agent reached at any address must still hold an agent certificate, and only
the control plane's certificate answers to ``controlplane.neon-grid``.

``neon certs init DIR`` lays out a development PKI::

    ca.pem ca.key                       the CA (the key signs joining agents' certificates)
    controlplane.pem controlplane.key   every control-plane replica
    admin.pem admin.key                 a read-write user
    viewer.pem viewer.key               a read-only user
    etcd.pem etcd.key                   every etcd member (clients and peers over TLS)
    signing.key signing.pub             the control plane's ed25519 key for fused artifacts
    publisher.key publisher.pub         an ed25519 key to sign components with (``neon sign``)
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from neon._validate import NAME as NAME_PATTERN
from neon.errors import InvalidArgument, NotFound
from neon.security import signing
from neon.security.keyfiles import write_private

DOMAIN = "neon-grid"
CONTROLPLANE_NAME = f"controlplane.{DOMAIN}"
AGENT_NAME = f"agent.{DOMAIN}"
ETCD_NAME = f"etcd.{DOMAIN}"
ADMIN, VIEWER, AGENT, CONTROLPLANE, ETCD = "admin", "viewer", "agent", "controlplane", "etcd"
USER_ROLES = (ADMIN, VIEWER)
ROLES = (ADMIN, VIEWER, AGENT, CONTROLPLANE)
CA_DAYS = 3650
LEAF_DAYS = 365


def node_server_name(node: str) -> str:
    return f"{node}.node.{DOMAIN}"


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, both PEM."""

    cert: bytes
    key: bytes


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def create_ca(common_name: str = "Neon Grid CA") -> Issued:
    key = new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # keyCertSign, cRLSign
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def server_names(name: str, role: str) -> list[str]:
    """The DNS names a certificate answers to: its role's name (and, for an agent, the node's)."""
    return {
        CONTROLPLANE: [CONTROLPLANE_NAME],
        AGENT: [AGENT_NAME, node_server_name(name)],
        ETCD: [ETCD_NAME],
    }.get(role, [])


def issue(
    ca: Issued,
    name: str,
    role: str,
    public_key: ec.EllipticCurvePublicKey | None = None,
    hosts: tuple[str, ...] = (),
    lifetime: float = LEAF_DAYS * 86400.0,
) -> Issued:
    """Sign a certificate for ``name`` with ``role``; a new key is made unless ``public_key`` is given.

    The names and usages come from the role alone: nothing a requester asks for
    (a CSR's extensions) reaches the certificate.
    """
    if role not in (*ROLES, ETCD):  # an etcd member's certificate is no caller of the API
        raise InvalidArgument(f"role must be one of {', '.join(ROLES)}, got {role!r}", field="role")
    if not NAME_PATTERN.match(name):
        raise InvalidArgument(f"identity name must be a lowercase DNS label, got {name!r}", field="name")
    ca_cert = x509.load_pem_x509_certificate(ca.cert)
    ca_key = serialization.load_pem_private_key(ca.key, None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = new_key() if public_key is None else None
    pub = key.public_key() if key is not None else public_key
    assert pub is not None
    now = _now()
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in server_names(name, role)]
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    builder = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [x509.NameAttribute(NameOID.COMMON_NAME, name), x509.NameAttribute(NameOID.ORGANIZATION_NAME, role)]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(pub)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(seconds=min(300.0, lifetime / 10)))
        .not_valid_after(now + datetime.timedelta(seconds=lifetime))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key) if key is not None else b"")


def csr_for(name: str) -> tuple[bytes, bytes]:
    """A fresh key and a certificate request for ``name`` (what a joining agent sends); PEM both."""
    key = new_key()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def public_key_of_csr(csr_pem: bytes, name: str) -> ec.EllipticCurvePublicKey:
    """The key a request asks to certify, once its signature (proof it holds the key) and name check out."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as err:
        raise InvalidArgument(f"the certificate request is not a PEM CSR: {err}", field="csr") from None
    if not csr.is_signature_valid:
        raise InvalidArgument("the certificate request's signature does not verify", field="csr")
    names = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if names != [name]:
        raise InvalidArgument(f"the certificate request names {names}, not node {name!r}", field="csr")
    key = csr.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise InvalidArgument("the certificate request's key must be ECDSA P-256", field="csr")
    return key


@dataclass(frozen=True)
class CertInfo:
    """What a certificate says about its holder."""

    name: str
    role: str
    serial: str
    not_after: float
    not_before: float = 0.0

    def renew_at(self) -> float:
        """When to ask for a new certificate: two thirds into its life (as kubelet does, roughly)."""
        return self.not_before + (self.not_after - self.not_before) * 2 / 3


def describe(cert_pem: bytes) -> CertInfo:
    cert = x509.load_pem_x509_certificate(cert_pem)
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    org = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return CertInfo(
        name=str(cn[0].value) if cn else "",
        role=str(org[0].value) if org else "",
        serial=f"{cert.serial_number:x}",
        not_after=cert.not_valid_after_utc.timestamp(),
        not_before=cert.not_valid_before_utc.timestamp(),
    )


def save(directory: Path, stem: str, issued: Issued) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{stem}.pem").write_bytes(issued.cert)
    if issued.key:
        write_private(directory / f"{stem}.key", issued.key)


def load(directory: Path, stem: str) -> Issued:
    cert, key = directory / f"{stem}.pem", directory / f"{stem}.key"
    missing = [str(p) for p in (cert, key) if not p.is_file()]
    if missing:
        raise NotFound(
            f"no {', '.join(missing)}; create a PKI with `neon certs init --dir {directory}`",
            kind="certificate",
            name=stem,
        )
    issued = Issued(cert.read_bytes(), key.read_bytes())
    if not _belong_together(issued):
        raise InvalidArgument(
            f"{cert} and {key} do not belong together (the key is not the certificate's); "
            "restore the pair, or remove both and join or issue again",
            field="pki",
        )
    return issued


def _belong_together(issued: Issued) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(issued.cert)
        key = serialization.load_pem_private_key(issued.key, None)
    except ValueError:
        return False
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return bool(cert.public_key().public_bytes(*fmt) == key.public_key().public_bytes(*fmt))


def init(directory: Path, hosts: tuple[str, ...] = (), etcd_hosts: tuple[str, ...] = ()) -> list[Path]:
    """Create a development PKI in ``directory`` (see the module docstring); refuses to overwrite a CA."""
    if (directory / "ca.pem").exists():
        raise InvalidArgument(
            f"{directory} already holds a CA (ca.pem); use another --dir, or remove it to start over",
            field="dir",
        )
    ca = create_ca()
    save(directory, "ca", ca)
    save(directory, CONTROLPLANE, issue(ca, CONTROLPLANE, CONTROLPLANE, hosts=("localhost", "127.0.0.1", *hosts)))
    save(directory, ADMIN, issue(ca, ADMIN, ADMIN))
    save(directory, VIEWER, issue(ca, VIEWER, VIEWER))
    ensure_etcd(directory, etcd_hosts)
    for stem in ("signing", "publisher"):
        signing.create_key(directory / f"{stem}.key")
    return sorted(directory.iterdir())


def ensure_etcd(directory: Path, hosts: tuple[str, ...] = ()) -> Path:
    """The etcd members' certificate in ``directory``, issued by its CA if it is not there yet (a PKI made
    before etcd was served over TLS has none); it answers to ``etcd.neon-grid``, localhost, 127.0.0.1 and
    ``hosts`` (the names members reach each other at)."""
    if not (directory / f"{ETCD}.pem").exists():
        ca = load(directory, "ca")
        save(directory, ETCD, issue(ca, ETCD, ETCD, hosts=("localhost", "127.0.0.1", *hosts)))
    return directory / f"{ETCD}.pem"
