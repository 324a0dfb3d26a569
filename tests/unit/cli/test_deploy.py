"""deploy/: units verify with systemd, YAML parses, and every command line parses with neon's own CLI."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cli.devcluster.etcd_launcher import TUNING, etcd_binary
from cli.parser import build_parser

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"


def _neon_args(argv: list[str]) -> None:
    """Parse an argument list exactly as `neon` would (SystemExit on any unknown flag)."""
    build_parser().parse_args([a.replace("$(NODE_NAME)", "node-1").replace("$(POD_IP)", "10.0.0.1") for a in argv])


def test_compose_commands_parse() -> None:
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = doc["services"]
    commands = [svc["command"] for name, svc in services.items() if not name.startswith("etcd") and "command" in svc]
    assert len(commands) == 4  # two control-plane replicas, two agents
    for command in commands:
        _neon_args(command)
    # Three etcd members that name each other over TLS, all behind the alias the control planes dial.
    members = {name: svc for name, svc in services.items() if name.startswith("etcd")}
    assert sorted(members) == ["etcd-0", "etcd-1", "etcd-2"]
    for name, svc in members.items():
        argv = svc["entrypoint"] + svc["command"]
        assert argv[0] == "etcd" and f"--name={name}" in argv
        (initial,) = [a for a in argv if a.startswith("--initial-cluster=")]
        assert initial.count("=https://etcd-") == 3
        assert svc["networks"]["default"]["aliases"] == ["etcd"]
        _etcd_flags(argv[1:])
    for cp in ("cp-a", "cp-b"):
        command = services[cp]["command"]
        assert command[command.index("--etcd") + 1] == "https://etcd:2379"


def _etcd_flags(argv: list[str]) -> None:
    """Every flag is one this etcd knows, and clients and peers are held to mutual TLS with the right names."""
    known = subprocess.run([str(etcd_binary()), "--help"], capture_output=True, text=True, timeout=30).stdout
    names = [a.split("=", 1)[0] for a in argv if a.startswith("--")]
    assert [n for n in names if f"  {n} " not in known] == [], "flags this etcd does not know"
    for needed in (
        "--client-cert-auth",
        "--client-cert-allowed-hostname=controlplane.neon-grid",
        "--peer-client-cert-auth",
        "--peer-cert-allowed-hostname=etcd.neon-grid",
        *TUNING,  # the same tuning as the local etcd's, which the soak measured
    ):
        assert needed in argv, needed


def test_kubernetes_manifests_parse_and_args_are_valid() -> None:
    docs = [d for d in yaml.safe_load_all((DEPLOY / "kubernetes" / "neon-grid.yaml").read_text()) if d]
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["DaemonSet", "DaemonSet", "Deployment", "Namespace", "Service", "Service", "StatefulSet"]
    (etcd,) = [d for d in docs if d["kind"] == "StatefulSet"]
    assert (etcd["spec"]["replicas"], etcd["spec"]["podManagementPolicy"]) == (3, "Parallel")
    (member,) = etcd["spec"]["template"]["spec"]["containers"]
    _etcd_flags(member["command"][1:])
    for doc in docs:
        if doc["kind"] in ("Deployment", "DaemonSet"):
            (container,) = doc["spec"]["template"]["spec"]["containers"]
            _neon_args(container["args"])


def test_systemd_units_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    neon = Path(sys.executable).parent / "neon"
    env = {
        line.split("=", 1)[0]: line.split("=", 1)[1]
        for line in (DEPLOY / "systemd" / "agent.env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    _neon_args(["agent", "--data-dir", "/var/lib/neon-grid/agent", *shlex.split(env["NEON_AGENT_ARGS"])])
    for unit in ("neon-agent.service", "neon-controlplane.service"):
        text = (DEPLOY / "systemd" / unit).read_text().replace("/opt/neon-grid/bin/neon", str(neon))
        path = tmp_path / unit
        path.write_text(text)
        proc = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True, timeout=60)
        problems = [ln for ln in (proc.stdout + proc.stderr).splitlines() if unit in ln]
        assert not problems, problems
