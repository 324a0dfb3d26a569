"""The ``neon`` command's arguments: every command, flag and its help (one argparse tree)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from neon._validate import parse_size
from neon.errors import InvalidManifest

DEFAULT_CONTROL = "127.0.0.1:7400"
DEFAULT_PKI = ".neon/pki"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neon", description="Neon Grid: WebAssembly components from cloud to edge.")
    # Unset here, a setting comes from the current context (neon config), else its default (cli/contexts.py).
    parser.add_argument(
        "--control",
        default=os.environ.get("NEON_CONTROL") or None,
        help=f"control plane address (env NEON_CONTROL, else the current context's, else {DEFAULT_CONTROL})",
    )
    parser.add_argument(
        "--pki",
        type=Path,
        default=Path(os.environ["NEON_PKI"]) if os.environ.get("NEON_PKI") else None,
        help="the PKI directory (neon certs init): CA, certificates, keys (env NEON_PKI, else the current "
        f"context's, else {DEFAULT_PKI})",
    )
    parser.add_argument(
        "--user",
        default=os.environ.get("NEON_USER") or None,
        help="whose certificate the CLI presents: USER.pem/USER.key in --pki (env NEON_USER, else the current "
        "context's, else admin)",
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
        default=os.environ.get("NEON_ETCD", ""),
        help="etcd client URL, https:// (mutual TLS with the control plane's certificate); a cluster's members "
        "comma-separated, or one name that resolves to them all (env NEON_ETCD; default https://127.0.0.1:2379, "
        "http://127.0.0.1:2379 with --insecure)",
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
    _registry_flags(p, "the OCI registries oci:// artifacts are pulled from")
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
        help="what this node offers components, repeatable (default: volumes, wasi-filesystem, wasi-sockets, "
        "wasi-http, wasi-config, wasi-keyvalue)",
    )
    p.add_argument(
        "--http-listen",
        default=os.environ.get("NEON_HTTP_LISTEN", ""),
        metavar="HOST:PORT",
        help="serve the routes of the HTTP components placed here on this address (env NEON_HTTP_LISTEN)",
    )
    p.add_argument("--http-cert", type=Path, default=None, help="serve HTTPS with this certificate chain (PEM)")
    p.add_argument("--http-key", type=Path, default=None, help="the private key (PEM) of --http-cert")
    p.add_argument(
        "--max-instances",
        type=int,
        default=1000,
        help="component instances this node may hold at once, reserved up front in wasmtime's pooling allocator "
        "(0: allocate each on demand)",
    )
    p.add_argument(
        "--fetch-rate",
        type=_byte_rate,
        default=0,
        metavar="SIZE",
        help="fetch artifacts from the control plane at most this fast, per second (e.g. 512Ki, 2Mi; default: "
        "unlimited), for a node on a metered or shared link",
    )
    p.add_argument(
        "--failback-after",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="with several --control replicas: after this long on another replica, go back to this node's home "
        "replica once it serves again (default 30)",
    )
    p.add_argument(
        "--compiler",
        choices=("cranelift", "cranelift-O0", "winch", "tiered"),
        default=os.environ.get("NEON_COMPILER", "tiered"),
        help="what compiles artifacts to native code: tiered (default: start on winch's code, move to "
        "cranelift's when it is made in the background), cranelift (optimizing), winch (3-5x faster to "
        "compile, CPU-bound guest code about 1.45x slower); env NEON_COMPILER",
    )
    p.add_argument("--data-dir", default="", help="artifacts and compiled cache (default .neon/agent-NAME)")
    p.add_argument(
        "--cache-dir",
        default=os.environ.get("NEON_COMPILED_CACHE", ""),
        help="compiled-artifact cache, shareable between agents (default DATA_DIR/compiled)",
    )
    _registry_flags(p, "a node labelled neon-grid.dev/pull=registry, which pulls oci:// artifacts itself")
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
    p.add_argument(
        "--allow-latest",
        action="store_true",
        help="accept oci:// artifacts tagged latest or untagged (the generation still pins the digest)",
    )

    p = sub.add_parser("get", help="show applications, components, nodes, HTTP routes or control-plane replicas")
    p.add_argument("kind", choices=["apps", "app", "components", "nodes", "routes", "controlplanes"])
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
    q.add_argument(
        "--etcd-host", action="append", default=[], help="an extra name or IP etcd members reach each other at"
    )
    q = certs.add_parser("issue", help="a user certificate signed by the CA in --pki")
    q.add_argument("name", help="the user's name (lowercase DNS label)")
    q.add_argument("--role", choices=["admin", "viewer"], required=True)
    q.add_argument("--dir", type=Path, default=None, help="the PKI holding ca.key (default: --pki)")

    p = sub.add_parser("backup", help="back the cluster's state up (etcd's snapshot and a manifest), restore it")
    backups = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = backups.add_parser("create", help="FILE: etcd's snapshot and what it holds, from the control plane (admin)")
    q.add_argument("file", type=Path)
    q = backups.add_parser("restore", help="FILE into a fresh etcd data directory and the control plane's blobs")
    q.add_argument("file", type=Path)
    q.add_argument("--etcd-data-dir", type=Path, required=True, help="a new (empty or absent) etcd data directory")
    q.add_argument("--etcd-name", default="neon", help="the etcd member's name (./run dev's is neon)")
    q.add_argument(
        "--etcd-peer-url", default="https://127.0.0.1:2380", help="the member's peer URL, as etcd will be started"
    )
    q.add_argument("--blob-dir", type=Path, required=True, help="the control plane's blob directory (DATA_DIR/blobs)")
    q.add_argument(
        "--blobs-from",
        type=Path,
        action="append",
        default=[],
        help="a directory to find the artifacts in by sha256 (an old blob directory, an agent's data directory)",
    )
    q.add_argument(
        "--allow-missing-artifacts", action="store_true", help="restore even if some artifact cannot be found"
    )

    p = sub.add_parser("config", help="contexts: which control plane, PKI and user commands use by default")
    contexts = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    contexts.add_parser("get-contexts", help="every context; * marks the current one")
    contexts.add_parser("current-context", help="the current context's name")
    q = contexts.add_parser("use-context", help="make NAME the current context")
    q.add_argument("name")
    q = contexts.add_parser("set-context", help="create or change context NAME (unset values are kept)")
    q.add_argument("name")
    q.add_argument("--control", dest="context_control", default="", help="the control plane's address(es)")
    q.add_argument("--pki", dest="context_pki", type=Path, default=None, help="the PKI directory")
    q.add_argument("--user", dest="context_user", default="", help="whose certificate (USER.pem in the PKI)")
    q.add_argument("--use", action="store_true", help="and make it the current context")

    p = sub.add_parser("token", help="one-time join tokens for agents")
    tokens = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = tokens.add_parser("create", help="a token one agent can join with once")
    q.add_argument("--ttl", default="1h", help="how long it may be used: 90s, 30m, 1h, 2d (default 1h)")
    q.add_argument("--node", default="", help="only this node may join with it (also re-admits an existing node)")

    p = sub.add_parser("secret", help="secrets components' config takes values from (encrypted at rest)")
    secrets = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = secrets.add_parser(
        "create", help="create secret NAME; with --replace, give it new keys and values (rolled out to its users)"
    )
    q.add_argument("name")
    q.add_argument("--from-literal", action="append", default=[], metavar="KEY=VALUE", help="a key and its value")
    q.add_argument("--from-file", action="append", default=[], metavar="KEY=PATH", help="a key and a file's text")
    q.add_argument("--replace", action="store_true", help="replace an existing secret's keys and values")
    q = secrets.add_parser("get", help="secrets' names, keys, versions and users (never a value)")
    q.add_argument("name", nargs="?", default="")
    q = secrets.add_parser("delete", help="delete a secret no application uses")
    q.add_argument("name")
    secrets.add_parser("rotate-key", help="a new data key: every secret is encrypted again with it")

    p = sub.add_parser("keys", help="ed25519 keys that sign components")
    keys = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = keys.add_parser("create", help="write a private key to PATH and its public key to PATH.pub")
    q.add_argument("path", type=Path)

    p = sub.add_parser("sign", help="sign an artifact: writes ARTIFACT.sig, uploaded with it by neon apply")
    p.add_argument("artifact", type=Path)
    p.add_argument("--key", type=Path, required=True, help="the ed25519 private key (neon keys create)")

    p = sub.add_parser("new", help="a new component project: WIT, source, build file, manifest, README")
    p.add_argument("name", help="the component's name (lowercase words joined by '-')")
    p.add_argument("--lang", choices=["python", "js", "c"], required=True, help="the language of its source")
    p.add_argument("--dir", type=Path, default=None, help="where to write it (default ./NAME)")
    p.add_argument(
        "--wit",
        type=Path,
        default=None,
        metavar="DIR",
        help="your own WIT (a directory, its dependencies in deps/): every function the world exports is written "
        "out, answering its zero value (python, js; c for functions of scalars and strings)",
    )
    p.add_argument("--world", default=None, help="the world to implement (default: the only one in --wit's package)")

    p = sub.add_parser("build", help="build a component project (its neon.yaml) into build/NAME.wasm")
    p.add_argument("dir", nargs="?", type=Path, default=Path("."), help="the project (default .)")

    p = sub.add_parser("push", help="push a component to an OCI registry (the CNCF Wasm layout), optionally signed")
    p.add_argument("artifact", type=Path, help="the component (.wasm)")
    p.add_argument("reference", help="oci://REGISTRY/REPOSITORY:TAG")
    p.add_argument("--sign-with", type=Path, default=None, metavar="KEY", help="attach a signature by this key")
    _registry_flags(p, "the registry pushed to")
    p.add_argument("--allow-latest", action="store_true", help="push to the tag latest")

    p = sub.add_parser("dev", help="run etcd, a control plane, two agents and the log analyzer locally")
    p.add_argument("--dir", type=Path, default=Path(".neon-dev"), help="state directory")
    p.add_argument("--once", action="store_true", help="stop after the demo instead of waiting for Ctrl-C")
    return parser


def _byte_rate(text: str) -> int:
    """``--fetch-rate``: a size per second (``512Ki``, ``2Mi``, a byte count)."""
    try:
        return parse_size(text, "--fetch-rate")
    except InvalidManifest as err:
        raise argparse.ArgumentTypeError(err.message) from None


def _registry_flags(p: argparse.ArgumentParser, whose: str) -> None:
    """--registry-config and --registry-ca (env NEON_REGISTRY_CONFIG, NEON_REGISTRY_CA)."""
    config, ca = os.environ.get("NEON_REGISTRY_CONFIG"), os.environ.get("NEON_REGISTRY_CA")
    p.add_argument(
        "--registry-config",
        type=Path,
        default=Path(config) if config else None,
        metavar="FILE",
        help=f"credentials of {whose}: a docker-style config.json (env NEON_REGISTRY_CONFIG; default "
        "~/.docker/config.json)",
    )
    p.add_argument(
        "--registry-ca",
        type=Path,
        default=Path(ca) if ca else None,
        metavar="FILE",
        help="a CA bundle for a registry with a private CA (env NEON_REGISTRY_CA)",
    )
