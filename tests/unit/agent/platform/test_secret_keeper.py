"""The agent's secrets: fetched for the versions asked for and held in memory; on disk only when the manifest
says persist (sealed, nothing readable), and then what an agent restarted offline runs with; otherwise the
component waits, and the error says for what."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agent.platform.secret_keeper import SecretKeeper
from neon.config_spec import ConfigSpec, SecretRef
from neon.errors import Unavailable
from neon.model import ComponentAssignment

VALUE = "correct-horse-battery-staple"
KEY = ("demo", "archiver")


class FakeControl:
    """What the control plane answers: the current values, or (while down) Unavailable."""

    def __init__(self) -> None:
        self.version = 1
        self.down = False
        self.calls = 0

    async def fetch(self, app: str, component: str) -> tuple[dict[str, str], dict[str, int]]:
        self.calls += 1
        if self.down:
            raise Unavailable("control plane unreachable")
        return {"token": f"{VALUE}-{self.version}"}, {"creds": self.version}


def _spec(version: int, persist: bool) -> ComponentAssignment:
    config = ConfigSpec((("level", "info"),), (SecretRef("token", "creds", "token"),), persist)
    return ComponentAssignment("archiver", "sha256:" + "a" * 64, config=config, secret_versions=(("creds", version),))


def _keeper(tmp_path: Path, control: FakeControl) -> SecretKeeper:
    return SecretKeeper(tmp_path / "secrets", tmp_path / "identity" / "seal.key", control.fetch)


def test_held_in_memory_for_the_versions_asked_and_never_on_disk(tmp_path: Path) -> None:
    control = FakeControl()
    keeper = _keeper(tmp_path, control)
    got = asyncio.run(keeper.config_for(KEY, _spec(1, persist=False)))
    assert got == {"level": "info", "token": f"{VALUE}-1"}
    asyncio.run(keeper.config_for(KEY, _spec(1, persist=False)))
    assert control.calls == 1, "the same versions are not fetched again"
    control.version = 2
    assert asyncio.run(keeper.config_for(KEY, _spec(2, persist=False)))["token"] == f"{VALUE}-2"  # re-delivered
    assert not (tmp_path / "secrets").exists(), "secrets were written to disk without persist"
    without = ComponentAssignment("x", "sha256:" + "b" * 64, config=ConfigSpec((("a", "1"),)))
    assert asyncio.run(keeper.config_for(("demo", "x"), without)) == {"a": "1"}
    assert control.calls == 2


def test_without_persist_an_offline_restart_waits_and_says_why(tmp_path: Path) -> None:
    control = FakeControl()
    asyncio.run(_keeper(tmp_path, control).config_for(KEY, _spec(1, persist=False)))
    control.down = True
    with pytest.raises(Unavailable, match=r"waiting for secrets creds: .*unreachable.*persist: true"):
        asyncio.run(_keeper(tmp_path, control).config_for(KEY, _spec(1, persist=False)))  # a restarted agent


def test_with_persist_an_offline_restart_runs_with_the_sealed_copy(tmp_path: Path) -> None:
    control = FakeControl()
    keeper = _keeper(tmp_path, control)
    asyncio.run(keeper.config_for(KEY, _spec(1, persist=True)))
    stored = b"".join(p.read_bytes() for p in (tmp_path / "secrets").iterdir())
    assert stored and VALUE.encode() not in stored, "the persisted copy is readable"
    assert oct((tmp_path / "identity" / "seal.key").stat().st_mode & 0o777) == "0o600"
    control.down = True
    restarted = _keeper(tmp_path, control)
    assert asyncio.run(restarted.config_for(KEY, _spec(1, persist=True)))["token"] == f"{VALUE}-1"
    restarted.forget(KEY)  # no longer runs here: gone from disk too
    assert list((tmp_path / "secrets").iterdir()) == []
    with pytest.raises(Unavailable, match="waiting for secrets creds"):
        asyncio.run(_keeper(tmp_path, control).config_for(KEY, _spec(1, persist=True)))
