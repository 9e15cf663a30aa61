"""Cryptographic helpers, shared by the dialects, the reference client and the CLI.

XPro: AES-256-GCM with a 12-byte IV and a 16-byte tag, no AAD, on the wire as
``base64(iv) + base64(tag) + base64(ciphertext)`` (16 + 24 + n characters; the tag comes *before* the
data, whereas ``cryptography`` appends it), and an unkeyed SHA-256 signature over
``agentId|timestamp|nonce|cipherText``.

Fizzy Bubbly: ``hex(HMAC-SHA256(private key, METHOD + "\\n" + URL + "\\n" + UPPER(hex(MD5(body)))))``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from simulator.errors import DecryptionFailed

IV_LEN, TAG_LEN = 12, 16
IV_B64_LEN, TAG_B64_LEN = 16, 24


@functools.lru_cache(maxsize=256)
def _aead(key: bytes) -> AESGCM:
    return AESGCM(key)


def xpro_encrypt(key: bytes, plaintext: bytes, iv: bytes | None = None) -> str:
    """Encrypt to the XPro wire form. ``iv`` is random unless given (tests use fixed vectors)."""
    iv = iv if iv is not None else os.urandom(IV_LEN)
    if len(iv) != IV_LEN:
        raise ValueError("the IV must be 12 bytes")
    sealed = _aead(key).encrypt(iv, plaintext, None)
    data, tag = sealed[:-TAG_LEN], sealed[-TAG_LEN:]
    return "".join(base64.b64encode(part).decode("ascii") for part in (iv, tag, data))


def xpro_split(cipher_text: str) -> tuple[bytes, bytes, bytes]:
    """``(iv, tag, data)`` of a wire ``cipherText``; DecryptionFailed when it cannot be one."""
    if len(cipher_text) < IV_B64_LEN + TAG_B64_LEN:
        raise DecryptionFailed(f"cipherText is {len(cipher_text)} characters, at least 40 are needed")
    parts = (cipher_text[:IV_B64_LEN], cipher_text[IV_B64_LEN : IV_B64_LEN + TAG_B64_LEN], cipher_text[40:])
    try:
        iv, tag, data = (base64.b64decode(part, validate=True) for part in parts)
    except (binascii.Error, ValueError):
        raise DecryptionFailed("cipherText is not iv(16) + tag(24) + data in standard base64") from None
    if len(iv) != IV_LEN or len(tag) != TAG_LEN:
        raise DecryptionFailed("cipherText does not start with a 12-byte IV and a 16-byte tag")
    return iv, tag, data


def xpro_decrypt(key: bytes, cipher_text: str) -> bytes:
    iv, tag, data = xpro_split(cipher_text)
    try:
        return _aead(key).decrypt(iv, data + tag, None)
    except InvalidTag:
        raise DecryptionFailed("GCM authentication failed: wrong key, or the cipherText was altered") from None


def xpro_string_to_sign(agent_id: str, timestamp: str, nonce: str, cipher_text: str) -> str:
    return f"{agent_id}|{timestamp}|{nonce}|{cipher_text}"


def xpro_signature(agent_id: str, timestamp: str, nonce: str, cipher_text: str) -> str:
    canonical = xpro_string_to_sign(agent_id, timestamp, nonce, cipher_text)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def fizzy_string_to_sign(method: str, url: str, body: bytes) -> str:
    return f"{method.upper()}\n{url}\n{hashlib.md5(body).hexdigest().upper()}"


def fizzy_signature(private_key: str, method: str, url: str, body: bytes) -> str:
    message = fizzy_string_to_sign(method, url, body).encode("utf-8")
    return hmac.new(private_key.encode("utf-8"), message, hashlib.sha256).hexdigest()


def same_hex(expected: str, given: str) -> bool:
    """Constant-time, case-insensitive comparison of hex digests."""
    return hmac.compare_digest(expected.lower().encode("ascii"), given.strip().lower().encode("ascii", "replace"))
