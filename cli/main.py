"""The ``neon`` command line, in kubectl's habits.

    neon dev                                  # etcd + control plane + 2 agents + the log analyzer
    neon controlplane --etcd URL --listen ADDR
    neon agent --control ADDR --name N --label tier=edge
    neon apply -f app.yaml [--wait]
    neon get apps | app NAME | components [APP] | nodes | routes [APP] | controlplanes   [-o table|wide|json|yaml]
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
    neon new NAME --lang python|js|c          # a component project (WIT, source, manifest, README)
    neon build [DIR]                          # build it with the language's toolchain: DIR/build/NAME.wasm
    neon push FILE oci://REGISTRY/REPO:TAG [--sign-with KEY]   # to an OCI registry; name it in a manifest

Every connection is mutual TLS with the PKI in --pki (env NEON_PKI, default
.neon/pki); the CLI presents --user's certificate (admin or viewer). --insecure
(env NEON_INSECURE=1) turns TLS off, for a control plane run with --insecure.

Every failure prints one line saying what is wrong and exits non-zero."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Sequence

from cli.client import ControlClient
from cli.commands import backup, config, daemons, invoke, offline, project, reads, secret, writes
from cli.contexts import Config
from cli.options import control_client
from cli.parser import DEFAULT_CONTROL, DEFAULT_PKI, build_parser
from neon.errors import NeonGridError, Unavailable
from neon.security.signing import load_key

_TLS_FAILURES = ("socket closed", "handshake", "ssl", "certificate", "connection reset")

# Commands that run on their own: a process, or files on this machine.
LOCAL: dict[str, Callable[[argparse.Namespace], int]] = {
    "controlplane": daemons.controlplane,
    "agent": daemons.agent,
    "dev": daemons.dev,
    "certs": offline.certs,
    "keys": offline.keys,
    "sign": offline.sign,
    "push": offline.push,
    "new": project.new,
    "build": project.build,
    "backup": backup.run,  # create asks the control plane; restore works on files alone
    "config": config.run,
}
# Commands that talk to a control plane, through a client with the user's certificate.
REMOTE: dict[str, Callable[[ControlClient, argparse.Namespace], int]] = {
    "token": writes.token,
    "secret": secret.secret,
    "apply": writes.apply,
    "rollback": writes.rollback,
    "delete": writes.delete,
    "get": reads.get,
    "describe": reads.describe,
    "logs": reads.logs,
    "top": reads.top,
    "explain": reads.explain,
    "events": reads.events,
    "invoke": invoke.invoke,
    "dashboard": invoke.dashboard,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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


def _settle(args: argparse.Namespace) -> None:
    """Each of --control, --pki, --user: the flag, else its environment variable (the parser's default), else
    the current context's, else the built-in default."""
    context = Config.load().active() if args.command != "config" else None
    args.control = args.control or (context.control if context else "") or DEFAULT_CONTROL
    args.pki = args.pki or Path(context.pki if context and context.pki else DEFAULT_PKI)
    args.user = args.user or (context.user if context else "") or "admin"


def _dispatch(args: argparse.Namespace) -> int:
    _settle(args)
    local = LOCAL.get(args.command)
    if local is not None:
        return local(args)
    signer = load_key(args.sign_with) if getattr(args, "sign_with", None) is not None else None
    with control_client(args, signer) as client:
        return REMOTE[args.command](client, args)
