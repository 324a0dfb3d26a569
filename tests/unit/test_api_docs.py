"""docs/api.md is the reference a client in another language is written from: it must match the protos."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_api_reference_is_generated_from_the_current_protos_and_policy() -> None:
    spec = importlib.util.spec_from_file_location("api_docs", ROOT / "proto" / "api_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = module.render()
    assert (ROOT / "docs" / "api.md").read_text() == text, "docs/api.md is stale; run: python proto/api_docs.py"
    # Every RPC users call is there, with who may call it.
    for rpc in ("ListNodes", "GetApplication", "Invoke", "WatchEvents", "UploadArtifact", "Join", "Logs"):
        assert f"### `{rpc}(" in text, rpc
    assert "Roles: admin, viewer." in text and "Roles: anyone (no client certificate needed)." in text
