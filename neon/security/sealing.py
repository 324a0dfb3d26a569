"""Authenticated encryption of small values (secrets at rest): AES-256-GCM with a random 96-bit nonce, bound
to what the value is (the associated data), and keys derived from a private key already held, by HKDF with a
purpose of their own, so no further key file has to be made, copied or backed up.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from neon.errors import IntegrityError

KEY_BYTES = 32
NONCE_BYTES = 12


def derive_key(private_key_pem: bytes, purpose: str) -> bytes:
    """A 256-bit key for ``purpose`` from a PEM private key (the same key and purpose always give the same)."""
    key = serialization.load_pem_private_key(private_key_pem, password=None)
    material = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=purpose.encode()).derive(material)


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def seal(key: bytes, plaintext: bytes, context: str) -> bytes:
    """``nonce || ciphertext+tag``; opening it needs the same key and ``context``."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, context.encode())


def unseal(key: bytes, sealed: bytes, context: str) -> bytes:
    """The plaintext :func:`seal` sealed; IntegrityError when the key, the context or a byte differs."""
    if len(sealed) < NONCE_BYTES + 16:
        raise IntegrityError(f"sealed value for {context!r} is {len(sealed)} bytes: too short to be one")
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], context.encode())
    except InvalidTag:
        raise IntegrityError(
            f"sealed value for {context!r} does not open with this key (another key sealed it, or it was altered)"
        ) from None
