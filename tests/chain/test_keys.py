"""Validator keys: deterministic generation, key files, key names, verifier keys."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pickle
import random
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.errors import KeyFileError, KeyNameError
from chain.keys import (
    Signer,
    VerifiedSignatures,
    cached_verify_signature,
    check_key_name,
    decode_b64,
    key_hash,
    parse_verifier_key,
    verifier_key,
    verify_signature,
)

SEED = bytes(range(32))


def test_from_seed_is_deterministic_and_matches_rfc8032() -> None:
    # RFC 8032 section 7.1, TEST 1: secret key and public key.
    seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    signer = Signer.from_seed("test.example/v1", seed)
    assert signer.public_key.hex() == (
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    )
    sig = signer.sign(b"")
    assert sig.hex() == (
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    assert Signer.from_seed("x", seed).public_key == signer.public_key


def test_generate_with_seeded_rng_is_reproducible() -> None:
    a = Signer.generate("v1", rng=random.Random(7).randbytes)
    b = Signer.generate("v1", rng=random.Random(7).randbytes)
    c = Signer.generate("v1", rng=random.Random(8).randbytes)
    d = Signer.generate("v1")
    assert a.public_key == b.public_key
    assert a.public_key != c.public_key
    assert d.public_key != a.public_key


def test_sign_and_verify() -> None:
    signer = Signer.from_seed("v1", SEED)
    sig = signer.sign(b"hello")
    assert len(sig) == 64
    assert verify_signature(signer.public_key, b"hello", sig)
    assert not verify_signature(signer.public_key, b"hellp", sig)
    flipped = bytes([sig[0] ^ 1]) + sig[1:]
    assert not verify_signature(signer.public_key, b"hello", flipped)
    other = Signer.from_seed("v1", bytes(32))
    assert not verify_signature(other.public_key, b"hello", sig)


def test_small_order_key_forgery_is_rejected() -> None:
    """With the small-order public key 01 00..00 and R = that point, S = 0, the RFC 8032
    cofactorless equation holds for every message; OpenSSL's verifier accepts it, ours
    must not (a validator registered with such a key would sign for anyone)."""
    identity = bytes([1]) + bytes(31)
    forged = identity + bytes(32)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    openssl = Ed25519PublicKey.from_public_bytes(identity)
    openssl.verify(forged, b"any checkpoint at all")  # accepted there: the attack is real
    for message in (b"any checkpoint at all", b"another one"):
        assert not verify_signature(identity, message, forged)


def test_every_signature_of_honest_keys_verifies_as_openssl_says() -> None:
    """Strictness only removes crafted cases: for real keys, libsodium and OpenSSL agree."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    for i in range(50):
        signer = Signer.from_seed("v1", hashlib.sha256(b"seed %d" % i).digest())
        message = b"message %d" % i
        sig = signer.sign(message)
        Ed25519PublicKey.from_public_bytes(signer.public_key).verify(sig, message)
        assert verify_signature(signer.public_key, message, sig)
        assert not verify_signature(signer.public_key, message + b"!", sig)


@pytest.mark.parametrize(
    ("public_key", "signature"),
    [
        (b"", b""),
        (b"\x00" * 31, b"\x00" * 64),
        (b"\x00" * 32, b"\x00" * 63),
        (b"\xff" * 32, b"\x00" * 64),  # not a valid curve point encoding
        (b"\x00" * 33, b"\x00" * 64),
    ],
)
def test_verify_signature_never_raises_on_malformed_input(
    public_key: bytes, signature: bytes
) -> None:
    assert verify_signature(public_key, b"m", signature) is False


@settings(derandomize=True)
@given(st.binary(max_size=40), st.binary(max_size=70), st.binary(max_size=20))
def test_verify_signature_never_raises_fuzz(public_key: bytes, sig: bytes, msg: bytes) -> None:
    assert verify_signature(public_key, msg, sig) in (True, False)


def test_repr_and_str_do_not_show_the_private_key() -> None:
    signer = Signer.from_seed("v1", SEED)
    secret_b64 = base64.b64encode(SEED).decode()
    for text in (repr(signer), str(signer), f"{signer}"):
        assert secret_b64 not in text
        assert SEED.hex() not in text
        assert "v1" in text
    with pytest.raises(TypeError):
        pickle.dumps(signer)
    with pytest.raises(AttributeError):
        signer.name = "other"  # type: ignore[misc]


def test_key_file_round_trip_mode_0600(tmp_path: Path) -> None:
    signer = Signer.from_seed("notary.example/v1", SEED)
    path = tmp_path / "v1.key"
    signer.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = Signer.load(path)
    assert loaded.name == signer.name
    assert loaded.public_key == signer.public_key
    assert loaded.sign(b"m") == signer.sign(b"m")
    # no temporary files left behind
    assert [p.name for p in tmp_path.iterdir()] == ["v1.key"]


def test_key_file_mode_ignores_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        Signer.from_seed("v1", SEED).save(tmp_path / "k")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600


def test_save_refuses_to_overwrite_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "k"
    Signer.from_seed("v1", SEED).save(path)
    before = path.read_bytes()
    with pytest.raises(KeyFileError, match="exists"):
        Signer.from_seed("v2", bytes(32)).save(path, overwrite=False)
    assert path.read_bytes() == before
    Signer.from_seed("v2", bytes(32)).save(path, overwrite=True)
    assert Signer.load(path).name == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k"]


def _write_json(path: Path, doc: object) -> Path:
    path.write_text(json.dumps(doc))
    return path


def _good_doc() -> dict[str, object]:
    return {
        "format": "notary-validator-key",
        "version": 1,
        "name": "v1",
        "algorithm": "ed25519",
        "public_key": base64.b64encode(Signer.from_seed("v1", SEED).public_key).decode(),
        "private_key": base64.b64encode(SEED).decode(),
    }


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"format": "other"}, "format"),
        ({"version": 2}, "version"),
        ({"version": True}, "version"),
        ({"version": 1.0}, "version"),
        ({"algorithm": "rsa"}, "algorithm"),
        ({"name": "a b"}, "name"),
        ({"name": 5}, "name"),
        ({"private_key": "AAAA"}, "private_key"),
        ({"private_key": base64.b64encode(SEED).decode().rstrip("=")}, "private_key"),
        ({"public_key": base64.b64encode(bytes(32)).decode()}, "public_key"),
    ],
)
def test_load_rejects_bad_fields_without_leaking_the_key(
    tmp_path: Path, change: dict[str, object], field: str
) -> None:
    doc = _good_doc() | change
    path = _write_json(tmp_path / "k", doc)
    with pytest.raises(KeyFileError) as info:
        Signer.load(path)
    message = str(info.value)
    assert field in message
    assert str(path) in message
    assert base64.b64encode(SEED).decode() not in message


def test_load_unreadable_and_garbage(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot read"):
        Signer.load(tmp_path / "missing")
    (tmp_path / "g").write_bytes(b"\xff\xfe not json")
    with pytest.raises(KeyFileError, match="not a JSON"):
        Signer.load(tmp_path / "g")
    _write_json(tmp_path / "l", [1, 2])
    with pytest.raises(KeyFileError, match="object"):
        Signer.load(tmp_path / "l")


def test_flipped_byte_on_disk_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "k"
    Signer.from_seed("v1", SEED).save(path)
    doc = json.loads(path.read_text())
    raw = bytearray(base64.b64decode(doc["private_key"]))
    raw[5] ^= 0x01
    doc["private_key"] = base64.b64encode(bytes(raw)).decode()
    _write_json(path, doc)
    with pytest.raises(KeyFileError, match="does not match"):
        Signer.load(path)


@pytest.mark.parametrize(
    "name",
    ["", "a+b", "a b", "a\tb", "a\nb", "a\u00a0b", "a\u2003b", "a\x00b", "a\x7fb", "x" * 257],
)
def test_bad_key_names(name: str) -> None:
    with pytest.raises(KeyNameError):
        check_key_name(name)
    with pytest.raises(KeyNameError):
        Signer.from_seed(name, SEED)


@pytest.mark.parametrize("name", ["v1", "notary.example/validator-1", "ünïcode.example", "x" * 256])
def test_good_key_names(name: str) -> None:
    check_key_name(name)


def test_key_hash_definition() -> None:
    import hashlib

    signer = Signer.from_seed("notary.example/v1", SEED)
    expected = hashlib.sha256(b"notary.example/v1\n\x01" + signer.public_key).digest()[:4]
    assert key_hash(signer.name, signer.public_key) == expected
    assert signer.key_hash == expected


def test_verifier_key_round_trip_and_rejections() -> None:
    signer = Signer.from_seed("notary.example/v1", SEED)
    vkey = verifier_key(signer.name, signer.public_key)
    assert vkey == signer.verifier_key
    name, hash_hex, key_b64 = vkey.split("+", 2)
    assert name == signer.name
    assert hash_hex == signer.key_hash.hex()
    assert base64.b64decode(key_b64) == b"\x01" + signer.public_key
    assert parse_verifier_key(vkey) == (signer.name, signer.public_key)

    other_hash = f"{int(hash_hex, 16) ^ 1:08x}"
    type2 = base64.b64encode(b"\x02" + signer.public_key).decode()
    short = base64.b64encode(b"\x01" + signer.public_key[:31]).decode()
    bad = [
        f"{name}+{hash_hex}",
        f"{name}+{hash_hex}+{key_b64}+x",
        f"{name}+{hash_hex}+{key_b64}x",
        f"{name}+{hash_hex.upper()}+{key_b64}" if hash_hex != hash_hex.upper() else f"{name}+zz+k",
        f"{name}+{other_hash}+{key_b64}",
        f"other+{hash_hex}+{key_b64}",
        f"{name}+{hash_hex}+{key_b64[:-1]}",
        f"{name}+{hash_hex}+{key_b64} ",
        f"{name}+{hash_hex}+{type2}",
        f"{name}+{hash_hex}+{short}",
        f"a b+{hash_hex}+{key_b64}",
    ]
    for text in bad:
        with pytest.raises(KeyNameError):
            parse_verifier_key(text)


def test_decode_b64_is_canonical() -> None:
    assert decode_b64("AAE=") == b"\x00\x01"
    assert decode_b64("AAF=") is None  # non-zero trailing bits
    assert decode_b64("AAE") is None  # missing padding
    assert decode_b64("AA E=") is None
    assert decode_b64("AAE=\n") is None
    assert decode_b64("AA-_") is None  # URL-safe alphabet
    assert decode_b64("") == b""


def test_verifier_key_whose_base64_contains_plus() -> None:
    # The vectors' outsider key: its base64 part contains '+', which must not split it.
    vkey = "v9.notary.example+c84b57b4+AU9r+xwAmJWy3Au8q0o4MTDA27BCswrINL1wwNxSDw+r"
    name, public_key = parse_verifier_key(vkey)
    assert name == "v9.notary.example"
    assert verifier_key(name, public_key) == vkey


def _slow_key_name_ok(name: str) -> bool:
    """The key-name rules spelled out character by character (the reference)."""
    if not name or len(name.encode("utf-8", errors="surrogatepass")) > 256:
        return False
    for ch in name:
        code = ord(ch)
        if ch == "+" or ch.isspace() or ch in "\u200b\u2060\ufeff":
            return False
        if code < 0x20 or 0x7F <= code <= 0x9F or 0xD800 <= code <= 0xDFFF:
            return False
    return True


@settings(derandomize=True, max_examples=500)
@given(st.text(alphabet=st.characters(max_codepoint=0x17F), max_size=260))
def test_check_key_name_fast_path_agrees_with_the_rules(name: str) -> None:
    try:
        check_key_name(name)
        ok = True
    except KeyNameError:
        ok = False
    assert ok is _slow_key_name_ok(name)


def test_every_ascii_character_is_judged_as_the_rules_say() -> None:
    for code in range(128):
        name = f"a{chr(code)}b"
        try:
            check_key_name(name)
            ok = True
        except KeyNameError:
            ok = False
        assert ok is _slow_key_name_ok(name), code
    check_key_name("x" * 256)
    with pytest.raises(KeyNameError):
        check_key_name("x" * 257)


def test_verified_signatures_caches_successes_only() -> None:
    signer = Signer.from_seed("v1", SEED)
    other = Signer.from_seed("v2", bytes(range(1, 33)))
    cache = VerifiedSignatures(max_entries=2)
    sig = signer.sign(b"message")
    assert cache.verify(signer.public_key, b"message", sig)
    assert cache.verify(signer.public_key, b"message", sig)
    assert (cache.hits, cache.misses, len(cache)) == (1, 1, 1)
    # A forged signature (flipped bit, another key's, another message's) fails every time
    # and is never remembered.
    forged = bytes([sig[0] ^ 1]) + sig[1:]
    for _ in range(2):
        assert not cache.verify(signer.public_key, b"message", forged)
        assert not cache.verify(other.public_key, b"message", sig)
        assert not cache.verify(signer.public_key, b"messagf", sig)
        assert not cache.verify(signer.public_key[:31], b"message", sig)
    assert len(cache) == 1
    # Bounded: the least recently used success goes first.
    sig2, sig3 = signer.sign(b"two"), signer.sign(b"three")
    assert cache.verify(signer.public_key, b"two", sig2)
    assert cache.verify(signer.public_key, b"message", sig)  # refreshes "message"
    assert cache.verify(signer.public_key, b"three", sig3)  # evicts "two"
    assert len(cache) == 2
    misses = cache.misses
    assert cache.verify(signer.public_key, b"two", sig2)
    assert cache.misses == misses + 1


def test_process_wide_cache_rejects_a_forgery_of_a_cached_signature() -> None:
    signer = Signer.from_seed("v1", SEED)
    sig = signer.sign(b"vote")
    assert cached_verify_signature(signer.public_key, b"vote", sig)
    assert cached_verify_signature(signer.public_key, b"vote", sig)
    assert not cached_verify_signature(
        signer.public_key, b"vote", sig[:-1] + bytes([sig[-1] ^ 0x80])
    )
    assert not cached_verify_signature(signer.public_key, b"vote!", sig)
