"""`neon secret`: create (or replace), get (names, keys, versions and users, never values), delete, rotate-key."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from cli import render
from cli.client import ControlClient
from neon.errors import InvalidArgument


def _pairs(items: list[str], flag: str) -> list[tuple[str, str]]:
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"{flag} takes KEY=VALUE, got {item!r}", field=flag)
        out.append((key, value))
    return out


def _data(args: argparse.Namespace) -> dict[str, str]:
    data: dict[str, str] = {}
    sources = _pairs(args.from_literal, "--from-literal") + [
        (key, _read(Path(path))) for key, path in _pairs(args.from_file, "--from-file")
    ]
    for key, value in sources:
        if key in data:
            raise InvalidArgument(f"key {key!r} is given twice", field=key)
        data[key] = value
    return data


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidArgument(f"--from-file {path}: {err}", field="--from-file") from None


def secret(client: ControlClient, args: argparse.Namespace) -> int:
    if args.action == "create":
        info = client.put_secret(args.name, _data(args), args.replace)
        what = "created" if info.version == 1 else f"replaced (version {info.version})"
        print(f"secret/{info.name} {what}: keys {', '.join(info.keys)}")
        if info.used_by and info.version > 1:
            print(f"# rolling out to {', '.join(info.used_by)}", file=sys.stderr)
    elif args.action == "get":
        items = [s for s in client.list_secrets() if not args.name or s.name == args.name]
        if args.name and not items:
            print(f"error: secret {args.name!r} does not exist; see `neon secret get`", file=sys.stderr)
            return 1
        now = time.time()
        rows = [
            [s.name, ",".join(s.keys), s.version, render.since(s.updated_at, now), ",".join(s.used_by) or "-"]
            for s in items
        ]
        print(render.table(["NAME", "KEYS", "VERSION", "UPDATED", "USED BY"], rows))
    elif args.action == "delete":
        client.delete_secret(args.name)
        print(f"secret/{args.name} deleted")
    else:  # rotate-key
        rotated = client.rotate_secret_key()
        print(f"secrets' data key rotated to {rotated.key_id}: {rotated.reencrypted} secret(s) encrypted again")
    return 0
