"""Crypto helpers against published vectors: NIST GCM test cases 13-15 (AES-256), FIPS 180-2 SHA-256,
RFC 4231 HMAC-SHA256, RFC 1321 MD5 - and the XPro wire layout (tag *before* data) built from them."""

from __future__ import annotations

import base64
import hashlib

import pytest

from simulator.config import xpro_key
from simulator.dialects import crypto
from simulator.errors import DecryptionFailed

# (key, iv, plaintext, ciphertext, tag) from "The Galois/Counter Mode of Operation", test cases 13-15
NIST_GCM = [
    ("00" * 32, "00" * 12, "", "", "530f8afbc74536b9a963b4f1c4cb738b"),
    ("00" * 32, "00" * 12, "00" * 16, "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"),
    (
        "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
        "cafebabefacedbaddecaf888",
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
        "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
        "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
        "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
        "b094dac5d93471bdec1a502270e3cc6c",
    ),
]


def b64(hex_text: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_text)).decode()


@pytest.mark.parametrize(("key", "iv", "plain", "cipher", "tag"), NIST_GCM)
def test_xpro_encrypt_matches_nist_vectors_in_wire_order(key: str, iv: str, plain: str, cipher: str, tag: str) -> None:
    wire = crypto.xpro_encrypt(bytes.fromhex(key), bytes.fromhex(plain), bytes.fromhex(iv))
    assert wire == b64(iv) + b64(tag) + b64(cipher)  # iv(16 chars) + tag(24 chars) + data
    assert len(b64(iv)) == 16 and len(b64(tag)) == 24


@pytest.mark.parametrize(("key", "iv", "plain", "cipher", "tag"), NIST_GCM)
def test_xpro_decrypt_nist_vectors(key: str, iv: str, plain: str, cipher: str, tag: str) -> None:
    assert crypto.xpro_decrypt(bytes.fromhex(key), b64(iv) + b64(tag) + b64(cipher)) == bytes.fromhex(plain)


def test_tag_after_data_as_libraries_emit_it_is_refused() -> None:
    key, iv, _plain, cipher, tag = NIST_GCM[2]
    with pytest.raises(DecryptionFailed):
        crypto.xpro_decrypt(bytes.fromhex(key), b64(iv) + b64(cipher) + b64(tag))


def test_every_flipped_bit_is_detected() -> None:
    key = b"k" * 32
    wire = crypto.xpro_encrypt(key, b'{"username":"player001"}', b"\x01" * 12)
    iv, tag, data = crypto.xpro_split(wire)
    for part in range(3):
        pieces = [bytearray(iv), bytearray(tag), bytearray(data)]
        pieces[part][0] ^= 0x80
        tampered = "".join(base64.b64encode(bytes(p)).decode() for p in pieces)
        with pytest.raises(DecryptionFailed):
            crypto.xpro_decrypt(key, tampered)


@pytest.mark.parametrize(
    "wire", ["", "A" * 39, "#" * 50, "AAAAAAAAAAAAAAAA" + "!" * 24 + "AAAA", "A" * 15 + "=" + "A" * 30]
)
def test_malformed_cipher_texts(wire: str) -> None:
    with pytest.raises(DecryptionFailed):
        crypto.xpro_decrypt(b"k" * 32, wire)


def test_sha256_signature_vector() -> None:
    # FIPS 180-2: SHA-256("abc")
    assert hashlib.sha256(b"abc").hexdigest() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    # The XPro signature is that same digest over "agentId|timestamp|nonce|cipherText"
    assert crypto.xpro_string_to_sign("a", "1", "n", "c") == "a|1|n|c"
    assert crypto.xpro_signature("a", "1", "n", "c") == hashlib.sha256(b"a|1|n|c").hexdigest()
    assert (
        crypto.xpro_signature("integratorNBTest04", "1769746894501", "56ffd5ecd8a3a4457863a0bd7c298fb2", "")
        == hashlib.sha256(b"integratorNBTest04|1769746894501|56ffd5ecd8a3a4457863a0bd7c298fb2|").hexdigest()
    )


def test_fizzy_signature_vectors() -> None:
    # RFC 4231 test case 2, through the same HMAC call the dialect uses
    import hmac

    digest = hmac.new(b"Jefe", b"what do ya want for nothing?", hashlib.sha256).hexdigest()
    assert digest == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    # RFC 1321: MD5("") uppercased goes into the string to sign
    to_sign = crypto.fizzy_string_to_sign("post", "http://h/wallet/balance", b"")
    assert to_sign == "POST\nhttp://h/wallet/balance\nD41D8CD98F00B204E9800998ECF8427E"
    assert (
        crypto.fizzy_signature("Jefe", "POST", "http://h/wallet/balance", b"")
        == hmac.new(b"Jefe", to_sign.encode(), hashlib.sha256).hexdigest()
    )


def test_same_hex_is_case_insensitive_and_rejects_non_ascii() -> None:
    assert crypto.same_hex("abcdef", "ABCDEF")
    assert not crypto.same_hex("abcdef", "abcdee")
    assert not crypto.same_hex("abcdef", "abcdé")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("0123456789abcdef0123456789abcdef", b"0123456789abcdef0123456789abcdef"),
        ("hex:" + "00ff" * 16, bytes.fromhex("00ff" * 16)),
        ("base64:" + base64.b64encode(bytes(range(32))).decode(), bytes(range(32))),
    ],
)
def test_key_forms(spec: str, expected: bytes) -> None:
    assert xpro_key(spec) == expected


@pytest.mark.parametrize(
    "spec", ["short", "x" * 33, "hex:abc", "hex:" + "zz" * 32, "base64:!!!", "base64:AAAA", "é" * 32]
)
def test_bad_keys(spec: str) -> None:
    with pytest.raises(ValueError):
        xpro_key(spec)
