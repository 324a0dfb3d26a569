"""Every configuration option is documented, and every CLI flag has help."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from agent.config import AgentConfig
from cli.parser import build_parser
from controlplane.config import ControlPlaneConfig


@pytest.mark.parametrize("config", [ControlPlaneConfig, AgentConfig])
def test_every_field_is_documented(config: type) -> None:
    doc = config.__doc__ or ""
    assert "Attributes:" in doc
    attributes = doc.split("Attributes:", 1)[1]
    missing = [f.name for f in dataclasses.fields(config) if f"\n        {f.name}:" not in attributes]
    assert not missing, f"{config.__name__} fields without a docstring entry: {missing}"


def test_every_cli_flag_has_help() -> None:
    parser = build_parser()
    undocumented = []
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in [("neon", parser), *subparsers.choices.items()]:
        for action in sub._actions:
            if action.help is None and action.option_strings:
                undocumented.append(f"{name} {'/'.join(action.option_strings)}")
    assert not undocumented, undocumented
