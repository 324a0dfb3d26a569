"""Where the control plane keeps what in etcd.

Key layout (all values JSON):

    /neon/apps/<app>                 {"spec": manifest, "generation", "created_at", "updated_at"}
    /neon/nodes/<node>               NodeInfo, attached to the node's lease
    /neon/members/<node>             {"info": NodeInfo, "unreachable_since"}: every node that registered, no lease
    /neon/placements/<app>           {"generation", "components": {c: {"nodes": [...], "reason": ""}}}
    /neon/assign/<node>/<app>        Assignment: the node's slice of the app's graph
    /neon/status/<node>              [InstanceReport, ...], attached to the node's lease
    /neon/prefetch/<node>            {"ready": [digest], "failed": {digest: why}}: its prefetch lists, on its lease
    /neon/rollouts/<app>             {"generation", "since", "deadline", "nodes": {node: [digest]}}: a held rollout
    /neon/artifacts/<digest>         {"name", "size", "uploaded_at"}
    /neon/events/<seq>               Event
    /neon/history/<app>/<generation>  the manifest of each generation (the last HISTORY kept)
    /neon/compositions/<key>         {"digest": fused artifact} or {"error": why it cannot be fused}
    /neon/code/<artifact>/<engine>   {"engine", "code", "size", "signature", "made_by", "made_at"}: native code
                                     made once per cluster (<engine>: 16 hex of the engine key's sha256)
    /neon/metrics/<node>             {"rtt_ms": {peer: ms}, "links": [...]}, attached to the node's lease
    /neon/telemetry/<node>           the agent's last neon.v1.MetricsReport (protobuf bytes), on the node's lease
    /neon/leader                     {"identity", "address", "since"}: the replica that reconciles, on its lease
    /neon/controlplanes/<identity>   {"address", "started"}: every live replica, on its own lease
    /neon/kv/<app>/<bucket>/<key>    a cluster bucket's value (controlplane.state.kv_store)
    /neon/kvsize/<app>/<bucket>      {"bytes"}: what the bucket holds, moved with every write
    /neon/secrets/<name>             a secret's keys, version and sealed values (controlplane.state.secret_store)
    /neon/secret-keys/<id>           a data key, sealed with the key derived from the CA's
"""

from __future__ import annotations

import json
from typing import Any

PREFIX = b"/neon/"
APPS = PREFIX + b"apps/"
NODES = PREFIX + b"nodes/"
MEMBERS = PREFIX + b"members/"
PLACEMENTS = PREFIX + b"placements/"
ASSIGN = PREFIX + b"assign/"
STATUS = PREFIX + b"status/"
PREFETCH = PREFIX + b"prefetch/"
ROLLOUTS = PREFIX + b"rollouts/"
ARTIFACTS = PREFIX + b"artifacts/"
EVENTS = PREFIX + b"events/"
METRICS = PREFIX + b"metrics/"
TELEMETRY = PREFIX + b"telemetry/"
HISTORY = PREFIX + b"history/"
COMPOSITIONS = PREFIX + b"compositions/"
CODE = PREFIX + b"code/"
LEADER = PREFIX + b"leader"
REPLICAS = PREFIX + b"controlplanes/"
TOKENS = PREFIX + b"tokens/"
IDENTITIES = PREFIX + b"identities/"  # admitted nodes' certificate serials
KV = PREFIX + b"kv/"
KV_SIZE = PREFIX + b"kvsize/"
SECRETS = PREFIX + b"secrets/"
SECRET_KEYS = PREFIX + b"secret-keys/"
HISTORY_KEEP = 10
EVENT_HISTORY = 1000


def dump(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def etcd_key(prefix: bytes, *parts: str) -> bytes:
    return prefix + "/".join(parts).encode()
