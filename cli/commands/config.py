"""``neon config``: the CLI's contexts (cli/contexts.py)."""

from __future__ import annotations

import argparse

from cli.contexts import Config, config_path


def run(args: argparse.Namespace) -> int:
    config = Config.load()
    if args.action == "get-contexts":
        print(f"{'CURRENT':<8} {'NAME':<16} {'CONTROL':<28} {'PKI':<40} USER")
        for name, ctx in sorted(config.contexts.items()):
            mark = "*" if name == config.current else ""
            print(f"{mark:<8} {name:<16} {ctx.control or '-':<28} {ctx.pki or '-':<40} {ctx.user or '-'}")
        return 0
    if args.action == "current-context":
        print(config.current or "(none)")
        return 0 if config.current else 1
    if args.action == "use-context":
        config.use(args.name)
        config.save()
        print(f"switched to context {args.name!r} ({config_path()})")
        return 0
    pki = str(args.context_pki.resolve()) if args.context_pki is not None else ""
    config.set(args.name, control=args.context_control, pki=pki, user=args.context_user)
    if args.use or not config.current:
        config.use(args.name)
    config.save()
    print(
        f"context {args.name!r} set" + (" and current" if config.current == args.name else "") + f" ({config_path()})"
    )
    return 0
