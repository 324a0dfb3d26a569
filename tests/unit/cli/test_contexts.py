"""CLI contexts: set, use and list them; and what a command uses: the flag, else the environment, else the
current context, else the default."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cli.contexts import Config
from cli.main import _settle
from cli.parser import build_parser
from neon.errors import InvalidArgument, NotFound


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "neon" / "config.yaml"
    monkeypatch.setenv("NEON_CONFIG", str(path))
    for name in ("NEON_CONTROL", "NEON_PKI", "NEON_USER", "NEON_CONTEXT"):
        monkeypatch.delenv(name, raising=False)
    return path


def _neon(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "neon", *args], capture_output=True, text=True, timeout=60)


def test_contexts_are_set_used_and_listed(config_file: Path, tmp_path: Path) -> None:
    made = _neon("config", "set-context", "lab", "--control", "10.0.0.5:7400", "--pki", str(tmp_path / "pki"))
    assert made.returncode == 0 and "current" in made.stdout, made.stderr  # the first one becomes current
    assert _neon("config", "set-context", "prod", "--control", "cp.example:7400", "--user", "viewer").returncode == 0
    listed = _neon("config", "get-contexts").stdout.splitlines()
    assert [line.split()[:2] for line in listed[1:]] == [["*", "lab"], ["prod", "cp.example:7400"]]
    assert _neon("config", "use-context", "prod").returncode == 0
    assert _neon("config", "current-context").stdout.strip() == "prod"
    missing = _neon("config", "use-context", "nope")
    assert missing.returncode == 1 and "no context 'nope' (known: lab, prod)" in missing.stderr
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    kept = Config.load()
    assert kept.contexts["prod"].user == "viewer" and kept.contexts["lab"].pki == str((tmp_path / "pki").resolve())


def test_flag_then_environment_then_context_then_default(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = Config("", {})
    config.set("lab", control="10.0.0.5:7400", pki="/lab/pki", user="viewer")
    config.use("lab")
    config.save()

    def settled(*argv: str) -> tuple[str, str, str]:
        args = build_parser().parse_args([*argv, "get", "apps"])
        _settle(args)
        return args.control, str(args.pki), args.user

    assert settled() == ("10.0.0.5:7400", "/lab/pki", "viewer")
    assert settled("--control", "1.2.3.4:7400", "--user", "admin") == ("1.2.3.4:7400", "/lab/pki", "admin")
    monkeypatch.setenv("NEON_CONTROL", "env:7400")
    assert settled()[0] == "env:7400"
    assert settled("--control", "flag:7400")[0] == "flag:7400"
    monkeypatch.delenv("NEON_CONTROL")
    config_file.unlink()
    assert settled() == ("127.0.0.1:7400", ".neon/pki", "admin")


def test_a_broken_file_or_a_missing_current_context_says_how_to_fix_it(config_file: Path) -> None:
    config_file.parent.mkdir(parents=True)
    config_file.write_text("contexts: [not, a, mapping]\n")
    with pytest.raises(InvalidArgument, match="fix or remove it"):
        Config.load()
    config_file.write_text("current-context: gone\ncontexts: {}\n")
    with pytest.raises(NotFound, match="use-context"):
        Config.load().active()
    with pytest.raises(InvalidArgument, match="lowercase DNS label"):
        Config("", {}).set("Bad Name", control="x")
