"""Control-plane failover: two replicas elect a leader in etcd; killing it hands over, nothing is lost.
And the loss of one etcd member of three goes by without a lost lease or application."""

from __future__ import annotations

import contextlib
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli.client import ControlClient
from cli.devcluster.etcd_launcher import EtcdCluster, EtcdServer, stable_port
from cli.devcluster.guests import EXAMPLES
from cli.devcluster.processes import Child, join_tokens, spawn_agent, spawn_controlplane
from neon import __version__
from neon._proto import control_pb2, control_pb2_grpc
from neon.errors import NeonGridError
from neon.rpc.servers import CHANNEL_OPTIONS
from neon.security import pki, signing
from neon.security.tls import Credentials, sync_channel
from tests.support.helpers import assert_eventually, pair_manifest, wait_running

pytestmark = pytest.mark.e2e

SAMPLE = (EXAMPLES / "log-analyzer" / "sample.log").read_text().splitlines()
REPLICAS = ("cp-a", "cp-b")


# (workdir, replica) -> its API port: a restarted replica comes back where the agents were told it is.
_PORTS: dict[tuple[Path, str], int] = {}


def _replica(etcd: str, workdir: Path, name: str) -> Child:
    port = _PORTS.setdefault((workdir, name), stable_port())
    return spawn_controlplane(
        etcd,
        workdir,
        name=name,
        listen=f"127.0.0.1:{port}",
        node_ttl=5,
        extra=["--identity", name, "--leader-ttl", "2"],
        pki_dir=_pki(workdir),
    )


def _pki(workdir: Path) -> Path:
    """One PKI for every replica of the test (created by the first)."""
    directory = workdir / "pki"
    if not (directory / "ca.pem").exists():
        pki.init(directory)
    return directory


def _client(control: str, workdir: Path) -> ControlClient:
    key = signing.load_key(_pki(workdir) / "publisher.key")
    return ControlClient(control, Credentials.from_dir(_pki(workdir), "admin"), sign_with=key)


@contextlib.contextmanager
def _replicas_and_agents(
    etcd: str, tmp_path: Path, compiled_cache: Path
) -> Iterator[tuple[dict[str, Child], str, list[Child]]]:
    """Both control-plane replicas and an edge and a cloud agent, registered.

    Yields ``(replicas, control address list, children)``; every child (and any
    a test appends) is stopped at the end.
    """
    children: list[Child] = []
    try:
        cps = {name: _replica(etcd, tmp_path, name) for name in REPLICAS}
        children += cps.values()
        control = ",".join(cp.wait_ready() for cp in cps.values())
        tokens = join_tokens(control, _pki(tmp_path), ["edge-1", "cloud-1"])
        agents = [
            spawn_agent(
                control,
                name,
                {"tier": tier},
                tmp_path / "agents",
                cache_dir=compiled_cache,
                ca=_pki(tmp_path) / "ca.pem",
                join_token=tokens[name],
                join=",".join(cp.join_address for cp in cps.values()),
            )
            for name, tier in (("edge-1", "edge"), ("cloud-1", "cloud"))
        ]
        children += agents
        for agent in agents:
            agent.wait_ready()
        with _client(control, tmp_path) as client:
            assert_eventually(lambda: _assert_count(len(client.list_nodes()), 2), timeout=30)
        yield cps, control, children
    finally:
        for child in reversed(children):
            child.stop()


def _route_tables(client: ControlClient, workdir: Path, addresses: dict[str, str]) -> dict[str, Any]:
    """A probe node admitted and registered, and a heartbeat to each replica from it: replica -> its beat."""
    token = client.create_join_token(120, node="probe-1").token
    csr, key = pki.csr_for("probe-1")
    first = next(iter(addresses.values()))
    admin = Credentials.from_dir(_pki(workdir), "admin")
    with sync_channel(first, admin, pki.CONTROLPLANE_NAME, CHANNEL_OPTIONS) as channel:
        request = control_pb2.JoinRequest(node_name="probe-1", token=token, csr_pem=csr)
        admitted = control_pb2_grpc.JoinStub(channel).Join(request, timeout=30)
    creds = Credentials(admitted.ca_pem, admitted.cert_pem, key)
    with sync_channel(first, creds, pki.CONTROLPLANE_NAME, CHANNEL_OPTIONS) as channel:
        node = control_pb2.RegisterRequest(
            name="probe-1",
            labels={"tier": "probe"},
            dataplane_address="127.0.0.1:9",
            memory_bytes=1 << 30,
            instance_slots=1,
            version=__version__,
        )
        lease = control_pb2_grpc.AgentControlStub(channel).Register(node, timeout=30).lease_id

    def beat(address: str) -> Any:
        with sync_channel(address, creds, pki.CONTROLPLANE_NAME, CHANNEL_OPTIONS) as channel:
            heartbeat = control_pb2.HeartbeatRequest(name="probe-1", lease_id=lease)
            return control_pb2_grpc.AgentControlStub(channel).Heartbeat(heartbeat, timeout=30)

    return {name: (lambda address=address: beat(address)) for name, address in addresses.items()}


def _forget(client: ControlClient, node: str) -> None:
    try:
        client.delete_node(node)
    except NeonGridError as err:  # Ready until its lease lapses; retried by assert_eventually
        raise AssertionError(err.message) from None


def _route_tables_now(beats: dict[str, Any]) -> list[str]:
    """Each replica's route-table version, as a heartbeat from an agent holding none gets it."""
    versions = []
    for name, beat in beats.items():
        reply = beat()
        assert reply.routes_changed and reply.routes_version, f"{name} sent no route table"
        versions.append(reply.routes_version)
    return versions


def _roles(client: ControlClient) -> dict[str, bool]:
    return {r.identity: r.leader for r in client.control_planes().replicas}


def _invoke_gives(client: ControlClient, expected: tuple[int, str]) -> None:
    try:
        got = client.invoke("log-analyzer", "processor", "process-batch", [SAMPLE], timeout=10)
    except NeonGridError as err:  # while replicas and agents move over; retried by assert_eventually
        raise AssertionError(f"{type(err).__name__}: {err.message}") from None
    assert got == expected


def test_killing_the_leader_hands_over_and_nothing_is_lost(
    tmp_path: Path, compiled_cache: Path, log_analyzer: dict[str, Path], fault_report: list[str]
) -> None:
    with (
        EtcdServer(tmp_path / "etcd", pki_dir=_pki(tmp_path)) as etcd,
        _replicas_and_agents(etcd.url, tmp_path, compiled_cache) as (cps, control, children),
    ):
        with _client(control, tmp_path) as client:
            roles = _roles(client)
            assert sorted(roles) == list(REPLICAS) and sum(roles.values()) == 1, roles
            client.apply_file(pair_manifest(tmp_path))
            wait_running(client, "log-analyzer")
            _invoke_gives(client, (5, "cloud-1"))

            (leader,) = [name for name, leads in roles.items() if leads]
            (survivor,) = set(REPLICAS) - {leader}
            # A follower's heartbeats carry the same route table as the leader's (agents may beat to either).
            tables = _route_tables(client, tmp_path, {name: cp.address for name, cp in cps.items()})
            assert_eventually(lambda: _assert_equal(len(set(_route_tables_now(tables))), 1), timeout=20)
            assert_eventually(lambda: _forget(client, "probe-1"), timeout=30)  # once its lease has lapsed
            # Both blobs reach the follower's disk before anything fails.
            blobs = tmp_path / survivor / "blobs"
            assert_eventually(lambda: _assert_count(len(list(blobs.rglob("*"))), 2, at_least=True), timeout=30)

            killed_at = time.monotonic()
            cps[leader].kill()  # SIGKILL: its lease has to expire
            assert_eventually(lambda: _assert_equal(_roles(client), {survivor: True}), timeout=20, interval=0.1)
            failover_s = time.monotonic() - killed_at
            assert_eventually(lambda: _invoke_gives(client, (5, "cloud-1")), timeout=30, interval=0.2)
            serving_s = time.monotonic() - killed_at

            # The new leader reconciles: moving the processor to the edge fuses the pair there.
            client.apply_file(pair_manifest(tmp_path, ("tier: cloud", "tier: edge"), name="together.yaml"))
            assert_eventually(lambda: _invoke_gives(client, (5, "edge-1")), timeout=90, interval=0.2)
            app = client.get_app("log-analyzer")
            assert app.generation == 2 and app.phase == "Running"
            (group,) = app.fusion
            assert group.artifact.startswith("sha256:") and not group.reason
            took = f"new leader {failover_s:.1f}s, calls served {serving_s:.1f}s after SIGKILL"
            fault_report.append(f"control-plane failover (leader TTL 2s): {took}")

            # Every control plane restarts: the state comes back from etcd (and the replicas' blob disks).
            cps[survivor].stop()
            cps = {name: _replica(etcd.url, tmp_path, name) for name in REPLICAS}
            children += cps.values()
            for cp in cps.values():
                cp.wait_ready()
        control = ",".join(cp.address for cp in cps.values())
        with _client(control, tmp_path) as client:
            assert_eventually(lambda: _assert_equal(sum(_roles(client).values()), 1), timeout=20)
            app = client.get_app("log-analyzer")
            assert (app.generation, [c.name for c in app.components]) == (2, ["parser", "processor"])
            assert_eventually(lambda: _invoke_gives(client, (5, "edge-1")), timeout=60, interval=0.2)
            assert {n.name for n in client.list_nodes()} == {"edge-1", "cloud-1"}
            kinds = [e.kind for e in client.events(history=500)]
            assert kinds.count("LeaderElected") >= 3


def test_losing_one_etcd_member_of_three_loses_nothing(
    tmp_path: Path, compiled_cache: Path, log_analyzer: dict[str, Path], fault_report: list[str]
) -> None:
    with (
        EtcdCluster(tmp_path / "etcd", size=3, pki_dir=_pki(tmp_path)) as etcd,
        _replicas_and_agents(etcd.url, tmp_path, compiled_cache) as (_, control, _),
        _client(control, tmp_path) as client,
    ):
        client.apply_file(pair_manifest(tmp_path))
        wait_running(client, "log-analyzer")
        _invoke_gives(client, (5, "cloud-1"))

        # Every replica talks to the first member (pick_first): kill exactly that one.
        killed_at = time.monotonic()
        etcd.members[0].kill()
        together = pair_manifest(tmp_path, ("tier: cloud", "tier: edge"), name="together.yaml")
        assert_eventually(lambda: _applies(client, together), timeout=30, interval=0.1)
        applied_s = time.monotonic() - killed_at
        assert_eventually(lambda: _invoke_gives(client, (5, "edge-1")), timeout=60, interval=0.2)
        fault_report.append(
            f"etcd member of 3 SIGKILLed: apply accepted {applied_s:.1f}s, the new generation"
            f" (fused, compiled) served {time.monotonic() - killed_at:.1f}s after; no lease lost"
        )
        app = client.get_app("log-analyzer")
        assert (app.generation, app.phase) == (2, "Running")
        # Leases outlive the member loss (node TTL 5 s): wait past it, nobody was lost.
        time.sleep(6)
        assert {n.name for n in client.list_nodes()} == {"edge-1", "cloud-1"}
        kinds = [e.kind for e in client.events(history=500)]
        assert "NodeUnreachable" not in kinds, kinds
        assert sum(_roles(client).values()) == 1


def _applies(client: ControlClient, path: Path) -> None:
    try:
        client.apply_file(path)
    except NeonGridError as err:  # UNAVAILABLE while etcd elects a leader; retried by assert_eventually
        raise AssertionError(f"{type(err).__name__}: {err.message}") from None


def _assert_count(value: int, expected: int, at_least: bool = False) -> None:
    assert value >= expected if at_least else value == expected, value


def _assert_equal(value: object, expected: object) -> None:
    assert value == expected, value


def test_an_agent_moves_off_its_failed_home_replica_and_back_once_it_serves_again(
    tmp_path: Path, compiled_cache: Path
) -> None:
    """Agents spread over the replicas by name; one whose home replica died serves through another and goes back
    home when it is up again, so a restarted replica gets its agents back (and the other its load off)."""
    names = ("edge-1", "edge-2", "edge-3", "edge-4")
    with EtcdServer(tmp_path / "etcd", pki_dir=_pki(tmp_path)) as etcd:
        cps = {name: _replica(etcd.url, tmp_path, name) for name in REPLICAS}
        agents: list[Child] = []
        try:
            control = ",".join(cp.wait_ready() for cp in cps.values())
            tokens = join_tokens(control, _pki(tmp_path), list(names))
            agents = [
                spawn_agent(
                    control,
                    name,
                    {"tier": "edge"},
                    tmp_path / "agents",
                    cache_dir=compiled_cache,
                    extra=["--failback-after", "1"],
                    ca=_pki(tmp_path) / "ca.pem",
                    join_token=tokens[name],
                    join=",".join(cp.join_address for cp in cps.values()),
                )
                for name in names
            ]
            for agent in agents:
                agent.wait_ready()
            homes = {a.name: REPLICAS[zlib.crc32(a.name.encode()) % len(REPLICAS)] for a in agents}
            assert set(homes.values()) == set(REPLICAS), f"these names all have one home: {homes}"
            victim = REPLICAS[0]
            moved = [a for a in agents if homes[a.name] == victim]
            cps[victim].kill()

            def switched() -> None:
                for agent in moved:
                    assert '"switching control plane"' in agent.log_path.read_text(), f"{agent.name} has not moved"

            assert_eventually(switched, timeout=30)
            cps[victim] = _replica(etcd.url, tmp_path, victim)
            cps[victim].wait_ready()

            def back_home() -> None:
                for agent in agents:
                    log = agent.log_path.read_text()
                    went = '"moving back to the home control plane"' in log
                    assert went == (agent in moved), f"{agent.name} ({homes[agent.name]} home): went back {went}"

            assert_eventually(back_home, timeout=30)
            with _client(control, tmp_path) as client:
                assert_eventually(lambda: _assert_count(len(client.list_nodes()), len(names)), timeout=30)
        finally:
            for child in [*agents, *cps.values()]:
                child.stop()
