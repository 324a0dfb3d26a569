"""The ``neon`` command line, in kubectl's habits.

    neon dev                                  # etcd + control plane + 2 agents + the log analyzer
    neon controlplane --etcd URL --listen ADDR
    neon agent --control ADDR --name N --label tier=edge
    neon apply -f app.yaml [--wait]
    neon get apps | app NAME | components [APP] | nodes | controlplanes   [-o table|wide|json|yaml]
    neon describe app NAME | component APP/COMPONENT | node NAME
    neon logs [APP/]COMPONENT [-f] [--tail N]
    neon top [APP] [-w]                       # calls/s, errors, p50/p99 per replica and link
    neon dashboard                            # the dashboard on http://127.0.0.1:8001, via your certificate
    neon delete app NAME | node NAME           # a node only while Unreachable
    neon rollback app NAME [--to GENERATION]
    neon invoke APP COMPONENT FUNCTION [JSON_ARG ...] [--lines-from FILE]
    neon explain APP [COMPONENT]              # why each component runs where it does
    neon events [-w] [--app APP]
    neon certs init [--dir DIR] [--host NAME]   # a CA, control-plane, admin and viewer certificates, keys
    neon certs issue NAME --role viewer|admin # another user's certificate
    neon token create [--ttl 1h] [--node N]   # a one-time join token for an agent
    neon keys create PATH                     # an ed25519 signing key (PATH and PATH.pub)
    neon sign ARTIFACT --key PATH             # writes ARTIFACT.sig

Every connection is mutual TLS with the PKI in --pki (env NEON_PKI, default
.neon/pki); the CLI presents --user's certificate (admin or viewer). --insecure
(env NEON_INSECURE=1) turns TLS off, for a control plane run with --insecure.

Every failure prints one line saying what is wrong and exits non-zero.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import yaml

from neon import log, views
from neon._validate import loads_json
from neon.errors import InvalidArgument, NeonGridError, NotFound, Unavailable
from neon.policy import parse_taint

DEFAULT_CONTROL = "127.0.0.1:7400"
DEFAULT_PKI = ".neon/pki"
_TLS_FAILURES = ("socket closed", "handshake", "ssl", "certificate", "connection reset")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neon", description="Neon Grid: WebAssembly components from cloud to edge.")
    parser.add_argument(
        "--control",
        default=os.environ.get("NEON_CONTROL", DEFAULT_CONTROL),
        help=f"control plane address (env NEON_CONTROL, default {DEFAULT_CONTROL})",
    )
    parser.add_argument(
        "--pki",
        type=Path,
        default=Path(os.environ.get("NEON_PKI", DEFAULT_PKI)),
        help=f"the PKI directory (neon certs init): CA, certificates, keys (env NEON_PKI, default {DEFAULT_PKI})",
    )
    parser.add_argument(
        "--user",
        default=os.environ.get("NEON_USER", "admin"),
        help="whose certificate the CLI presents: USER.pem/USER.key in --pki (env NEON_USER, default admin)",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        default=os.environ.get("NEON_INSECURE", "") not in ("", "0"),
        help="plaintext, no certificates: every caller is trusted (env NEON_INSECURE=1); not for production",
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("NEON_LOG_LEVEL", "info"),
        help="debug, info, warning or error (env NEON_LOG_LEVEL)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("controlplane", help="run a control plane")
    p.add_argument(
        "--etcd",
        default=os.environ.get("NEON_ETCD", "http://127.0.0.1:2379"),
        help="etcd client URL; a cluster's members comma-separated, or one name that resolves to them all",
    )
    p.add_argument("--listen", default=DEFAULT_CONTROL, help="gRPC listen address (port 0: any free port)")
    p.add_argument("--data-dir", default=".neon/controlplane", help="where artifact blobs are kept")
    p.add_argument("--node-ttl", type=int, default=10, help="seconds an agent lease lives without heartbeats")
    p.add_argument("--identity", default="", help="this replica's name among control planes (default host-port)")
    p.add_argument("--advertise", default="", help="the address other replicas and agents reach this one at")
    p.add_argument(
        "--leader-ttl",
        type=int,
        default=5,
        help="seconds of the replica lease; a dead leader is replaced within ~4/3 of it",
    )
    p.add_argument(
        "--join-listen",
        default="",
        help="the join port, for agents joining with a token (default: the listen port + 1)",
    )
    p.add_argument(
        "--trust-key",
        action="append",
        default=[],
        metavar="KEY",
        help="a publisher key whose signatures admit artifacts: ed25519:<base64> or a .pub file, repeatable "
        "(PKI/publisher.pub is trusted when present)",
    )
    p.add_argument(
        "--node-cert-ttl",
        default="365d",
        help="how long node certificates are valid: 90s, 30m, 1h, 2d (default 365d); agents renew at 2/3",
    )
    p.add_argument(
        "--allow-unsigned",
        action="store_true",
        help="run artifacts without checking their signatures (logged loudly; not for production)",
    )
    p.add_argument(
        "--placement-weight",
        action="append",
        default=[],
        metavar="SCORER=WEIGHT",
        help="override a placement scorer's weight, repeatable (see neon explain)",
    )
    p.add_argument(
        "--http-listen",
        default="",
        help="metrics (Prometheus), dashboard and its JSON, read-only, https with client certificates "
        "(default: the --listen port + 2; 'off': not served)",
    )
    p.add_argument("--ready-file", default="", help=argparse.SUPPRESS)

    p = sub.add_parser("agent", help="run an agent on this node")
    p.add_argument("--name", required=True, help="node name (lowercase DNS label)")
    p.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="node label, repeatable")
    p.add_argument("--listen", default="127.0.0.1:0", help="data-plane listen address")
    p.add_argument("--advertise", default="", help="data-plane address other agents dial")
    p.add_argument(
        "--taint",
        action="append",
        default=[],
        metavar="KEY=VALUE:EFFECT",
        help="repel components that do not tolerate it (NoSchedule or PreferNoSchedule), repeatable",
    )
    p.add_argument(
        "--capability",
        action="append",
        default=None,
        metavar="NAME",
        help="what this node offers components, repeatable (default: volumes, wasi-filesystem, wasi-sockets)",
    )
    p.add_argument("--data-dir", default="", help="artifacts and compiled cache (default .neon/agent-NAME)")
    p.add_argument(
        "--cache-dir",
        default=os.environ.get("NEON_COMPILED_CACHE", ""),
        help="compiled-artifact cache, shareable between agents (default DATA_DIR/compiled)",
    )
    p.add_argument(
        "--join-token",
        default=os.environ.get("NEON_JOIN_TOKEN", ""),
        help="one-time token to join with when the node has no certificate yet (env NEON_JOIN_TOKEN)",
    )
    p.add_argument(
        "--join-token-file",
        type=Path,
        default=Path(os.environ["NEON_JOIN_TOKEN_FILE"]) if os.environ.get("NEON_JOIN_TOKEN_FILE") else None,
        help="read the join token from this file if it exists (a mounted Secret; env NEON_JOIN_TOKEN_FILE)",
    )
    p.add_argument(
        "--ca",
        type=Path,
        default=Path(os.environ["NEON_CA"]) if os.environ.get("NEON_CA") else None,
        help="the cluster CA certificate to trust while joining (env NEON_CA)",
    )
    p.add_argument(
        "--join",
        default=os.environ.get("NEON_JOIN", ""),
        help="the control planes' join addresses (env NEON_JOIN; default each --control port + 1)",
    )
    p.add_argument("--instance-slots", type=int, default=64, help="how many instances this node accepts")
    p.add_argument("--call-timeout", type=float, default=10.0, help="deadline of forwarded calls, seconds")
    p.add_argument(
        "--metrics-interval",
        type=float,
        default=5.0,
        help="seconds between reports of peer round trips and call metrics (neon top's window)",
    )
    p.add_argument(
        "--metrics-listen",
        default=os.environ.get("NEON_METRICS_LISTEN", ""),
        help="where Prometheus metrics are served, https with the node certificate (default: the --listen host, "
        "any free port, registered with the control plane; 'off': not served)",
    )
    p.add_argument("--ready-file", default="", help=argparse.SUPPRESS)

    p = sub.add_parser("apply", help="apply an application manifest")
    p.add_argument("-f", "--file", required=True, type=Path, help="the manifest (YAML)")
    p.add_argument("--wait", action="store_true", help="wait until the application is Running")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds --wait waits")
    p.add_argument(
        "--sign-with",
        type=Path,
        default=None,
        metavar="KEY",
        help="sign each artifact with this ed25519 key as it is uploaded (besides any ARTIFACT.sig)",
    )

    p = sub.add_parser("get", help="show applications, components, nodes or control-plane replicas")
    p.add_argument("kind", choices=["apps", "app", "components", "nodes", "controlplanes"])
    p.add_argument("name", nargs="?", help="an application (apps, app, components) or a node")
    p.add_argument("-o", "--output", choices=["table", "wide", "json", "yaml"], default="table", help="output format")

    p = sub.add_parser("describe", help="everything about an application, a component or a node, with its events")
    p.add_argument("kind", choices=["app", "component", "node"])
    p.add_argument("name", help="APP, APP/COMPONENT (or COMPONENT with --app), or NODE")
    p.add_argument("--app", default="", help="the component's application")
    p.add_argument("--events", type=int, default=15, help="how many recent events to show")

    p = sub.add_parser("logs", help="a component's output (guest stdout/stderr, agent notes) from every node")
    p.add_argument("component", help="COMPONENT, or APP/COMPONENT")
    p.add_argument("--app", default="", help="the component's application (when its name is not unique)")
    p.add_argument("-f", "--follow", action="store_true", help="keep streaming new lines")
    p.add_argument("--tail", type=int, default=0, help="the last N lines (default: all the agents keep)")
    p.add_argument("--timestamps", action="store_true", help="prefix each line with its time")

    p = sub.add_parser("top", help="calls, errors and latency per component replica and per link")
    p.add_argument("app", nargs="?", default="")
    p.add_argument("-w", "--watch", action="store_true", help="refresh until interrupted")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes with --watch")
    p.add_argument("-o", "--output", choices=["table", "json"], default="table", help="output format")

    p = sub.add_parser(
        "dashboard", help="open the control plane's dashboard through a local proxy with your certificate"
    )
    p.add_argument("--listen", default="127.0.0.1:8001", help="where the local proxy listens (loopback only)")
    p.add_argument("--ready-file", default="", help=argparse.SUPPRESS)

    p = sub.add_parser("delete", help="delete an application, or forget an Unreachable node")
    p.add_argument("kind", choices=["app", "node"])
    p.add_argument("name")

    p = sub.add_parser("rollback", help="apply an application's previous (or a given) generation again")
    p.add_argument("kind", choices=["app"])
    p.add_argument("name")
    p.add_argument("--to", type=int, default=0, metavar="GENERATION", help="the generation to return to")
    p.add_argument("--wait", action="store_true", help="wait until the application is Running")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds --wait waits")

    p = sub.add_parser("invoke", help="call an exported function of a deployed component")
    p.add_argument("app")
    p.add_argument("component")
    p.add_argument("function", help="e.g. process-batch or parser.parse")
    p.add_argument("args", nargs="*", help="one JSON value per parameter")
    p.add_argument("--lines-from", type=Path, help="pass the file's lines as one list<string> argument")
    p.add_argument("--timeout", type=float, default=30.0, help="deadline of the call, seconds")

    p = sub.add_parser("explain", help="why each component of an application is placed where it is")
    p.add_argument("app")
    p.add_argument("component", nargs="?", default="")
    p.add_argument("--limit", type=int, default=10, help="candidate nodes to list per component")
    p.add_argument("-o", "--output", choices=["table", "json"], default="table", help="output format")

    p = sub.add_parser("events", help="show recent events")
    p.add_argument("-w", "--watch", action="store_true", help="keep streaming new events")
    p.add_argument("--app", default="", help="only events about this application")
    p.add_argument("--history", type=int, default=50, help="how many past events to show first")

    p = sub.add_parser("certs", help="create the cluster's CA and certificates")
    certs = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = certs.add_parser("init", help="a development PKI: CA, control plane, admin, viewer, signing keys")
    q.add_argument("--dir", type=Path, default=None, help="where (default: --pki)")
    q.add_argument("--host", action="append", default=[], help="an extra name or IP for the control plane's cert")
    q = certs.add_parser("issue", help="a user certificate signed by the CA in --pki")
    q.add_argument("name", help="the user's name (lowercase DNS label)")
    q.add_argument("--role", choices=["admin", "viewer"], required=True)
    q.add_argument("--dir", type=Path, default=None, help="the PKI holding ca.key (default: --pki)")

    p = sub.add_parser("token", help="one-time join tokens for agents")
    tokens = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = tokens.add_parser("create", help="a token one agent can join with once")
    q.add_argument("--ttl", default="1h", help="how long it may be used: 90s, 30m, 1h, 2d (default 1h)")
    q.add_argument("--node", default="", help="only this node may join with it (also re-admits an existing node)")

    p = sub.add_parser("keys", help="ed25519 keys that sign components")
    keys = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = keys.add_parser("create", help="write a private key to PATH and its public key to PATH.pub")
    q.add_argument("path", type=Path)

    p = sub.add_parser("sign", help="sign an artifact: writes ARTIFACT.sig, uploaded with it by neon apply")
    p.add_argument("artifact", type=Path)
    p.add_argument("--key", type=Path, required=True, help="the ed25519 private key (neon keys create)")

    p = sub.add_parser("dev", help="run etcd, a control plane, two agents and the log analyzer locally")
    p.add_argument("--dir", type=Path, default=Path(".neon-dev"), help="state directory")
    p.add_argument("--once", action="store_true", help="stop after the demo instead of waiting for Ctrl-C")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except NeonGridError as err:
        print(f"error: {err.message}", file=sys.stderr)
        if isinstance(err, Unavailable) and any(m in err.message.lower() for m in _TLS_FAILURES):
            print(
                "hint: the TLS handshake failed: check that --pki holds this cluster's ca.pem and your "
                "certificate (--user), or --insecure if (and only if) the control plane runs with --insecure",
                file=sys.stderr,
            )
        return 1
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "controlplane":
        from controlplane.config import ControlPlaneConfig
        from controlplane.main import run as run_cp
        from controlplane.placement import DEFAULT_WEIGHTS

        weights = {}
        for item in args.placement_weight:
            name, sep, value = item.partition("=")
            try:
                weights[name] = float(value)
            except ValueError:
                sep = ""
            if not sep or name not in DEFAULT_WEIGHTS:
                print(
                    f"error: --placement-weight must be SCORER=NUMBER with a scorer among "
                    f"{', '.join(DEFAULT_WEIGHTS)}; got {item!r}",
                    file=sys.stderr,
                )
                return 2
        log.configure(args.log_level, service="controlplane")
        run_cp(
            ControlPlaneConfig(
                etcd=args.etcd,
                listen=args.listen,
                data_dir=Path(args.data_dir),
                node_ttl=args.node_ttl,
                identity=args.identity,
                advertise=args.advertise,
                leader_ttl=args.leader_ttl,
                placement_weights=weights,
                pki_dir=args.pki,
                insecure=args.insecure,
                join_listen=args.join_listen,
                trusted_keys=tuple(args.trust_key),
                allow_unsigned=args.allow_unsigned,
                node_cert_ttl=parse_duration(args.node_cert_ttl),
                http_listen=args.http_listen,
            ),
            args.ready_file,
        )
        return 0
    if args.command == "agent":
        from agent.config import AgentConfig
        from agent.main import run as run_agent

        labels = {}
        for item in args.label:
            key, sep, value = item.partition("=")
            if not sep or not key:
                print(f"error: --label must be KEY=VALUE, got {item!r}", file=sys.stderr)
                return 2
            labels[key] = value
        for taint in args.taint:
            try:
                parse_taint(taint)
            except ValueError as err:
                print(f"error: --taint: {err}", file=sys.stderr)
                return 2
        log.configure(args.log_level, service="agent", node=args.name)
        run_agent(
            AgentConfig(
                name=args.name,
                control=args.control,
                labels=labels,
                listen=args.listen,
                advertise=args.advertise,
                data_dir=Path(args.data_dir or f".neon/agent-{args.name}"),
                cache_dir=Path(args.cache_dir) if args.cache_dir else None,
                instance_slots=args.instance_slots,
                call_timeout=args.call_timeout,
                taints=tuple(args.taint),
                metrics_interval=args.metrics_interval,
                metrics_listen=args.metrics_listen,
                capabilities=tuple(args.capability) if args.capability is not None else AgentConfig.capabilities,
                join_token=args.join_token
                or (
                    args.join_token_file.read_text().strip()
                    if args.join_token_file is not None and args.join_token_file.is_file()
                    else ""
                ),
                ca_file=args.ca,
                join=args.join,
                insecure=args.insecure,
            ),
            args.ready_file,
        )
        return 0
    if args.command == "dev":
        from neon.dev import run_dev

        return run_dev(args.dir, once=args.once)
    if args.command in ("certs", "keys", "sign"):
        return _offline(args)

    from neon.client import ControlClient

    signer = None
    if getattr(args, "sign_with", None) is not None:
        from neon.signing import load_key

        signer = load_key(args.sign_with)
    creds = user_credentials(args.pki, args.user, args.insecure)
    with ControlClient(args.control, creds, sign_with=signer) as client:
        if args.command == "token":
            token = client.create_join_token(parse_duration(args.ttl), args.node)
            join = ",".join(token.join_addresses)
            print(token.token)
            print(
                f"# valid until {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(token.expires_at))}, for one agent"
                + (f" named {token.node}" if token.node else ""),
                file=sys.stderr,
            )
            print(
                f"# on the node: NEON_JOIN_TOKEN={token.token} neon --control {args.control} agent "
                f"--name {token.node or 'NAME'} --ca ca.pem" + (f" --join {join}" if join else ""),
                file=sys.stderr,
            )
            return 0
        if args.command == "apply":
            app = client.apply_file(args.file)
            print(f"application/{app.name} applied (generation {app.generation})")
            if args.wait:
                return _wait_running(client, app.name, args.timeout)
            return 0
        if args.command == "rollback":
            app = client.rollback(args.name, args.to)
            print(f"application/{app.name} rolled back (now generation {app.generation})")
            return _wait_running(client, app.name, args.timeout) if args.wait else 0
        if args.command == "get":
            return _get(client, args)
        if args.command == "describe":
            return _describe(client, args)
        if args.command == "logs":
            return _logs(client, args)
        if args.command == "top":
            return _top(client, args)
        if args.command == "dashboard":
            from neon.dashboard_proxy import serve_dashboard

            return serve_dashboard(client, args, creds)
        if args.command == "delete":
            if args.kind == "node":
                client.delete_node(args.name)
                print(f"node/{args.name} deleted; what it ran is rescheduled")
            else:
                client.delete_app(args.name)
                print(f"application/{args.name} deleted")
            return 0
        if args.command == "invoke":
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
        if args.command == "explain":
            explained = client.explain(args.app, args.component)
            if args.output == "json":
                from neon.wire import to_dict

                print(json.dumps([to_dict(c) for c in explained], indent=2))
            else:
                print("\n\n".join(views.describe_explanation(c, args.limit) for c in explained))
            return 0
        if args.command == "events":
            for event in client.events(history=args.history, app=args.app, follow=args.watch):
                print(views.event_line(event), flush=True)
            return 0
    raise AssertionError(args.command)


def user_credentials(pki_dir: Path, user: str, insecure: bool) -> Any:
    """The CLI's credentials: USER's certificate from the PKI directory, or plaintext when asked."""
    from neon.tls import Credentials

    if insecure:
        print("warning: --insecure: plaintext, no certificates; do not use this across a network", file=sys.stderr)
        return Credentials.insecure()
    return Credentials.from_dir(pki_dir, user)


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``30m``, ``1h``, ``2d`` to seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    try:
        value = float(number) * units[unit]
    except ValueError:
        raise InvalidArgument(f"a duration is a number with s, m, h or d (1h, 30m), got {text!r}") from None
    return value


def _offline(args: argparse.Namespace) -> int:
    """Commands that need no control plane: certificates and signing keys."""
    from neon import pki, signing

    if args.command == "certs":
        directory = args.dir or args.pki
        if args.action == "init":
            for path in pki.init(directory, tuple(args.host)):
                print(path)
            print(
                f"# a development PKI; keep {directory}/ca.key and the *.key files secret. "
                f"Agents need only ca.pem and a join token.",
                file=sys.stderr,
            )
            return 0
        ca = pki.load(directory, "ca")
        pki.save(directory, args.name, pki.issue(ca, args.name, args.role))
        print(directory / f"{args.name}.pem")
        return 0
    if args.command == "keys":
        print(signing.create_key(args.path))
        print(
            f"# private key {args.path} (keep it secret); public key {args.path.with_suffix('.pub')}", file=sys.stderr
        )
        return 0
    sig = signing.sign_file(args.artifact, signing.load_key(args.key))
    print(f"{args.artifact}.sig  ({sig.artifact} signed by {sig.key})")
    return 0


def _wait_running(client: Any, name: str, timeout: float) -> int:
    """Show each component's progress as it changes until the application is Running; 1 when it
    Failed, is Unschedulable, or the timeout passed."""
    started = time.monotonic()
    deadline = started + timeout
    shown: dict[str, str] = {}
    while True:
        app = client.get_app(name)
        for line in views.progress(app):
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


def _get(client: Any, args: argparse.Namespace) -> int:
    from neon.wire import to_dict

    wide = args.output == "wide"
    items: list[Any]
    if args.kind == "controlplanes":
        reply = client.control_planes()
        items = list(reply.replicas)
        text = views.table(
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
        text = views.nodes_table(items, wide)
    elif args.kind == "components":
        apps = [client.get_app(args.name)] if args.name else client.list_apps()
        items = [{"app": a.name, **to_dict(c)} for a in apps for c in a.components]
        text = views.components_table(apps, wide)
    else:
        if args.kind == "app" and not args.name:
            print("error: neon get app NAME", file=sys.stderr)
            return 2
        items = [client.get_app(args.name)] if args.kind == "app" or args.name else client.list_apps()
        if args.kind == "app" and args.output in ("table", "wide"):
            print(views.describe_app(items[0], wide=wide))
            return 0
        text = views.apps_table(items, wide)
    docs = [i if isinstance(i, dict) else to_dict(i) for i in items]
    if args.output == "json":
        print(json.dumps(docs, indent=2))
    elif args.output == "yaml":
        print(yaml.safe_dump(docs, sort_keys=False), end="")
    else:
        print(text)
    return 0


def _describe(client: Any, args: argparse.Namespace) -> int:
    if args.kind == "node":
        nodes = [n for n in client.list_nodes() if n.name == args.name]
        if not nodes:
            print(f"error: node {args.name!r} does not exist; see `neon get nodes`", file=sys.stderr)
            return 1
        events = [e for e in client.events(history=1000) if e.node == args.name][-args.events :]
        print(views.describe_node(nodes[0], client.list_apps(), events))
        return 0
    if args.kind == "app":
        app = client.get_app(args.name)
        events = list(client.events(history=args.events, app=args.name))
        print(views.describe_app(app, wide=True, events=events))
        return 0
    app_name, component = _component_ref(client, args.name, args.app)
    app = client.get_app(app_name)
    events = [e for e in client.events(history=1000, app=app_name) if e.component in ("", component)]
    print(views.describe_component(app, component, client.metrics(app_name), events[-args.events :]))
    return 0


def _component_ref(client: Any, ref: str, app: str) -> tuple[str, str]:
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


def _logs(client: Any, args: argparse.Namespace) -> int:
    app, component = _component_ref(client, args.component, args.app)
    for line in client.logs(app, component, tail=args.tail, follow=args.follow):
        prefix = f"[{line.node}]" + (f"[{line.component}]" if line.component != component else "")
        stamp = time.strftime("%H:%M:%S", time.localtime(line.time)) + " " if args.timestamps else ""
        marker = {"stderr": " !", "agent": " *", "neon": " #"}.get(line.stream, "")
        print(f"{stamp}{prefix}{marker} {line.text}", flush=True)
    return 0


def _top(client: Any, args: argparse.Namespace) -> int:
    from neon.wire import to_dict

    while True:
        metrics = client.metrics(args.app)
        apps = [client.get_app(args.app)] if args.app else client.list_apps()
        if args.output == "json":
            print(json.dumps(to_dict(metrics), indent=2))
        else:
            if args.watch:
                print("\033[2J\033[H", end="")
            print(views.top(metrics, apps), flush=True)
        if not args.watch:
            return 0
        time.sleep(args.interval)
