"""A real OCI registry on loopback: Debian's ``docker-registry`` (the CNCF distribution server), for ``./run dev``
and the tests. Plain HTTP with no accounts by default (as a laptop's registry on 127.0.0.1 is), or with
``secure=True`` TLS from a CA of its own and one htpasswd account, as a private registry is."""

from __future__ import annotations

import base64
import http.client
import json
import secrets
import shutil
import ssl
import subprocess
import time
from pathlib import Path

import yaml

from cli.devcluster.etcd_launcher import free_port
from cli.devcluster.processes import terminate
from neon.errors import Unavailable
from neon.security import pki

BINARY = Path("/usr/bin/docker-registry")
USER = "neon"


def registry_binary() -> Path:
    found = BINARY if BINARY.exists() else (Path(p) if (p := shutil.which("docker-registry")) else None)
    if found is None:
        raise Unavailable("no OCI registry binary: apt-get install docker-registry (Debian's CNCF distribution)")
    return found


class RegistryServer:
    """One registry in ``workdir`` (its storage, configuration and log); a context manager."""

    def __init__(self, workdir: Path, port: int = 0, secure: bool = False) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.secure = secure
        self.password = secrets.token_urlsafe(16) if secure else ""
        self.ca = workdir / "ca.pem"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> RegistryServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config: dict[str, object] = {
            "version": 0.1,
            "log": {"level": "warn"},
            "storage": {"filesystem": {"rootdirectory": str(self.workdir / "data")}, "delete": {"enabled": True}},
            "http": {"addr": self.host, "headers": {"X-Content-Type-Options": ["nosniff"]}},
        }
        if self.secure:
            self._credentials(config)
        (self.workdir / "config.yml").write_text(yaml.safe_dump(config))
        with (self.workdir / "registry.log").open("ab") as log:
            self.process = subprocess.Popen(
                [str(registry_binary()), "serve", str(self.workdir / "config.yml")],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._wait_ready()
        return self

    def _credentials(self, config: dict[str, object]) -> None:
        import bcrypt  # only a secure test registry needs it (a dev dependency)

        ca = pki.create_ca("Neon Grid test registry CA")
        server = pki.issue(ca, "registry", pki.ETCD, hosts=("127.0.0.1", "localhost"))
        self.ca.write_bytes(ca.cert)
        (self.workdir / "tls.pem").write_bytes(server.cert)
        (self.workdir / "tls.key").write_bytes(server.key)
        hashed = bcrypt.hashpw(self.password.encode(), bcrypt.gensalt(rounds=6)).decode()
        (self.workdir / "htpasswd").write_text(f"{USER}:{hashed}\n")
        http_config = config["http"]
        assert isinstance(http_config, dict)
        http_config["tls"] = {"certificate": str(self.workdir / "tls.pem"), "key": str(self.workdir / "tls.key")}
        config["auth"] = {"htpasswd": {"realm": "neon-test", "path": str(self.workdir / "htpasswd")}}

    def docker_config(self, path: Path, password: str | None = None) -> Path:
        """A docker-style ``config.json`` with this registry's account (or ``password`` instead)."""
        token = base64.b64encode(f"{USER}:{self.password if password is None else password}".encode()).decode()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"auths": {self.host: {"auth": token}}}))
        return path

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise Unavailable(f"the registry exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if self.secure:
                    context = ssl.create_default_context(cafile=str(self.ca))
                    conn: http.client.HTTPConnection = http.client.HTTPSConnection(self.host, context=context)
                else:
                    conn = http.client.HTTPConnection(self.host, timeout=2)
                conn.request("GET", "/v2/")
                if conn.getresponse().status in (200, 401):
                    conn.close()
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise Unavailable(f"the registry on {self.host} was not ready within {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join((self.workdir / "registry.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        terminate(self.process)

    def __enter__(self) -> RegistryServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
