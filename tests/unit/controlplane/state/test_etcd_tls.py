"""etcd behind mutual TLS, as every cluster runs it: the control plane's certificate is let in; plaintext, a
certificate from another CA and one from the cluster's own CA for another identity (an agent's) are refused;
a control plane refuses to reach etcd in plaintext unless it runs --insecure."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Iterator

import aetcd
import pytest

from cli.devcluster.etcd_launcher import EtcdServer
from controlplane.config import ControlPlaneConfig
from controlplane.security.identity import Security
from controlplane.state.etcd import etcd_client
from controlplane.state.store import Store
from neon.errors import InvalidArgument
from neon.security import pki
from neon.security.tls import Credentials


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    pki.init(directory)
    return directory


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory, pki_dir: Path) -> Iterator[EtcdServer]:
    with EtcdServer(tmp_path_factory.mktemp("etcd") / "data", pki_dir=pki_dir) as server:
        yield server


def _round_trip(url: str, tls: Credentials | None) -> bytes:
    async def main() -> bytes:
        store = Store(url, timeout=2, tls=tls)
        try:
            await store.connect(wait=10)
            await store.client.put(b"/neon/tls-probe", b"ok")
            got = await store.client.get(b"/neon/tls-probe")
            return bytes(got.value)
        finally:
            await store.close()

    return asyncio.run(main())


def test_the_control_planes_certificate_is_let_in(etcd: EtcdServer, pki_dir: Path) -> None:
    assert etcd.url.startswith("https://")
    assert _round_trip(etcd.url, Credentials.from_dir(pki_dir, pki.CONTROLPLANE)) == b"ok"


def test_plaintext_and_other_identities_are_refused(etcd: EtcdServer, pki_dir: Path) -> None:
    ca = pki.load(pki_dir, "ca")
    agent = pki.issue(ca, "edge-1", pki.AGENT)  # the cluster's own CA, but not the control plane
    stranger_ca = pki.create_ca("another CA")
    impostor = pki.issue(stranger_ca, pki.CONTROLPLANE, pki.CONTROLPLANE)  # the right name, another CA
    ca_pem = (pki_dir / "ca.pem").read_bytes()
    refused = {
        "plaintext": (etcd.url.replace("https://", "http://"), None),
        "an agent's certificate": (etcd.url, Credentials(ca_pem, agent.cert, agent.key)),
        "another CA's control-plane certificate": (etcd.url, Credentials(ca_pem, impostor.cert, impostor.key)),
        "an admin's certificate": (etcd.url, Credentials.from_dir(pki_dir, pki.ADMIN)),
    }
    assert _answered(etcd.url, Credentials.from_dir(pki_dir, pki.CONTROLPLANE)), "the probe itself works"
    let_in = {what: _answered(url, tls) for what, (url, tls) in refused.items()}
    assert not any(let_in.values()), f"etcd let in: {[what for what, yes in let_in.items() if yes]}"


def _answered(url: str, tls: Credentials | None) -> bool:
    """Whether etcd answers one request (without the store's retries: a refused handshake fails at once)."""

    async def main() -> bool:
        client = etcd_client(url, 2.0, tls)
        try:
            await client.status()
            return True
        except aetcd.ClientError:
            return False
        finally:
            await client.close()

    return asyncio.run(main())


def test_https_etcd_needs_the_control_planes_certificate(etcd: EtcdServer) -> None:
    with pytest.raises(InvalidArgument, match="served over TLS"):
        Store(etcd.url, tls=Credentials.insecure())


def test_a_control_plane_refuses_plaintext_etcd_unless_insecure(pki_dir: Path, tmp_path: Path) -> None:
    config = ControlPlaneConfig(etcd="http://127.0.0.1:2379", pki_dir=pki_dir, data_dir=tmp_path)
    with pytest.raises(InvalidArgument, match="would be reached in plaintext"):
        Security.load(config)
    plain = ControlPlaneConfig(etcd="http://127.0.0.1:2379", insecure=True, data_dir=tmp_path)
    assert Security.load(plain).creds.plaintext
    Security.load(ControlPlaneConfig(etcd="https://127.0.0.1:2379", pki_dir=pki_dir, data_dir=tmp_path))
