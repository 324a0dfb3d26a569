"""The example's processor-parser pair as an application, in the shapes the benchmarks compare."""

from __future__ import annotations

from neon import manifest

PARSER = "cyber-systems:logs/parser@0.1.0"


def pair(name: str, digests: dict[str, str], processor_tier: str, fused: bool = True) -> manifest.AppSpec:
    """Parser on the edge, processor on ``processor_tier``; ``fused=False`` keeps a co-located pair host-linked."""
    link = {"importer": "processor", "import": PARSER, "exporter": "parser"} | ({} if fused else {"fuse": False})
    return manifest.parse(
        {
            "apiVersion": manifest.API_VERSION,
            "kind": "Application",
            "metadata": {"name": name},
            "spec": {
                "components": [
                    {"name": "parser", "artifact": digests["parser"], "placement": {"nodeSelector": {"tier": "edge"}}},
                    {
                        "name": "processor",
                        "artifact": digests["processor"],
                        "placement": {"nodeSelector": {"tier": processor_tier}},
                    },
                ],
                "links": [link],
            },
        }
    )
