"""Filter: the node carries every label of the component's nodeSelector."""

from __future__ import annotations

from controlplane.placement._types import NodeView
from neon.manifest import ComponentSpec


class NodeSelectorFilter:
    name = "node-selector"

    def check(self, component: ComponentSpec, node: NodeView) -> str | None:
        for key, want in sorted(component.placement.node_selector.items()):
            have = node.labels.get(key)
            if have is None:
                return f"no label {key}"
            if have != want:
                return f"{key}!={want}"
        return None
