"""How an application's new generations roll out (``spec.rollout`` in the manifest).

``prefetch`` (default on): a new generation's artifacts are fetched and compiled by every node that will run
them before any instance is swapped, so a node on a slow link keeps serving the old version meanwhile and all
nodes move together. ``prefetchTimeout`` bounds the wait: past it the rollout goes ahead on the nodes that are
ready and an event names the ones that were not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from neon._validate import mapping, parse_duration
from neon.errors import InvalidManifest

DEFAULT_TIMEOUT = 300.0
MAX_TIMEOUT = 24 * 3600.0


@dataclass(frozen=True)
class RolloutSpec:
    prefetch: bool = True
    prefetch_timeout: float = DEFAULT_TIMEOUT  # seconds

    @property
    def is_default(self) -> bool:
        return self == RolloutSpec()

    def to_dict(self) -> dict[str, Any]:
        return {"prefetch": self.prefetch, "prefetchTimeout": f"{self.prefetch_timeout:g}s"}


def parse_rollout(doc: Any, path: str) -> RolloutSpec:
    if doc is None:
        return RolloutSpec()
    body = mapping(doc, path, required=set(), optional={"prefetch", "prefetchTimeout"})
    prefetch = body.get("prefetch", True)
    if not isinstance(prefetch, bool):
        raise InvalidManifest(f"{path}.prefetch must be true or false, got {prefetch!r}", field=f"{path}.prefetch")
    timeout = DEFAULT_TIMEOUT
    if "prefetchTimeout" in body:
        timeout = parse_duration(body["prefetchTimeout"], f"{path}.prefetchTimeout")
        if not 0 < timeout <= MAX_TIMEOUT:
            raise InvalidManifest(
                f"{path}.prefetchTimeout must be above 0 and at most 24h, got {body['prefetchTimeout']!r}",
                field=f"{path}.prefetchTimeout",
            )
    return RolloutSpec(prefetch=prefetch, prefetch_timeout=timeout)
