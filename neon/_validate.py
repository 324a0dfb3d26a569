"""Small validators shared by the parsers of what users send; each error names its field."""

from __future__ import annotations

import json
import re
from typing import Any

from neon.errors import InvalidArgument, InvalidManifest

NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def mapping(
    doc: Any,
    path: str,
    *,
    required: frozenset[str] | set[str] = frozenset(),
    optional: frozenset[str] | set[str] = frozenset(),
) -> dict[str, Any]:
    where = path or "the manifest"
    if not isinstance(doc, dict):
        raise InvalidManifest(f"{where} must be a mapping, got {type(doc).__name__}", field=path)
    for key in doc:
        if key not in required and key not in optional:
            allowed = ", ".join(sorted(required | optional))
            raise InvalidManifest(
                f"unknown field {join(path, str(key))!r} (allowed here: {allowed})", field=join(path, str(key))
            )
    for key in sorted(required):
        if key not in doc or doc[key] is None:
            raise InvalidManifest(f"missing required field {join(path, key)!r}", field=join(path, key))
    return doc


def list_field(doc: dict[str, Any], key: str, path: str) -> list[Any]:
    """``doc[key]`` as a list (absent or null: empty); InvalidManifest naming the field otherwise."""
    value = doc.get(key) or []
    if not isinstance(value, list):
        raise InvalidManifest(f"{join(path, key)} must be a list", field=join(path, key))
    return value


def dns_name(value: Any, path: str) -> str:
    if not isinstance(value, str) or not NAME.match(value):
        raise InvalidManifest(
            f"{path} must be a lowercase DNS label (a-z, 0-9, '-', at most 63 characters), got {value!r}", field=path
        )
    return value


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def loads_json(text: str | bytes, field: str) -> Any:
    """JSON from a user, as InvalidArgument when it is not JSON or nests too deep to decode."""
    try:
        return json.loads(text)
    except ValueError as err:
        raise InvalidArgument(f"{field} is not valid JSON: {err}", field=field) from None
    except RecursionError:
        raise InvalidArgument(f"{field} nests deeper than JSON decoding allows", field=field) from None


# namespace:package/interface[@semver]
INTERFACE = re.compile(r"^[a-z][a-z0-9-]*:[a-z][a-z0-9-]*(/[a-z][a-z0-9-]*)+(@[0-9A-Za-z.+-]+)?$")
_UNITS = {"": 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}
_SIZE = re.compile(r"^([0-9]+)(Ki|Mi|Gi)?$")
_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(ms|s|m)$")


def parse_size(value: Any, path: str) -> int:
    """``64Mi``, ``1Gi``, ``65536`` -> bytes."""
    match = _SIZE.match(str(value)) if isinstance(value, (int, str)) and not isinstance(value, bool) else None
    if not match:
        raise InvalidManifest(f"{path} must be a size like 64Mi, 1Gi or a byte count, got {value!r}", field=path)
    return int(match.group(1)) * _UNITS[match.group(2) or ""]


def parse_duration(value: Any, path: str) -> float:
    """``500ms``, ``30s``, ``2m`` -> seconds."""
    match = _DURATION.match(value) if isinstance(value, str) else None
    if not match:
        raise InvalidManifest(f"{path} must be a duration like 500ms, 30s or 2m, got {value!r}", field=path)
    return float(match.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[match.group(2)]
