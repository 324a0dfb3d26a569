"""Start Neon Grid servers as child processes (``neon dev`` and the tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from neon.errors import Unavailable


class Child:
    """A ``python -m neon ...`` child that writes its address to a ready file."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        workdir: Path,
        env: dict[str, str] | None = None,
        prefix: Sequence[str] = (),
    ) -> None:
        """``prefix`` runs the child under another command (``ip netns exec NS``), which must exec it."""
        self.name = name
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / f"{name}.log"
        self.ready_file = workdir / f"{name}.ready"
        self.ready_file.unlink(missing_ok=True)
        self.argv = argv
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                [*prefix, sys.executable, "-m", "neon", *argv, "--ready-file", str(self.ready_file)],
                stdout=log_file,
                stderr=log_file,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            )
        self.address = ""
        self.join_address = ""
        (workdir / f"{name}.pid").write_text(str(self.process.pid))

    def wait_ready(self, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.ready_file.read_text().strip() if self.ready_file.exists() else ""
            if text:
                # The address first; a control plane's join address on the next line.
                self.address, _, rest = text.partition("\n")
                self.join_address = rest.strip()
                return self.address
            if self.process.poll() is not None:
                raise Unavailable(f"{self.name} exited with {self.process.returncode}:\n{self.tail()}")
            time.sleep(0.05)
        raise Unavailable(f"{self.name} was not ready within {timeout:.0f}s:\n{self.tail()}")

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def stop_together(children: Sequence[Child], timeout: float = 10.0) -> dict[str, int]:
    """SIGTERM every child at once, then SIGKILL whichever is still running ``timeout`` seconds later: stopping
    takes one grace period, not one per child. Returns each one's exit code."""
    for child in children:
        if child.alive():
            child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children:
        try:
            child.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    return {child.name: child.process.returncode for child in children}


def terminate(process: subprocess.Popen[bytes] | None, grace: float = 10.0) -> None:
    """SIGTERM a server we started, then SIGKILL after ``grace`` seconds; nothing when it is gone already."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def security_args(pki_dir: Path | None) -> list[str]:
    """The global flags for a PKI directory, or for plaintext when there is none."""
    return ["--pki", str(pki_dir)] if pki_dir is not None else ["--insecure"]


def spawn_controlplane(
    etcd: str,
    workdir: Path,
    name: str = "controlplane",
    listen: str = "127.0.0.1:0",
    node_ttl: int = 10,
    extra: Sequence[str] = (),
    pki_dir: Path | None = None,
) -> Child:
    """``pki_dir`` holds the CA and the control plane's certificate; None runs plaintext."""
    return Child(
        name,
        [
            *security_args(pki_dir),
            "controlplane",
            "--etcd",
            etcd,
            "--listen",
            listen,
            "--data-dir",
            str(workdir / name),
            "--node-ttl",
            str(node_ttl),
            *extra,
        ],
        workdir,
    )


def spawn_agent(
    control: str,
    name: str,
    labels: dict[str, str],
    workdir: Path,
    cache_dir: Path | None = None,
    extra: Sequence[str] = (),
    prefix: Sequence[str] = (),
    join_token: str = "",
    ca: Path | None = None,
    join: str = "",
    compiler: str | None = "cranelift",
) -> Child:
    """With ``ca`` the agent runs over mutual TLS (joining with ``join_token`` at ``join`` unless
    its data directory already holds a certificate); without, plaintext. ``compiler``: the agents the tests
    and benchmarks start run Cranelift's code from the start (their figures are of optimized code, and no
    background compile shares the cores), unless told otherwise (``extra`` may say ``--compiler`` again;
    None: the agent's own default, ``tiered``)."""
    security = ["--insecure"] if ca is None else []
    argv = [*security, "--control", control, "agent", "--name", name, "--data-dir", str(workdir / name)]
    if ca is not None:
        argv += ["--ca", str(ca)]
    if join:
        argv += ["--join", join]
    if cache_dir is not None:
        argv += ["--cache-dir", str(cache_dir)]
    for key, value in sorted(labels.items()):
        argv += ["--label", f"{key}={value}"]
    if compiler is not None:
        argv += ["--compiler", compiler]
    argv += list(extra)
    # The token goes in the environment, not argv, where ps would show it.
    env = {"NEON_JOIN_TOKEN": join_token} if join_token else None
    return Child(name, argv, workdir, env=env, prefix=prefix)


def join_tokens(control: str, pki_dir: Path, names: Sequence[str], ttl: float = 120.0) -> dict[str, str]:
    """One join token per node name, each bound to its node, created as the PKI's admin."""
    from cli.client import ControlClient
    from neon.security.tls import Credentials

    with ControlClient(control, Credentials.from_dir(pki_dir, "admin")) as client:
        return {name: client.create_join_token(ttl, node=name).token for name in names}
