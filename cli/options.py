"""What several commands read from their arguments the same way: the user's credentials and a client with them,
durations."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from neon.errors import InvalidArgument


def user_credentials(pki_dir: Path, user: str, insecure: bool) -> Any:
    """The CLI's credentials: USER's certificate from the PKI directory, or plaintext when asked."""
    from neon.security.tls import Credentials

    if insecure:
        print("warning: --insecure: plaintext, no certificates; do not use this across a network", file=sys.stderr)
        return Credentials.insecure()
    return Credentials.from_dir(pki_dir, user)


def control_client(args: Any, sign_with: Any = None) -> Any:
    """A client of the control plane at ``--control``, as ``--user`` from ``--pki`` (or plaintext)."""
    from cli.client import ControlClient

    return ControlClient(args.control, user_credentials(args.pki, args.user, args.insecure), sign_with=sign_with)


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``30m``, ``1h``, ``2d`` to seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    try:
        value = float(number) * units[unit]
    except ValueError:
        raise InvalidArgument(f"a duration is a number with s, m, h or d (1h, 30m), got {text!r}") from None
    return value
