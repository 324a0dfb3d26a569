"""Sealing: what is sealed opens only with the same key and context; keys derived from a private key are stable
and differ by purpose."""

from __future__ import annotations

import pytest

from neon.errors import IntegrityError
from neon.security import pki, sealing


def test_a_sealed_value_opens_with_its_key_and_context_only() -> None:
    key, other = sealing.new_key(), sealing.new_key()
    sealed = sealing.seal(key, b"hunter2", "secret:db:1")
    assert b"hunter2" not in sealed
    assert sealing.unseal(key, sealed, "secret:db:1") == b"hunter2"
    assert sealing.seal(key, b"hunter2", "secret:db:1") != sealed  # a fresh nonce each time
    for wrong_key, context in ((other, "secret:db:1"), (key, "secret:db:2"), (key, "secret:other:1")):
        with pytest.raises(IntegrityError, match="does not open with this key"):
            sealing.unseal(wrong_key, sealed, context)
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(IntegrityError):
        sealing.unseal(key, tampered, "secret:db:1")
    with pytest.raises(IntegrityError, match="too short"):
        sealing.unseal(key, b"short", "secret:db:1")


def test_keys_derived_from_a_private_key_are_stable_and_apart_by_purpose() -> None:
    ca, other = pki.create_ca(), pki.create_ca()
    first = sealing.derive_key(ca.key, "secrets v1")
    assert len(first) == 32
    assert sealing.derive_key(ca.key, "secrets v1") == first  # every replica with the CA's key derives the same
    assert sealing.derive_key(ca.key, "something else") != first
    assert sealing.derive_key(other.key, "secrets v1") != first
