"""Commands that need no control plane: ``neon certs``, ``neon keys``, ``neon sign``."""

from __future__ import annotations

import argparse
import sys

from neon.security import pki, signing


def certs(args: argparse.Namespace) -> int:
    directory = args.dir or args.pki
    if args.action == "init":
        for path in pki.init(directory, tuple(args.host), tuple(args.etcd_host)):
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


def keys(args: argparse.Namespace) -> int:
    print(signing.create_key(args.path))
    print(f"# private key {args.path} (keep it secret); public key {args.path.with_suffix('.pub')}", file=sys.stderr)
    return 0


def sign(args: argparse.Namespace) -> int:
    sig = signing.sign_file(args.artifact, signing.load_key(args.key))
    print(f"{args.artifact}.sig  ({sig.artifact} signed by {sig.key})")
    return 0
