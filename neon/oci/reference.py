"""``oci://REGISTRY/REPOSITORY:TAG`` and ``oci://REGISTRY/REPOSITORY@sha256:...``: what a manifest's artifact or
``neon push`` may name in a registry, parsed and checked (no I/O).

The grammar is the OCI distribution spec's: a repository is lowercase path components joined by ``/``, a tag
is at most 128 word characters, dots and dashes, a digest is ``sha256:`` and 64 hex digits. A reference with
neither tag nor digest, or with the tag ``latest``, names whatever was pushed last: it is refused unless the
caller allows it, since a generation must pin what it runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from neon.errors import InvalidArgument

SCHEME = "oci://"
_REGISTRY = re.compile(
    r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9-]+)*|\[[0-9a-fA-F:]+\])(?::\d{1,5})?$"
)
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def is_oci(text: str) -> bool:
    return text.startswith(SCHEME)


@dataclass(frozen=True)
class Reference:
    registry: str  # host[:port]
    repository: str
    tag: str = ""
    digest: str = ""  # the manifest's, when pinned

    @property
    def target(self) -> str:
        """``registry/repository:tag`` or ``...@digest``, as OCI clients name it (the digest when both are set)."""
        return f"{self.registry}/{self.repository}" + (f"@{self.digest}" if self.digest else f":{self.tag}")

    def pinned(self, digest: str) -> Reference:
        return replace(self, digest=digest)

    def __str__(self) -> str:
        tag = f":{self.tag}" if self.tag else ""
        return f"{SCHEME}{self.registry}/{self.repository}{tag}" + (f"@{self.digest}" if self.digest else "")


def parse(text: str, allow_latest: bool = False, field: str = "artifact") -> Reference:
    """The reference ``text`` names, or InvalidArgument naming ``field`` and what to write instead."""

    def refuse(why: str) -> InvalidArgument:
        return InvalidArgument(f"{field}: {text!r} {why}", field=field)

    if not is_oci(text):
        raise refuse(f"is not an OCI reference (write {SCHEME}REGISTRY/REPOSITORY:TAG or ...@sha256:DIGEST)")
    rest = text[len(SCHEME) :]
    rest, _, digest = rest.partition("@")
    registry, slash, path = rest.partition("/")
    if not slash or not path:
        raise refuse("names no repository (write oci://REGISTRY/REPOSITORY:TAG)")
    if not _REGISTRY.match(registry):
        raise refuse(f"has no valid registry host: {registry!r}")
    repository, tag = path, ""
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        repository, tag = path.rsplit(":", 1)
        if not _TAG.match(tag):
            raise refuse(f"has an invalid tag {tag!r} (word characters, '.' and '-', at most 128)")
    bad = [c for c in repository.split("/") if not _COMPONENT.match(c)]
    if bad:
        raise refuse(f"has an invalid repository part {bad[0]!r} (lowercase letters, digits, '.', '_', '-')")
    if digest and not _DIGEST.match(digest):
        raise refuse(f"has an invalid digest {digest!r} (sha256: and 64 lowercase hex digits)")
    if not digest and not allow_latest and tag in ("", "latest"):
        raise refuse(
            "names whatever was pushed last; give a version tag or @sha256:DIGEST (or allow it: --allow-latest)"
        )
    return Reference(registry, repository, tag or ("latest" if not digest else ""), digest)
