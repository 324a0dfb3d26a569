"""Commands that need no control plane: ``neon certs``, ``neon keys``, ``neon sign``, ``neon push``."""

from __future__ import annotations

import argparse
import sys

from neon.errors import InvalidArgument
from neon.oci import reference as oci
from neon.oci.registry import RegistryClient
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


def push(args: argparse.Namespace) -> int:
    """``neon push FILE oci://...``: the component in the CNCF Wasm layout, its signature as a referrer."""
    if not args.artifact.is_file():
        raise InvalidArgument(f"no file {args.artifact} to push", field="artifact")
    ref = oci.parse(args.reference, allow_latest=args.allow_latest, field="reference")
    if ref.digest:
        raise InvalidArgument(f"{ref}: push to a tag; the registry gives the digest", field="reference")
    document = ""
    if args.sign_with is not None:
        document = signing.sign(signing.load_key(args.sign_with), signing.file_digest(args.artifact)).to_json()
    pushed = RegistryClient(args.registry_config, args.registry_ca).push(args.artifact, ref, document)
    print(f"pushed {args.artifact} ({pushed.layer_size} bytes, layer {pushed.layer_digest})")
    print(f"  {ref}")
    print(f"  {pushed.reference}   # pinned: the manifest's digest")
    if document:
        print(f"  signed by {signing.Signature.from_json(document).key} (an OCI referrer of the manifest)")
    return 0
