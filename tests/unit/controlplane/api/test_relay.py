"""The relay's channels to agents: one per data-plane address, and none kept for an address no live node has."""

from __future__ import annotations

import asyncio
from typing import Any

from controlplane.api.relay import Relay
from neon.model import NodeInfo
from neon.security.tls import Credentials


def _nodes(**addresses: str) -> dict[str, NodeInfo]:
    return {name: NodeInfo(name, {}, address) for name, address in addresses.items()}


def test_a_channel_to_an_address_no_live_node_has_is_closed_when_another_is_opened() -> None:
    async def run() -> None:
        relay = Relay(Any, Any, Credentials.insecure(), invoke_timeout=1.0)  # type: ignore[arg-type]
        nodes = _nodes(edge1="127.0.0.1:1001", edge2="127.0.0.1:1002")
        first = relay._stub("127.0.0.1:1002", nodes)
        assert relay._stub("127.0.0.1:1002", nodes) is first  # kept open, reused
        relay._stub("127.0.0.1:1001", nodes)
        # edge-2 restarted on another port: its old channel goes as the new one opens
        relay._stub("127.0.0.1:2002", _nodes(edge1="127.0.0.1:1001", edge2="127.0.0.1:2002"))
        assert set(relay._channels) == set(relay._stubs) == {"127.0.0.1:1001", "127.0.0.1:2002"}
        await asyncio.gather(*relay._closing)
        await relay.close()

    asyncio.run(run())
