"""OCI references: what a manifest or `neon push` may name, and the clear refusals."""

from __future__ import annotations

import pytest

from neon.errors import InvalidArgument
from neon.oci.reference import Reference, parse

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    "text, expected",
    [
        ("oci://127.0.0.1:5000/hello:0.1.0", Reference("127.0.0.1:5000", "hello", "0.1.0")),
        ("oci://ghcr.io/acme/logs/parser:v1.2.3-rc.1", Reference("ghcr.io", "acme/logs/parser", "v1.2.3-rc.1")),
        (f"oci://registry.local/a/b@{DIGEST}", Reference("registry.local", "a/b", "", DIGEST)),
        (f"oci://localhost:5000/a:1@{DIGEST}", Reference("localhost:5000", "a", "1", DIGEST)),
        ("oci://[::1]:5000/x_y.z:1", Reference("[::1]:5000", "x_y.z", "1")),
    ],
)
def test_references_parse(text: str, expected: Reference) -> None:
    ref = parse(text)
    assert ref == expected
    assert str(ref) == text  # round trip
    assert ref.target == f"{expected.registry}/{expected.repository}" + (
        f"@{expected.digest}" if expected.digest else f":{expected.tag}"
    )


@pytest.mark.parametrize(
    "text, words",
    [
        ("https://ghcr.io/a:1", "not an OCI reference"),
        ("oci://ghcr.io", "names no repository"),
        ("oci://ghcr.io/", "names no repository"),
        ("oci://bad host/a:1", "no valid registry host"),
        ("oci://ghcr.io/Acme/a:1", "invalid repository part 'Acme'"),
        ("oci://ghcr.io/a//b:1", "invalid repository part ''"),
        ("oci://ghcr.io/a:-x", "invalid tag '-x'"),
        ("oci://ghcr.io/a:" + "t" * 129, "invalid tag"),
        ("oci://ghcr.io/a@sha256:abc", "invalid digest"),
        ("oci://ghcr.io/a@md5:" + "0" * 32, "invalid digest"),
        ("oci://ghcr.io/a", "names whatever was pushed last"),
        ("oci://ghcr.io/a:latest", "--allow-latest"),
    ],
)
def test_bad_references_are_refused_naming_the_fix(text: str, words: str) -> None:
    with pytest.raises(InvalidArgument, match="spec.x.artifact: ") as caught:
        parse(text, field="spec.x.artifact")
    assert words in caught.value.message


def test_latest_is_accepted_only_when_allowed() -> None:
    assert parse("oci://ghcr.io/a", allow_latest=True).tag == "latest"
    assert parse("oci://ghcr.io/a:latest", allow_latest=True).tag == "latest"
    assert parse(f"oci://ghcr.io/a:latest@{DIGEST}").digest == DIGEST  # pinned: nothing floats
