"""Commands that change the cluster: ``neon apply``, ``rollback``, ``delete``, ``token create``."""

from __future__ import annotations

import argparse
import sys
import time

from cli import render
from cli.client import ControlClient
from cli.options import parse_duration


def token(client: ControlClient, args: argparse.Namespace) -> int:
    made = client.create_join_token(parse_duration(args.ttl), args.node)
    join = ",".join(made.join_addresses)
    print(made.token)
    print(
        f"# valid until {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(made.expires_at))}, for one agent"
        + (f" named {made.node}" if made.node else ""),
        file=sys.stderr,
    )
    print(
        f"# on the node: NEON_JOIN_TOKEN={made.token} neon --control {args.control} agent "
        f"--name {made.node or 'NAME'} --ca ca.pem" + (f" --join {join}" if join else ""),
        file=sys.stderr,
    )
    return 0


def apply(client: ControlClient, args: argparse.Namespace) -> int:
    app = client.apply_file(args.file, args.allow_latest)
    print(f"application/{app.name} applied (generation {app.generation})")
    if args.wait:
        return wait_running(client, app.name, args.timeout)
    return 0


def rollback(client: ControlClient, args: argparse.Namespace) -> int:
    app = client.rollback(args.name, args.to)
    print(f"application/{app.name} rolled back (now generation {app.generation})")
    return wait_running(client, app.name, args.timeout) if args.wait else 0


def delete(client: ControlClient, args: argparse.Namespace) -> int:
    if args.kind == "node":
        client.delete_node(args.name)
        print(f"node/{args.name} deleted; what it ran is rescheduled")
    else:
        client.delete_app(args.name)
        print(f"application/{args.name} deleted")
    return 0


def wait_running(client: ControlClient, name: str, timeout: float) -> int:
    """Show each component's progress as it changes until the application is Running; 1 when it
    Failed, is Unschedulable, or the timeout passed."""
    started = time.monotonic()
    deadline = started + timeout
    shown: dict[str, str] = {}
    while True:
        app = client.get_app(name)
        for line in render.progress(app):
            key = line.split()[0]
            if shown.get(key) != line:
                print(f"{time.monotonic() - started:5.1f}s{line}", flush=True)
                shown[key] = line
        if app.phase == "Running":
            print(f"application/{name} Running after {time.monotonic() - started:.1f}s", flush=True)
            return 0
        if app.phase in ("Failed", "Unschedulable"):
            print(f"error: application/{name} is {app.phase}: {app.reason}", file=sys.stderr)
            return 1
        if time.monotonic() > deadline:
            print(f"error: {name} is not Running after {timeout:.0f}s ({app.phase}: {app.reason})", file=sys.stderr)
            return 1
        time.sleep(0.25)
