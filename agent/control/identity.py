"""The agent's identity: its node certificate, got once by joining with a token and kept on disk.

``<data_dir>/identity`` holds ``node.pem``/``node.key`` (the key never leaves
the node: only a certificate request is sent), ``ca.pem`` and
``controlplane.pub`` (the control plane's key for fused artifacts, learnt
while joining over TLS checked against the CA).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import grpc

from agent.config import AgentConfig
from neon._proto import control_pb2, control_pb2_grpc
from neon.errors import InvalidArgument, Unavailable, from_rpc_error
from neon.observe import log
from neon.rpc.servers import CHANNEL_OPTIONS
from neon.security import pki
from neon.security.tls import Credentials, aio_channel, warn_plaintext

_log = log.get("neon.agent.identity")


@dataclass(frozen=True)
class Identity:
    creds: Credentials
    controlplane_key: str = ""  # empty on plaintext


def join_addresses(config: AgentConfig) -> list[str]:
    if config.join:
        return [a.strip() for a in config.join.split(",") if a.strip()]
    out = []
    for address in config.control.split(","):
        host, _, port = address.strip().rpartition(":")
        if host and port.isdigit():
            out.append(f"{host}:{int(port) + 1}")
    return out


def _saved(directory: Path, name: str) -> Identity | None:
    if not (directory / "node.pem").is_file():
        return None
    creds = Credentials.from_dir(directory, "node")
    info = creds.identity
    assert info is not None
    if info.name != name or info.role != pki.AGENT:
        raise InvalidArgument(
            f"{directory}/node.pem is node {info.name!r} ({info.role}), not {name!r}; "
            "give this agent its own --data-dir, or remove that directory to join again",
            field="name",
        )
    if info.not_after < time.time():
        _log.warning("the node certificate has expired; joining again", not_after=info.not_after)
        return None
    key_file = directory / "controlplane.pub"
    return Identity(creds, key_file.read_text().strip() if key_file.is_file() else "")


async def load_or_join(config: AgentConfig) -> Identity:
    """The saved identity, or a new one from joining with ``config.join_token``; plaintext if asked."""
    if config.insecure:
        warn_plaintext("agent")
        return Identity(Credentials.insecure())
    directory = config.data_dir / "identity"
    saved = _saved(directory, config.name)
    if saved is not None:
        return saved
    if not config.join_token:
        raise InvalidArgument(
            f"node {config.name} has no certificate yet ({directory}); join with a token: "
            "neon agent --join-token TOKEN --ca ca.pem ... (an admin runs `neon token create`)",
            field="join_token",
        )
    if config.ca_file is None or not config.ca_file.is_file():
        raise InvalidArgument(
            f"joining needs the cluster CA certificate (--ca, ca.pem from neon certs init); got {config.ca_file}",
            field="ca",
        )
    ca = config.ca_file.read_bytes()
    csr, key = pki.csr_for(config.name)
    anonymous = Credentials(ca=ca)
    errors = []
    for address in join_addresses(config):
        channel = aio_channel(address, anonymous, pki.CONTROLPLANE_NAME, CHANNEL_OPTIONS, with_identity=False)
        try:
            reply = await control_pb2_grpc.JoinStub(channel).Join(
                control_pb2.JoinRequest(node_name=config.name, token=config.join_token, csr_pem=csr), timeout=15
            )
        except grpc.aio.AioRpcError as err:
            error = from_rpc_error(err)
            if err.code() != grpc.StatusCode.UNAVAILABLE:
                raise error from None  # refused: say why, do not try another replica with a used token
            errors.append(f"{address}: {error.message}")
            continue
        finally:
            await channel.close(None)
        pki.save(directory, "node", pki.Issued(reply.cert_pem, key))
        (directory / "ca.pem").write_bytes(reply.ca_pem)
        (directory / "controlplane.pub").write_text(reply.signing_key + "\n")
        _log.info("joined: node certificate issued", node=config.name, via=address)
        return Identity(Credentials.from_dir(directory, "node"), reply.signing_key)
    raise Unavailable(
        f"no control plane answered at the join address(es): {'; '.join(errors) or 'none given'} "
        "(check --join, and that --ca is the cluster's CA; a control plane run with --insecure needs --insecure)"
    )
