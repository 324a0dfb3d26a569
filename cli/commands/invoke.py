"""``neon invoke``: call an exported function of a deployed component, and ``neon dashboard``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from cli.client import ControlClient
from cli.dashboard_proxy import serve_dashboard
from neon._validate import loads_json
from neon.errors import InvalidArgument


def invoke(client: ControlClient, args: argparse.Namespace) -> int:
    values: list[Any] = []
    for i, text in enumerate(args.args):
        try:
            values.append(loads_json(text, f"argument {i + 1}"))
        except InvalidArgument as err:
            print(f"error: {err.message}; quote strings: '\"text\"'", file=sys.stderr)
            return 2
    if args.lines_from:
        values.append(args.lines_from.read_text().splitlines())
    result, node = client.invoke(args.app, args.component, args.function, values, timeout=args.timeout)
    print(json.dumps(result, indent=2 if isinstance(result, (dict, list)) else None))
    print(f"(served by {node})", file=sys.stderr)
    return 0


def dashboard(client: ControlClient, args: argparse.Namespace) -> int:
    return serve_dashboard(client, args, client.creds)
