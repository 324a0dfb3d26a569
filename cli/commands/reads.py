"""Commands that read the cluster: ``neon get``, ``describe``, ``logs``, ``top``, ``explain``, ``events``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import yaml

from cli import render
from cli.client import ControlClient
from cli.front_doors import route_rows
from neon.errors import InvalidArgument, NotFound
from neon.model_proto import to_dict


def get(client: ControlClient, args: argparse.Namespace) -> int:
    wide = args.output == "wide"
    items: list[Any]
    if args.kind == "controlplanes":
        reply = client.control_planes()
        items = list(reply.replicas)
        text = render.table(
            ["IDENTITY", "ADDRESS", "ROLE", "HTTP", "ANSWERED"],
            [
                [
                    r.identity,
                    r.address,
                    "leader" if r.leader else "follower",
                    r.http_address or "-",
                    "*" if r.self else "",
                ]
                for r in items
            ],
        )
    elif args.kind == "nodes":
        items = client.list_nodes()
        if args.name:
            items = [n for n in items if n.name == args.name]
            if not items:
                print(f"error: node {args.name!r} does not exist; see `neon get nodes`", file=sys.stderr)
                return 1
        text = render.nodes_table(items, wide)
    elif args.kind == "routes":
        apps = [client.get_app(args.name)] if args.name else client.list_apps()
        items = route_rows(apps, client.list_nodes())
        text = render.table(
            ["ROUTE", "APP", "COMPONENT", "NODES", "URLS"],
            [
                [r["route"], r["app"], r["component"], ",".join(r["nodes"]) or "-", " ".join(r["urls"]) or "-"]
                for r in items
            ],
        )
    elif args.kind == "components":
        apps = [client.get_app(args.name)] if args.name else client.list_apps()
        items = [{"app": a.name, **to_dict(c)} for a in apps for c in a.components]
        text = render.components_table(apps, wide)
    else:
        if args.kind == "app" and not args.name:
            print("error: neon get app NAME", file=sys.stderr)
            return 2
        items = [client.get_app(args.name)] if args.kind == "app" or args.name else client.list_apps()
        if args.kind == "app" and args.output in ("table", "wide"):
            print(render.describe_app(items[0], wide=wide, nodes=client.list_nodes()))
            return 0
        text = render.apps_table(items, wide)
    docs = [i if isinstance(i, dict) else to_dict(i) for i in items]
    if args.output == "json":
        print(json.dumps(docs, indent=2))
    elif args.output == "yaml":
        print(yaml.safe_dump(docs, sort_keys=False), end="")
    else:
        print(text)
    return 0


def describe(client: ControlClient, args: argparse.Namespace) -> int:
    if args.kind == "node":
        nodes = [n for n in client.list_nodes() if n.name == args.name]
        if not nodes:
            print(f"error: node {args.name!r} does not exist; see `neon get nodes`", file=sys.stderr)
            return 1
        events = [e for e in client.events(history=1000) if e.node == args.name][-args.events :]
        print(render.describe_node(nodes[0], client.list_apps(), events))
        return 0
    if args.kind == "app":
        app = client.get_app(args.name)
        events = list(client.events(history=args.events, app=args.name))
        print(render.describe_app(app, wide=True, events=events, nodes=client.list_nodes()))
        return 0
    app_name, component = _component_ref(client, args.name, args.app)
    app = client.get_app(app_name)
    events = [e for e in client.events(history=1000, app=app_name) if e.component in ("", component)]
    wit = client.describe_component(app_name, component)
    print(render.describe_component(app, component, client.metrics(app_name), events[-args.events :], wit))
    return 0


def _component_ref(client: ControlClient, ref: str, app: str) -> tuple[str, str]:
    """``APP/COMPONENT``, ``COMPONENT --app APP``, or a ``COMPONENT`` name only one application has."""
    if "/" in ref:
        app, _, ref = ref.partition("/")
    if app:
        return app, ref
    owners = [a.name for a in client.list_apps() if any(c.name == ref for c in a.components)]
    if len(owners) == 1:
        return owners[0], ref
    if not owners:
        raise NotFound(f"no application has a component named {ref!r}; see `neon get components`", name=ref)
    raise InvalidArgument(
        f"component {ref!r} is in several applications ({', '.join(sorted(owners))}); name one: APP/{ref} or --app",
        field="component",
    )


def logs(client: ControlClient, args: argparse.Namespace) -> int:
    app, component = _component_ref(client, args.component, args.app)
    for line in client.logs(app, component, tail=args.tail, follow=args.follow):
        prefix = f"[{line.node}]" + (f"[{line.component}]" if line.component != component else "")
        stamp = time.strftime("%H:%M:%S", time.localtime(line.time)) + " " if args.timestamps else ""
        marker = {"stderr": " !", "agent": " *", "neon": " #"}.get(line.stream, "")
        print(f"{stamp}{prefix}{marker} {line.text}", flush=True)
    return 0


def top(client: ControlClient, args: argparse.Namespace) -> int:
    while True:
        metrics = client.metrics(args.app)
        apps = [client.get_app(args.app)] if args.app else client.list_apps()
        if args.output == "json":
            print(json.dumps(to_dict(metrics), indent=2))
        else:
            if args.watch:
                print("\033[2J\033[H", end="")
            print(render.top(metrics, apps), flush=True)
        if not args.watch:
            return 0
        time.sleep(args.interval)


def explain(client: ControlClient, args: argparse.Namespace) -> int:
    explained = client.explain(args.app, args.component)
    if args.output == "json":
        print(json.dumps([to_dict(c) for c in explained], indent=2))
    else:
        print("\n\n".join(render.describe_explanation(c, args.limit) for c in explained))
    return 0


def events(client: ControlClient, args: argparse.Namespace) -> int:
    for event in client.events(history=args.history, app=args.app, follow=args.watch):
        print(render.event_line(event), flush=True)
    return 0
